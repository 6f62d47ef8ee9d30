//! Limits and private streams over real loopback sockets: playback tokens (403 for a missing,
//! wrong, malformed or expired token; the whole playback path under a valid one), and the
//! per-IP limits on connections and held requests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use llhls_origin::server::ServerConfig;
use llhls_origin::token::PlaybackTokens;
use llhls_origin::OriginConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;
use common::Running;

/// A server with stream `cam`.
async fn start(origin: OriginConfig, server: ServerConfig) -> Running {
    common::start(origin, server, "cam").await
}

/// A server behind a proxy trusted when it connects from `trusted` (a CIDR), holding one
/// request per client address and allowing `max_connections_per_ip`.
async fn start_behind_proxy(trusted: &str, max_connections_per_ip: usize) -> Running {
    start(
        OriginConfig {
            max_held_per_ip: 1,
            ..OriginConfig::default()
        },
        ServerConfig {
            max_connections_per_ip,
            trusted_proxies: llhls_origin::limits::TrustedProxies::new(vec![trusted
                .parse()
                .unwrap()]),
            ..ServerConfig::default()
        },
    )
    .await
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: std::net::SocketAddr) -> Sender {
    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    send
}

async fn get(send: &mut Sender, path: &str) -> (StatusCode, http::HeaderMap, String) {
    let req = Request::builder()
        .uri(path)
        .header("host", "localhost")
        .body(Empty::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let (head, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        head.status,
        head.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

const SECRET: &[u8] = b"a test secret, 32 bytes or so...";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn a_private_stream_plays_with_a_token_and_refuses_without_one() {
    let tokens = Arc::new(PlaybackTokens::new(SECRET));
    let r = start(
        OriginConfig {
            playback_tokens: Some(tokens.clone()),
            ..OriginConfig::default()
        },
        ServerConfig::default(),
    )
    .await;
    let mut c = connect(r.addr).await;
    let good = tokens.mint("cam", now() + 3600);

    // The whole playback path under the token: multivariant, media playlist, a blocking
    // reload, init section, part, segment: every URI as the playlists give it, relative.
    let base = format!("/live/t/{good}/cam");
    let (status, _, mv) = get(&mut c, &format!("{base}/index.m3u8")).await;
    assert_eq!(status, StatusCode::OK, "{mv}");
    let media = mv
        .lines()
        .find(|l| !l.starts_with('#') && l.ends_with(".m3u8"))
        .expect("a media playlist URI");
    assert!(!media.contains('/'), "relative URIs: {media}");
    let (status, _, pl) = get(&mut c, &format!("{base}/{media}")).await;
    assert_eq!(status, StatusCode::OK, "{pl}");
    let (msn, part) = r.last_part();
    let (status, _, _) = get(
        &mut c,
        &format!("{base}/{media}?_HLS_msn={msn}&_HLS_part={part}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let map = pl
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("EXT-X-MAP");
    let part_uri = pl
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix("#EXT-X-PART:"))
        .find_map(|l| l.split("URI=\"").nth(1)?.split('"').next())
        .expect("a part");
    let segment = pl
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
        .expect("a segment");
    for uri in [map, part_uri, segment] {
        let (status, _, body) = get(&mut c, &format!("{base}/{uri}")).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    }

    // Every refusal: 403, no-store, a text that says why.
    let expired = tokens.mint("cam", now() - 10);
    let other_stream = tokens.mint("other", now() + 3600);
    let other_secret =
        PlaybackTokens::new(b"not the server's secret at all!!").mint("cam", now() + 3600);
    let forged = good.replacen(&good[..10], &(now() + 999_999).to_string(), 1);
    let cases = [
        ("/live/cam/index.m3u8".to_string(), "needs a playback token"),
        (format!("/live/cam/{media}"), "needs a playback token"),
        (format!("/live/cam/{part_uri}"), "needs a playback token"),
        (format!("/live/t/{expired}/cam/index.m3u8"), "expired"),
        (format!("/live/t/{expired}/cam/{part_uri}"), "expired"),
        (
            format!("/live/t/{other_stream}/cam/index.m3u8"),
            "not valid",
        ),
        (
            format!("/live/t/{other_secret}/cam/index.m3u8"),
            "not valid",
        ),
        (format!("/live/t/{forged}/cam/index.m3u8"), "not valid"),
        ("/live/t/12345/cam/index.m3u8".to_string(), "malformed"),
        ("/live/t/x-y/cam/video/1.m4s".to_string(), "malformed"),
    ];
    for (path, why) in cases {
        let (status, headers, body) = get(&mut c, &path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert!(body.contains(why), "{path}: {body}");
        assert_eq!(headers["cache-control"], "no-store", "{path}");
    }
    // Paths that are not a stream's stay public.
    let (status, _, _) = get(&mut c, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn public_streams_ignore_token_paths() {
    let r = start(OriginConfig::default(), ServerConfig::default()).await;
    let mut c = connect(r.addr).await;
    for path in [
        "/live/cam/index.m3u8",
        "/live/t/anything-at-all/cam/index.m3u8",
    ] {
        let (status, _, body) = get(&mut c, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
}

/// True when the server closed `s` without answering a request.
async fn closed_unanswered(mut s: TcpStream) -> bool {
    let _ = s
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn connections_beyond_the_per_ip_limit_are_closed() {
    let r = start(
        OriginConfig::default(),
        ServerConfig {
            max_connections_per_ip: 2,
            ..ServerConfig::default()
        },
    )
    .await;
    let mut a = connect(r.addr).await;
    let mut b = connect(r.addr).await;
    assert_eq!(get(&mut a, "/healthz").await.0, StatusCode::OK);
    assert_eq!(get(&mut b, "/healthz").await.0, StatusCode::OK);
    let third = TcpStream::connect(r.addr).await.unwrap();
    assert!(closed_unanswered(third).await, "the third connection");
    // A connection that closes frees its place.
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = TcpStream::connect(r.addr).await.unwrap();
        let io = TokioIo::new(s);
        if let Ok((mut send, conn)) = hyper::client::conn::http1::handshake(io).await {
            tokio::spawn(conn);
            let req = Request::builder()
                .uri("/healthz")
                .header("host", "x")
                .body(Empty::<Bytes>::new())
                .unwrap();
            if let Ok(resp) = send.send_request(req).await {
                assert_eq!(resp.status(), StatusCode::OK);
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the freed place was never given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The other connection was never affected.
    assert_eq!(get(&mut b, "/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn held_requests_beyond_the_per_ip_limit_get_429() {
    let mut r = start(
        OriginConfig {
            max_held_per_ip: 2,
            ..OriginConfig::default()
        },
        ServerConfig::default(),
    )
    .await;
    let (msn, part) = r.last_part();
    let next = format!("/live/cam/media.m3u8?_HLS_msn={msn}&_HLS_part={}", part + 1);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = connect(r.addr).await;
        let path = next.clone();
        held.push(tokio::spawn(async move { get(&mut c, &path).await.0 }));
    }
    r.wait_held(2).await;
    // A third, a blocking playlist or a hinted part: 429 at once, with Retry-After.
    let mut c = connect(r.addr).await;
    let (status, headers, body) = get(&mut c, &next).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(headers.contains_key("retry-after"));
    assert!(
        body.contains("too many held requests from this address"),
        "{body}"
    );
    let hint = format!("/live/cam/media/{msn}.{}.m4s", part + 1);
    let (status, _, body) = get(&mut c, &hint).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // Requests that are not held are not limited.
    let (status, _, _) = get(&mut c, "/live/cam/media.m3u8").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(r.held(), 2, "refused requests are not counted");
    r.feed_part().await;
    for h in held {
        assert_eq!(h.await.unwrap(), StatusCode::OK);
    }
    // Released: this IP may hold again.
    let (msn, part) = r.last_part();
    let next = format!("/live/cam/media.m3u8?_HLS_msn={msn}&_HLS_part={}", part + 1);
    let again = tokio::spawn(async move { get(&mut c, &next).await.0 });
    r.wait_held(1).await;
    r.feed_part().await;
    assert_eq!(again.await.unwrap(), StatusCode::OK);
}

async fn get_from(
    send: &mut Sender,
    path: &str,
    forwarded_for: &str,
) -> (StatusCode, http::HeaderMap, String) {
    let req = Request::builder()
        .uri(path)
        .header("host", "localhost")
        .header("x-forwarded-for", forwarded_for)
        .body(Empty::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let (head, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        head.status,
        head.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn clients_behind_a_trusted_proxy_are_limited_by_their_forwarded_address() {
    // The test connects from 127.0.0.1, here a trusted proxy: its own connections are not
    // counted per IP (two open with a limit of one), and held requests count against the
    // address it forwards for.
    let mut r = start_behind_proxy("127.0.0.0/8", 1).await;
    let (msn, part) = r.last_part();
    let next = format!("/live/cam/media.m3u8?_HLS_msn={msn}&_HLS_part={}", part + 1);
    let mut held = Vec::new();
    for client in ["203.0.113.1", "1.1.1.1, 203.0.113.2"] {
        let mut c = connect(r.addr).await;
        let path = next.clone();
        held.push(tokio::spawn(async move {
            get_from(&mut c, &path, client).await.0
        }));
    }
    r.wait_held(2).await;
    // The same client again (it wrote a different address first itself: not believed).
    let mut c = connect(r.addr).await;
    let (status, _, body) = get_from(&mut c, &next, "198.51.100.9, 203.0.113.1").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    r.feed_part().await;
    for h in held {
        assert_eq!(h.await.unwrap(), StatusCode::OK);
    }
}

#[tokio::test]
async fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
    // Only 10.0.0.0/8 is trusted: a client on 127.0.0.1 naming other addresses is still
    // 127.0.0.1, held requests and connections alike.
    let mut r = start_behind_proxy("10.0.0.0/8", 2).await;
    let (msn, part) = r.last_part();
    let next = format!("/live/cam/media.m3u8?_HLS_msn={msn}&_HLS_part={}", part + 1);
    let mut a = connect(r.addr).await;
    let path = next.clone();
    let first = tokio::spawn(async move { get_from(&mut a, &path, "203.0.113.1").await.0 });
    r.wait_held(1).await;
    let mut b = connect(r.addr).await;
    let (status, _, body) = get_from(&mut b, &next, "203.0.113.2").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let third = TcpStream::connect(r.addr).await.unwrap();
    assert!(
        closed_unanswered(third).await,
        "a third connection from the same peer"
    );
    r.feed_part().await;
    assert_eq!(first.await.unwrap(), StatusCode::OK);
}

#[tokio::test]
async fn an_http2_connection_with_no_stream_is_closed_when_idle() {
    // An HTTP/2 client that keeps pinging (keep-alive while idle) but opens no stream: closed
    // once idle for the header timeout, while a held request on another connection outlives
    // several such periods.
    let mut r = start(
        OriginConfig::default(),
        ServerConfig {
            header_read_timeout: Duration::from_secs(1),
            ..ServerConfig::default()
        },
    )
    .await;
    let h2 = |addr| async move {
        let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
        let (send, conn) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .timer(hyper_util::rt::TokioTimer::new())
                .keep_alive_interval(Duration::from_millis(200))
                .keep_alive_while_idle(true)
                .handshake::<_, Empty<Bytes>>(io)
                .await
                .unwrap();
        (send, tokio::spawn(conn))
    };
    let req = |path: &str| {
        Request::builder()
            .uri(format!("http://localhost{path}"))
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    // A held request, on HTTP/2.
    let (mut holder, holder_conn) = h2(r.addr).await;
    let (msn, part) = r.last_part();
    let next = format!("/live/cam/media.m3u8?_HLS_msn={msn}&_HLS_part={}", part + 1);
    let held = tokio::spawn({
        let next = next.clone();
        async move { holder.send_request(req(&next)).await.map(|r| r.status()) }
    });
    r.wait_held(1).await;
    // The idle one: one request, then only pings.
    let (mut idle, idle_conn) = h2(r.addr).await;
    let resp = idle.send_request(req("/healthz")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    drop(resp);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !idle_conn.is_finished() {
        assert!(
            Instant::now() < deadline,
            "an idle HTTP/2 connection was never closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Twice the check period has passed since: the held request is still held, then answered.
    assert_eq!(r.held(), 1);
    assert!(!holder_conn.is_finished());
    r.feed_part().await;
    assert_eq!(held.await.unwrap().unwrap(), StatusCode::OK);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_reset_at_the_send_timeout() {
    // Pipelined requests for a whole segment, never read: once the socket buffers are full,
    // no write makes progress and the connection is reset after the send timeout (1 s).
    let r = start(
        OriginConfig::default(),
        ServerConfig {
            send_timeout: Duration::from_secs(1),
            ..ServerConfig::default()
        },
    )
    .await;
    let mut c = connect(r.addr).await;
    let (status, _, pl) = get(&mut c, "/live/cam/media.m3u8").await;
    assert_eq!(status, StatusCode::OK);
    let segment = pl
        .lines()
        .find(|l| !l.starts_with('#') && l.ends_with(".m4s"))
        .expect("a segment")
        .to_string();
    drop(c);
    let mut s = TcpStream::connect(r.addr).await.unwrap();
    let one = format!("GET /live/cam/{segment} HTTP/1.1\r\nHost: x\r\n\r\n");
    // Far more than socket buffers hold (the writes stop being taken once they are full).
    let requests = one.repeat(2000);
    let _ = tokio::time::timeout(Duration::from_secs(5), s.write_all(requests.as_bytes())).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Now read: what the buffers held, then the reset (or EOF), well short of what was asked.
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => got += n,
            Err(_) => break false,
        }
    };
    // Not reset, the server would send all 2,000 segments and keep the connection open.
    assert!(ended, "the connection is still open after {got} bytes");
}

fn h2_frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

#[tokio::test]
async fn an_http2_client_that_never_opens_its_window_is_closed_at_the_send_timeout() {
    // HTTP/2 flow control instead of a full socket: the client announces a window of 0 and
    // asks for a segment. Nothing blocks on the socket; the response just never moves. The
    // connection is closed once that has lasted the send timeout (1 s), while a held request
    // on another HTTP/2 connection, which has nothing to send, is left alone.
    let mut r = start(
        OriginConfig::default(),
        ServerConfig {
            send_timeout: Duration::from_secs(1),
            ..ServerConfig::default()
        },
    )
    .await;
    let mut c = connect(r.addr).await;
    let (_, _, pl) = get(&mut c, "/live/cam/media.m3u8").await;
    let segment = pl
        .lines()
        .find(|l| !l.starts_with('#') && l.ends_with(".m4s"))
        .expect("a segment")
        .to_string();
    // The held request, on HTTP/2.
    let io = TokioIo::new(TcpStream::connect(r.addr).await.unwrap());
    let (mut holder, holder_conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .unwrap();
    let holder_conn = tokio::spawn(holder_conn);
    let (msn, part) = r.last_part();
    let next = format!(
        "http://localhost/live/cam/media.m3u8?_HLS_msn={msn}&_HLS_part={}",
        part + 1
    );
    let held = tokio::spawn(async move {
        let req = Request::builder()
            .uri(next)
            .body(Empty::<Bytes>::new())
            .unwrap();
        holder.send_request(req).await.map(|r| r.status())
    });
    r.wait_held(1).await;
    // The stalled one, by hand: preface, SETTINGS_INITIAL_WINDOW_SIZE = 0, GET the segment.
    let mut s = TcpStream::connect(r.addr).await.unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    h2_frame(&mut out, 4, 0, 0, &[0, 4, 0, 0, 0, 0]);
    let path = format!("/live/cam/{segment}");
    assert!(path.len() < 127);
    // :method GET, :scheme http, :authority x, :path (literals without indexing).
    let mut block = vec![0x82, 0x86, 0x01, 1, b'x', 0x04, path.len() as u8];
    block.extend_from_slice(path.as_bytes());
    h2_frame(&mut out, 1, 0x5, 1, &block);
    s.write_all(&out).await.unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = 0usize;
    loop {
        assert!(
            Instant::now() < deadline,
            "a response that never moved kept its connection ({got} bytes read)"
        );
        match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got += n,
            Err(_) => {}
        }
    }
    assert_eq!(r.held(), 1, "the held request is still held");
    assert!(!holder_conn.is_finished());
    r.feed_part().await;
    assert_eq!(held.await.unwrap().unwrap(), StatusCode::OK);
}
