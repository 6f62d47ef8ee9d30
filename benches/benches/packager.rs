//! Criterion micro-benches: packaging cost per frame, playlist render per view, directive
//! parsing, box writing.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use llhls_packager::cmaf::{fragment, Sample, TrackRun};
use llhls_packager::synth::Publisher;
use llhls_packager::{
    render_media, render_multivariant, Directives, Output, Packager, PackagerConfig, SkipMode,
};

fn frames(
    n: usize,
) -> (
    Vec<(llhls_packager::Frame, llhls_packager::WallClock)>,
    Publisher,
) {
    let mut p = Publisher::new(30.0, 60);
    let v = (0..n).map(|_| p.next_frame()).collect();
    (v, p)
}

fn packaging(c: &mut Criterion) {
    let (input, publisher) = frames(77 * 60);
    let mut g = c.benchmark_group("packager");
    g.throughput(Throughput::Elements(input.len() as u64));
    g.bench_function("handle_frame+drain, 60 s of 30 fps video + AAC", |b| {
        b.iter(|| {
            let mut p = Packager::new(PackagerConfig::default(), publisher.tracks()).unwrap();
            let mut n = 0usize;
            for (f, w) in input.iter().cloned() {
                p.handle_frame(f, w).unwrap();
                while let Some(o) = p.poll_output() {
                    if let Output::PlaylistChanged = o {
                        n += usize::from(p.snapshot().is_some());
                    }
                }
            }
            black_box(n)
        })
    });
    g.finish();
}

fn rendering(c: &mut Criterion) {
    let (input, publisher) = frames(77 * 40);
    let mut p = Packager::new(PackagerConfig::default(), publisher.tracks()).unwrap();
    for (f, w) in input {
        p.handle_frame(f, w).unwrap();
        while p.poll_output().is_some() {}
    }
    let snap = p.snapshot().unwrap();
    let r = &snap.renditions[0];
    let mut g = c.benchmark_group("render");
    g.bench_function("media full (12 segments)", |b| {
        b.iter(|| black_box(render_media(&snap, r, SkipMode::Full)))
    });
    g.bench_function("media delta YES", |b| {
        b.iter(|| black_box(render_media(&snap, r, SkipMode::Yes)))
    });
    g.bench_function("media delta v2", |b| {
        b.iter(|| black_box(render_media(&snap, r, SkipMode::V2)))
    });
    g.bench_function("multivariant", |b| {
        b.iter(|| black_box(render_multivariant(&snap)))
    });
    g.bench_function("snapshot", |b| b.iter(|| black_box(p.snapshot())));
    g.finish();
}

/// A 4-hour DVR window (2 s segments: 7,200 of them): the cost of each playlist change, full
/// view against `_HLS_skip=YES`, and the snapshot that copies the window's metadata.
fn dvr_window(c: &mut Criterion) {
    let hours = 4;
    let (input, publisher) = frames(77 * 3600 * hours);
    let config = PackagerConfig {
        dvr_window: std::time::Duration::from_secs(3600 * hours as u64),
        ..PackagerConfig::default()
    };
    let mut p = Packager::new(config, publisher.tracks()).unwrap();
    for (f, w) in input {
        p.handle_frame(f, w).unwrap();
        while p.poll_output().is_some() {}
    }
    let snap = p.snapshot().unwrap();
    let r = &snap.renditions[0];
    let full = render_media(&snap, r, SkipMode::Full);
    let yes = render_media(&snap, r, SkipMode::Yes);
    eprintln!(
        "4-hour DVR window: {} segments, full view {} bytes, _HLS_skip=YES {} bytes",
        r.segments.len(),
        full.len(),
        yes.len()
    );
    let mut g = c.benchmark_group("dvr 4 h");
    g.sample_size(20);
    g.bench_function("media full", |b| {
        b.iter(|| black_box(render_media(&snap, r, SkipMode::Full)))
    });
    g.bench_function("media delta YES", |b| {
        b.iter(|| black_box(render_media(&snap, r, SkipMode::Yes)))
    });
    g.bench_function("snapshot", |b| b.iter(|| black_box(p.snapshot())));
    // The stream task renders the multivariant playlist on every change (its BANDWIDTH
    // values are measured over the window).
    g.bench_function("multivariant", |b| {
        b.iter(|| black_box(render_multivariant(&snap)))
    });
    // A change as the stream task sees it: the next frames up to a playlist change (a part),
    // then the snapshot it publishes; the window stays at 4 hours (it slides).
    let mut live = publisher;
    g.bench_function("change (frames of one part + snapshot)", |b| {
        b.iter(|| loop {
            let (f, w) = live.next_frame();
            p.handle_frame(f, w).unwrap();
            let mut changed = false;
            while let Some(o) = p.poll_output() {
                changed |= matches!(o, Output::PlaylistChanged);
            }
            if changed {
                break black_box(p.snapshot());
            }
        })
    });
    // The origin gzips every view once per change (flate2, fast level), as it does here.
    g.bench_function("gzip media full", |b| {
        b.iter(|| {
            use std::io::Write;
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(full.len() / 3),
                flate2::Compression::fast(),
            );
            enc.write_all(full.as_bytes()).unwrap();
            black_box(enc.finish().unwrap().len())
        })
    });
    g.finish();
}

fn directives(c: &mut Criterion) {
    c.bench_function("directives/parse hls.js query", |b| {
        b.iter(|| {
            black_box(Directives::parse(black_box(
                "token=abc&_HLS_msn=1795623678&_HLS_part=7&_HLS_skip=YES",
            )))
        })
    });
}

fn boxes(c: &mut Criterion) {
    let video: Vec<Sample> = (0..6)
        .map(|i| Sample {
            duration: 3000,
            cts_offset: 0,
            sync: i == 0,
            data: Bytes::from(vec![0u8; 4000]),
        })
        .collect();
    let audio: Vec<Sample> = (0..10)
        .map(|_| Sample {
            duration: 1024,
            cts_offset: 0,
            sync: true,
            data: Bytes::from(vec![0u8; 300]),
        })
        .collect();
    let mut g = c.benchmark_group("cmaf");
    g.throughput(Throughput::Bytes(6 * 4000 + 10 * 300));
    g.bench_function("fragment: 6 video + 10 audio samples", |b| {
        b.iter(|| {
            black_box(fragment(
                7,
                &[
                    TrackRun {
                        track_id: 1,
                        base_dts: 1 << 33,
                        video: true,
                        samples: &video,
                    },
                    TrackRun {
                        track_id: 2,
                        base_dts: 1 << 30,
                        video: false,
                        samples: &audio,
                    },
                ],
            ))
        })
    });
    g.finish();
}

criterion_group!(benches, packaging, rendering, dvr_window, directives, boxes);
criterion_main!(benches);
