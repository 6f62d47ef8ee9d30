//! ABR ladder: a rung's packager fed the source packager's calls (with its own video payloads,
//! later, by a varying encoder delay) cuts the rung on the source's grid, and the combined
//! snapshot renders rendition reports that match what each rendition has published.

use bytes::Bytes;
use llhls_packager::ladder::{check_aligned, rename_key, rename_rendition, with_rungs, GapMirror};
use llhls_packager::synth::{self, Publisher};
use llhls_packager::{
    render_media, render_multivariant, Frame, Layout, MediaTime, Output, Packager, PackagerConfig,
    SkipMode, StreamSnapshot, TrackConfig, TrackKind, WallClock,
};

/// One call the source packager got.
#[derive(Clone)]
enum Call {
    Frame(Frame, WallClock),
    Timeout(WallClock),
    Discontinuity(WallClock),
    End(WallClock),
}

fn apply(p: &mut Packager, call: &Call) {
    let _ = match call {
        Call::Frame(f, now) => p.handle_frame(f.clone(), *now),
        Call::Timeout(now) => {
            p.handle_timeout(*now);
            Ok(())
        }
        Call::Discontinuity(now) => p.handle_discontinuity(None, *now),
        Call::End(now) => {
            p.handle_end_of_stream(*now);
            Ok(())
        }
    };
}

/// What a transcoder makes of a source video frame: another payload, a PTS in presentation
/// order (the n-th frame in decode order gets the n-th smallest PTS, as an encoder without
/// B-frames fed the decoder's pictures does), the same DTS and keyframe flag.
fn transcoded(calls: &[Call]) -> Vec<Call> {
    // Presentation order within each timeline: the transcoder flushes its decoder at a
    // discontinuity.
    let mut timelines: Vec<Vec<i64>> = vec![Vec::new()];
    for c in calls {
        match c {
            Call::Frame(f, _) if f.track == synth::VIDEO => {
                timelines.last_mut().unwrap().push(f.pts.ticks)
            }
            Call::Discontinuity(_) => timelines.push(Vec::new()),
            _ => {}
        }
    }
    let mut pts = Vec::new();
    for mut t in timelines {
        t.sort_unstable();
        pts.extend(t);
    }
    let mut next = pts.into_iter();
    calls
        .iter()
        .map(|c| match c {
            Call::Frame(f, now) if f.track == synth::VIDEO => {
                let pts = next.next().expect("one per video frame");
                assert!(pts >= f.dts.ticks, "presentation order keeps PTS >= DTS");
                let mut data = vec![0u8; 4 + 100];
                data[..4].copy_from_slice(&100u32.to_be_bytes());
                data[4] = if f.keyframe { 0x65 } else { 0x41 };
                Call::Frame(
                    Frame {
                        pts: MediaTime::new(pts, f.pts.scale),
                        data: Bytes::from(data),
                        ..f.clone()
                    },
                    *now,
                )
            }
            other => other.clone(),
        })
        .collect()
}

fn rung_tracks(source: &[TrackConfig]) -> Vec<TrackConfig> {
    // The rung's video keeps the source track's id; the audio is the source's own.
    source.to_vec()
}

/// A publisher's calls: 30 fps (B-frames optional), a stall long enough for GAP parts, a
/// reconnect (discontinuity), then the end.
fn calls(bframes: bool) -> Vec<Call> {
    let mut publisher = Publisher::new(30.0, 30);
    publisher.bframes = bframes;
    let mut out = Vec::new();
    let mut last_wall = 0;
    for i in 0..1600 {
        if i == 900 {
            // A 7 s stall (long enough for GAP parts after the playlist was held): the stream
            // task calls handle_timeout every 100 ms meanwhile.
            for k in 1..=70 {
                out.push(Call::Timeout(WallClock(last_wall + k * 100)));
            }
            publisher.base_ms += 7000;
            publisher.wall0 += 7000;
        }
        if i == 1200 {
            out.push(Call::Discontinuity(WallClock(last_wall + 10)));
            publisher.base_ms -= 40_000;
            publisher.wall0 += 40_000 + 300;
        }
        let (f, now) = publisher.next_frame();
        last_wall = now.0;
        out.push(Call::Frame(f, now));
    }
    out.push(Call::End(WallClock(last_wall + 40)));
    out
}

fn rung_snapshot(p: &Packager, name: &str) -> Option<llhls_packager::RenditionSnapshot> {
    let snap = p.snapshot()?;
    let video = snap
        .renditions
        .iter()
        .find(|r| r.kind == llhls_packager::playlist::RenditionKind::Video)?;
    Some(rename_rendition(video, name))
}

/// (LAST-MSN, LAST-PART) of each EXT-X-RENDITION-REPORT in `text`, by URI.
fn reports(text: &str) -> Vec<(String, u64, Option<u32>)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-RENDITION-REPORT:"))
        .map(|attrs| {
            let get = |k: &str| {
                attrs
                    .split(',')
                    .find_map(|a| a.strip_prefix(&format!("{k}=")))
                    .map(|v| v.trim_matches('"').to_string())
            };
            (
                get("URI").unwrap(),
                get("LAST-MSN").unwrap().parse().unwrap(),
                get("LAST-PART").map(|p| p.parse().unwrap()),
            )
        })
        .collect()
}

fn check_reports(snap: &StreamSnapshot) {
    for r in &snap.renditions {
        let text = render_media(snap, r, SkipMode::Full);
        let got = reports(&text);
        assert_eq!(got.len(), snap.renditions.len() - 1, "{text}");
        for (uri, msn, part) in got {
            let other = snap
                .renditions
                .iter()
                .find(|o| format!("{}.m3u8", o.name) == uri)
                .unwrap_or_else(|| panic!("a report for {uri}, which is not a rendition"));
            assert_ne!(other.name, r.name, "no report for itself");
            let (last_msn, last_part) = other.last_part().expect("parts listed");
            assert_eq!(
                (msn, part),
                (last_msn, Some(last_part)),
                "{uri} in {}",
                r.name
            );
        }
    }
}

fn run(bframes: bool) {
    let config = PackagerConfig {
        layout: Layout::Separate,
        ..PackagerConfig::default()
    };
    let tracks = Publisher::new(30.0, 30).tracks();
    let mut source = Packager::new(config.clone(), tracks.clone()).unwrap();
    let rungs = ["360p", "240p"];
    let mut rung_packagers: Vec<Packager> = rungs
        .iter()
        .map(|_| Packager::new(config.clone(), rung_tracks(&tracks)).unwrap())
        .collect();
    let source_calls = calls(bframes);
    let rung_calls = transcoded(&source_calls);
    let mut cursors = vec![0usize; rungs.len()];
    let mut lcg = 12345u64;
    let mut checked = 0;
    let mut rung_objects = Vec::new();
    let mut saw_gap = false;
    for (i, call) in source_calls.iter().enumerate() {
        apply(&mut source, call);
        while let Some(out) = source.poll_output() {
            let _ = out;
        }
        // Each rung catches up to a varying point behind the source (its encoder delay).
        for (r, p) in rung_packagers.iter_mut().enumerate() {
            lcg = lcg
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let lag = ((lcg >> 33) % 6) as usize;
            let upto = if i + 1 == source_calls.len() {
                source_calls.len()
            } else {
                (i + 1).saturating_sub(lag)
            };
            while cursors[r] < upto {
                apply(p, &rung_calls[cursors[r]]);
                cursors[r] += 1;
            }
            while let Some(out) = p.poll_output() {
                if let Output::Object { key, .. } = out {
                    if key.rendition() == "video" {
                        rung_objects.push(rename_key(&key, rungs[r]));
                    }
                }
            }
        }
        let Some(snap) = source.snapshot() else {
            continue;
        };
        if !source.is_live() {
            continue;
        }
        let video = &snap.renditions[0];
        let mut rung_snaps = Vec::new();
        for (r, p) in rung_packagers.iter().enumerate() {
            assert_eq!(p.timing(), source.timing(), "same TD and PART-TARGET");
            let Some(rs) = rung_snapshot(p, rungs[r]) else {
                continue;
            };
            check_aligned(video, &rs)
                .unwrap_or_else(|e| panic!("rung {} after call {i}: {e}", rungs[r]));
            let gap =
                |s: &llhls_packager::playlist::SegmentEntry| s.gap || s.parts.iter().any(|p| p.gap);
            saw_gap |= rs.segments.iter().any(gap)
                || rs
                    .open
                    .as_ref()
                    .is_some_and(|o| o.parts.iter().any(|p| p.gap));
            rung_snaps.push(rs);
        }
        if rung_snaps.len() == rungs.len() && !snap.ended {
            let combined = with_rungs(&snap, rung_snaps);
            check_reports(&combined);
            checked += 1;
        }
    }
    assert!(checked > 1000, "compared {checked} snapshots");
    assert!(saw_gap, "the stall made GAP parts in the rungs too");
    // At the end every rendition has published the same grid, to the last part.
    let snap = source.snapshot().unwrap();
    assert!(snap.ended);
    let video = &snap.renditions[0];
    for (r, p) in rung_packagers.iter().enumerate() {
        let rs = rung_snapshot(p, rungs[r]).unwrap();
        check_aligned(video, &rs).unwrap();
        assert_eq!(rs.segments.len(), video.segments.len());
        let msns: Vec<u64> = rs.segments.iter().map(|s| s.msn).collect();
        let src: Vec<u64> = video.segments.iter().map(|s| s.msn).collect();
        assert_eq!(msns, src);
        assert!(rs.segments.iter().any(|s| s.discontinuity));
        assert!(rs
            .segments
            .iter()
            .any(|s| s.gap || s.parts.iter().any(|p| p.gap)));
        for s in &rs.segments {
            assert!(s.uri.starts_with(&format!("{}/", rungs[r])), "{}", s.uri);
        }
    }
    assert!(rung_objects.iter().all(|k| rungs.contains(&k.rendition())));
}

#[test]
fn rungs_fed_the_source_calls_late_stay_on_its_grid() {
    run(false);
}

#[test]
fn rungs_of_a_b_frame_source_stay_on_its_grid() {
    run(true);
}

#[test]
fn the_multivariant_lists_every_video_rendition_with_one_audio_group() {
    let config = PackagerConfig {
        layout: Layout::Separate,
        ..PackagerConfig::default()
    };
    let mut publisher = Publisher::new(30.0, 30);
    let tracks = publisher.tracks();
    assert!(tracks.iter().any(|t| t.kind() == TrackKind::Video));
    let mut source = Packager::new(config.clone(), tracks.clone()).unwrap();
    let mut rung = Packager::new(config, tracks).unwrap();
    while !(source.is_live() && rung.is_live()) {
        let (f, now) = publisher.next_frame();
        source.handle_frame(f.clone(), now).unwrap();
        rung.handle_frame(f, now).unwrap();
    }
    let snap = source.snapshot().unwrap();
    let combined = with_rungs(&snap, vec![rung_snapshot(&rung, "360p").unwrap()]);
    let names: Vec<&str> = combined
        .renditions
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["video", "360p", "audio"]);
    let mv = render_multivariant(&combined);
    assert_eq!(mv.matches("#EXT-X-MEDIA:TYPE=AUDIO").count(), 1, "{mv}");
    let inf: Vec<&str> = mv
        .lines()
        .filter(|l| l.starts_with("#EXT-X-STREAM-INF:"))
        .collect();
    assert_eq!(inf.len(), 2, "{mv}");
    for l in &inf {
        for attr in [
            "BANDWIDTH=",
            "AVERAGE-BANDWIDTH=",
            "CODECS=\"avc1.",
            ",mp4a.40.2\"",
            "RESOLUTION=",
            "FRAME-RATE=30.000",
            "AUDIO=\"audio\"",
            "CLOSED-CAPTIONS=NONE",
        ] {
            assert!(l.contains(attr), "{attr} missing in {l}");
        }
    }
    let uris: Vec<&str> = mv.lines().filter(|l| l.ends_with(".m3u8")).collect();
    assert_eq!(uris, ["video.m3u8", "360p.m3u8"]);
}

#[test]
fn the_alignment_check_catches_a_rung_that_lost_a_keyframe() {
    let config = PackagerConfig {
        layout: Layout::Separate,
        ..PackagerConfig::default()
    };
    let tracks = Publisher::new(30.0, 30).tracks();
    let mut source = Packager::new(config.clone(), tracks.clone()).unwrap();
    let mut rung = Packager::new(config, tracks).unwrap();
    let source_calls = calls(false);
    let mut rung_calls = transcoded(&source_calls);
    // A keyframe in the final window never came out of the encoder. (A lost frame between
    // keyframes moves no boundary: parts are cut on media time, not frame counts.)
    let lost = rung_calls
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(c, Call::Frame(f, _) if f.track == synth::VIDEO && f.keyframe))
        .nth(17)
        .unwrap()
        .0;
    rung_calls.remove(lost);
    source_calls.iter().for_each(|c| apply(&mut source, c));
    rung_calls.iter().for_each(|c| apply(&mut rung, c));
    let snap = source.snapshot().unwrap();
    let rs = rung_snapshot(&rung, "360p").unwrap();
    assert!(check_aligned(&snap.renditions[0], &rs).is_err());
}

/// A rung withdrawn mid-stream (its encoder stopped) goes on as a [`GapMirror`]: at every
/// source change after, its playlist has the source's MSNs, parts, durations, dates and
/// discontinuities, everything new marked GAP, no preload hint; nothing it listed changes;
/// its own objects expire as their segments leave the window; it ends with the source; new
/// players are not pointed at it (not in the multivariant, not reported).
#[test]
fn a_withdrawn_rung_goes_on_as_gaps_on_the_source_grid() {
    // The shortest window (6 segments of 2 s), so it slides past the rung's own segments.
    let config = PackagerConfig {
        layout: Layout::Separate,
        window_segments: 6,
        ..PackagerConfig::default()
    };
    let tracks = Publisher::new(30.0, 30).tracks();
    let mut source = Packager::new(config.clone(), tracks.clone()).unwrap();
    let mut rung = Packager::new(config, rung_tracks(&tracks)).unwrap();
    let source_calls = calls(false);
    let rung_calls = transcoded(&source_calls);
    // The rung's encoder stops 5 calls behind the source, about 9 s in: before the stall (GAP
    // parts), the reconnect's discontinuity and the end, which the mirror must follow.
    let stop = source_calls
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(c, Call::Frame(..)))
        .nth(700)
        .unwrap()
        .0;
    source_calls[..stop]
        .iter()
        .for_each(|c| apply(&mut source, c));
    rung_calls[..stop - 5]
        .iter()
        .for_each(|c| apply(&mut rung, c));
    let mut rung_objects = std::collections::BTreeSet::new();
    while let Some(out) = rung.poll_output() {
        match out {
            Output::Object { key, .. } if !key.is_init() => {
                rung_objects.insert(rename_key(&key, "360p").to_string());
            }
            Output::Expired(keys) => {
                for k in keys {
                    rung_objects.remove(&rename_key(&k, "360p").to_string());
                }
            }
            _ => {}
        }
    }
    let last = rung_snapshot(&rung, "360p").unwrap();
    let last_real = last.last_part().unwrap();
    let mut mirror = GapMirror::new(last.clone());
    let mut listed: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let remember = |text: &str, listed: &mut std::collections::HashMap<String, String>| {
        for l in text.lines().filter(|l| l.starts_with("#EXT-X-PART:")) {
            let uri = l.split("URI=\"").nth(1).unwrap().split('"').next().unwrap();
            if let Some(before) = listed.insert(uri.to_string(), l.to_string()) {
                assert_eq!(before, l, "a listed part changed");
            }
        }
    };
    remember(
        &render_media(
            &with_rungs(&source.snapshot().unwrap(), vec![last.clone()]),
            &last,
            SkipMode::Full,
        ),
        &mut listed,
    );
    let mut expired = std::collections::BTreeSet::new();
    let mut checked = 0;
    for c in &source_calls[stop..] {
        apply(&mut source, c);
        while source.poll_output().is_some() {}
        let snap = source.snapshot().unwrap();
        let src = &snap.renditions[0];
        let (ghost, gone) = mirror.follow(src);
        expired.extend(gone.iter().map(|k| k.to_string()));
        assert!(ghost.withdrawn && ghost.preload_hint.is_none());
        assert_eq!(ghost.name, "360p");
        assert_eq!(ghost.last_part(), src.last_part());
        assert_eq!(
            (ghost.media_sequence, ghost.discontinuity_sequence),
            (src.media_sequence, src.discontinuity_sequence)
        );
        assert_eq!(ghost.segments.len(), src.segments.len());
        for (g, s) in ghost.segments.iter().zip(src.segments.iter()) {
            assert_eq!(
                (
                    g.msn,
                    g.duration,
                    g.program_date_time,
                    g.discontinuity,
                    g.parts_listed
                ),
                (
                    s.msn,
                    s.duration,
                    s.program_date_time,
                    s.discontinuity,
                    s.parts_listed
                )
            );
            if g.msn > last_real.0 {
                assert!(g.gap && g.parts.iter().all(|p| p.gap && p.uri.starts_with("360p/")));
            }
            if g.parts_listed {
                assert_eq!(g.parts.len(), s.parts.len(), "segment {}", g.msn);
            }
        }
        let combined = with_rungs(&snap, vec![ghost.clone()]);
        let text = render_media(&combined, &ghost, SkipMode::Full);
        assert!(!text.contains("#EXT-X-PRELOAD-HINT"), "{text}");
        remember(&text, &mut listed);
        assert!(!render_multivariant(&combined).contains("360p"));
        assert!(!render_media(&combined, src, SkipMode::Full).contains("360p"));
        if snap.ended {
            assert!(ghost.open.is_none());
            assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
        }
        checked += 1;
    }
    assert!(checked > 500, "{checked}");
    assert!(source.snapshot().unwrap().ended);
    // Every object of the rung whose segment left the window was expired (the window slid
    // past all of them: 25 s of source after the stop).
    let first = source.snapshot().unwrap().renditions[0].media_sequence;
    assert!(
        first > last_real.0,
        "the window slid past the rung's segments"
    );
    let stale: Vec<&String> = rung_objects
        .iter()
        .filter(|k| !expired.contains(*k))
        .collect();
    assert!(stale.is_empty(), "never expired: {stale:?}");
    // Parts of the rung's own that were listed stay listed without GAP.
    assert!(listed.iter().any(|(_, l)| !l.contains("GAP=YES")));
}
