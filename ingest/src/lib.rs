//! `llhls-ingest`: publishers and media files in, packager [`Frame`]s out.
//!
//! # Design
//!
//! ```text
//!  RTMP socket ──► rtmp (shell) ───► rtmp::publish::Publish (sans-IO) ─────┐
//!  SRT (UDP) ────► srt (shell) ────► srt::publish::TsPublish, ts (sans-IO) ┤
//!  WHIP HTTP/UDP ► whip (shells) ──► whip::{jitter, depacketize, ingest} ──┼─► Frames
//!  media file ───► source::FileSource ─────────────────────────────────────┘       │
//!                                                                                  ▼
//!                                           streams::Publication (claim, start, frame) ─► origin stream task
//! ```
//!
//! Every ingest is split the same way: a thin *shell* owns the sockets, the timers and the
//! tasks, and a *state machine* without I/O holds the protocol rules. Bytes (or packets) go
//! in by a method call, and what to do comes out of a queue the shell drains: bytes to write
//! back, a publish to claim, a track set to start with, frames, errors. The machines take
//! time as an argument (the WHIP assembler reads the wall clock once, to anchor arrival
//! `Instant`s) and never panic on what a publisher sends; they are what the unit tests and
//! the fuzz targets drive.
//!
//! - [`rtmp`]: the RTMP listener (one task per connection) around
//!   [`rtmp::publish::Publish`]: handshake, chunk stream and AMF0 commands (through
//!   `rml_rtmp`), the publish rules (application, stream name, key, codecs) and FLV tag
//!   bodies ([`flv`]) into frames.
//! - [`srt`]: the SRT listener (`srt-tokio`; one task per publisher) around
//!   [`srt::publish::TsPublish`]: stream id, key and passphrase checks at the handshake, and
//!   MPEG-TS ([`ts`]: PAT/PMT, PES, H.264 Annex B, AAC ADTS) into frames in DTS order.
//! - [`whip`]: WHIP (RFC 9725) WebRTC publishers: the HTTP endpoint ([`whip::http`]), the
//!   shared UDP socket and its routing ([`whip::dispatch`], [`whip::stun`]), one task per
//!   session around `str0m` ([`whip::session`]), and the machines behind them:
//!   [`whip::jitter`] (reordering), [`whip::depacketize`] (H.264, VP8, VP9), [`whip::sdp`]
//!   (offer planning), [`whip::ingest::Assembler`] (track alignment, keyframe requests) and
//!   the FFmpeg transcoders ([`whip::audio`], [`whip::video`]).
//! - [`source`]: media files through FFmpeg (the demo stream and `llhls package`).
//! - [`streams`]: the registry of stream names. An ingest claims a name (key and name
//!   checks, one publisher per name), starts it with its [`TrackConfig`]s and feeds it
//!   frames; the registry creates the origin's per-stream task (which owns the packager) or,
//!   when the same name comes back within the reconnect grace period, continues it with a
//!   discontinuity.
//!
//! Every ingest numbers its tracks the same way ([`tracks`]): video is [`tracks::VIDEO`],
//! audio [`tracks::AUDIO`].
//!
//! [`Frame`]: llhls_packager::Frame
//! [`TrackConfig`]: llhls_packager::TrackConfig
#![deny(missing_docs)]

pub mod admin;
pub mod admission;
pub mod events;
pub mod flv;
pub mod ladder;
pub mod rtmp;
pub mod source;
pub mod srt;
pub mod streams;
pub mod tracks;
pub mod ts;
pub mod webhook;
pub mod whip;
