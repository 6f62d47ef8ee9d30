//! # llhls-origin
//!
//! The HTTP origin for LL-HLS streams: a thin hyper/tokio shell over `llhls-packager`.
//!
//! - [`live`]: one task per stream owns its [`llhls_packager::Packager`], stores objects, renders
//!   every playlist view (plain and gzip) once per change and publishes an `Arc<Published>`
//!   through a `tokio::sync::watch` channel. Publish order: store bytes, swap, wake.
//! - [`Origin::service`] (a `tower::Service`): routing, nested services (WHIP under `/whip`), blocking reloads (`wait_for` on the watch channel, so no
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
pub mod rope;
pub mod server;
mod service;

pub use body::Body;
pub use live::{wall_now, Command, StreamInput};
pub use service::{
    router, AlreadyLive, BodyError, BoxError, NestedService, Origin, OriginConfig, OriginService,
    RequestBody,
};
