//! The DVR window: media playlists list the last N seconds, parts only near the live edge,
//! delta updates stay small, and segments older than the live window leave memory.

mod common;

use std::time::Duration;

use common::*;
use llhls_packager::{render_media, Addressing, Output, PackagerConfig, SkipMode, WallClock};

/// 1 s segments (a keyframe every 30 frames at 30 fps), a 30 s DVR window. The publisher
/// sends about 77 frames a second (30 video, 47 audio).
fn cfg() -> PackagerConfig {
    PackagerConfig {
        first_msn: 1000,
        segment_target: Duration::from_secs(1),
        dvr_window: Duration::from_secs(30),
        ..PackagerConfig::default()
    }
}

/// Each listed segment's MSN and discontinuity number as a client counts them.
fn discontinuity_numbers(text: &str) -> Vec<(u64, u64)> {
    let field = |tag: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(tag))
            .and_then(|v| v.split(',').next())
            .map(|v| v.parse().unwrap())
            .unwrap_or(0)
    };
    let mut msn = field("#EXT-X-MEDIA-SEQUENCE:") + field("#EXT-X-SKIP:SKIPPED-SEGMENTS=");
    let mut disc = field("#EXT-X-DISCONTINUITY-SEQUENCE:");
    let mut out = Vec::new();
    for line in text.lines() {
        if line == "#EXT-X-DISCONTINUITY" {
            disc += 1;
        } else if line.starts_with("#EXTINF:") {
            out.push((msn, disc));
            msn += 1;
        }
    }
    out
}

#[test]
fn the_window_lists_thirty_seconds_and_parts_only_near_the_edge() {
    let mut pub_ = Publisher::new(30.0, 30);
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 77 * 75);
    // Past the instant a segment closes (it is listed with its EXTINF once the next segment
    // has a part: scenarios.rs).
    while h.last().renditions[0]
        .open
        .as_ref()
        .is_some_and(|o| o.parts.is_empty())
    {
        h.feed(&mut pub_, 1);
    }
    let snap = h.last().clone();
    let r = &snap.renditions[0];
    assert_eq!(r.segments.len(), 30, "30 s of 1 s segments");
    assert!((r.window_duration() - 30.0).abs() < 0.01);
    assert_eq!(r.media_sequence, r.segments[0].msn);
    let td = f64::from(snap.timing.target_duration);
    let full = render_media(&snap, r, SkipMode::Full);
    assert_eq!(full.matches("#EXTINF:").count(), 30);
    // Parts only for the last three target durations (whole parents, the last two always).
    let with_parts = r.segments.iter().filter(|s| s.parts_listed).count();
    assert!(
        (2..=4).contains(&with_parts),
        "{with_parts} segments list parts"
    );
    // Everything older than the live window (12 segments) left memory, each once, in order.
    let spilled_msns: Vec<u64> = h
        .spilled
        .iter()
        .map(|u| {
            u.trim_start_matches("media/")
                .trim_end_matches(".m4s")
                .parse()
                .unwrap()
        })
        .collect();
    let first = spilled_msns[0];
    assert_eq!(first, 1000, "the first segment spills first");
    assert!(spilled_msns.windows(2).all(|w| w[1] == w[0] + 1));
    let newest_spilled = *spilled_msns.last().unwrap();
    assert_eq!(newest_spilled, r.segments[r.segments.len() - 13].msn);
    for s in r.segments.iter().filter(|s| s.msn <= newest_spilled) {
        assert!(s.parts.is_empty(), "segment {} keeps part entries", s.msn);
    }
    // Their part files expired; the spilled segments themselves stay until they leave the
    // DVR window (plus the retention time).
    assert!(h.expired.iter().any(|u| u == "media/1000.0.m4s"));
    assert!(!h.expired.iter().any(|u| u == &r.segments[0].uri));
    // The delta update skips all but the last CAN-SKIP-UNTIL (6 TD) of the window.
    let yes = render_media(&snap, r, SkipMode::Yes);
    let skipped: usize = yes
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-SKIP:SKIPPED-SEGMENTS="))
        .expect("EXT-X-SKIP")
        .parse()
        .unwrap();
    let listed = yes.matches("#EXTINF:").count();
    assert_eq!(skipped + listed, 30, "skipped + listed = the window");
    assert!(
        listed as f64 <= 6.0 * td + 1.0,
        "{listed} segments after the skip"
    );
    assert!(
        yes.len() < full.len(),
        "delta {} vs full {}",
        yes.len(),
        full.len()
    );
    assert_eq!(
        discontinuity_numbers(&yes),
        discontinuity_numbers(&full)[skipped..]
    );
}

#[test]
fn sequence_numbers_stay_right_as_a_discontinuity_leaves_the_window() {
    let mut pub_ = Publisher::new(30.0, 30);
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 77 * 20);
    let w = WallClock(pub_.wall0 + 21_000);
    h.p.handle_discontinuity(Some(pub_.tracks()), w).unwrap();
    h.drain();
    let mut again = Publisher::new(30.0, 30);
    again.wall0 = pub_.wall0 + 22_000;
    // Until the discontinuity has left the 30 s window, and a little more.
    let mut seen_inside = false;
    for _ in 0..60 {
        h.feed(&mut again, 77);
        let snap = h.last().clone();
        let r = &snap.renditions[0];
        let full = render_media(&snap, r, SkipMode::Full);
        let numbers = discontinuity_numbers(&full);
        // Every segment keeps its (MSN, discontinuity number) from one playlist to the next.
        let disc_msn = r.segments.iter().find(|s| s.discontinuity).map(|s| s.msn);
        for (msn, disc) in &numbers {
            let after = disc_msn.is_some_and(|d| *msn >= d) || r.discontinuity_sequence == 1;
            assert_eq!(*disc, u64::from(after), "segment {msn}");
        }
        seen_inside |= disc_msn.is_some();
        let yes = render_media(&snap, r, SkipMode::Yes);
        let skipped = numbers.len() - discontinuity_numbers(&yes).len();
        assert_eq!(discontinuity_numbers(&yes), numbers[skipped..]);
        // Never a skipped EXT-X-DISCONTINUITY.
        if let Some(d) = disc_msn {
            assert!(r.media_sequence + skipped as u64 <= d);
        }
    }
    assert!(seen_inside);
    let r = &h.last().renditions[0];
    assert_eq!(
        r.discontinuity_sequence, 1,
        "the discontinuity left the window"
    );
    // 30 complete segments listed (one more in the snapshot while the newest one is listed as
    // still open, until the next segment has a part).
    let listed = render_media(h.last(), r, SkipMode::Full)
        .matches("#EXTINF:")
        .count();
    assert_eq!(listed, 30);
}

#[test]
fn a_failed_spill_shortens_the_window_to_the_live_window() {
    let mut pub_ = Publisher::new(30.0, 30);
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 77 * 40);
    let failed = h.spilled.last().unwrap().clone();
    let msn: u64 = failed
        .trim_start_matches("media/")
        .trim_end_matches(".m4s")
        .parse()
        .unwrap();
    let before = h.last().renditions[0].media_sequence;
    h.p.drop_dvr_through(msn);
    let mut changed = false;
    while let Some(o) = h.p.poll_output() {
        changed |= matches!(o, Output::PlaylistChanged);
    }
    assert!(changed);
    let snap = h.p.snapshot().unwrap();
    let r = &snap.renditions[0];
    assert_eq!(r.segments[0].msn, msn + 1);
    assert_eq!(r.media_sequence, msn + 1);
    assert!(r.media_sequence > before);
    assert_eq!(r.segments.len(), 12, "the live window stays");
    // Dropping again is a no-op, and never cuts into the live window.
    h.p.drop_dvr_through(u64::MAX);
    assert_eq!(h.p.snapshot().unwrap().renditions[0].segments.len(), 12);
}

#[test]
fn the_independent_parser_reads_a_long_window() {
    for addressing in [Addressing::Files, Addressing::ByteRange] {
        long_window(addressing);
    }
}

fn long_window(addressing: Addressing) {
    let dir = std::env::temp_dir().join(format!(
        "llhls-dvr-views-{addressing:?}-{}",
        std::process::id()
    ));
    let mut pub_ = Publisher::new(30.0, 30);
    let config = PackagerConfig {
        dvr_window: Duration::from_secs(120),
        layout: llhls_packager::Layout::Separate,
        addressing,
        ..cfg()
    };
    let mut h = Harness::new(config, pub_.tracks());
    h.feed(&mut pub_, 77 * 150);
    let snap = h.last();
    let r = &snap.renditions[0];
    assert_eq!(r.segments.len(), 120);
    for other in &snap.renditions[1..] {
        assert_eq!(other.media_sequence, r.media_sequence, "{}", other.name);
        assert_eq!(other.segments.len(), 120, "{}", other.name);
    }
    // The delta update costs about what it costs with the default window: a small fraction.
    let full = render_media(snap, r, SkipMode::Full).len();
    let yes = render_media(snap, r, SkipMode::Yes).len();
    assert!(yes * 4 < full, "delta {yes} bytes, full {full}");
    let files = h.dump_views(&dir, "dvr");
    validate(&files);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The settled segments' lines are rendered once and shared between snapshots; every view
/// must read exactly as when each segment is rendered anew (the settled text cleared), across
/// a discontinuity with a new init segment entering and leaving the window, and a failed
/// spill cutting the window short.
#[test]
fn the_settled_text_renders_what_every_segment_renders() {
    for addressing in [Addressing::Files, Addressing::ByteRange] {
        let mut pub_ = Publisher::new(30.0, 30);
        let config = PackagerConfig {
            addressing,
            ..cfg()
        };
        let mut h = Harness::new(config, pub_.tracks());
        h.feed(&mut pub_, 77 * 20);
        let w = WallClock(pub_.wall0 + 21_000);
        h.p.handle_discontinuity(Some(pub_.tracks()), w).unwrap();
        h.drain();
        let mut again = Publisher::new(30.0, 30);
        again.wall0 = pub_.wall0 + 22_000;
        h.feed(&mut again, 77 * 45);
        let msn = h.last().renditions[0].segments[3].msn;
        h.p.drop_dvr_through(msn);
        h.drain();
        h.feed(&mut again, 77 * 5);
        let (mut used, mut renamed_used) = (0, 0);
        // A ladder rung's rendition is renamed in every snapshot; its text is kept in step
        // with the renamed segments from one snapshot to the next.
        let mut renamed_text = llhls_packager::render::SettledText::default();
        for snap in &h.snapshots {
            let mut renamed = llhls_packager::ladder::rename_rendition(&snap.renditions[0], "rung");
            renamed_text.sync(&renamed.segments);
            renamed.settled = renamed_text.clone();
            let mut anew = renamed.clone();
            anew.settled = Default::default();
            for skip in [SkipMode::Full, SkipMode::Yes, SkipMode::V2] {
                assert_eq!(
                    render_media(snap, &renamed, skip),
                    render_media(snap, &anew, skip),
                    "renamed, version {} {skip:?}",
                    snap.version
                );
            }
            renamed_used += usize::from(renamed.settled.covers(&renamed.segments) > 10);
            for r in &snap.renditions {
                let mut anew = r.clone();
                anew.settled = Default::default();
                for skip in [SkipMode::Full, SkipMode::Yes, SkipMode::V2] {
                    assert_eq!(
                        render_media(snap, r, skip),
                        render_media(snap, &anew, skip),
                        "{} version {} {skip:?}",
                        r.name,
                        snap.version
                    );
                }
                used += usize::from(r.settled.covers(&r.segments) > 10);
            }
        }
        assert!(used > 100, "the settled text was used in {used} views");
        assert!(renamed_used > 50, "renamed: used in {renamed_used}");
    }
}

/// A snapshot shares the segments that no longer change with the snapshots before it (they
/// are not copied), so a change costs the same however long the window is; a copy that was
/// made entry by entry shares none.
#[test]
fn snapshots_share_the_segments_that_no_longer_change() {
    let mut pub_ = Publisher::new(30.0, 30);
    let config = PackagerConfig {
        dvr_window: Duration::from_secs(300),
        layout: llhls_packager::Layout::Separate,
        ..cfg()
    };
    let mut h = Harness::new(config, pub_.tracks());
    h.feed(&mut pub_, 77 * 330);
    let n = h.snapshots.len();
    let (before, last) = (&h.snapshots[n - 6], &h.snapshots[n - 1]);
    for (b, r) in before.renditions.iter().zip(&last.renditions) {
        assert_eq!(r.segments.len(), 300, "{}", r.name);
        let shared = r.segments.shared_with(&b.segments);
        assert!(
            shared * 4 >= r.segments.len() * 3,
            "{}: {shared} of {} segments shared",
            r.name,
            r.segments.len()
        );
        let copied: llhls_packager::playlist::Segments = r.segments.iter().cloned().collect();
        assert_eq!(copied, r.segments);
        assert_eq!(copied.shared_with(&r.segments), 0);
    }
}
