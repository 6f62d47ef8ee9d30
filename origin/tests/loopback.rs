//! The origin on a real loopback socket with real HTTP/1.1, HTTP/2 (h2c prior knowledge) and
//! HTTPS (ALPN h2) clients.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use llhls_origin::server::{serve, ServerConfig};
use llhls_origin::{Command, Origin, OriginConfig};
use llhls_packager::synth::Publisher;
use llhls_packager::{Packager, PackagerConfig};
use tokio::net::{TcpListener, TcpStream};

mod common;
use common::Running;

/// A server with stream `lb`.
async fn start(config: ServerConfig) -> Running {
    common::start(OriginConfig::default(), config, "lb").await
}

fn get(path: &str) -> Request<Empty<Bytes>> {
    Request::builder()
        .uri(path)
        .header("host", "localhost")
        .body(Empty::new())
        .unwrap()
}

#[tokio::test]
async fn http1_client_gets_playlists_and_parts() {
    let r = start(ServerConfig::default()).await;
    let io = TokioIo::new(TcpStream::connect(r.addr).await.unwrap());
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let resp = send.send_request(get("/live/lb/media.m3u8")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), http::Version::HTTP_11);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(body.starts_with(b"#EXTM3U"));
    // Keep-alive: a second request on the same connection.
    let (msn, part) = r.last_part();
    let resp = send
        .send_request(get(&format!("/live/lb/media/{msn}.{part}.m4s")))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let _ = r.stop.send(());
}

#[tokio::test]
async fn a_thousand_held_h2_requests_are_released_by_one_part() {
    let mut r = start(ServerConfig::default()).await;
    let (msn, part) = r.last_part();
    let path = format!("/live/lb/media.m3u8?_HLS_msn={msn}&_HLS_part={}", part + 1);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let io = TokioIo::new(TcpStream::connect(r.addr).await.unwrap());
        let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        for _ in 0..250 {
            let mut send = send.clone();
            let path = path.clone();
            tasks.push(tokio::spawn(async move {
                let resp = send.send_request(get(&path)).await.unwrap();
                let done = Instant::now();
                assert_eq!(resp.version(), http::Version::HTTP_2);
                (resp.status(), done)
            }));
        }
    }
    // All 1,000 are held: none finishes before the part exists.
    let deadline = Instant::now() + Duration::from_secs(20);
    while r
        .input
        .stream
        .held
        .load(std::sync::atomic::Ordering::Relaxed)
        < 1000
    {
        assert!(Instant::now() < deadline, "requests did not all arrive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(tasks.iter().all(|t| !t.is_finished()));
    let published = Instant::now();
    r.feed_part().await;
    let mut slowest = Duration::ZERO;
    for t in tasks {
        let (status, done) = t.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        slowest = slowest.max(done.saturating_duration_since(published));
    }
    eprintln!("1,000 held h2 requests released; last response {slowest:?} after the publish call");
    let _ = r.stop.send(());
}

#[tokio::test]
async fn https_negotiates_h2_with_alpn() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = std::env::temp_dir().join(format!("llhls-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cp, kp) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cp, cert.cert.pem()).unwrap();
    std::fs::write(&kp, cert.key_pair.serialize_pem()).unwrap();
    let r = start(ServerConfig {
        tls: Some((cp, kp)),
        ..ServerConfig::default()
    })
    .await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(r.addr).await.unwrap();
    let tls = connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let resp = send.send_request(get("/live/lb/index.m3u8")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let _ = r.stop.send(());
}

#[tokio::test]
async fn oversized_headers_and_garbage_get_errors_not_hangs() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let r = start(ServerConfig {
        max_header_bytes: 8192,
        ..ServerConfig::default()
    })
    .await;
    let mut s = TcpStream::connect(r.addr).await.unwrap();
    let big = "x".repeat(64 * 1024);
    let _ = s
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n").as_bytes())
        .await;
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || head.starts_with("HTTP/1.1 431"), "{head}");
    let mut g = TcpStream::connect(r.addr).await.unwrap();
    g.write_all(b"\x00\x01garbage garbage\r\n\r\n")
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), g.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || head.starts_with("HTTP/1.1 400"), "{head}");
    // The server still answers.
    let io = TokioIo::new(TcpStream::connect(r.addr).await.unwrap());
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    assert_eq!(
        send.send_request(get("/healthz")).await.unwrap().status(),
        StatusCode::OK
    );
    let _ = r.stop.send(());
}

#[tokio::test]
async fn shutdown_answers_held_requests_and_drains() {
    let r = start(ServerConfig::default()).await;
    let (msn, part) = r.last_part();
    let io = TokioIo::new(TcpStream::connect(r.addr).await.unwrap());
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    let conn = tokio::spawn(conn);
    let held = tokio::spawn(async move {
        send.send_request(get(&format!(
            "/live/lb/media.m3u8?_HLS_msn={msn}&_HLS_part={}",
            part + 1
        )))
        .await
        .unwrap()
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while r
        .input
        .stream
        .held
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    let _ = r.stop.send(());
    let resp = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .expect("answered at shutdown")
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    // The connection is closed by the graceful drain.
    tokio::time::timeout(Duration::from_secs(6), conn)
        .await
        .expect("connection drained")
        .unwrap()
        .ok();
    assert!(started.elapsed() < Duration::from_secs(6));
}

#[tokio::test]
async fn byte_ranges_of_a_growing_segment_arrive_whole_over_http1_and_h2() {
    let origin = Origin::new(OriginConfig::default());
    let mut publisher = Publisher::new(30.0, 60);
    let config = PackagerConfig {
        addressing: llhls_packager::Addressing::ByteRange,
        ..PackagerConfig::default()
    };
    let p = Packager::new(config, publisher.tracks()).unwrap();
    let input = origin.create_stream("br", p).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(
        origin,
        listener,
        ServerConfig::default(),
        async move {
            let _ = rx.await;
        },
    ));
    // Three closed segments and part of the next (2 s GOPs): a segment growing part by part.
    for _ in 0..77 * 7 {
        let (f, w) = publisher.next_frame();
        input.send(Command::Frame(f, w)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let open = input.stream.current().unwrap().snapshot.renditions[0]
        .open
        .clone()
        .unwrap();
    assert!(open.parts.len() >= 2, "parts in the growing segment");
    let stored = match input.stream.object(&open.uri.parse().unwrap()).unwrap() {
        llhls_origin::live::Object::Growing(rope) => rope,
        other => panic!("a growing segment, not {other:?}"),
    };
    let whole: Vec<u8> = stored.parts().iter().flat_map(|p| p.to_vec()).collect();
    // From inside the first part to inside the last: every part contributes a slice.
    let (a, b) = (1u64, open.bytes - 2);
    let range = |path: &str| {
        Request::builder()
            .uri(path)
            .header("host", "localhost")
            .header("range", format!("bytes={a}-{b}"))
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    let path = format!("/live/br/{}", open.uri);
    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut h1, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut h2, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    tokio::spawn(conn);
    for resp in [
        h1.send_request(range(&path)).await.unwrap(),
        h2.send_request(range(&path)).await.unwrap(),
    ] {
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            resp.headers()["content-range"],
            format!("bytes {a}-{b}/*").as_str()
        );
        assert_eq!(
            resp.headers()["content-length"],
            (b - a + 1).to_string().as_str()
        );
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], &whole[a as usize..=b as usize]);
    }
    let _ = stop.send(());
}
