//! RTMP ingest: a listener and one task per connection, each a thin shell around the
//! sans-IO [`publish::Publish`] machine: it reads the socket, feeds the machine, writes what
//! the machine answers and talks to the registry (claim, start, frames, discontinuity). A bad
//! connection is logged and closed without touching any other.

mod media;
pub mod publish;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::streams::{Publication, Streams};
use publish::{Output, Publish};

/// Accepts RTMP publishers on `listener` until `stop` turns true (the server is shutting down);
/// then stops accepting, ends every connection gently ([`close_gently`]) and returns once all
/// are closed.
pub async fn listen(listener: TcpListener, streams: Arc<Streams>, stop: watch::Receiver<bool>) {
    let mut conns = tokio::task::JoinSet::new();
    let mut stopping = stop.clone();
    loop {
        tokio::select! {
            _ = stopped(&mut stopping) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((sock, peer)) => {
                    let streams = streams.clone();
                    let stop = stop.clone();
                    conns.spawn(async move {
                        match connection(sock, peer, streams, stop).await {
                            Ok(()) => tracing::debug!(%peer, "RTMP connection closed"),
                            Err(e) => tracing::warn!(%peer, "RTMP connection closed: {e:#}"),
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("RTMP accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

/// Resolves once `stop` is true (never if its sender is gone without saying so).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// How long a connection closed at shutdown reads what its publisher still sends.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Ends a publisher's connection at shutdown without a reset: a FIN first (an encoder that reads
/// while it sends, as ffmpeg and OBS do, sees the end of the stream and stops), then what it
/// still sends is read and dropped until it closes its side or [`CLOSE_TIMEOUT`]. Closing with
/// unread data made the kernel reset the connection, which encoders report as a network error
/// ("Connection reset by peer", "Broken pipe").
async fn close_gently(sock: &mut TcpStream, buf: &mut [u8]) {
    let _ = sock.shutdown().await;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        while let Ok(n) = sock.read(buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// The handshake, `connect` and `publish` must all arrive within this of the TCP accept: a
/// connection that handshakes and then says nothing (or never asks to publish) would otherwise
/// hold a task and a buffer for the whole idle timeout. Encoders send all three in a few round
/// trips.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// A publisher that sends nothing for this long is gone.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Read buffer until the connection publishes (the handshake's packets are 1.5 KiB), then the
/// publisher's: a crowd of connections that never publish costs little memory.
const SMALL_BUFFER: usize = 4 * 1024;
const PUBLISHER_BUFFER: usize = 64 * 1024;

async fn connection(
    mut sock: TcpStream,
    peer: SocketAddr,
    streams: Arc<Streams>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let _ = sock.set_nodelay(true);
    let mut buf = vec![0u8; SMALL_BUFFER];
    let mut conn = Conn {
        rtmp: Publish::new(streams.keys()),
        streams,
        peer,
        publication: None,
    };
    let started = tokio::time::Instant::now();
    let mut published = false;
    let result = loop {
        // Once a publish was accepted the connection is a publisher's for good (an unpublish
        // and a new publish on the same connection stay under the idle timeout).
        published |= conn.publication.is_some();
        if published && buf.len() < PUBLISHER_BUFFER {
            buf.resize(PUBLISHER_BUFFER, 0);
        }
        let (deadline, what) = if published {
            (
                tokio::time::Instant::now() + IDLE_TIMEOUT,
                "no data from the publisher for 30 s",
            )
        } else if conn.rtmp.handshake_done() {
            (
                started + PUBLISH_TIMEOUT,
                "no publish request within 10 s of connecting",
            )
        } else {
            (started + PUBLISH_TIMEOUT, "RTMP handshake timed out")
        };
        let n = tokio::select! {
            read = tokio::time::timeout_at(deadline, sock.read(&mut buf)) => read.context(what)??,
            _ = stopped(&mut stop) => {
                // The server is shutting down: the stream goes into its reconnect grace (a
                // restart continues it), and the publisher is told by the connection's end.
                if let Some(p) = conn.publication.as_ref() {
                    tracing::info!(peer = %conn.peer, stream = %p.name(), "server shutting down: closing the publisher's connection");
                }
                conn.finish(false);
                close_gently(&mut sock, &mut buf).await;
                return Ok(());
            }
        };
        if n == 0 {
            if !conn.rtmp.handshake_done() {
                break Err(anyhow::anyhow!("closed during the handshake"));
            }
            break Ok(());
        }
        let r = conn.rtmp.handle_input(&buf[..n]);
        // What the machine queued before an error (a refusal, frames) still goes out.
        conn.drain(&mut sock).await?;
        if let Err(e) = r {
            if let publish::RtmpError::Unsupported(_) = e {
                let name = conn.publication.as_ref().map(|p| p.name().to_string());
                tracing::error!(peer = %conn.peer, stream = name.unwrap_or_default(), "{e}");
            }
            break Err(e.into());
        }
    };
    conn.finish(false);
    result
}

struct Conn {
    rtmp: Publish,
    streams: Arc<Streams>,
    peer: SocketAddr,
    publication: Option<Publication>,
}

impl Conn {
    /// Acts on everything the machine has to say.
    async fn drain(&mut self, sock: &mut TcpStream) -> anyhow::Result<()> {
        while let Some(out) = self.rtmp.poll_output() {
            match out {
                Output::Transmit(bytes) => sock.write_all(&bytes).await?,
                Output::PublishRequested { name, key, .. } => {
                    // The auth webhook, when set, admits (and may rename) the publish first.
                    let asked = crate::admission::PublishRequest {
                        protocol: "rtmp",
                        stream: name.clone(),
                        key: key.clone(),
                        remote_addr: Some(self.peer),
                        forwarded_for: None,
                        user_agent: None,
                    };
                    let name = match crate::admission::admit(&asked).await {
                        Ok(n) => n,
                        Err(why) => {
                            tracing::warn!(peer = %self.peer, stream = %name, "publish refused: {why}");
                            self.rtmp.refuse_publish(&why)?;
                            continue;
                        }
                    };
                    match self.streams.claim(&name, key.as_deref()) {
                        Ok(p) => {
                            crate::admission::claimed(&self.streams, &name, &asked);
                            tracing::info!(peer = %self.peer, stream = %name, "publish accepted; waiting for codec headers");
                            self.publication = Some(p);
                            self.rtmp.accept_publish()?;
                        }
                        Err(e) => {
                            tracing::warn!(peer = %self.peer, stream = %name, "publish refused: {e}");
                            crate::events::refused("rtmp", &name, Some(self.peer), &e.to_string());
                            self.rtmp.refuse_publish(&e.to_string())?;
                        }
                    }
                }
                Output::Refused(why) => {
                    tracing::warn!(peer = %self.peer, "publish refused: {why}");
                    crate::events::refused("rtmp", "", Some(self.peer), &why);
                }
                Output::Start { tracks, encoder } => {
                    let Some(p) = self.publication.as_mut() else {
                        continue;
                    };
                    let codecs: Vec<String> = tracks.iter().map(|t| t.codec.describe()).collect();
                    let resumed = p.start(tracks).await?;
                    let name = p.name().to_string();
                    tracing::info!(
                        peer = %self.peer,
                        stream = %name,
                        codecs = %codecs.join(", "),
                        encoder = %encoder.unwrap_or_default(),
                        resumed,
                        "publishing: {}",
                        p.playlist_url()
                    );
                }
                Output::Reconfigure(tracks) => {
                    if let Some(p) = self.publication.as_ref().filter(|p| p.started()) {
                        p.discontinuity(tracks).await?;
                    }
                }
                Output::Frame(f) => {
                    if let Some(p) = self.publication.as_ref() {
                        p.frame(f).await?;
                    }
                }
                Output::KeyframeInterval { secs } => {
                    let name = self.publication.as_ref().map(|p| p.name().to_string());
                    tracing::info!(peer = %self.peer, stream = name.unwrap_or_default(), keyframe_interval_secs = secs, "keyframe interval seen");
                }
                Output::Warning(w) => {
                    tracing::warn!(peer = %self.peer, "{w}");
                }
                Output::Unpublished => self.finish(true),
            }
        }
        Ok(())
    }

    fn finish(&mut self, explicit: bool) {
        if let Some(mut p) = self.publication.take() {
            tracing::info!(peer = %self.peer, stream = %p.name(), explicit, "unpublish");
            // An explicit unpublish ends the stream; a dropped connection starts the reconnect
            // grace period.
            if explicit {
                p.stopped_by_publisher();
            }
            drop(p);
        }
    }
}
