//! # llhls-origin
//!
//! The HTTP origin for LL-HLS streams: a thin hyper/tokio shell over `llhls-packager`.
//!
//! - [`live`]: one task per stream owns its [`llhls_packager::Packager`], stores objects, renders
//!   every playlist view (plain and gzip) once per change and publishes an `Arc<Published>`
//!   through a `tokio::sync::watch` channel. Publish order: store bytes, swap, wake.
//! - [`Origin::handle`]: routing, blocking reloads (`wait_for` on the watch channel, so no
//!   wake-up is lost and a client that leaves drops its future), hinted-part holds, byte
//!   ranges (including RFC 8673 open-ended hints), Cache-Control per object class, CORS, gzip.
//! - [`server`]: HTTP/1.1 and h2c on one port, HTTPS with ALPN h2, connection and header
//!   limits, graceful shutdown.
//! - [`metrics`]: Prometheus counters.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod body;
pub mod live;
pub mod metrics;
pub mod server;
mod service;

/// Internals the `fuzz/` crate drives. Not a stable API: the Range parser moves to a public
/// `range` module in the origin restructuring, and this goes away then.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::service::{parse_range, ByteRange};
}

pub use body::Body;
pub use live::{wall_now, Command, StreamInput};
pub use service::{AlreadyLive, Fallback, IntoIncoming, Origin, OriginConfig};
