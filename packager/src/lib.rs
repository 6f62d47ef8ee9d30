//! # llhls-packager
//!
//! A sans-IO CMAF packager and LL-HLS playlist state machine. Encoded frames with explicit
//! timestamps go in; CMAF init segments, parts and segments, and immutable playlist snapshots
//! come out. It reads no clock and does no IO, so every rule is testable in microseconds.
//!
//! ## Contract: mutate, then drain
//!
//! ```
//! use bytes::Bytes;
//! use llhls_packager::{
//!     codec::{AacConfig, CodecConfig}, Frame, MediaTime, ObjectKey, Output, Packager, PackagerConfig,
//!     TrackConfig, TrackId, WallClock,
//! };
//!
//! let audio = TrackConfig { id: TrackId(2), codec: CodecConfig::Aac(AacConfig::lc(48_000, 2)?) };
//! let mut p = Packager::new(PackagerConfig::default(), vec![audio])?;
//! for i in 0..200i64 {
//!     let ts = MediaTime::new(i * 1024, llhls_packager::Timescale::new(48_000).unwrap());
//!     let frame = Frame { track: TrackId(2), dts: ts, pts: ts, keyframe: true, data: Bytes::from_static(&[0x21, 0x10]) };
//!     p.handle_frame(frame, WallClock(1_700_000_000_000 + i * 21))?;
//!     while let Some(out) = p.poll_output() {
//!         match out {
//!             Output::Object { key, bytes } => {
//!                 // Store the bytes under `key.to_string()`, e.g. "audio/1.0.m4s".
//!                 assert_eq!(key.to_string().parse::<ObjectKey>()?, key);
//!                 let _ = bytes;
//!             }
//!             Output::Append { .. } | Output::Expired(_) | Output::Spill(_) | Output::Warning(_) => {}
//!             Output::PlaylistChanged => {
//!                 let snap = p.snapshot().expect("timing is fixed once a playlist exists");
//!                 let text = llhls_packager::render::render_media(&snap, &snap.renditions[0], llhls_packager::SkipMode::Full);
//!                 assert!(text.contains("#EXT-X-PART:"));
//!             }
//!         }
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Time model
//!
//! Three clocks, kept apart:
//! - **media time**: [`MediaTime`] ticks of a [`Timescale`], 64-bit; inputs are rescaled through
//!   nanoseconds to 90 kHz (video) or the sample rate (audio) and shifted so the output timeline
//!   (`tfdt`) continues across reconnects.
//! - **wall-clock**: [`WallClock`] passed in with every frame, the source of
//!   EXT-X-PROGRAM-DATE-TIME (anchored at the first frame of each timeline).
//! - **now** for timers lives in the caller (the origin holds requests; the packager never waits).
//!
//! Inside the packager the three media scales are distinct types (input nanoseconds, lead-track
//! ticks, per-track ticks), and every caller-supplied value is range-checked where it enters:
//! a DTS or PTS beyond ±2^60 ns, a PTS more than an hour after its DTS, or an arrival wall
//! clock outside the years 0000-9999 is a [`PackagerError::TimestampOutOfRange`]; a
//! `handle_timeout` clock that is out of range or far from the media is ignored with a
//! [`Warning`]. No input can make the arithmetic overflow.
//!
//! ## Cutting
//!
//! The lead track (video, or audio for audio-only streams) defines one grid of parts and
//! segments shared by every rendition, so MSNs and part indexes line up for rendition reports.
//! The first segment is buffered until it closes: its keyframe interval fixes
//! EXT-X-TARGETDURATION and its frame rate fixes PART-TARGET (a whole number of frames plus the
//! timestamp jitter allowance). Both never change afterwards. A part closes *before* the frame
//! that would overflow PART-TARGET, on the DTS timeline. A segment closes on the first keyframe
//! after three quarters of the segment target. If no keyframe comes before the segment would
//! exceed TARGETDURATION + 0.5 s, the segment is cut between keyframes (the next one is not
//! INDEPENDENT) and a [`Warning`] tells the publisher to shorten the keyframe interval.
//!
//! ## Modules
//!
//! - [`media`]: the vocabulary (frames, tracks, time).
//! - [`key`]: [`ObjectKey`], the name of every object and the one URI contract with the origin.
//! - [`availability`]: [`StreamSnapshot::availability`], "will this object ever exist?" (serve,
//!   hold or 404).
//! - [`codec`]: parameter-set parsing and RFC 6381 codec strings.
//! - [`cmaf`]: the box writer.
//! - [`ladder`]: ABR ladder rungs on the source's grid (renaming, combining, the alignment check).
//! - [`playlist`]: immutable snapshots; [`render`]: the pure renderer; [`directives`]: the
//!   `_HLS_*` parser and classifier.
//!
//! The [`Packager`] itself is split by concern (private modules under `src/packager/`):
//! `config` (settings and their validation), `output` (outputs and errors), `time` (the three time scales as types and
//! their limits), `timeline` (input checks, input to output time,
//! timestamp resets, PROGRAM-DATE-TIME), `probe` (the timing probe that fixes TD and
//! PART-TARGET), `segmenter` (part and segment cuts), `fragment` (CMAF fragments and init
//! segments), `gap` (stalls: filler, GAP parts and segments), `window` (sliding window, parts listing,
//! retention and expiry) and `snapshot` (playlist snapshots and the preload hint).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod availability;
pub mod cmaf;
pub mod codec;
pub mod directives;
pub mod key;
pub mod ladder;
pub mod media;
mod packager;
pub mod playlist;
pub mod render;
pub mod synth;

pub use availability::Availability;
pub use codec::CodecConfig;
pub use directives::{classify, Decision, DirectiveError, Directives};
pub use key::{ObjectKey, ObjectKeyError, ObjectKind};
pub use media::{Frame, MediaTime, Timescale, TrackConfig, TrackId, TrackKind, WallClock};
pub use packager::{
    Addressing, Bridge, Layout, Output, Packager, PackagerConfig, PackagerError, Warning,
    FIRST_PLAYLIST_SEGMENTS, MAX_DVR_WINDOW_SECS, MAX_FIRST_MSN,
};
pub use playlist::{RenditionSnapshot, StreamSnapshot, StreamTiming};
pub use render::{render_media, render_multivariant, render_vod, SkipMode};
