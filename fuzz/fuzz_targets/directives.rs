//! The `_HLS_*` query parser on arbitrary query strings, then `classify` against real
//! snapshots (built once by driving packagers with the synthetic publisher): live with and
//! without delta updates, separate audio, byte ranges, a stall (GAP parts), and an ended
//! stream. A decision must agree with `satisfies`, and its view must render.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use llhls_packager::synth::Publisher;
use llhls_packager::{
    classify, render_media, Addressing, Decision, DirectiveError, Directives, Layout, Output,
    Packager, PackagerConfig, StreamSnapshot, WallClock,
};

fn snapshot(config: PackagerConfig, seconds: u32, stall: bool, end: bool) -> StreamSnapshot {
    let mut publisher = Publisher::new(30.0, 30);
    let mut p = Packager::new(config, publisher.tracks()).expect("valid config");
    let mut last = None;
    let mut wall = 0;
    let frames = (30 + 47) * seconds as usize;
    for i in 0..frames {
        let (f, w) = publisher.next_frame();
        wall = w.0;
        p.handle_frame(f, w).expect("synthetic frames are valid");
        if stall && i == frames / 2 {
            for k in 1..=30 {
                p.handle_timeout(WallClock(wall + k * 100));
            }
            break;
        }
        while let Some(o) = p.poll_output() {
            if matches!(o, Output::PlaylistChanged) {
                last = p.snapshot();
            }
        }
    }
    if end {
        p.handle_end_of_stream(WallClock(wall + 10));
    }
    while let Some(o) = p.poll_output() {
        if matches!(o, Output::PlaylistChanged) {
            last = p.snapshot();
        }
    }
    last.expect("the stream went live")
}

fn snapshots() -> &'static [StreamSnapshot] {
    static SNAPS: OnceLock<Vec<StreamSnapshot>> = OnceLock::new();
    SNAPS.get_or_init(|| {
        let base = PackagerConfig::default;
        vec![
            snapshot(base(), 30, false, false),
            snapshot(
                PackagerConfig {
                    delta_updates: false,
                    first_msn: 17_950_000_000,
                    ..base()
                },
                8,
                false,
                false,
            ),
            snapshot(
                PackagerConfig {
                    layout: Layout::Separate,
                    addressing: Addressing::ByteRange,
                    ..base()
                },
                20,
                false,
                false,
            ),
            snapshot(
                PackagerConfig {
                    part_target: std::time::Duration::from_millis(1000),
                    segment_target: std::time::Duration::from_secs(4),
                    ..base()
                },
                12,
                false,
                false,
            ),
            snapshot(base(), 12, true, false),
            snapshot(base(), 6, false, true),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let d = match Directives::parse(query) {
        Ok(d) => d,
        Err(DirectiveError::PartWithoutMsn) => {
            assert!(query.contains("_HLS_part"));
            return;
        }
        Err(_) => return,
    };
    assert!(
        d.part.is_none() || d.msn.is_some(),
        "part without msn accepted"
    );
    assert_eq!(d.is_blocking(), d.msn.is_some());
    for snap in snapshots() {
        for r in &snap.renditions {
            match classify(&d, snap, r) {
                Ok(Decision::Now(skip)) => {
                    if let (Some(msn), false) = (d.msn, snap.ended) {
                        assert!(r.satisfies(msn, d.part), "answered now but not satisfied");
                    }
                    assert!(render_media(snap, r, skip).starts_with("#EXTM3U\n"));
                }
                Ok(Decision::Wait { msn, part, skip }) => {
                    assert!(!snap.ended, "wait on an ended stream");
                    assert_eq!((Some(msn), part), (d.msn, d.part));
                    assert!(!r.satisfies(msn, part), "held although satisfied");
                    assert!(render_media(snap, r, skip).starts_with("#EXTM3U\n"));
                }
                Err(DirectiveError::TooFarAhead { msn, .. }) => {
                    assert_eq!(Some(msn), d.msn);
                }
                Err(e) => panic!("classify returned a parse error: {e}"),
            }
        }
    }
});
