//! # llhls-origin
//!
//! The HTTP origin for LL-HLS streams: a thin hyper/tokio shell over `llhls-packager`.
//!
//! - [`live`]: one task per stream owns its [`llhls_packager::Packager`], stores objects, renders
//!   every playlist view (plain and gzip) once per change and publishes an `Arc<Published>`
//!   through a `tokio::sync::watch` channel. Publish order: store bytes, swap, wake. Growing
//!   segments are a [`rope`] of the parts' `Bytes`, sliced and never copied per request.
//! - [`Origin`]: the state (streams, pages, nested services, the limit on held requests);
//!   [`Origin::service`] is the `tower::Service` the server runs and tests call in-process.
//! - Request handling, one module per job: [`mod@router`] (dispatch, nested services such as WHIP
//!   under `/whip`, CORS preflights, finishing replies), [`route`] (path -> typed route),
//!   `playlist` (multivariant, media playlists, blocking reloads: `wait_for` on the watch
//!   channel, so no wake-up is lost and a client that leaves drops its future), `media`
//!   (init, parts, segments, hinted-part holds), `growing` (byte ranges of a growing segment,
//!   RFC 8673 open-ended hints), [`range`] (Range parsing, 206/416), `headers` (Cache-Control
//!   per object class, CORS, gzip), [`error`] (one error type mapped to statuses).
//! - [`dvr`]: DVR segments past the live window written to disk, served from there, deleted
//!   when they leave the DVR window.
//! - [`record`]: recordings: every segment of a recorded stream kept on disk with VOD
//!   playlists, served under `/recordings/`, recovered after a restart, retention.
//! - [`server`]: HTTP/1.1 and h2c on one port, HTTPS with ALPN h2, connection and header
//!   limits, graceful shutdown.
//! - [`limits`]: per-IP limits on connections and held requests (off unless configured);
//!   [`token`]: signed, expiring playback tokens for private streams.
//! - [`cluster`]: several origins behind one name: requests for a stream another node owns
//!   are proxied to it.
//! - [`metrics`]: Prometheus counters; [`stats`]: per-stream counters and the `/streams.json`
//!   summary.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod body;
pub mod cluster;
pub mod dvr;
pub mod error;
mod growing;
pub mod h1;
mod headers;
pub mod ladder;
pub mod limits;
pub mod live;
mod media;
pub mod metrics;
mod origin;
mod playlist;
pub mod range;
pub mod record;
pub mod rope;
pub mod route;
pub mod router;
pub mod server;
pub mod stats;
pub mod token;

pub use body::Body;
pub use error::Error;
pub use live::{wall_now, Command, Publisher, StreamInput};
pub use origin::{
    AlreadyLive, CreateError, EventSink, Origin, OriginConfig, StreamEvent, StreamOptions,
};
pub use router::{router, BodyError, BoxError, NestedService, OriginService, RequestBody};
