//! Scenario tests named by behaviour, on a synthetic clock.

mod common;

use common::*;
use llhls_packager::playlist::RenditionKind;
use llhls_packager::{
    render_media, render_multivariant, Addressing, Frame, Layout, PackagerConfig, SkipMode,
    WallClock, FIRST_PLAYLIST_SEGMENTS,
};

fn cfg() -> PackagerConfig {
    PackagerConfig {
        first_msn: 1000,
        ..PackagerConfig::default()
    }
}

#[test]
fn muxed_30fps_one_second_gop_publishes_two_second_segments() {
    let mut pub_ = Publisher::new(30.0, 30);
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 77 * 30);
    let snap = h.last();
    assert_eq!(snap.timing.target_duration, 2);
    let r = &snap.renditions[0];
    assert_eq!(r.kind, RenditionKind::Muxed);
    assert_eq!(
        r.part_target, 0.20202,
        "6 frames of 30 fps + 2 ms jitter allowance, rounded up"
    );
    assert_eq!(r.segments[0].msn, 1000.max(r.media_sequence));
    for s in &r.segments {
        assert!(
            (s.duration - 2.0).abs() < 0.004,
            "segment {} lasts {}",
            s.msn,
            s.duration
        );
        assert!(s.parts[0].independent);
        assert_eq!(s.parts.len(), 10);
    }
    assert_eq!(r.segments.len(), 12, "window of 12 segments");
    assert!(h.warnings.is_empty(), "{:?}", h.warnings);
    let text = render_media(snap, r, SkipMode::Full);
    assert!(text.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"media/"));
    let mv = render_multivariant(snap);
    assert!(mv.contains("CODECS=\"avc1.64001f,mp4a.40.2\""), "{mv}");
    assert!(mv.contains("RESOLUTION=1280x720"));
}

#[test]
fn first_playlist_waits_for_a_complete_segment() {
    let mut pub_ = Publisher::new(30.0, 30);
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 50);
    assert!(
        h.snapshots.is_empty(),
        "no playlist before the first segment closes (hls.js #6809)"
    );
    h.feed(&mut pub_, 200);
    assert!(!h.snapshots.is_empty());
    assert!(h.p.is_live());
}

#[test]
fn the_first_playlist_lists_three_complete_segments() {
    // Chromium's built-in HLS player fails (DEMUXER_ERROR_COULD_NOT_PARSE) on a first playlist
    // with fewer than three complete segments; the segment that just closed is listed open
    // until the next one has a part, so that one must not count.
    let mut pub_ = Publisher::new(30.0, 30);
    let mut h = Harness::new(cfg(), pub_.tracks());
    while h.snapshots.is_empty() {
        h.feed(&mut pub_, 1);
    }
    let snap = &h.snapshots[0];
    let r = &snap.renditions[0];
    let text = render_media(snap, r, SkipMode::Full);
    assert_eq!(
        text.matches("#EXTINF:").count(),
        FIRST_PLAYLIST_SEGMENTS,
        "{text}"
    );
    assert_eq!(r.open.as_ref().map(|o| o.parts.len()), Some(1), "{text}");
}

#[test]
fn a_stream_shorter_than_the_probe_still_ends_with_its_segment() {
    // A 5 s file with one keyframe (samples/media/bigbuckbunny.mp4 is one): the probe never
    // saw a second keyframe, so the end of the stream fixes the timing from what it has.
    let mut pub_ = Publisher::new(25.0, 1000);
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 5 * (25 + 47));
    assert!(h.snapshots.is_empty(), "still probing");
    h.p.handle_end_of_stream(WallClock(pub_.wall0 + 6_000));
    h.drain();
    let snap = h.last();
    assert!(snap.ended);
    let r = &snap.renditions[0];
    assert_eq!(r.segments.len(), 1, "{r:?}");
    assert!(r.segments[0].duration > 4.9);
    assert_eq!(snap.timing.target_duration, 5);
}

#[test]
fn b_frames_get_signed_composition_offsets() {
    let mut pub_ = Publisher::new(30.0, 30);
    pub_.bframes = true;
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 30 * 10 * 2);
    let r = &h.last().renditions[0];
    assert!(r.segments.len() >= 3);
}

#[test]
fn twenty_four_fps_rounds_part_target_to_whole_frames() {
    let mut pub_ = Publisher::new(24.0, 48);
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 24 * 10 * 2);
    let r = &h.last().renditions[0];
    // 5 frames of 41.667 ms = 208.3 ms, plus the jitter allowance.
    assert!(
        r.part_target > 0.208 && r.part_target < 0.212,
        "{}",
        r.part_target
    );
}

#[test]
fn long_keyframe_interval_fixes_target_duration_and_warns() {
    let mut pub_ = Publisher::new(30.0, 150); // 5 s GOP, OBS "auto"-like
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 30 * 40 * 2);
    let snap = h.last();
    assert_eq!(snap.timing.target_duration, 5);
    assert!(
        h.warnings.iter().any(|w| w.contains("keyframe interval")),
        "{:?}",
        h.warnings
    );
    assert!(snap.renditions[0]
        .segments
        .iter()
        .all(|s| s.parts[0].independent));
}

#[test]
fn keyframe_interval_growing_mid_stream_forces_cuts_without_changing_td() {
    let mut pub_ = Publisher::new(30.0, 60);
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 30 * 10 * 2);
    pub_.gop = 300; // 10 s: longer than TD + 0.5
                    // Keep frame numbering aligned to a new keyframe.
    pub_.frame_no = pub_.frame_no.div_ceil(300) * 300;
    pub_.audio_no = (pub_.video_ms_public(pub_.frame_no) as f64 * 48.0 / 1024.0).ceil() as u64;
    h.feed(&mut pub_, 30 * 30 * 2);
    let snap = h.last();
    assert_eq!(snap.timing.target_duration, 2);
    assert!(
        h.warnings
            .iter()
            .any(|w| w.contains("cut between keyframes")),
        "{:?}",
        h.warnings
    );
    assert!(!snap.independent_segments);
}

#[test]
fn separate_audio_rendition_shares_the_grid() {
    let mut pub_ = Publisher::new(30.0, 30);
    let config = PackagerConfig {
        layout: Layout::Separate,
        ..cfg()
    };
    let mut h = Harness::new(config, pub_.tracks());
    h.feed(&mut pub_, 30 * 20 * 2);
    let snap = h.last();
    assert_eq!(snap.renditions.len(), 2);
    let (v, a) = (&snap.renditions[0], &snap.renditions[1]);
    assert_eq!(a.kind, RenditionKind::Audio);
    assert_eq!(
        v.segments.last().unwrap().msn,
        a.segments.last().unwrap().msn
    );
    assert!(a
        .segments
        .iter()
        .flat_map(|s| &s.parts)
        .all(|p| p.independent || p.gap));
    let text = render_media(snap, v, SkipMode::Full);
    assert!(
        text.contains("#EXT-X-RENDITION-REPORT:URI=\"audio.m3u8\""),
        "{text}"
    );
    let mv = render_multivariant(snap);
    assert!(mv.contains("#EXT-X-MEDIA:TYPE=AUDIO"), "{mv}");
    assert!(mv.contains("AUDIO=\"audio\""));
}

#[test]
fn audio_only_stream_publishes_parts() {
    let mut pub_ = Publisher::new(30.0, 30);
    pub_.video = false;
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 47 * 20);
    let r = &h.last().renditions[0];
    assert_eq!(r.kind, RenditionKind::Audio);
    assert!(
        r.part_target > 0.18 && r.part_target < 0.22,
        "{}",
        r.part_target
    );
    assert!(r
        .segments
        .iter()
        .flat_map(|s| &s.parts)
        .all(|p| p.independent));
}

#[test]
fn video_only_stream() {
    let mut pub_ = Publisher::new(30.0, 30);
    pub_.audio = false;
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 30 * 10);
    assert_eq!(h.last().renditions[0].kind, RenditionKind::Video);
}

#[test]
fn byterange_addressing_grows_the_segment() {
    let mut pub_ = Publisher::new(30.0, 30);
    let config = PackagerConfig {
        addressing: Addressing::ByteRange,
        ..cfg()
    };
    let mut h = Harness::new(config, pub_.tracks());
    h.feed(&mut pub_, 30 * 8 * 2);
    let snap = h.last();
    let r = &snap.renditions[0];
    for s in &r.segments {
        let seg = &h.objects[&s.uri];
        let mut off = 0;
        for p in &s.parts {
            let (len, o) = p.byterange.expect("byte range");
            assert_eq!(o, off);
            assert_eq!(p.uri, s.uri);
            off += len;
        }
        assert_eq!(off as usize, seg.len());
    }
    let text = render_media(snap, r, SkipMode::Full);
    assert!(text.contains(",BYTERANGE-START="), "{text}");
}

#[test]
fn segment_is_the_concatenation_of_its_parts() {
    let mut pub_ = Publisher::new(30.0, 30);
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 30 * 8 * 2);
    let r = &h.last().renditions[0];
    for s in &r.segments {
        let cat: Vec<u8> = s
            .parts
            .iter()
            .flat_map(|p| h.objects[&p.uri].iter().copied())
            .collect();
        assert_eq!(&cat[..], &h.objects[&s.uri][..]);
    }
}

#[test]
fn reconnect_continues_msn_with_a_discontinuity() {
    let mut pub_ = Publisher::new(30.0, 30);
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 30 * 6 * 2);
    let last_msn = h.last().renditions[0].open.as_ref().unwrap().msn;
    let w = llhls_packager::WallClock(pub_.wall0 + 20_000);
    h.p.handle_discontinuity(Some(pub_.tracks()), w).unwrap();
    h.drain();
    // The publisher restarts its timestamps at zero.
    let mut again = Publisher::new(30.0, 30);
    again.wall0 = pub_.wall0 + 25_000;
    h.feed(&mut again, 30 * 6 * 2);
    let r = &h.last().renditions[0];
    let disc: Vec<_> = r.segments.iter().filter(|s| s.discontinuity).collect();
    assert_eq!(disc.len(), 1);
    assert_eq!(disc[0].msn, last_msn + 1, "MSN continues");
    let text = render_media(h.last(), r, SkipMode::Full);
    assert!(text.contains("#EXT-X-DISCONTINUITY\n"));
}

#[test]
fn a_continued_stream_re_lists_the_segment_players_saw_then_starts_a_discontinuity() {
    // A restart: players last saw segment 999 (discontinuity sequence 2), dated 7 s before this
    // run's first frame; this run starts at MSN 1006. Shaka finds no MSN it knows in a playlist
    // that starts at 1006 and never plays again; hls.js waits seconds.
    let mut pub_ = Publisher::new(30.0, 30);
    let bridge = llhls_packager::Bridge {
        msn: 999,
        program_date_time: WallClock(pub_.wall0 - 7_000),
        discontinuity_sequence: 2,
    };
    let config = PackagerConfig {
        first_msn: 1006,
        first_discontinuity_sequence: 2 + 1,
        bridge: Some(bridge),
        ..cfg()
    };
    let mut h = Harness::new(config, pub_.tracks());
    while h.snapshots.is_empty() {
        h.feed(&mut pub_, 1);
    }
    // The first playlist still waits for three segments of media (the bridge is GAP).
    let first = &h.snapshots[0];
    let r = &first.renditions[0];
    let media: Vec<_> = r.segments.iter().filter(|s| s.msn >= 1006).collect();
    assert_eq!(media.len(), FIRST_PLAYLIST_SEGMENTS);
    assert_eq!(r.media_sequence, 999);
    assert_eq!(r.discontinuity_sequence, 2);
    let bridged: Vec<_> = r.segments.iter().filter(|s| s.msn < 1006).collect();
    assert_eq!(
        bridged.iter().map(|s| s.msn).collect::<Vec<_>>(),
        (999..1006).collect::<Vec<_>>()
    );
    // One seventh each of the time from 999's date to the first frame's (7 s and the few
    // milliseconds the first frame's date is after the publisher's start).
    let outage = (media[0].program_date_time.0 - bridge.program_date_time.0) as f64 / 1000.0;
    assert!((7.0..7.1).contains(&outage), "{outage}");
    for s in &bridged {
        assert!(
            s.gap && s.parts.iter().all(|p| p.gap),
            "segment {} is GAP",
            s.msn
        );
        assert!(
            (s.duration - outage / 7.0).abs() < 1e-4,
            "segment {} lasts {}",
            s.msn,
            s.duration
        );
        assert!(
            !h.objects.contains_key(&s.uri),
            "no object for the GAP segment {}",
            s.uri
        );
    }
    // They span the outage on the wall clock: the new first segment is where the dates say.
    let span: f64 = bridged.iter().map(|s| s.duration).sum();
    assert_eq!(bridged[0].program_date_time, bridge.program_date_time);
    assert_eq!(
        media[0].program_date_time.0 - bridge.program_date_time.0,
        (span * 1000.0).round() as i64
    );
    assert!(media[0].discontinuity && media[0].independent && !media[0].gap);
    // As a client counts: 999 and the skipped MSNs keep the number players knew them by (the
    // old run may have published some of them after its position was stored: hls.js fails on
    // an MSN whose number changed), the new run starts one above.
    let text = render_media(first, r, SkipMode::Full);
    let numbers = discontinuity_numbers(&text);
    assert_eq!(
        numbers[..7],
        (999..1006).map(|m| (m, 2)).collect::<Vec<_>>()[..],
        "{text}"
    );
    assert_eq!(numbers[7], (1006, 3), "{text}");
    assert!(text.starts_with("#EXTM3U"));
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:999\n"), "{text}");
    // The bridge leaves the window like any segment (77 frames a second: video and audio).
    h.feed(&mut pub_, 77 * 30);
    let r = &h.last().renditions[0];
    assert!(r.media_sequence >= 1006, "{}", r.media_sequence);
    assert!(r.segments.iter().all(|s| !s.gap));
    assert!(h.warnings.is_empty(), "{:?}", h.warnings);
}

#[test]
fn a_bridge_longer_than_the_window_still_starts_the_first_playlist() {
    // A long outage: 15 MSNs to bridge with a 12-segment window. The first playlist must still
    // list the segment players saw (the window slides only once it is out).
    let mut pub_ = Publisher::new(30.0, 30);
    let config = PackagerConfig {
        first_msn: 1015,
        first_discontinuity_sequence: 1,
        bridge: Some(llhls_packager::Bridge {
            msn: 1000,
            program_date_time: WallClock(pub_.wall0 - 20_000),
            discontinuity_sequence: 0,
        }),
        ..cfg()
    };
    let mut h = Harness::new(config, pub_.tracks());
    while h.snapshots.is_empty() {
        h.feed(&mut pub_, 1);
    }
    let r = &h.snapshots[0].renditions[0];
    assert_eq!(r.media_sequence, 1000);
    assert_eq!(r.segments.iter().filter(|s| s.gap).count(), 15);
    // Then the window slides back to its size.
    h.feed(&mut pub_, 77 * 6);
    let r = &h.last().renditions[0];
    assert!(r.segments.len() <= 13, "{}", r.segments.len());
    assert!(r.media_sequence > 1000);
}

#[test]
fn a_bridge_dated_after_the_new_start_is_left_out() {
    let mut pub_ = Publisher::new(30.0, 30);
    let config = PackagerConfig {
        first_msn: 1006,
        first_discontinuity_sequence: 2 + 1,
        bridge: Some(llhls_packager::Bridge {
            msn: 999,
            program_date_time: WallClock(pub_.wall0 + 60_000),
            discontinuity_sequence: 2,
        }),
        ..cfg()
    };
    let mut h = Harness::new(config, pub_.tracks());
    h.feed(&mut pub_, 77 * 8);
    let r = &h.last().renditions[0];
    assert_eq!(r.media_sequence, 1006);
    assert_eq!(r.discontinuity_sequence, 3);
    assert!(
        h.warnings.iter().any(|w| w.contains("not re-listed")),
        "{:?}",
        h.warnings
    );
}

#[test]
fn a_bridge_must_start_the_new_run_one_discontinuity_above_it() {
    let config = PackagerConfig {
        first_msn: 1006,
        first_discontinuity_sequence: 9,
        bridge: Some(llhls_packager::Bridge {
            msn: 999,
            program_date_time: WallClock(0),
            discontinuity_sequence: 2,
        }),
        ..cfg()
    };
    assert!(llhls_packager::Packager::new(config, Publisher::new(30.0, 30).tracks()).is_err());
}

/// Each listed segment's MSN and discontinuity number as a client counts them (hls.js's
/// `m3u8-parser`): EXT-X-DISCONTINUITY-SEQUENCE, plus one per EXT-X-DISCONTINUITY it sees.
fn discontinuity_numbers(text: &str) -> Vec<(u64, u64)> {
    let field = |tag: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(tag))
            .map_or(0, |v| v.trim().parse().unwrap())
    };
    let mut msn = field("#EXT-X-MEDIA-SEQUENCE:")
        + text
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-SKIP:SKIPPED-SEGMENTS="))
            .map_or(0, |v| v.split(',').next().unwrap().parse::<u64>().unwrap());
    let mut cc = field("#EXT-X-DISCONTINUITY-SEQUENCE:");
    let mut out = Vec::new();
    for l in text.lines() {
        if l == "#EXT-X-DISCONTINUITY" {
            cc += 1;
        } else if !l.starts_with('#') && !l.is_empty() {
            out.push((msn, cc));
            msn += 1;
        }
    }
    out
}

#[test]
fn delta_updates_never_skip_a_discontinuity() {
    // A reconnect (EXT-X-DISCONTINUITY), then long enough for that segment to be older than
    // CAN-SKIP-UNTIL: every delta view must give each segment the discontinuity number the full
    // view gives it, or hls.js fails with "discontinuity sequence mismatch".
    let mut pub_ = Publisher::new(30.0, 30);
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 77 * 8);
    let w = llhls_packager::WallClock(pub_.wall0 + 9_000);
    h.p.handle_discontinuity(Some(pub_.tracks()), w).unwrap();
    h.drain();
    let mut again = Publisher::new(30.0, 30);
    again.wall0 = pub_.wall0 + 9_000;
    let mut views = 0;
    for _ in 0..77 * 18 {
        let (f, w) = again.next_frame();
        h.p.handle_frame(f, w).unwrap();
        h.drain();
        let snap = h.last();
        let r = &snap.renditions[0];
        let full = discontinuity_numbers(&render_media(snap, r, SkipMode::Full));
        for mode in [SkipMode::Yes, SkipMode::V2] {
            let delta = render_media(snap, r, mode);
            for (msn, cc) in discontinuity_numbers(&delta) {
                let expected = full.iter().find(|(m, _)| *m == msn).unwrap().1;
                assert_eq!(cc, expected, "segment {msn} in the {mode:?} view:\n{delta}");
            }
            views += 1;
        }
    }
    let r = &h.last().renditions[0];
    assert!(
        r.segments.iter().any(|s| s.discontinuity),
        "the discontinuity is still in the window"
    );
    assert!(views > 0);
}

#[test]
fn timestamp_reset_is_read_as_a_discontinuity() {
    let mut pub_ = Publisher::new(30.0, 30);
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 77 * 8);
    let mut again = Publisher::new(30.0, 30);
    again.base_ms = 0;
    again.wall0 = pub_.wall0 + 13_000;
    pub_ = again;
    h.feed(&mut pub_, 30 * 6 * 2);
    assert!(h.last().renditions[0]
        .segments
        .iter()
        .any(|s| s.discontinuity));
}

#[test]
fn dts_going_backwards_a_little_is_an_error_and_changes_nothing() {
    let mut pub_ = Publisher::new(30.0, 30);
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 400);
    let before = h.p.snapshot();
    let (mut f, w) = pub_.next_frame();
    f.dts.ticks -= 500;
    f.pts = f.dts;
    let err = h.p.handle_frame(f, w).unwrap_err();
    assert!(err.to_string().contains("does not increase"), "{err}");
    assert_eq!(h.p.snapshot(), before);
    h.feed(&mut pub_, 100);
}

#[test]
fn bad_frames_are_typed_errors() {
    let mut pub_ = Publisher::new(30.0, 30);
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 10);
    let (mut f, w) = pub_.next_frame();
    f.data = bytes::Bytes::new();
    assert!(matches!(
        h.p.handle_frame(f, w),
        Err(llhls_packager::PackagerError::EmptyFrame { .. })
    ));
    let (mut f, w) = pub_.next_frame();
    f.pts.ticks = f.dts.ticks - 10;
    assert!(matches!(
        h.p.handle_frame(f, w),
        Err(llhls_packager::PackagerError::PtsBeforeDts { .. })
    ));
    let (mut f, w) = pub_.next_frame();
    f.track = llhls_packager::TrackId(9);
    assert!(matches!(
        h.p.handle_frame(f, w),
        Err(llhls_packager::PackagerError::UnknownTrack(_))
    ));
}

#[test]
fn missing_keyframe_at_start_drops_until_one_arrives() {
    let mut pub_ = Publisher::new(30.0, 30);
    pub_.frame_no = 10; // start mid-GOP
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 30 * 6 * 2);
    assert!(h.last().renditions[0].segments[0].parts[0].independent);
    assert!(h
        .warnings
        .iter()
        .any(|w| w.contains("before the first keyframe")));
}

#[test]
fn stall_becomes_gap_parts() {
    let mut pub_ = Publisher::new(30.0, 30);
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 30 * 6 * 2);
    // 3 s without frames, resuming on a keyframe.
    let skip_frames = 90;
    pub_.frame_no = (pub_.frame_no + skip_frames).div_ceil(30) * 30;
    pub_.audio_no = (pub_.video_ms_public(pub_.frame_no) as f64 * 48.0 / 1024.0).ceil() as u64;
    h.feed(&mut pub_, 30 * 6 * 2);
    let r = &h.last().renditions[0];
    assert!(
        r.segments.iter().any(|s| s.gap),
        "a GAP segment covers the stall"
    );
    let text = render_media(h.last(), r, SkipMode::Full);
    assert!(
        text.contains("#EXT-X-GAP\n") && text.contains("GAP=YES"),
        "{text}"
    );
}

#[test]
fn end_of_stream_publishes_endlist_without_hint() {
    let mut pub_ = Publisher::new(30.0, 30);
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 30 * 6 * 2);
    h.p.handle_end_of_stream(llhls_packager::WallClock(pub_.wall0 + 20_000));
    h.drain();
    let snap = h.last();
    assert!(snap.ended);
    let text = render_media(snap, &snap.renditions[0], SkipMode::Yes);
    assert!(text.ends_with("#EXT-X-ENDLIST\n"));
    assert!(!text.contains("PRELOAD-HINT"));
    assert!(
        !text.contains("EXT-X-SKIP"),
        "skip ignored after ENDLIST (rule 44)"
    );
    assert!(h
        .p
        .handle_frame(pub_.next_frame().0, llhls_packager::WallClock(0))
        .is_err());
}

#[test]
fn parts_are_dropped_a_whole_segment_at_a_time_and_expire_later() {
    let mut pub_ = Publisher::new(30.0, 30);
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 77 * 60);
    let r = &h.last().renditions[0];
    let listed: Vec<bool> = r.segments.iter().map(|s| s.parts_listed).collect();
    let first_listed = listed.iter().position(|&l| l).unwrap();
    assert!(listed[first_listed..].iter().all(|&l| l), "{listed:?}");
    // Parts are listed exactly for the segments that end within three target durations of
    // the end of the playlist (HLS2 6.2.2; the last two segments' always), judged as every
    // part closes.
    let three_td = 3.0 * f64::from(h.last().timing.target_duration);
    let open: f64 = r
        .open
        .iter()
        .flat_map(|o| &o.parts)
        .map(|p| p.duration)
        .sum();
    let total: f64 = r.segments.iter().map(|s| s.duration).sum::<f64>() + open;
    let mut end = 0.0;
    for (i, s) in r.segments.iter().enumerate() {
        end += s.duration;
        let age = total - end;
        let recent = age <= three_td + 1e-6 || i + 2 >= r.segments.len();
        assert_eq!(
            s.parts_listed, recent,
            "segment {} ends {age:.3} s before the end of the playlist",
            s.msn
        );
    }
    assert!(!h.expired.is_empty());
    // Nothing expired is still in the playlist.
    for s in &r.segments {
        assert!(!h.expired.contains(&s.uri));
    }
}

#[test]
fn audio_config_change_mid_stream_starts_a_new_init_section() {
    let mut pub_ = Publisher::new(30.0, 30);
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 77 * 6);
    let old_map = h.last().renditions[0].segments[0].map_uri.clone();
    let mut tracks = pub_.tracks();
    tracks[1].codec =
        llhls_packager::CodecConfig::Aac(llhls_packager::codec::AacConfig::lc(44_100, 1).unwrap());
    h.p.handle_discontinuity(Some(tracks), WallClock(pub_.wall0 + 7_000))
        .unwrap();
    h.drain();
    h.feed(&mut pub_, 77 * 6);
    let r = &h.last().renditions[0];
    let new_maps: Vec<_> = r
        .segments
        .iter()
        .map(|s| s.map_uri.clone())
        .filter(|m| *m != old_map)
        .collect();
    assert!(!new_maps.is_empty(), "a new EXT-X-MAP after the change");
    assert!(
        h.objects.contains_key(&new_maps[0]),
        "the new init segment is stored"
    );
    let first_new = r.segments.iter().find(|s| s.map_uri != old_map).unwrap();
    assert!(
        first_new.discontinuity,
        "EXT-X-DISCONTINUITY before the new init section"
    );
    let text = render_media(h.last(), r, SkipMode::Full);
    assert!(text.contains(&format!("#EXT-X-MAP:URI=\"{}\"", new_maps[0])));
}

#[test]
fn track_set_change_is_a_typed_error() {
    let mut pub_ = Publisher::new(30.0, 30);
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 77 * 3);
    let err =
        h.p.handle_discontinuity(Some(vec![video_track()]), WallClock(0))
            .unwrap_err();
    assert!(
        matches!(err, llhls_packager::PackagerError::TrackSetChanged(_)),
        "{err}"
    );
}

#[test]
fn stalled_input_keeps_the_playlist_moving_with_gap_parts() {
    let mut pub_ = Publisher::new(30.0, 30);
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 77 * 6);
    let before = h.last().renditions[0].last_part().unwrap();
    let (last_frame, wall) = pub_.next_frame();
    h.p.handle_frame(last_frame, wall).unwrap();
    h.drain();
    // Nine seconds of wall-clock time without a frame, ticked every 100 ms: past the hold
    // (three target durations, see a_short_stall_holds_the_playlist...), GAP parts.
    let mut published_at = Vec::new();
    for i in 1..=90 {
        let now = WallClock(wall.0 + i * 100);
        let n = h.snapshots.len();
        h.p.handle_timeout(now);
        h.drain();
        if h.snapshots.len() > n {
            published_at.push(i * 100);
        }
    }
    let r = &h.last().renditions[0];
    let (msn, part) = r.last_part().unwrap();
    assert!(
        (msn, part) > before,
        "the playlist advanced during the stall"
    );
    let gap_parts = r
        .segments
        .iter()
        .flat_map(|s| &s.parts)
        .chain(r.open.iter().flat_map(|o| &o.parts))
        .filter(|p| p.gap)
        .count();
    assert!(gap_parts >= 10, "GAP parts cover the stall ({gap_parts})");
    // After the hold, a new part at least every part target (rule 6).
    // The stall is seen after two part targets; the playlist is held with the timeline open
    // (a frame that continues it on time goes on in the same part), so nothing is published
    // until the hold ends: then the media so far closes its part, and GAP parts follow.
    assert!(published_at.len() > 2, "{published_at:?}");
    assert!(
        published_at[0] > 6_000 && published_at[0] <= 6_800,
        "the first GAP part comes when the 6 s hold ends: {published_at:?}"
    );
    for w in published_at.windows(2) {
        assert!(w[1] - w[0] <= 300, "publishes at {published_at:?}");
    }
    assert!(
        h.warnings.iter().any(|w| w.contains("no input")),
        "{:?}",
        h.warnings
    );
    let text = render_media(h.last(), r, SkipMode::Full);
    assert!(text.contains("GAP=YES"), "{text}");
    // The publisher resumes with timestamps that continue from before the stall (a buffering
    // encoder): output stays continuous and the invariants hold.
    pub_.wall0 += 9_000;
    h.feed(&mut pub_, 77 * 6);
    let r = &h.last().renditions[0];
    let last_part = r
        .segments
        .iter()
        .flat_map(|s| &s.parts)
        .chain(r.open.iter().flat_map(|o| &o.parts))
        .last()
        .unwrap();
    assert!(!last_part.gap, "real media after the gap");
    // The publisher stayed 9 s late: its media is dated after the GAP parts, never back into
    // them (one date for two media times, HLS2 4.4.4.6).
    for w in r.segments.to_vec().windows(2) {
        let end = w[0].program_date_time.0 + (w[0].duration * 1000.0).round() as i64;
        assert!(
            w[1].program_date_time.0 >= end - 1,
            "segment {} dated {} ms before the end of segment {}",
            w[1].msn,
            end - w[1].program_date_time.0,
            w[0].msn
        );
    }
    h.p.handle_end_of_stream(WallClock(wall.0 + 20_000));
    h.drain();
}

#[test]
fn a_short_stall_holds_the_playlist_and_the_media_continues_without_a_hole() {
    // A publisher frozen for 3 s (less than the 6 s hold) that then sends real-time frames
    // again: no GAP part, the media timeline continues (the harness checks every part's tfdt
    // against the previous one), the backlog-free media is dated at its capture time.
    let mut pub_ = Publisher::new(30.0, 30);
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 77 * 6);
    let stall_start = pub_.next_frame_wall();
    // Seen after two part targets: the media so far closes its part; then the hold.
    for i in 1..=6 {
        h.p.handle_timeout(WallClock(stall_start + i * 100));
        h.drain();
    }
    let versions = h.snapshots.len();
    for i in 7..=30 {
        h.p.handle_timeout(WallClock(stall_start + i * 100));
        h.drain();
    }
    assert_eq!(h.snapshots.len(), versions, "the playlist is held");
    assert!(
        h.warnings
            .iter()
            .any(|w| w.contains("holding the playlist")),
        "{:?}",
        h.warnings
    );
    // The publisher skips what it did not capture (its clock ran on): frames resume 3 s later.
    while pub_.next_frame_wall() < stall_start + 3_000 {
        pub_.next_frame();
    }
    h.feed(&mut pub_, 77 * 4);
    let r = &h.last().renditions[0];
    let text = render_media(h.last(), r, SkipMode::Full);
    assert!(!text.contains("GAP"), "{text}");
    assert!(!text.contains("#EXT-X-DISCONTINUITY\n"), "{text}");
    let resumed = r
        .segments
        .iter()
        .find(|s| s.program_date_time.0 >= stall_start)
        .expect("media after the stall");
    assert!(resumed.independent);
    let late = resumed.program_date_time.0 - (stall_start + 3_000);
    assert!(
        (0..=1_005).contains(&late),
        "dated at its capture, the first keyframe after the stall: {late} ms"
    );
    h.p.handle_end_of_stream(WallClock(stall_start + 10_000));
    h.drain();
}

#[test]
fn a_hiccup_of_under_a_second_loses_no_frame() {
    // The machine (or the network) stops for 0.8 s: no frame arrives, the stall check fires and
    // holds the playlist; then every frame captured meanwhile arrives in a burst and real time
    // goes on. Every frame is published in one continuous timeline: cutting at the first late
    // frame dropped everything up to the next keyframe, and viewers stalled for it.
    let mut pub_ = Publisher::new(30.0, 30);
    let mut h = Counted::new(Harness::new(cfg(), pub_.tracks()));
    h.send_frames(&mut pub_, 77 * 6 + 40);
    let hiccup_start = pub_.next_frame_wall();
    h.stall_until_held(hiccup_start, 800);
    let burst_at = hiccup_start + 800;
    h.burst_then_real_time(&mut pub_, burst_at, 3_000);
    h.end_with_every_frame_published(WallClock(burst_at + 3_100));
    assert!(
        !h.h.warnings.iter().any(|w| w.contains("backlog")),
        "{:?}",
        h.h.warnings
    );
}

/// A harness that counts the video frames sent, for tests that check every one is published.
struct Counted {
    h: Harness,
    video_in: usize,
}

impl Counted {
    fn new(h: Harness) -> Self {
        Counted { h, video_in: 0 }
    }

    fn send(&mut self, f: Frame, w: WallClock) {
        self.video_in += usize::from(f.track == llhls_packager::synth::VIDEO);
        self.h.p.handle_frame(f, w).unwrap();
        self.h.drain();
    }

    /// `n` frames in real time.
    fn send_frames(&mut self, pub_: &mut Publisher, n: usize) {
        for _ in 0..n {
            let (f, w) = pub_.next_frame();
            self.send(f, w);
        }
    }

    /// Every frame captured before `burst_at` arrives at once at `burst_at` (a backlog after a
    /// freeze), then real time goes on for `ms`, the stall check ticking with each frame.
    fn burst_then_real_time(&mut self, pub_: &mut Publisher, burst_at: i64, ms: i64) {
        while pub_.next_frame_wall() < burst_at + ms {
            let (f, w) = pub_.next_frame();
            let now = WallClock(w.0.max(burst_at));
            self.send(f, now);
            self.h.p.handle_timeout(now);
            self.h.drain();
        }
    }

    /// No frame for `ms` after `from` (the stall check ticked every 100 ms): the playlist is
    /// held.
    fn stall_until_held(&mut self, from: i64, ms: i64) {
        for i in 1..=ms / 100 {
            self.h.p.handle_timeout(WallClock(from + i * 100));
            self.h.drain();
        }
        assert!(
            self.h
                .warnings
                .iter()
                .any(|w| w.contains("holding the playlist")),
            "the stall check fired: {:?}",
            self.h.warnings
        );
    }

    /// Ends the stream at `at`: no GAP part, and every video frame sent is in a part.
    fn end_with_every_frame_published(&mut self, at: WallClock) {
        self.h.p.handle_end_of_stream(at);
        self.h.drain();
        let text = render_media(self.h.last(), &self.h.last().renditions[0], SkipMode::Full);
        assert!(!text.contains("GAP"), "{text}");
        assert_eq!(
            samples_in_parts(&self.h, 1),
            self.video_in,
            "every frame published: {text}"
        );
    }
}

/// Samples of track `track_id` in every part the packager output.
fn samples_in_parts(h: &Harness, track_id: u32) -> usize {
    samples_in_parts_from(h, track_id, 0)
}

/// Samples of track `track_id` in the parts of segments `min_msn` and later.
fn samples_in_parts_from(h: &Harness, track_id: u32, min_msn: u64) -> usize {
    use mp4_atom::{Any, DecodeMaybe};
    let mut n = 0;
    for (uri, bytes) in &h.objects {
        let is_part = uri
            .parse::<llhls_packager::ObjectKey>()
            .is_ok_and(|k| k.is_part() && k.msn() >= min_msn);
        if !is_part {
            continue;
        }
        let mut buf = &bytes[..];
        if let Ok(Some(Any::Moof(moof))) = Any::decode_maybe(&mut buf) {
            for traf in moof.traf.iter().filter(|t| t.tfhd.track_id == track_id) {
                n += traf.trun.iter().map(|r| r.samples.len()).sum::<usize>();
            }
        }
    }
    n
}

#[test]
fn frames_an_ingest_delivers_after_the_stall_check_are_all_published() {
    // An SRT publisher's last video frame is complete only when its connection closes (a
    // video PES ends at the next one's start), up to a second after its bytes arrived with
    // ffmpeg's `linger`, longer when the connection times out: the stall check fires first.
    // The ingest passes the frames' arrival times; the frames continue the timeline held open,
    // and the end of the stream publishes every frame the publisher sent.
    let mut pub_ = Publisher::new(30.0, 30);
    let mut h = Counted::new(Harness::new(cfg(), pub_.tracks()));
    for _ in 0..(77 * 6 + 10) {
        let (f, w) = pub_.next_frame();
        h.send(f, w);
    }
    // The last few frames (video and audio) arrive, but the ingest holds them back.
    let held: Vec<(Frame, WallClock)> = (0..6).map(|_| pub_.next_frame()).collect();
    let last_arrival = held.last().unwrap().1 .0;
    h.stall_until_held(last_arrival, 900);
    for (f, w) in held {
        h.send(f, w);
    }
    h.end_with_every_frame_published(WallClock(last_arrival + 1_000));
}

/// The end (PROGRAM-DATE-TIME plus duration) of the last part of `r`, in ms.
fn last_part_end_ms(r: &llhls_packager::RenditionSnapshot) -> i64 {
    let (pdt, parts) = match &r.open {
        Some(o) if !o.parts.is_empty() => (o.program_date_time, &o.parts),
        _ => {
            let s = r.segments.last().unwrap();
            (s.program_date_time, &s.parts)
        }
    };
    pdt.0 + (parts.iter().map(|p| p.duration).sum::<f64>() * 1000.0).round() as i64
}

/// The last part published by `now` is dated to end no later than `slack_ms` after it.
#[track_caller]
fn assert_not_dated_ahead(h: &Harness, now: i64, slack_ms: i64) {
    let end = last_part_end_ms(&h.last().renditions[0]);
    assert!(
        end <= now + slack_ms,
        "a part dated to end at {end} is published at {now}: {} ms ahead of the wall clock",
        end - now
    );
}

#[test]
fn a_backlog_burst_after_a_stall_is_dropped_and_dates_never_run_ahead_of_the_wall_clock() {
    // What OBS does after a network hiccup: frames stop for 3 s, then everything captured
    // meanwhile arrives at once, then real time again. Viewers must not be pushed 3 s further
    // behind, and no playlist may date media later than the moment it is published.
    let mut pub_ = Publisher::new(30.0, 30);
    let mut h = Harness::new(cfg(), pub_.tracks());
    let check_dates = |h: &mut Harness, now: i64| {
        if !h.snapshots.is_empty() {
            assert_not_dated_ahead(h, now, 1);
        }
    };
    for _ in 0..30 * 6 {
        let (f, w) = pub_.next_frame();
        h.p.handle_frame(f, w).unwrap();
        h.drain();
        check_dates(&mut h, w.0);
    }
    let stall_start = pub_.next_frame_wall();
    for i in 1..=30 {
        let now = stall_start + i * 100;
        h.p.handle_timeout(WallClock(now));
        h.drain();
        check_dates(&mut h, now);
    }
    let burst_at = stall_start + 3_000;
    // The backlog: 3 s of frames arriving within 100 ms, then real time for 4 s.
    while pub_.next_frame_wall() < burst_at + 4_000 {
        let (f, w) = pub_.next_frame();
        let arrival = w.0.max(burst_at + (w.0 - stall_start) / 30);
        h.p.handle_frame(f, WallClock(arrival)).unwrap();
        h.drain();
        check_dates(&mut h, arrival);
    }
    assert!(
        h.warnings
            .iter()
            .any(|w| w.contains("resumed with a backlog")),
        "{:?}",
        h.warnings
    );
    // The stream resumed on the first keyframe that arrived less than 250 ms late (the burst's
    // keyframes, captured during the stall, are dropped), dated at its capture time.
    let r = &h.last().renditions[0];
    let resumed = r
        .segments
        .iter()
        .find(|s| !s.gap && s.program_date_time.0 >= stall_start)
        .expect("a segment of real media after the stall");
    assert!(resumed.independent);
    let pdt = resumed.program_date_time.0;
    let media_ms = pdt - pub_.wall0 - 5;
    assert_eq!(media_ms % 1000, 0, "dated at the keyframe's capture time");
    assert!(
        pdt > burst_at - 250 && pdt <= burst_at + 1_005,
        "resumed on media captured {} ms into the stall; the burst came at 3000 ms",
        pdt - stall_start
    );
    h.p.handle_end_of_stream(WallClock(burst_at + 5_000));
    h.drain();
}

#[test]
fn a_publisher_that_resumes_late_and_catches_up_later_never_dates_media_ahead() {
    // An encoder starved of CPU (OBS on a loaded machine): its frames stop for 1.5 s, then come
    // in real time but 1.5 s late for 2.5 s (so the stream resumes on its second late keyframe,
    // the publisher not catching up), then everything it still owes arrives at once and real
    // time goes on. Filler kept the playlist on the wall clock meanwhile, so the stream resumes
    // dated on the wall clock, its media 1.5 s behind: the media caught up on would be dated
    // ahead of the moment it is published unless it waits for its date. No frame from the
    // keyframe it resumed on may be lost.
    let (mut pub_, mut h) = live_with_filler(30, 10_000);
    let stall_start = pub_.next_frame_wall();
    let late_ms = 1_500;
    let catch_at = stall_start + 2_500;
    let caught_up = catch_at + late_ms;
    let arrival = |capture: i64| match capture {
        c if c < catch_at => c + late_ms,
        c if c < caught_up => caught_up,
        c => c,
    };
    let mut events: Vec<(i64, Option<Frame>)> = Vec::new();
    while pub_.next_frame_wall() < caught_up + 4_000 {
        let (f, w) = pub_.next_frame();
        events.push((arrival(w.0), Some(f)));
    }
    let mut t = stall_start + 100;
    while t < caught_up + 4_000 {
        events.push((t, None));
        t += 100;
    }
    // Stable: frames keep their order at equal arrival times, timeouts come after them.
    events.sort_by_key(|(at, e)| (*at, e.is_none()));
    // The keyframe the stream resumes on: the second captured after the stall began (the
    // first is dropped as backlog, the second is as late: not catching up). It opens a segment.
    let mut keyframes = 0;
    let mut video_resumed = 0;
    let mut resumed_msn = None;
    for (at, event) in events {
        match event {
            Some(f) => {
                let video = f.track == llhls_packager::synth::VIDEO;
                keyframes += usize::from(video && f.keyframe);
                if keyframes == 2 && resumed_msn.is_none() {
                    let r = &h.last().renditions[0];
                    resumed_msn = Some(r.open.as_ref().map_or(r.media_sequence, |o| o.msn) + 1);
                }
                video_resumed += usize::from(video && keyframes >= 2);
                h.p.handle_frame(f, WallClock(at)).unwrap();
            }
            None => h.p.handle_timeout(WallClock(at)),
        }
        h.drain();
        assert_not_dated_ahead(&h, at, 21);
    }
    let warned = |what: &str| h.warnings.iter().any(|w| w.contains(what));
    assert!(warned("resumed with a backlog"), "{:?}", h.warnings);
    assert!(warned("filling"), "{:?}", h.warnings);
    assert!(warned("before their date"), "{:?}", h.warnings);
    h.p.handle_end_of_stream(WallClock(caught_up + 4_100));
    h.drain();
    assert_eq!(
        samples_in_parts_from(&h, 1, resumed_msn.unwrap()),
        video_resumed,
        "every frame from the keyframe the stream resumed on is published"
    );
}

/// A 30 fps stream with a keyframe every `gop` frames, packaged with stall filler, fed for
/// `ms` of media: live.
fn live_with_filler(gop: u32, ms: i64) -> (Publisher, Harness) {
    let mut pub_ = Publisher::new(30.0, gop);
    let config = PackagerConfig {
        stall_filler: true,
        ..cfg()
    };
    let mut h = Harness::new(config, pub_.tracks());
    while pub_.next_frame_wall() < pub_.wall0 + ms {
        let (f, w) = pub_.next_frame();
        h.p.handle_frame(f, w).unwrap();
        h.drain();
    }
    assert!(h.p.is_live());
    (pub_, h)
}

#[test]
fn a_stall_is_filled_so_players_keep_playing_at_their_latency() {
    // The publisher freezes for 3 s, then bursts its backlog (as OBS does after a network
    // hiccup). With stall filler the playlist keeps growing with the wall clock during the
    // freeze (parts of the last keyframe's picture and silence), so a player never runs dry and
    // never rebuffers: no GAP, no hole in any track, every segment independent, and the media
    // timeline stays on the wall clock across the freeze (no date jump), so a viewer's
    // latency is what it was. Keyframes every 2 s: the burst's frames up to the first keyframe
    // captured after it (a second of them) are dropped.
    let (mut pub_, mut h) = live_with_filler(60, 10_000);
    let stall_start = pub_.next_frame_wall();
    for i in 1..=30 {
        let now = stall_start + i * 100;
        h.p.handle_timeout(WallClock(now));
        h.drain();
        assert_not_dated_ahead(&h, now, 1);
        if i >= 8 {
            let end = last_part_end_ms(&h.last().renditions[0]);
            assert!(
                end >= now - 600,
                "{} ms into the stall the newest part ends {} ms behind the wall clock: players run dry",
                i * 100,
                now - end
            );
        }
    }
    let burst_at = stall_start + 3_000;
    while pub_.next_frame_wall() < burst_at + 4_000 {
        let (f, w) = pub_.next_frame();
        let arrival = w.0.max(burst_at + (w.0 - stall_start) / 30);
        h.p.handle_frame(f, WallClock(arrival)).unwrap();
        h.drain();
        let end = last_part_end_ms(&h.last().renditions[0]);
        assert!(
            end <= arrival + 1,
            "dated {} ms ahead of the wall clock",
            end - arrival
        );
        // The burst's frames are dropped up to the keyframe the stream resumes on, and no
        // timeout comes meanwhile: the filler still keeps up.
        assert!(
            end >= arrival - 600,
            "{} ms after the burst began the newest part ends {} ms behind the wall clock",
            arrival - burst_at,
            arrival - end
        );
    }
    assert!(
        h.warnings
            .iter()
            .any(|w| w.contains("filling with the last keyframe")),
        "{:?}",
        h.warnings
    );
    for snapshot in &h.snapshots {
        for r in &snapshot.renditions {
            for s in &r.segments {
                assert!(
                    !s.gap && s.parts.iter().all(|p| !p.gap),
                    "GAP in segment {}",
                    s.msn
                );
            }
        }
    }
    assert!(
        h.tfdt_holes.is_empty(),
        "holes in the media: {:?}",
        h.tfdt_holes
    );
    let r = h.last().renditions[0].clone();
    let during: Vec<_> = r
        .segments
        .iter()
        .filter(|s| s.program_date_time.0 >= stall_start && s.program_date_time.0 < burst_at)
        .collect();
    assert!(
        during.len() >= 2,
        "filler segments during the stall: {}",
        during.len()
    );
    for s in &r.segments {
        assert!(
            s.independent,
            "segment {} does not start with a keyframe",
            s.msn
        );
        let first = &h.objects[&s.parts[0].uri];
        assert!(
            common::first_video_sample_is_sync(first),
            "segment {}: its first part does not start with a sync sample",
            s.msn
        );
    }
    assert!(r.segments.iter().all(|s| !s.discontinuity));
    // Media time follows the wall clock across the stall: each segment is dated where the one
    // before it ends, within a frame (the filler is topped up to the keyframe the stream
    // resumes on).
    for pair in r.segments.to_vec().windows(2) {
        let expected = pair[0].program_date_time.0 + (pair[0].duration * 1000.0).round() as i64;
        let jump = pair[1].program_date_time.0 - expected;
        assert!(
            (-1..=34).contains(&jump),
            "segment {} is dated {jump} ms after the previous one ends",
            pair[1].msn
        );
    }
    let resumed = r
        .segments
        .iter()
        .find(|s| s.program_date_time.0 >= burst_at - 250)
        .expect("real media after the stall");
    assert!(
        resumed.program_date_time.0 <= burst_at + 1_005,
        "resumed on media captured {} ms into the stall; the burst came at 3000 ms",
        resumed.program_date_time.0 - stall_start
    );
    h.p.handle_end_of_stream(WallClock(burst_at + 5_000));
    h.drain();
}

#[test]
fn filler_gives_way_to_gap_parts_after_three_target_durations() {
    // A publisher gone for 10 s (frozen, or its connection waiting out the reconnect grace):
    // a frozen picture for three target durations, then GAP parts as for a publisher that is
    // gone; the stream resumes on a keyframe.
    let (mut pub_, mut h) = live_with_filler(30, 6_000);
    let stall_start = pub_.next_frame_wall();
    for i in 1..=100 {
        h.p.handle_timeout(WallClock(stall_start + i * 100));
        h.drain();
    }
    let td = i64::from(h.last().timing.target_duration);
    let r = h.last().renditions[0].clone();
    let after: Vec<_> = r
        .segments
        .iter()
        .filter(|s| s.program_date_time.0 >= stall_start)
        .collect();
    let filled_ms: f64 = after
        .iter()
        .filter(|s| !s.gap)
        .map(|s| s.duration * 1000.0)
        .sum();
    // Three target durations, and the rest of the segment in progress then.
    assert!(
        filled_ms >= (3 * td * 1000) as f64 && filled_ms <= (4 * td * 1000) as f64,
        "filled {filled_ms} ms of a 10 s stall (target duration {td} s)"
    );
    let first_gap = after
        .iter()
        .position(|s| s.gap)
        .expect("GAP segments after the filler");
    assert!(after[..first_gap].iter().all(|s| !s.gap && s.independent));
    assert!(after[first_gap..].iter().all(|s| s.gap), "filler after GAP");
    assert!(
        h.warnings
            .iter()
            .any(|w| w.contains("publishing GAP parts")),
        "{:?}",
        h.warnings
    );
    let resume_at = stall_start + 10_100;
    pub_.wall0 += 10_000;
    while pub_.next_frame_wall() < resume_at + 3_000 {
        let (f, w) = pub_.next_frame();
        h.p.handle_frame(f, w).unwrap();
        h.drain();
    }
    let last = h.last().renditions[0].segments.last().unwrap().clone();
    assert!(!last.gap && last.independent, "resumed with media");
    h.p.handle_end_of_stream(WallClock(resume_at + 4_000));
    h.drain();
}

#[test]
fn a_machine_freeze_with_filler_on_loses_no_frame() {
    // The whole machine stops for 0.8 s (this process too: no timeout runs during it), then
    // the frames captured meanwhile arrive in a burst. The first timeout after the freeze comes
    // late, so filler does not start: the frames continue the timeline, none is dropped.
    let mut pub_ = Publisher::new(30.0, 30);
    let config = PackagerConfig {
        stall_filler: true,
        ..cfg()
    };
    let mut h = Counted::new(Harness::new(config, pub_.tracks()));
    h.send_frames(&mut pub_, 77 * 6 + 40);
    let freeze_start = pub_.next_frame_wall();
    let burst_at = freeze_start + 800;
    h.h.p.handle_timeout(WallClock(burst_at));
    h.h.drain();
    h.burst_then_real_time(&mut pub_, burst_at, 3_000);
    h.end_with_every_frame_published(WallClock(burst_at + 3_100));
    assert!(
        !h.h.warnings
            .iter()
            .any(|w| w.contains("backlog") || w.contains("filling")),
        "{:?}",
        h.h.warnings
    );
}

#[test]
fn sps_frame_rate_slightly_above_the_real_one_never_overflows_part_target() {
    // The SPS says 30 fps, the frames come at 28 fps (within the 10% the probe trusts the
    // SPS for). PART-TARGET must fit whole real frames; the harness checks every part against
    // PART-TARGET and the 85% minimum (found by the packager fuzz target with 25 vs 24 fps).
    let sps_fps = llhls_packager::synth::video_track().codec.frame_rate();
    assert_eq!(sps_fps, Some(30.0), "the synthetic SPS signals 30 fps");
    let mut pub_ = Publisher::new(28.0, 28);
    let mut h = Harness::new(
        PackagerConfig {
            part_target: std::time::Duration::from_millis(70),
            ..cfg()
        },
        pub_.tracks(),
    );
    h.feed(&mut pub_, 28 * 20 * 2);
    let r = &h.last().renditions[0];
    assert!(
        r.part_target >= 2.0 / 28.0,
        "PART-TARGET {} is shorter than two real frames",
        r.part_target
    );
}

#[test]
fn two_config_changes_before_a_segment_never_reuse_an_init_uri() {
    // Found by fuzzing: each configuration change emitted `init-{next MSN}.mp4` at once, so two
    // changes before the next segment opened put different bytes under one immutable URI.
    // The harness fails on any object rewritten with different bytes.
    let mut pub_ = Publisher::new(30.0, 30);
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 77 * 6);
    for (rate, channels) in [(44_100, 1), (32_000, 2)] {
        let mut tracks = pub_.tracks();
        tracks[1].codec = llhls_packager::CodecConfig::Aac(
            llhls_packager::codec::AacConfig::lc(rate, channels).unwrap(),
        );
        h.p.handle_discontinuity(Some(tracks), WallClock(pub_.wall0 + 7_000))
            .unwrap();
        h.drain();
    }
    h.feed(&mut pub_, 77 * 6);
    let r = &h.last().renditions[0];
    let last_map = &r.segments.last().unwrap().map_uri;
    let init = &h.objects[last_map];
    // The init segment in use describes the last configuration (32 kHz, stereo).
    assert!(
        init.windows(4).any(|w| w == 32_000u32.to_be_bytes()),
        "{last_map} is not the 32 kHz configuration"
    );
}

#[test]
fn keyframe_advice_follows_the_segment_target_and_the_input() {
    // A 2 s GOP against a 1 s segment target: the advice must ask for 1 s (not "1 or 2 s",
    // which the encoder already does), and a file gets file advice, not OBS settings.
    let mut pub_ = Publisher::new(30.0, 60);
    let mut p = llhls_packager::Packager::new(
        PackagerConfig {
            segment_target: std::time::Duration::from_millis(1000),
            ..cfg()
        },
        pub_.tracks(),
    )
    .unwrap();
    let mut warnings = Vec::new();
    for _ in 0..30 * 8 * 2 {
        let (f, w) = pub_.next_frame();
        p.handle_frame(f, w).unwrap();
        while let Some(o) = p.poll_output() {
            if let llhls_packager::Output::Warning(w) = o {
                warnings.push(w);
            }
        }
    }
    let w = warnings
        .iter()
        .find(|w| w.message.contains("keyframe interval 2.00 s"))
        .unwrap_or_else(|| panic!("no keyframe warning in {warnings:?}"));
    assert_eq!(w.keyframe_interval_max, Some(1.0));
    let live = w.for_live_encoder();
    assert!(live.contains("keyframe interval to 1 s or less"), "{live}");
    assert!(!live.contains("1 or 2 s"), "{live}");
    let file = w.for_file();
    assert!(!file.contains("OBS"), "{file}");
    assert!(file.contains("every 1 s"), "{file}");
    // A WHIP publisher is asked for keyframes by the server: the advice says so, and gives
    // the settings of WHIP publishers, not an RTMP encoder's ffmpeg flag.
    let whip = w.for_whip_publisher();
    assert!(whip.contains("keyframe requests (RTCP PLI)"), "{whip}");
    assert!(whip.contains("1 s or less"), "{whip}");
    assert!(whip.contains("OBS WHIP output"), "{whip}");
    assert!(!whip.contains("ffmpeg"), "{whip}");
}

#[test]
fn a_few_lost_audio_frames_leave_no_hole_in_the_audio() {
    // A dropped packet loses an audio frame or a few (SRT past its latency, an encoder
    // hiccup): every part's audio must still start where the previous one ended (Apple's
    // validator; MSE buffers a hole that a player may stall on), muxed or separate. And every
    // audio sample lasts the 1,024 samples it decodes to: silent frames fill the hole. A frame
    // stretched over it instead is played for its 1,024 samples by Chromium, whose audio clock
    // then falls behind the timeline by each hole until its audio runs dry with media still
    // buffered (benches/README.md, "Reliability").
    for layout in [Layout::Muxed, Layout::Separate] {
        let mut pub_ = Publisher::new(30.0, 30);
        let mut h = Harness::new(PackagerConfig { layout, ..cfg() }, pub_.tracks());
        let lost_frames = [100u64, 200, 201, 202, 377];
        let (mut fed, mut lost) = (0, 0);
        while pub_.frame_no < 30 * 16 {
            let (f, w) = pub_.next_frame();
            if f.track == AUDIO && lost_frames.contains(&(pub_.audio_no - 1)) {
                lost += 1;
                continue;
            }
            fed += usize::from(f.track == AUDIO);
            h.p.handle_frame(f, w).expect("frame accepted");
            h.drain();
        }
        assert_eq!(lost, lost_frames.len());
        assert!(fed > 600);
        assert!(h.tfdt_holes.is_empty(), "{layout:?}: {:#?}", h.tfdt_holes);
        let audio: Vec<_> = h
            .sample_durations
            .iter()
            .filter(|(_, d)| d.contains(&1024))
            .collect();
        assert!(!audio.is_empty(), "{layout:?}: no audio samples of 1,024");
        for (track, durations) in audio {
            assert_eq!(
                durations.iter().copied().collect::<Vec<_>>(),
                vec![1024],
                "{layout:?}: {track:?}: an audio sample lasts other than the samples it decodes to"
            );
        }
        // One line for the operator: the publisher's audio skips.
        assert_eq!(h.warnings.len(), 1, "{:?}", h.warnings);
        assert!(
            h.warnings[0].contains("filled with silent frames"),
            "{:?}",
            h.warnings
        );
    }
}

/// A segment that has just closed is listed as still open (its parts, no EXTINF) until the
/// next segment has a part; the window still lists `window_segments` complete segments at every
/// instant, and the blocking answers are unchanged (README, player notes: hls.js 1.7.4 stalls
/// 5-6 s when the update completing a segment lands while the part before its last is parsed).
#[test]
fn a_segment_is_listed_with_its_extinf_once_the_next_one_has_a_part() {
    let mut pub_ = Publisher::new(30.0, 30);
    let mut h = Harness::new(cfg(), pub_.tracks());
    h.feed(&mut pub_, 77 * 40);
    let mut closes = 0;
    let mut seen = h.snapshots.len();
    for _ in 0..77 * 20 {
        h.feed(&mut pub_, 1);
        for snap in &h.snapshots[seen..] {
            let r = &snap.renditions[0];
            let text = render_media(snap, r, SkipMode::Full);
            let extinfs = text.matches("#EXTINF:").count();
            let last = r.segments.last().unwrap();
            let open = r.open.as_ref().unwrap();
            if open.parts.is_empty() {
                closes += 1;
                // The closed segment: its parts, then the hint for the next one's first part,
                // and no EXTINF or URI line of its own.
                assert_eq!(extinfs, r.segments.len() - 1, "{text}");
                assert!(!text.contains(&format!("\n{}\n", last.uri)), "{text}");
                let after = &text[text.rfind("#EXTINF:").unwrap()..];
                assert_eq!(after.matches("#EXT-X-PART:").count(), last.parts.len());
                let hint = format!(
                    "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"media/{}.0.m4s\"",
                    last.msn + 1
                );
                assert!(text.contains(&hint), "{text}");
                // hls.js asks for the part after the last listed: held until the next
                // segment's first part, as before.
                assert_eq!(r.last_part(), Some((last.msn, last.parts.len() as u32 - 1)));
                assert!(!r.satisfies(last.msn, Some(last.parts.len() as u32)));
                assert!(r.satisfies(last.msn, Some(last.parts.len() as u32 - 1)));
            } else {
                assert_eq!(extinfs, r.segments.len(), "{text}");
                assert!(text.contains(&format!("\n{}\n", last.uri)), "{text}");
            }
            // Six or more complete segments at every instant (Apple authoring 8.11), the
            // configured window of them once the next segment has a part.
            assert_eq!(extinfs, cfg().window_segments, "{text}");
        }
        seen = h.snapshots.len();
    }
    assert!(closes >= 9, "{closes} segments closed");
}
