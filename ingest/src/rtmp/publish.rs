//! One RTMP publisher's connection as a state machine without I/O: client bytes in
//! ([`Publish::handle_input`]), then what to do drained with [`Publish::poll_output`]: bytes
//! to write back, the publish to claim, the track set, frames, a codec change, the end.
//!
//! The handshake, chunk stream and AMF0 commands go through `rml_rtmp` (itself sans-IO);
//! the publish rules live here: the application must be `live`, the stream name must be
//! valid and the key (`NAME?key=SECRET`) one of the configured keys (compared in constant
//! time), codecs HLS players cannot play are refused with the encoder setting to change,
//! FLV tag bodies become frames ([`crate::flv`]) and 32-bit timestamps are unwrapped. The
//! stream starts once every announced track has its sequence header.
//!
//! The one decision left to the caller is whether the name is free: the machine stops at
//! [`Output::PublishRequested`] (no further input is acted on) until the caller answers
//! with [`Publish::accept_publish`] or [`Publish::refuse_publish`].
//!
//! ```
//! use llhls_ingest::rtmp::publish::{Output, Publish};
//!
//! let mut rtmp = Publish::new(vec!["s3cret".into()]);
//! // Not an RTMP client: the handshake fails, and the connection should close.
//! assert!(rtmp.handle_input(b"GET / HTTP/1.1\r\n\r\n").is_err());
//! while let Some(out) = rtmp.poll_output() {
//!     match out {
//!         Output::Transmit(bytes) => { /* write them to the socket */ }
//!         Output::PublishRequested { .. } => { rtmp.accept_publish().unwrap(); }
//!         _ => {}
//!     }
//! }
//! ```

use std::collections::VecDeque;

use bytes::Bytes;
use llhls_packager::{Frame, TrackConfig};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};

use super::media::Media;
use crate::flv::FlvError;
use crate::streams::{key_allowed, valid_name, PublishError};

pub use super::media::MAX_STARTUP_FRAMES;

/// Before the publish is accepted, the chunk stream is fed a byte at a time (at most this
/// many bytes): `rml_rtmp` acts on every command in its input before we can answer the
/// first, so a publisher that sends `connect` and `publish` in one packet (or a replayed
/// capture) would have its publish dropped as sent before the connection was accepted.
const PACED_BYTES: usize = 64 * 1024;
/// The one RTMP application publishers use.
pub const APP: &str = "live";

/// Why the connection must close.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RtmpError {
    /// The handshake failed: not an RTMP client.
    #[error("RTMP handshake failed (not an RTMP client?): {0}")]
    Handshake(String),
    /// The chunk stream or an AMF0 command could not be read.
    #[error("RTMP chunk stream: {0}")]
    ChunkStream(String),
    /// The publisher sends a codec LL-HLS players cannot play.
    #[error("{0}")]
    Unsupported(FlvError),
    /// Input after an error.
    #[error("the connection already failed")]
    Closed,
}

/// What the caller should do, in order.
#[derive(Debug)]
pub enum Output {
    /// Write these bytes to the publisher.
    Transmit(Bytes),
    /// A publish that passed the name and key rules: claim `name` and answer with
    /// [`Publish::accept_publish`] or [`Publish::refuse_publish`]. Nothing else comes out
    /// until then.
    PublishRequested {
        /// The RTMP application (always [`APP`]).
        app: String,
        /// The stream name.
        name: String,
        /// The publish key, if the stream key carried one.
        key: Option<String>,
    },
    /// A connect or publish refused by the rules (the refusal is already in a
    /// [`Output::Transmit`]); for the log.
    Refused(String),
    /// Every track the publisher announced is configured: start the stream with them.
    /// [`Output::Frame`]s follow.
    Start {
        /// Video first, then audio.
        tracks: Vec<TrackConfig>,
        /// The encoder named in the stream metadata, if any.
        encoder: Option<String>,
    },
    /// A codec configuration changed mid-stream: continue with a discontinuity.
    Reconfigure(Vec<TrackConfig>),
    /// One frame for the packager.
    Frame(Frame),
    /// The first three keyframes were this far apart on average (for the log).
    KeyframeInterval {
        /// Seconds between keyframes.
        secs: f64,
    },
    /// Something the operator should know (a dropped message); the stream goes on.
    Warning(String),
    /// The publisher stopped publishing (the connection may stay open).
    Unpublished,
}

/// One RTMP publisher connection (see the module docs).
pub struct Publish {
    keys: Vec<String>,
    handshake: Handshake,
    session: Option<ServerSession>,
    /// Session results not acted on yet (held while a publish awaits its answer).
    results: VecDeque<ServerSessionResult>,
    out: VecDeque<Output>,
    /// The publish request waiting for the caller's answer.
    awaiting: Option<u32>,
    /// Input not fed to the session yet (held while a publish awaits its answer).
    held: VecDeque<u8>,
    /// Bytes fed one at a time so far (see [`PACED_BYTES`]).
    paced: usize,
    /// Accepted and not yet unpublished.
    publishing: bool,
    media: Media,
    closed: bool,
}

thread_local! {
    /// Inside [`guarded`]: a panic there is reported as this connection's error.
    static GUARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs a library call that should not panic but parses hostile input (`rml_rtmp` indexes
/// AMF0 command arguments unchecked): a panic becomes an error for this connection only,
/// with the panic's message, and is not printed as a crash (every other panic still is).
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    GUARDED.with(|g| g.set(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(false));
    r.map_err(|payload| {
        let why = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        format!("malformed input made the RTMP library fail ({why})")
    })
}

/// `NAME?key=SECRET` -> (`NAME`, `Some(SECRET)`).
pub fn split_key(stream_key: &str) -> (&str, Option<&str>) {
    match stream_key.split_once('?') {
        Some((name, query)) => {
            let key = query.split('&').find_map(|kv| kv.strip_prefix("key="));
            (name, key)
        }
        None => (stream_key, None),
    }
}

impl Publish {
    /// A connection that accepts publishers presenting one of `keys` (any key when empty).
    pub fn new(keys: Vec<String>) -> Self {
        Publish {
            keys,
            handshake: Handshake::new(PeerType::Server),
            session: None,
            results: VecDeque::new(),
            out: VecDeque::new(),
            awaiting: None,
            held: VecDeque::new(),
            paced: 0,
            publishing: false,
            media: Media::default(),
            closed: false,
        }
    }

    /// Has the handshake completed?
    pub fn handshake_done(&self) -> bool {
        self.session.is_some()
    }

    /// Takes bytes read from the publisher. An error means the connection must close; the
    /// outputs queued before it (a refusal to send, frames) are still valid.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), RtmpError> {
        if self.closed {
            return Err(RtmpError::Closed);
        }
        let r = self.input(bytes);
        self.closed = r.is_err();
        r
    }

    fn input(&mut self, bytes: &[u8]) -> Result<(), RtmpError> {
        if self.session.is_none() {
            let r =
                guarded(|| self.handshake.process_bytes(bytes)).map_err(RtmpError::Handshake)?;
            match r {
                Ok(HandshakeProcessResult::InProgress { response_bytes }) => {
                    self.transmit(response_bytes);
                    return Ok(());
                }
                Ok(HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                }) => {
                    self.transmit(response_bytes);
                    let (session, initial) = ServerSession::new(ServerSessionConfig::new())
                        .map_err(|e| RtmpError::ChunkStream(format!("{e:?}")))?;
                    self.session = Some(session);
                    self.results.extend(initial);
                    self.process()?;
                    return self.feed(&remaining_bytes);
                }
                Err(e) => return Err(RtmpError::Handshake(format!("{e:?}"))),
            }
        }
        self.feed(bytes)
    }

    /// Feeds the chunk stream what it can take now: nothing while a publish awaits its
    /// answer, a byte at a time until the publish is accepted, then whole reads.
    fn feed(&mut self, bytes: &[u8]) -> Result<(), RtmpError> {
        if self.held.is_empty() && self.awaiting.is_none() && self.fast() {
            return self.chunk_stream(bytes);
        }
        self.held.extend(bytes);
        while self.awaiting.is_none() && !self.held.is_empty() {
            if self.fast() {
                let rest: Vec<u8> = std::mem::take(&mut self.held).into();
                return self.chunk_stream(&rest);
            }
            let Some(b) = self.held.pop_front() else {
                break;
            };
            self.paced += 1;
            self.chunk_stream(&[b])?;
        }
        Ok(())
    }

    fn fast(&self) -> bool {
        self.publishing || self.paced >= PACED_BYTES
    }

    fn chunk_stream(&mut self, bytes: &[u8]) -> Result<(), RtmpError> {
        let Some(session) = self.session.as_mut() else {
            return Err(RtmpError::ChunkStream("no session yet".into()));
        };
        let results = guarded(|| session.handle_input(bytes))
            .map_err(RtmpError::ChunkStream)?
            .map_err(|e| RtmpError::ChunkStream(format!("{e:?}")))?;
        self.results.extend(results);
        self.process()
    }

    /// Acts on held results and input after the caller's answer.
    fn resume(&mut self) -> Result<(), RtmpError> {
        let r = self.process().and_then(|()| self.feed(&[]));
        self.closed |= r.is_err();
        r
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Answers [`Output::PublishRequested`]: the name is ours; media follows.
    pub fn accept_publish(&mut self) -> Result<(), RtmpError> {
        let Some(id) = self.awaiting.take() else {
            return Ok(());
        };
        self.publishing = true;
        self.media.restart();
        let r = self.session_call(|s| s.accept_request(id));
        self.closed |= r.is_err();
        r?;
        self.resume()
    }

    /// Answers [`Output::PublishRequested`]: refused, with `reason` for the publisher.
    pub fn refuse_publish(&mut self, reason: &str) -> Result<(), RtmpError> {
        let Some(id) = self.awaiting.take() else {
            return Ok(());
        };
        let r = self.session_call(|s| s.reject_request(id, "NetStream.Publish.BadName", reason));
        self.closed |= r.is_err();
        r?;
        self.resume()
    }

    fn transmit(&mut self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.out.push_back(Output::Transmit(Bytes::from(bytes)));
        }
    }

    fn session_call<E: std::fmt::Debug>(
        &mut self,
        f: impl FnOnce(&mut ServerSession) -> Result<Vec<ServerSessionResult>, E>,
    ) -> Result<(), RtmpError> {
        let Some(session) = self.session.as_mut() else {
            return Err(RtmpError::ChunkStream("no session yet".into()));
        };
        let results = f(session).map_err(|e| RtmpError::ChunkStream(format!("{e:?}")))?;
        self.results.extend(results);
        Ok(())
    }

    /// Acts on session results until none are left or a publish awaits its answer.
    fn process(&mut self) -> Result<(), RtmpError> {
        while self.awaiting.is_none() {
            let Some(r) = self.results.pop_front() else {
                break;
            };
            match r {
                ServerSessionResult::OutboundResponse(p) => self.transmit(p.bytes),
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
                ServerSessionResult::RaisedEvent(ev) => self.event(ev)?,
            }
        }
        Ok(())
    }

    fn event(&mut self, ev: ServerSessionEvent) -> Result<(), RtmpError> {
        match ev {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                if app_name.trim_end_matches('/') != APP {
                    self.out.push_back(Output::Refused(format!(
                        "application {app_name:?}: publish to rtmp://HOST:1935/{APP} with the stream name as key"
                    )));
                    return self.session_call(|s| {
                        s.reject_request(
                            request_id,
                            "NetConnection.Connect.Rejected",
                            "use the application `live`",
                        )
                    });
                }
                self.session_call(|s| s.accept_request(request_id))
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                app_name,
                stream_key,
                ..
            } => {
                let (name, key) = split_key(&stream_key);
                let refused = if !valid_name(name) {
                    Some(PublishError::BadName(name.to_string()))
                } else if !key_allowed(&self.keys, key) {
                    Some(PublishError::Unauthorized(name.to_string()))
                } else {
                    None
                };
                if let Some(e) = refused {
                    let reason = e.to_string();
                    self.out.push_back(Output::Refused(reason.clone()));
                    return self.session_call(|s| {
                        s.reject_request(request_id, "NetStream.Publish.BadName", &reason)
                    });
                }
                self.awaiting = Some(request_id);
                self.out.push_back(Output::PublishRequested {
                    app: app_name.trim_end_matches('/').to_string(),
                    name: name.to_string(),
                    key: key.map(str::to_string),
                });
                Ok(())
            }
            ServerSessionEvent::PublishStreamFinished { .. } => {
                if std::mem::take(&mut self.publishing) {
                    self.out.push_back(Output::Unpublished);
                }
                Ok(())
            }
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                self.media.set_metadata(metadata);
                Ok(())
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } if self.publishing => self.media.video(&data, timestamp.value, &mut self.out),
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } if self.publishing => self.media.audio(&data, timestamp.value, &mut self.out),
            _ => Ok(()),
        }
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
