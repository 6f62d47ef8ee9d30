//! DVR storage in the origin's stream task: segments past the live window go to disk, and the
//! stream's directory goes when the stream is gone.

use std::sync::Arc;
use std::time::Duration;

use llhls_origin::{Command, Origin, OriginConfig};
use llhls_packager::synth::Publisher;
use llhls_packager::{Packager, PackagerConfig};

/// Polls `what` every 10 ms, at most `tries` times.
async fn until(tries: u32, mut what: impl FnMut() -> bool) -> bool {
    for _ in 0..tries {
        if what() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    what()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streams_dvr_directory_goes_when_the_stream_is_gone() {
    let root = std::env::temp_dir().join(format!("llhls-origin-dvr-{}", std::process::id()));
    llhls_origin::dvr::prepare(&root).unwrap();
    let origin: Arc<Origin> = Origin::new(OriginConfig {
        dvr_dir: Some(root.clone()),
        ended_linger: Duration::from_millis(200),
        ..OriginConfig::default()
    });
    let mut publisher = Publisher::new(30.0, 30);
    let config = PackagerConfig {
        window_segments: 6,
        dvr_window: Duration::from_secs(60),
        ..PackagerConfig::default()
    };
    let packager = Packager::new(config, publisher.tracks()).unwrap();
    let input = origin.create_stream("cam", packager).unwrap();
    // 30 s of media: 15 segments of 2 s, 9 of them past the live window.
    for _ in 0..77 * 30 {
        let (f, w) = publisher.next_frame();
        input.send(Command::Frame(f, w)).await.unwrap();
    }
    let dir = root.join("cam.0/media");
    let files = || {
        std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".m4s"))
                    .count()
            })
            .unwrap_or(0)
    };
    assert!(until(500, || files() >= 8).await, "{} files", files());
    // Every spilled segment is served from its file, the same bytes as written.
    let p = input.stream.current().unwrap();
    let oldest = &p.snapshot.renditions[0].segments[0];
    let key = oldest.uri.parse().unwrap();
    assert!(
        until(500, || matches!(
            input.stream.object(&key),
            Some(llhls_origin::live::Object::OnDisk(_))
        ))
        .await
    );
    input
        .send(Command::End(llhls_origin::wall_now()))
        .await
        .unwrap();
    drop(input);
    assert!(
        until(500, || !root.join("cam.0").exists()).await,
        "the stream's DVR directory stays after the stream is gone"
    );
    assert!(root.exists(), "the DVR root stays");
    let _ = std::fs::remove_dir_all(&root);
}
