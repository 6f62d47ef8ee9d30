//! Property test: random publishers (GOPs from 0.5 to 4 s, frame rates, B-frames, audio
//! jitter, a reconnect, a stall) and the LL-HLS invariants checked after every playlist change
//! by `Harness::check` (part durations <= PART-TARGET, the 85% rule, INDEPENDENT exactly on
//! sync parts, EXTINF = sum of parts, rounded EXTINF <= TD, MSN -> URI never changes, header
//! values never change) and `Harness::check_fragment` (tfdt continuity, mdat sizes).

mod common;

use common::*;
use llhls_packager::{Addressing, Layout, PackagerConfig, WallClock};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Plan {
    fps: f64,
    gops_secs: Vec<f64>,
    bframes: bool,
    audio: bool,
    separate: bool,
    byterange: bool,
    jitter: Vec<i64>,
    reconnect_at: usize,
    stall_at: usize,
    stall_secs: u32,
    part_ms: u64,
    stall_filler: bool,
}

fn plan() -> impl Strategy<Value = Plan> {
    (
        prop::sample::select(vec![24.0, 25.0, 29.97, 30.0, 50.0, 60.0]),
        prop::collection::vec(
            prop::sample::select(vec![0.5, 1.0, 1.5, 2.0, 3.0, 4.0]),
            1..4,
        ),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(-3i64..=3, 1..6),
        0usize..4,
        0usize..4,
        1u32..4,
        prop::sample::select(vec![100u64, 200, 333, 500]),
        any::<bool>(),
    )
        .prop_map(
            |(
                fps,
                gops_secs,
                bframes,
                audio,
                separate,
                byterange,
                jitter,
                reconnect_at,
                stall_at,
                stall_secs,
                part_ms,
                stall_filler,
            )| Plan {
                fps,
                gops_secs,
                bframes,
                audio,
                separate,
                byterange,
                jitter,
                reconnect_at,
                stall_at,
                stall_secs,
                part_ms,
                stall_filler,
            },
        )
}

fn run(plan: &Plan) {
    let config = PackagerConfig {
        part_target: std::time::Duration::from_millis(plan.part_ms),
        layout: if plan.separate {
            Layout::Separate
        } else {
            Layout::Muxed
        },
        addressing: if plan.byterange {
            Addressing::ByteRange
        } else {
            Addressing::Files
        },
        first_msn: 7,
        stall_filler: plan.stall_filler,
        ..PackagerConfig::default()
    };
    let gop_frames = |secs: f64| ((secs * plan.fps).round() as u32).max(1);
    let mut pub_ = Publisher::new(plan.fps, gop_frames(plan.gops_secs[0]));
    pub_.bframes = plan.bframes;
    pub_.audio = plan.audio;
    pub_.audio_jitter_ms = plan.jitter.iter().map(|j| j.abs()).collect();
    let mut h = Harness::new(config, pub_.tracks());
    let per_sec = (plan.fps + if plan.audio { 47.0 } else { 0.0 }) as usize;
    for phase in 0..4 {
        pub_.gop = gop_frames(plan.gops_secs[phase % plan.gops_secs.len()]);
        h.feed(&mut pub_, per_sec * 8);
        if phase == plan.reconnect_at {
            h.p.handle_discontinuity(Some(pub_.tracks()), WallClock(pub_.wall0 + 100_000))
                .unwrap();
            h.drain();
            let mut again = Publisher::new(plan.fps, pub_.gop);
            again.bframes = plan.bframes;
            again.audio = plan.audio;
            again.wall0 = pub_.wall0 + 200_000;
            pub_ = again;
        }
        if phase == plan.stall_at {
            // The wall clock runs on without frames (the origin ticks every 100 ms)...
            let last_wall = pub_.wall0 + pub_.video_ms_public(pub_.frame_no) - pub_.base_ms;
            for i in 1..=(plan.stall_secs * 10) {
                h.p.handle_timeout(WallClock(last_wall + i64::from(i) * 100));
                h.drain();
            }
            // ...and the publisher resumes with timestamps that jumped by the stall.
            let skip = (f64::from(plan.stall_secs) * plan.fps) as u64;
            pub_.frame_no =
                (pub_.frame_no + skip).div_ceil(u64::from(pub_.gop)) * u64::from(pub_.gop);
            pub_.audio_no =
                (pub_.video_ms_public(pub_.frame_no) as f64 * 48.0 / 1024.0).ceil() as u64;
        }
    }
    assert!(!h.snapshots.is_empty(), "nothing published for {plan:?}");
    h.p.handle_end_of_stream(WallClock(pub_.wall0 + 500_000));
    h.drain();
    assert!(h.last().ended);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32),
        max_shrink_iters: 50,
        ..ProptestConfig::default()
    })]
    #[test]
    fn invariants_hold_for_random_publishers(plan in plan()) {
        run(&plan);
    }
}
