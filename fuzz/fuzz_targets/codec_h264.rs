//! H.264: the avcC record parser (byte 0 even) or SPS/PPS NAL units from Annex-B (byte 0 odd),
//! then the codec string, the avcC writer (its output must parse back to the same facts), an
//! init segment, and the NAL framing helpers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llhls_fuzz::{annex_b_nals, exercise_codec};
use llhls_packager::codec::{self, AvcConfig};
use llhls_packager::CodecConfig;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let parsed = if mode & 1 == 0 {
        AvcConfig::from_avcc(rest)
    } else {
        let nals = annex_b_nals(rest);
        let of = |t: u8| -> Vec<Vec<u8>> {
            nals.iter()
                .filter(|n| n.first().is_some_and(|b| b & 0x1f == t))
                .cloned()
                .collect()
        };
        AvcConfig::from_parameter_sets(of(7), of(8))
    };
    // The framing helpers must agree with each other on any input.
    let lp = codec::annex_b_to_length_prefixed(rest);
    let back = codec::length_prefixed_nals(&lp).expect("our own length prefixes parse");
    assert_eq!(back, codec::split_annex_b(rest));
    let _ = codec::length_prefixed_nals(rest);
    let _ = codec::is_annex_b(rest);

    let Ok(c) = parsed else { return };
    let avcc = c.to_avcc();
    if c.sps.len() <= 31
        && c.pps.len() <= 255
        && c.sps.iter().chain(&c.pps).all(|n| n.len() <= 0xffff)
    {
        let again = AvcConfig::from_avcc(&avcc).expect("our avcC parses back");
        assert_eq!(again, c, "avcC round trip");
    }
    exercise_codec(&CodecConfig::H264(c));
});
