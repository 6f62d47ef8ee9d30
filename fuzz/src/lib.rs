//! Shared code of the llhls fuzz targets: what every parsed codec configuration must survive,
//! an ISO-BMFF box walker, and the packager driver with its invariant checker.

pub mod ops;

use llhls_packager::cmaf::{self, InitTrack};
use llhls_packager::CodecConfig;

/// A box: its type and its payload.
pub type BmffBox<'a> = ([u8; 4], &'a [u8]);

/// Top-level boxes of `data`: `Err` unless they tile it exactly (size >= 8, within bounds).
pub fn boxes(data: &[u8]) -> Result<Vec<BmffBox<'_>>, String> {
    let mut out = Vec::new();
    let mut i = 0usize;
    while i < data.len() {
        let head = data
            .get(i..i + 8)
            .ok_or_else(|| format!("box header truncated at {i}"))?;
        let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let fourcc = [head[4], head[5], head[6], head[7]];
        if size < 8 || size > data.len() - i {
            return Err(format!(
                "box {:?} at {i} has size {size} (have {})",
                String::from_utf8_lossy(&fourcc),
                data.len() - i
            ));
        }
        out.push((fourcc, &data[i + 8..i + size]));
        i += size;
    }
    Ok(out)
}

/// Everything a caller may do with a configuration that parsed: none of it may panic, and the
/// results must be usable where they go (a CODECS attribute, an init segment).
pub fn exercise_codec(cfg: &CodecConfig) {
    let s = cfg.codec_string();
    assert!(
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b','),
        "codec string {s:?} cannot go into CODECS=\"...\""
    );
    let _ = cfg.describe();
    let _ = cfg.kind();
    let ts = cfg.timescale();
    assert!(ts.hz() > 0);
    let _ = cfg.resolution();
    let _ = cfg.frame_rate();
    let _ = cfg.audio_frame_ticks();
    let _ = cfg.channels();
    let init = cmaf::init_segment(&[InitTrack {
        track_id: 1,
        timescale: ts.hz(),
        codec: cfg,
    }]);
    check_init(&init);
}

/// An init segment is `ftyp` + `moov` and nothing else, each box well formed.
pub fn check_init(init: &[u8]) {
    let top = boxes(init).unwrap_or_else(|e| panic!("init segment: {e}"));
    let names: Vec<[u8; 4]> = top.iter().map(|(f, _)| *f).collect();
    assert_eq!(
        names,
        vec![*b"ftyp", *b"moov"],
        "init segment top-level boxes"
    );
    let moov = boxes(top[1].1).unwrap_or_else(|e| panic!("moov: {e}"));
    assert!(moov.iter().any(|(f, _)| f == b"trak"), "moov without trak");
}

/// Splits Annex-B data into NAL units (the packager's own splitter; it is fuzzed too).
pub fn annex_b_nals(data: &[u8]) -> Vec<Vec<u8>> {
    llhls_packager::codec::split_annex_b(data)
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect()
}
