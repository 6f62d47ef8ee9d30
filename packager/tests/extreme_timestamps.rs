//! Hostile timestamps and wall clocks: every one is an error or a warning, never an overflow
//! panic (run in debug builds, where overflow panics), and the packager keeps working after.

mod common;

use bytes::Bytes;
use common::*;
use llhls_packager::{
    Frame, MediaTime, PackagerConfig, PackagerError, Timescale, TrackId, WallClock,
};

fn live() -> (Harness, Publisher) {
    let mut publisher = Publisher::new(30.0, 30);
    let mut h = Harness::new(PackagerConfig::default(), publisher.tracks());
    h.feed(&mut publisher, 77 * 6);
    assert!(h.p.is_live());
    (h, publisher)
}

fn frame(track: TrackId, dts: MediaTime, pts: MediaTime) -> Frame {
    Frame {
        track,
        dts,
        pts,
        keyframe: true,
        data: Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88]),
    }
}

fn scale(hz: u32) -> Timescale {
    Timescale::new(hz).unwrap()
}

fn assert_out_of_range(result: Result<(), PackagerError>, expected: &str) {
    match result {
        Err(PackagerError::TimestampOutOfRange { what, .. }) => assert_eq!(what, expected),
        other => panic!("expected {expected} out of range, got {other:?}"),
    }
}

/// Feeds two more seconds and checks new parts were published and the invariants held.
fn keeps_working(h: &mut Harness, publisher: &mut Publisher) {
    h.drain();
    let before = h.last().renditions[0].last_part();
    h.feed(publisher, 77 * 2);
    let after = h.last().renditions[0].last_part();
    assert!(after > before, "no progress: {before:?} -> {after:?}");
}

#[test]
fn dts_at_i64_limits_is_an_error() {
    let (mut h, mut publisher) = live();
    let now = WallClock(publisher.wall0);
    for ticks in [i64::MAX, i64::MIN, i64::MAX - 1, i64::MIN + 1] {
        for track in [VIDEO, AUDIO] {
            let at = MediaTime::from_millis(ticks);
            let result =
                h.p.handle_frame(frame(track, at, MediaTime::from_millis(0)), now);
            assert!(
                matches!(
                    result,
                    Err(PackagerError::TimestampOutOfRange { .. }
                        | PackagerError::PtsBeforeDts { .. })
                ),
                "{result:?}"
            );
            assert_out_of_range(h.p.handle_frame(frame(track, at, at), now), "dts");
        }
    }
    keeps_working(&mut h, &mut publisher);
}

#[test]
fn timescales_of_one_and_u32_max() {
    let (mut h, mut publisher) = live();
    let now = WallClock(publisher.wall0);
    for (ticks, hz) in [
        (i64::MAX, 1),
        (i64::MIN, 1),
        (1 << 61, 1),
        (i64::MAX, u32::MAX),
        (i64::MIN, u32::MAX),
    ] {
        let at = MediaTime::new(ticks, scale(hz));
        assert_out_of_range(h.p.handle_frame(frame(VIDEO, at, at), now), "dts");
    }
    // The next frames on other clocks (the same instants): accepted, the stream goes on.
    for hz in [u32::MAX, 1_000_000_007, 90_000] {
        let (next, wall) = publisher.next_frame();
        let at = MediaTime::new(next.dts.rescale(scale(hz)), scale(hz));
        let pts = MediaTime::new(next.pts.rescale(scale(hz)), scale(hz));
        h.p.handle_frame(
            Frame {
                dts: at,
                pts,
                ..next
            },
            wall,
        )
        .unwrap();
        h.drain();
    }
    // A timescale-1 frame far (but not absurdly) ahead reads as a timestamp reset.
    let at = MediaTime::new(1 << 29, scale(1));
    h.p.handle_frame(frame(VIDEO, at, at), now).unwrap();
    h.drain();
    h.p.handle_end_of_stream(WallClock(publisher.wall0 + 60_000));
    h.drain();
    assert!(h.last().ended);
}

#[test]
fn pts_far_after_dts_is_an_error() {
    let (mut h, mut publisher) = live();
    let (next, wall) = publisher.next_frame();
    for far in [1i64 << 62, i64::MAX - next.dts.ticks, 3_600_001] {
        let pts = MediaTime::from_millis(next.dts.ticks.saturating_add(far));
        let result = h.p.handle_frame(frame(next.track, next.dts, pts), wall);
        assert!(
            matches!(result, Err(PackagerError::TimestampOutOfRange { what, .. }) if what == "pts" || what == "pts - dts"),
            "{far}: {result:?}"
        );
    }
    h.p.handle_frame(next, wall).unwrap();
    keeps_working(&mut h, &mut publisher);
}

#[test]
fn wall_clock_at_zero_works_and_at_the_limits_is_an_error() {
    // A publisher whose arrival clock starts at the epoch: an ordinary stream.
    let mut publisher = Publisher::new(30.0, 30);
    publisher.wall0 = 0;
    let mut h = Harness::new(PackagerConfig::default(), publisher.tracks());
    h.feed(&mut publisher, 77 * 6);
    let first = h.last().renditions[0].segments[0].program_date_time;
    assert!((0..1_000).contains(&first.0), "{first:?}");
    let (next, _) = publisher.next_frame();
    for wall in [i64::MAX, i64::MIN, 253_402_300_800_000] {
        assert_out_of_range(
            h.p.handle_frame(next.clone(), WallClock(wall)),
            "wall clock",
        );
    }
    h.p.handle_frame(next, WallClock(5_000)).unwrap();
    keeps_working(&mut h, &mut publisher);
    // Discontinuities and the end with absurd clocks: no panic, the playlist ends.
    h.p.handle_discontinuity(None, WallClock(i64::MAX)).unwrap();
    h.drain();
    h.p.handle_end_of_stream(WallClock(i64::MIN));
    h.drain();
    assert!(h.last().ended);
}

#[test]
fn handle_timeout_with_a_clock_far_ahead_or_behind_warns_and_invents_nothing() {
    let (mut h, mut publisher) = live();
    let wall = publisher.wall0 + publisher.video_ms_public(publisher.frame_no);
    let snapshots = h.snapshots.len();
    for now in [
        i64::MAX,
        i64::MIN,
        0,
        wall + 1_000_000_000,
        wall - 1_000_000_000,
    ] {
        h.p.handle_timeout(WallClock(now));
        h.drain();
        h.p.handle_timeout(WallClock(now));
        h.drain();
    }
    assert_eq!(h.snapshots.len(), snapshots, "no GAP parts were invented");
    let clock_warnings = h
        .warnings
        .iter()
        .filter(|w| w.starts_with("handle_timeout"))
        .count();
    assert_eq!(
        clock_warnings, 1,
        "warned once until the next frame: {:?}",
        h.warnings
    );
    keeps_working(&mut h, &mut publisher);
    h.p.handle_timeout(WallClock(i64::MAX));
    h.drain();
    let clock_warnings = h
        .warnings
        .iter()
        .filter(|w| w.starts_with("handle_timeout"))
        .count();
    assert_eq!(
        clock_warnings, 2,
        "warned again after frames: {:?}",
        h.warnings
    );
    keeps_working(&mut h, &mut publisher);
}

#[test]
fn handle_timeout_during_a_stall_with_a_clock_jumping_to_the_limits() {
    let (mut h, publisher) = live();
    let wall = publisher.wall0 + publisher.video_ms_public(publisher.frame_no);
    // A real stall first: GAP parts.
    for i in 1..=20 {
        h.p.handle_timeout(WallClock(wall + i * 100));
        h.drain();
    }
    assert!(h.warnings.iter().any(|w| w.contains("no input")));
    // Then the clock jumps: ignored with a warning, never an overflow.
    for now in [i64::MAX, i64::MIN, wall - 1_000_000_000] {
        h.p.handle_timeout(WallClock(now));
        h.drain();
    }
    assert!(h.warnings.iter().any(|w| w.starts_with("handle_timeout")));
    // A clock stepped far ahead mid-stall keeps the GAP parts bounded per call.
    h.p.handle_timeout(WallClock(wall + 1_000_000_000));
    h.drain();
    h.p.handle_end_of_stream(WallClock(wall + 1_000_000_000));
    h.drain();
    assert!(h.last().ended);
}

/// A cheap deterministic random walk over hostile inputs: any overflow panics in debug.
#[test]
fn random_hostile_operations_never_panic() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..8 {
        let (mut h, mut publisher) = live();
        let base = publisher.wall0 + publisher.video_ms_public(publisher.frame_no);
        let mut last_ms = publisher.video_ms_public(publisher.frame_no);
        for _ in 0..1_500 {
            let pick = next();
            let value = |r: u64| -> i64 {
                match r % 6 {
                    0 => r as i64,
                    1 => i64::MAX - (r % 1000) as i64,
                    2 => i64::MIN + (r % 1000) as i64,
                    3 => last_ms + (r % 20_000) as i64 - 10_000,
                    4 => last_ms + (r % 70) as i64,
                    _ => -((r % 100_000) as i64),
                }
            };
            let hz = match next() % 5 {
                0 => 1,
                1 => u32::MAX,
                2 => 90_000,
                3 => 48_000,
                _ => 1000,
            };
            let wall = match next() % 4 {
                0 => i64::MAX,
                1 => base + (next() % 100_000) as i64,
                2 => 0,
                _ => i64::MIN + (next() % 10) as i64,
            };
            match pick % 10 {
                0 => h.p.handle_timeout(WallClock(wall)),
                1 if round % 2 == 0 => {
                    let _ = h.p.handle_discontinuity(None, WallClock(wall));
                }
                2..=5 => {
                    let (f, w) = publisher.next_frame();
                    last_ms = f.dts.ticks;
                    let _ = h.p.handle_frame(f, w);
                }
                _ => {
                    let dts = value(next());
                    let pts = if next() % 2 == 0 { dts } else { value(next()) };
                    let track = if next() % 2 == 0 { VIDEO } else { AUDIO };
                    let keyframe = next() % 3 == 0;
                    let f = Frame {
                        keyframe,
                        ..frame(
                            track,
                            MediaTime::new(dts, scale(hz)),
                            MediaTime::new(pts, scale(hz)),
                        )
                    };
                    let _ = h.p.handle_frame(f, WallClock(wall));
                }
            }
            // Drain without the harness's checks: hostile input may legitimately break the
            // synthetic publisher's continuity assumptions; only panics matter here.
            while h.p.poll_output().is_some() {}
            let _ = h.p.snapshot();
        }
        h.p.handle_end_of_stream(WallClock(base));
        while h.p.poll_output().is_some() {}
        assert!(h.p.snapshot().is_some_and(|s| s.ended));
    }
}
