//! AAC: the AudioSpecificConfig parser, the codec string, an init segment (esds), and the
//! AAC-LC config builder on arbitrary rates and channel counts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llhls_fuzz::exercise_codec;
use llhls_packager::codec::AacConfig;
use llhls_packager::CodecConfig;

fuzz_target!(|data: &[u8]| {
    if data.len() >= 5 {
        let rate = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        if let Ok(c) = AacConfig::lc(rate, data[4]) {
            exercise_codec(&CodecConfig::Aac(c));
        }
    }
    let Ok(c) = AacConfig::from_asc(data) else {
        return;
    };
    assert!((7350..=96000).contains(&c.sample_rate));
    assert!(c.frame_length == 1024 || c.frame_length == 960);
    exercise_codec(&CodecConfig::Aac(c));
});
