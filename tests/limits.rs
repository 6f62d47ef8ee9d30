//! The real binary with its limits on: the most streams, a publisher's bitrate, and private
//! streams behind playback tokens, with real ffmpeg publishers over RTMP.

mod common;

use std::time::Duration;

use common::*;
use llhls_origin::token::PlaybackTokens;

fn media_playlist(s: &Server, prefix: &str) -> String {
    let mv = s.get(&format!("{prefix}/index.m3u8")).text();
    let media = mv
        .lines()
        .find(|l| !l.starts_with('#') && l.ends_with(".m3u8"))
        .unwrap_or_else(|| panic!("no media playlist in {mv}"))
        .to_string();
    s.get(&format!("{prefix}/{media}")).text()
}

#[test]
fn a_publish_beyond_max_streams_is_refused_and_one_under_the_bitrate_limit_stays() {
    let s = Server::start(&["--max-streams", "1", "--max-publish-kbps", "20000"]);
    let mut one = publish(&s.rtmp_url("one"), 14, false);
    s.wait_for("/live/one/index.m3u8", Duration::from_secs(15));
    let mut two = publish(&s.rtmp_url("two"), 4, false);
    assert!(
        !two.wait().unwrap().success(),
        "the second stream must be refused"
    );
    assert_eq!(s.get("/live/two/index.m3u8").status, 404);
    let log = s.log_text();
    assert!(log.contains("limit of 1 streams"), "{log}");
    // The first publisher, well under its bitrate limit, outlives a few measuring windows.
    let before = media_playlist(&s, "/live/one");
    std::thread::sleep(Duration::from_secs(7));
    let after = media_playlist(&s, "/live/one");
    assert_ne!(before, after, "the first stream keeps advancing");
    assert!(!after.contains("#EXT-X-ENDLIST"), "{after}");
    assert!(one.wait().unwrap().success(), "{}", s.log_text());
    assert!(
        !s.log_text().contains("above the limit"),
        "{}",
        s.log_text()
    );
}

#[test]
fn a_publisher_above_max_publish_kbps_is_disconnected_with_the_reason_logged() {
    // ffmpeg's test pattern with 128 kbit/s AAC is far above 50 kbit/s.
    let s = Server::start(&["--max-publish-kbps", "50"]);
    let mut fat = publish(&s.rtmp_url("fat"), 30, false);
    // Admitted first: the limit is on what it sends, measured over 5 s.
    s.wait_for("/live/fat/index.m3u8", Duration::from_secs(15));
    let status = fat.wait().unwrap();
    assert!(
        !status.success(),
        "ffmpeg should have been disconnected before its 30 s"
    );
    let log = s.log_text();
    assert!(
        log.contains("above the limit of 50 kbit/s (max_publish_kbps)"),
        "{log}"
    );
}

#[test]
fn a_private_stream_needs_its_token_and_the_log_never_shows_one_whole() {
    let secret = "0123456789abcdef0123456789abcdef";
    let s = Server::start(&["--playback-secret", secret]);
    let mut p = publish(&s.rtmp_url("priv"), 10, false);
    let tokens = PlaybackTokens::new(secret.as_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let good = tokens.mint("priv", now + 600);
    let prefix = format!("/live/t/{good}/priv");
    s.wait_for(&format!("{prefix}/index.m3u8"), Duration::from_secs(15));
    assert!(media_playlist(&s, &prefix).contains("#EXT-X-PART:"));
    // A wrong token first: refusals are logged at most once a second, this one is.
    let wrong = tokens.mint("other", now + 600);
    let r = s.get(&format!("/live/t/{wrong}/priv/index.m3u8"));
    assert_eq!(r.status, 403);
    let r = s.get("/live/priv/index.m3u8");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("needs a playback token"), "{}", r.text());
    let _ = p.kill();
    let _ = p.wait();
    let log = s.log_text();
    assert!(log.contains("403: playback token not valid"), "{log}");
    assert!(log.contains(&wrong[..16]), "a prefix is logged: {log}");
    for t in [&good, &wrong] {
        assert!(!log.contains(t.as_str()), "a whole token in the log: {log}");
        assert!(
            !log.contains(&t[20..]),
            "a token's signature in the log: {log}"
        );
    }
    assert!(!log.contains(secret), "the secret in the log");
}
