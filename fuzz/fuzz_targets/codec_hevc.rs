//! HEVC: the hvcC record parser (byte 0 even) or VPS/SPS/PPS NAL units from Annex-B (byte 0
//! odd), then the codec string, the hvcC writer (round trip), and an init segment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llhls_fuzz::{annex_b_nals, exercise_codec};
use llhls_packager::codec::HevcConfig;
use llhls_packager::CodecConfig;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let parsed = if mode & 1 == 0 {
        HevcConfig::from_hvcc(rest)
    } else {
        let nals = annex_b_nals(rest);
        let of = |t: u8| -> Vec<Vec<u8>> {
            nals.iter()
                .filter(|n| n.first().is_some_and(|b| (b >> 1) & 0x3f == t))
                .cloned()
                .collect()
        };
        HevcConfig::from_parameter_sets(of(32), of(33), of(34))
    };
    let Ok(c) = parsed else { return };
    let hvcc = c.to_hvcc();
    let fits = |v: &Vec<Vec<u8>>| v.len() <= 0xffff && v.iter().all(|n| n.len() <= 0xffff);
    if fits(&c.vps) && fits(&c.sps) && fits(&c.pps) {
        let again = HevcConfig::from_hvcc(&hvcc).expect("our hvcC parses back");
        assert_eq!(again, c, "hvcC round trip");
    }
    exercise_codec(&CodecConfig::Hevc(c));
});
