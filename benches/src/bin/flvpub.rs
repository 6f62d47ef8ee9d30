//! A light RTMP publisher for the ingest benchmark: replays a pre-encoded FLV file in real time
//! (looped, timestamps continuing) as M streams from one process, so the publishers cost
//! little next to the server under test. Uses `rml_rtmp`'s client session.
//!
//!     flvpub --rtmp 127.0.0.1:1935 --file bench.flv --streams 10 --secs 30 [--prefix s]
//!            [--admit-report]
//!
//! With `--admit-report` it prints one JSON line at the end: how long each publish request
//! took to be accepted (RTMP `publish` sent to `NetStream.Publish.Start` received), p50, p99
//! and max over the streams, for the publish-admission benchmark.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// One FLV tag: 8 = audio, 9 = video.
struct Tag {
    kind: u8,
    ms: u32,
    data: Bytes,
}

fn parse_flv(b: &[u8]) -> anyhow::Result<(Vec<Tag>, u32)> {
    if b.len() < 13 || &b[..3] != b"FLV" {
        bail!("not an FLV file");
    }
    let mut i = u32::from_be_bytes([b[5], b[6], b[7], b[8]]) as usize + 4;
    let mut tags = Vec::new();
    while i + 11 <= b.len() {
        let kind = b[i];
        let size = u32::from_be_bytes([0, b[i + 1], b[i + 2], b[i + 3]]) as usize;
        let ms = u32::from_be_bytes([b[i + 7], b[i + 4], b[i + 5], b[i + 6]]);
        let body = b.get(i + 11..i + 11 + size).context("truncated FLV tag")?;
        if kind == 8 || kind == 9 {
            tags.push(Tag {
                kind,
                ms,
                data: Bytes::copy_from_slice(body),
            });
        }
        i += 11 + size + 4;
    }
    let duration = tags.iter().map(|t| t.ms).max().unwrap_or(0) + 34;
    Ok((tags, duration))
}

async fn send_all(
    sock: &mut TcpStream,
    results: Vec<ClientSessionResult>,
) -> anyhow::Result<Vec<ClientSessionEvent>> {
    let mut events = Vec::new();
    for r in results {
        match r {
            ClientSessionResult::OutboundResponse(p) => sock.write_all(&p.bytes).await?,
            ClientSessionResult::RaisedEvent(e) => events.push(e),
            ClientSessionResult::UnhandleableMessageReceived(_) => {}
        }
    }
    Ok(events)
}

async fn wait_for(
    sock: &mut TcpStream,
    session: &mut ClientSession,
    want: impl Fn(&ClientSessionEvent) -> bool,
) -> anyhow::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut buf)).await??;
        if n == 0 {
            bail!("server closed the connection");
        }
        let results = session
            .handle_input(&buf[..n])
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        for e in send_all(sock, results).await? {
            if let ClientSessionEvent::ConnectionRequestRejected { description } = &e {
                bail!("rejected: {description}");
            }
            if want(&e) {
                return Ok(());
            }
        }
    }
}

async fn publish(
    addr: String,
    name: String,
    tags: Arc<(Vec<Tag>, u32)>,
    until: Instant,
) -> anyhow::Result<Duration> {
    let mut sock = TcpStream::connect(&addr).await?;
    sock.set_nodelay(true)?;
    let mut hs = Handshake::new(PeerType::Client);
    sock.write_all(
        &hs.generate_outbound_p0_and_p1()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?,
    )
    .await?;
    let mut buf = vec![0u8; 8192];
    let rest = loop {
        let n = sock.read(&mut buf).await?;
        if n == 0 {
            bail!("closed during the handshake");
        }
        match hs
            .process_bytes(&buf[..n])
            .map_err(|e| anyhow::anyhow!("{e:?}"))?
        {
            HandshakeProcessResult::InProgress { response_bytes } => {
                sock.write_all(&response_bytes).await?
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                sock.write_all(&response_bytes).await?;
                break remaining_bytes;
            }
        }
    };
    let (mut session, initial) =
        ClientSession::new(ClientSessionConfig::new()).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    send_all(&mut sock, initial).await?;
    if !rest.is_empty() {
        let r = session
            .handle_input(&rest)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        send_all(&mut sock, r).await?;
    }
    let r = session
        .request_connection("live".into())
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    send_all(&mut sock, vec![r]).await?;
    wait_for(&mut sock, &mut session, |e| {
        matches!(e, ClientSessionEvent::ConnectionRequestAccepted)
    })
    .await?;
    let r = session
        .request_publishing(name, PublishRequestType::Live)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let asked = Instant::now();
    send_all(&mut sock, vec![r]).await?;
    wait_for(&mut sock, &mut session, |e| {
        matches!(e, ClientSessionEvent::PublishRequestAccepted)
    })
    .await?;
    let admitted = asked.elapsed();
    let (tags, duration) = (&tags.0, tags.1);
    let start = Instant::now();
    let mut lap: u32 = 0;
    let mut rbuf = vec![0u8; 16 * 1024];
    loop {
        for t in tags {
            let ms = t.ms + lap * duration;
            let due = start + Duration::from_millis(u64::from(ms));
            if due > until {
                return Ok(admitted);
            }
            // Reads what the server sends while waiting, as encoders do (ffmpeg's RTMP writer
            // polls the socket on every write): a server that closes the connection is seen
            // as its end, not as a reset on the next write.
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => break,
                    n = sock.read(&mut rbuf) => {
                        let n = n?;
                        if n == 0 {
                            bail!("the server ended the connection");
                        }
                        let results = session
                            .handle_input(&rbuf[..n])
                            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                        send_all(&mut sock, results).await?;
                    }
                }
            }
            let ts = RtmpTimestamp::new(ms);
            let r = if t.kind == 9 {
                session.publish_video_data(t.data.clone(), ts, false)
            } else {
                session.publish_audio_data(t.data.clone(), ts, false)
            }
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            send_all(&mut sock, vec![r]).await?;
        }
        lap += 1;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |n: &str| llhls_benches::arg(&args, n);
    let rtmp = arg("--rtmp").context("--rtmp HOST:PORT")?;
    let file = arg("--file").context("--file F.flv")?;
    let streams: usize = arg("--streams").unwrap_or("1".into()).parse()?;
    let secs: u64 = arg("--secs").unwrap_or("30".into()).parse()?;
    let prefix = arg("--prefix").unwrap_or_else(|| "s".into());
    // Four hours, as `fanout`'s long runs: the 60-minute soak publishes for 61 minutes.
    if streams > 200 || secs > 4 * 3600 {
        bail!("bounded: at most 200 streams and {} s", 4 * 3600);
    }
    let tags = Arc::new(parse_flv(
        &std::fs::read(&file).with_context(|| file.clone())?,
    )?);
    let until = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for i in 0..streams {
        tasks.push(tokio::spawn(publish(
            rtmp.clone(),
            format!("{prefix}{i}"),
            tags.clone(),
            until,
        )));
    }
    let mut failed = 0;
    let mut admit_ms = Vec::new();
    for t in tasks {
        match t.await? {
            Ok(d) => admit_ms.push(d.as_secs_f64() * 1000.0),
            Err(e) => {
                eprintln!("publisher failed: {e:#}");
                failed += 1;
            }
        }
    }
    if args.iter().any(|a| a == "--admit-report") {
        admit_ms.sort_by(f64::total_cmp);
        let pct = |q: f64| {
            admit_ms
                .get(((admit_ms.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        println!(
            "{{\"admitted\":{},\"failed\":{failed},\"admit_p50_ms\":{:.2},\"admit_p99_ms\":{:.2},\"admit_max_ms\":{:.2}}}",
            admit_ms.len(),
            pct(0.5),
            pct(0.99),
            pct(1.0)
        );
    }
    if failed > 0 {
        bail!("{failed} of {streams} publishers failed");
    }
    Ok(())
}
