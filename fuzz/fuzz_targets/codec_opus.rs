//! Opus: the OpusHead parser (byte 0 even) and the packet duration from the TOC byte (byte 0
//! odd), then the codec string and an init segment (dOps).
#![no_main]

use libfuzzer_sys::fuzz_target;
use llhls_fuzz::exercise_codec;
use llhls_packager::codec::{opus_packet_samples, OpusConfig};
use llhls_packager::CodecConfig;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 1 {
        if let Some(n) = opus_packet_samples(rest) {
            // 2.5 ms (120 samples) is the shortest frame, 120 ms the longest packet (RFC 6716).
            assert!((120..=5760).contains(&n), "{n} samples");
        }
        return;
    }
    let Ok(c) = OpusConfig::from_opus_head(rest) else {
        return;
    };
    assert!(c.channels > 0);
    exercise_codec(&CodecConfig::Opus(c));
});
