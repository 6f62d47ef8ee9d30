//! AV1: the av1C record parser (with its embedded sequence header OBU), the codec string and
//! an init segment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llhls_fuzz::exercise_codec;
use llhls_packager::codec::Av1Config;
use llhls_packager::CodecConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(c) = Av1Config::from_av1c(data) else {
        return;
    };
    exercise_codec(&CodecConfig::Av1(c));
});
