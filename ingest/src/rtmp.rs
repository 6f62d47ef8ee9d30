//! RTMP ingest: handshake, chunk stream and AMF0 commands through `rml_rtmp`, FLV tag bodies
//! through [`crate::flv`], and frames into the stream's packager. Each connection is its own
//! task; a bad connection is logged and closed without touching any other.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use llhls_packager::{CodecConfig, Frame, MediaTime, TrackConfig, TrackKind};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult, StreamMetadata,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::flv::{self, FlvEvent, TimestampUnwrapper};
use crate::streams::{Publication, Streams};
use crate::tracks::{self, AUDIO, VIDEO};

/// Frames buffered while waiting for both sequence headers.
const MAX_STARTUP_FRAMES: usize = 600;

/// Accepts RTMP publishers on `listener` forever.
pub async fn listen(listener: TcpListener, streams: Arc<Streams>) {
    loop {
        match listener.accept().await {
            Ok((sock, peer)) => {
                let streams = streams.clone();
                tokio::spawn(async move {
                    match connection(sock, peer, streams).await {
                        Ok(()) => tracing::debug!(%peer, "RTMP connection closed"),
                        Err(e) => tracing::warn!(%peer, "RTMP connection closed: {e:#}"),
                    }
                });
            }
            Err(e) => {
                tracing::warn!("RTMP accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Runs a library call that should not panic but parses hostile input: a panic becomes an
/// error for this connection only.
fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> anyhow::Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|_| anyhow::anyhow!("{what}: malformed input made the RTMP parser fail"))
}

async fn connection(
    mut sock: TcpStream,
    peer: SocketAddr,
    streams: Arc<Streams>,
) -> anyhow::Result<()> {
    let _ = sock.set_nodelay(true);
    let mut buf = vec![0u8; 64 * 1024];
    // Handshake, bounded in time so a half-open handshake cannot hold the task.
    let mut hs = Handshake::new(PeerType::Server);
    let remaining = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let n = sock.read(&mut buf).await?;
            if n == 0 {
                bail!("closed during the handshake");
            }
            match guarded("handshake", || hs.process_bytes(&buf[..n]))? {
                Ok(HandshakeProcessResult::InProgress { response_bytes }) => {
                    sock.write_all(&response_bytes).await?;
                }
                Ok(HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                }) => {
                    sock.write_all(&response_bytes).await?;
                    return Ok(remaining_bytes);
                }
                Err(e) => bail!("RTMP handshake failed (not an RTMP client?): {e:?}"),
            }
        }
    })
    .await
    .context("RTMP handshake timed out")??;

    let (mut session, initial) = ServerSession::new(ServerSessionConfig::new())
        .map_err(|e| anyhow::anyhow!("RTMP session: {e:?}"))?;
    let mut conn = Conn {
        streams,
        peer,
        publication: None,
        state: Ingest::default(),
        metadata: None,
    };
    conn.handle_results(&mut sock, &mut session, initial)
        .await?;
    if !remaining.is_empty() {
        let results = guarded("chunk stream", || session.handle_input(&remaining))?
            .map_err(|e| anyhow::anyhow!("RTMP chunk stream: {e:?}"))?;
        conn.handle_results(&mut sock, &mut session, results)
            .await?;
    }
    loop {
        // A publisher that sends nothing for 30 s is gone.
        let n = tokio::time::timeout(Duration::from_secs(30), sock.read(&mut buf))
            .await
            .context("no data from the publisher for 30 s")??;
        if n == 0 {
            break;
        }
        let results = guarded("chunk stream", || session.handle_input(&buf[..n]))?
            .map_err(|e| anyhow::anyhow!("RTMP chunk stream: {e:?}"))?;
        if conn
            .handle_results(&mut sock, &mut session, results)
            .await?
        {
            break;
        }
    }
    conn.finish(false).await;
    Ok(())
}

#[derive(Default)]
struct Ingest {
    video: Option<CodecConfig>,
    audio: Option<CodecConfig>,
    video_ts: TimestampUnwrapper,
    audio_ts: TimestampUnwrapper,
    pending: Vec<Frame>,
    first_key_ms: Option<i64>,
    keyframes: Vec<i64>,
    logged: bool,
    errors: u64,
}

struct Conn {
    streams: Arc<Streams>,
    peer: SocketAddr,
    publication: Option<Publication>,
    state: Ingest,
    metadata: Option<StreamMetadata>,
}

impl Conn {
    /// Returns true when the connection should close.
    async fn handle_results(
        &mut self,
        sock: &mut TcpStream,
        session: &mut ServerSession,
        results: Vec<ServerSessionResult>,
    ) -> anyhow::Result<bool> {
        let mut queue = std::collections::VecDeque::from(results);
        while let Some(r) = queue.pop_front() {
            match r {
                ServerSessionResult::OutboundResponse(p) => sock.write_all(&p.bytes).await?,
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
                ServerSessionResult::RaisedEvent(ev) => {
                    if let Some(more) = self.event(session, ev).await? {
                        queue.extend(more);
                    }
                }
            }
        }
        Ok(false)
    }

    async fn event(
        &mut self,
        session: &mut ServerSession,
        ev: ServerSessionEvent,
    ) -> anyhow::Result<Option<Vec<ServerSessionResult>>> {
        match ev {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                if app_name.trim_end_matches('/') != "live" {
                    tracing::warn!(peer = %self.peer, app = %app_name, "refused: publish to rtmp://HOST:1935/live with the stream name as key");
                    let r = session
                        .reject_request(
                            request_id,
                            "NetConnection.Connect.Rejected",
                            "use the application `live`",
                        )
                        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                    return Ok(Some(r));
                }
                Ok(Some(
                    session
                        .accept_request(request_id)
                        .map_err(|e| anyhow::anyhow!("{e:?}"))?,
                ))
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                stream_key,
                ..
            } => {
                let (name, key) = split_key(&stream_key);
                match self.streams.claim(name, key) {
                    Ok(p) => {
                        tracing::info!(peer = %self.peer, stream = %name, "publish accepted; waiting for codec headers");
                        self.publication = Some(p);
                        Ok(Some(
                            session
                                .accept_request(request_id)
                                .map_err(|e| anyhow::anyhow!("{e:?}"))?,
                        ))
                    }
                    Err(e) => {
                        tracing::warn!(peer = %self.peer, stream = %name, "publish refused: {e}");
                        let r = session
                            .reject_request(request_id, "NetStream.Publish.BadName", &e.to_string())
                            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                        Ok(Some(r))
                    }
                }
            }
            ServerSessionEvent::PublishStreamFinished { .. } => {
                self.finish(true).await;
                Ok(None)
            }
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                self.metadata = Some(metadata);
                Ok(None)
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => {
                let ev = flv::parse_video(&data);
                let ts = self.state.video_ts.unwrap(timestamp.value);
                self.media(ev, ts, true).await?;
                Ok(None)
            }
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => {
                let ev = flv::parse_audio(&data);
                let ts = self.state.audio_ts.unwrap(timestamp.value);
                self.media(ev, ts, false).await?;
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    async fn media(
        &mut self,
        ev: Result<FlvEvent, flv::FlvError>,
        ts: i64,
        video: bool,
    ) -> anyhow::Result<()> {
        if self.publication.is_none() {
            return Ok(());
        }
        let ev = match ev {
            Ok(ev) => ev,
            Err(e @ flv::FlvError::Unsupported { .. }) => {
                let name = self
                    .publication
                    .as_ref()
                    .map(|p| p.name().to_string())
                    .unwrap_or_default();
                tracing::error!(peer = %self.peer, stream = %name, "{e}");
                bail!("{e}");
            }
            Err(e) => {
                self.state.errors += 1;
                if self.state.errors <= 5 || self.state.errors.is_multiple_of(100) {
                    tracing::warn!(peer = %self.peer, errors = self.state.errors, "dropped a malformed {} message: {e}", if video { "video" } else { "audio" });
                }
                return Ok(());
            }
        };
        match ev {
            FlvEvent::Ignore => {}
            FlvEvent::Config(c) => {
                let slot = if c.kind() == TrackKind::Video {
                    &mut self.state.video
                } else {
                    &mut self.state.audio
                };
                let changed = slot.as_ref().is_some_and(|old| *old != c);
                *slot = Some(c);
                if changed && self.publication.as_ref().is_some_and(|p| p.started()) {
                    tracing::warn!(peer = %self.peer, "codec configuration changed mid-stream; the next segment starts a new init section");
                    // Handled as a discontinuity with the new configuration.
                    let tracks = self.tracks();
                    if let Some(p) = self.publication.as_mut() {
                        p.discontinuity(tracks).await?;
                    }
                }
            }
            FlvEvent::Video {
                keyframe,
                cts_ms,
                data,
            } => {
                if keyframe {
                    self.state.first_key_ms.get_or_insert(ts);
                    if self.state.keyframes.len() < 3 {
                        self.state.keyframes.push(ts);
                    }
                }
                let f = Frame {
                    track: VIDEO,
                    dts: MediaTime::from_millis(ts),
                    pts: MediaTime::from_millis(ts + i64::from(cts_ms)),
                    keyframe,
                    data,
                };
                self.frame(f).await?;
            }
            FlvEvent::Audio { data } => {
                let f = Frame {
                    track: AUDIO,
                    dts: MediaTime::from_millis(ts),
                    pts: MediaTime::from_millis(ts),
                    keyframe: true,
                    data,
                };
                self.frame(f).await?;
            }
        }
        Ok(())
    }

    fn tracks(&self) -> Vec<TrackConfig> {
        tracks::tracks(self.state.video.as_ref(), self.state.audio.as_ref())
    }

    /// Do we know every track the publisher will send?
    fn ready(&self) -> bool {
        let md = self.metadata.as_ref();
        let want_video = md
            .map(|m| m.video_codec_id.is_some() || m.video_width.is_some())
            .unwrap_or(true);
        let want_audio = md
            .map(|m| m.audio_codec_id.is_some() || m.audio_sample_rate.is_some())
            .unwrap_or(true);
        let have_v = self.state.video.is_some();
        let have_a = self.state.audio.is_some();
        (have_v || !want_video) && (have_a || !want_audio) && (have_v || have_a)
    }

    async fn frame(&mut self, f: Frame) -> anyhow::Result<()> {
        let Some(started) = self.publication.as_ref().map(|p| p.started()) else {
            return Ok(());
        };
        if !started {
            let has_config = match f.track {
                VIDEO => self.state.video.is_some(),
                _ => self.state.audio.is_some(),
            };
            if !has_config {
                // Media before its sequence header cannot be packaged.
                self.state.errors += 1;
                if self.state.errors == 1 {
                    tracing::warn!(peer = %self.peer, "media before its sequence header: dropped");
                }
                return Ok(());
            }
            self.state.pending.push(f);
            if !self.ready() && self.state.pending.len() < MAX_STARTUP_FRAMES {
                return Ok(());
            }
            let tracks = self.tracks();
            let p = self.publication.as_mut().expect("checked above");
            let name = p.name().to_string();
            let resumed = p.start(tracks.clone()).await?;
            let codecs: Vec<String> = tracks.iter().map(|t| t.codec.describe()).collect();
            let encoder = self
                .metadata
                .as_ref()
                .and_then(|m| m.encoder.clone())
                .unwrap_or_default();
            tracing::info!(
                peer = %self.peer,
                stream = %name,
                codecs = %codecs.join(", "),
                encoder = %encoder,
                resumed,
                "publishing: http://HOST/live/{name}/index.m3u8"
            );
            let pending = std::mem::take(&mut self.state.pending);
            let p = self.publication.as_ref().expect("checked above");
            for f in pending {
                p.frame(f).await?;
            }
            return Ok(());
        }
        let p = self.publication.as_ref().expect("checked above");
        if !self.state.logged && self.state.keyframes.len() >= 3 {
            self.state.logged = true;
            let k = &self.state.keyframes;
            let gop = (k[2] - k[0]) as f64 / 2000.0;
            tracing::info!(peer = %self.peer, stream = %p.name(), keyframe_interval_secs = gop, "keyframe interval seen");
        }
        p.frame(f).await
    }

    async fn finish(&mut self, explicit: bool) {
        if let Some(p) = self.publication.take() {
            tracing::info!(peer = %self.peer, stream = %p.name(), explicit, "unpublish");
            // Dropping the publication starts the reconnect grace period.
            drop(p);
        }
    }
}

/// `NAME?key=SECRET` -> (`NAME`, `Some(SECRET)`).
fn split_key(stream_key: &str) -> (&str, Option<&str>) {
    match stream_key.split_once('?') {
        Some((name, query)) => {
            let key = query.split('&').find_map(|kv| kv.strip_prefix("key="));
            (name, key)
        }
        None => (stream_key, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(split_key("cam1"), ("cam1", None));
        assert_eq!(split_key("cam1?key=s3"), ("cam1", Some("s3")));
        assert_eq!(split_key("cam1?x=1&key=s3"), ("cam1", Some("s3")));
    }
}
