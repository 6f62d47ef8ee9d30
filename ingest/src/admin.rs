//! The admin API under `/api/v1/` (on only when `admin_token` is set): the live streams with
//! their publishers and counters, kicking a publisher, revoking a publish key, server info.
//! Every request but the OpenAPI description needs `Authorization: Bearer TOKEN`, compared in
//! constant time. The description (`ingest/api/openapi.json`) is served at
//! `/api/v1/openapi.json`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use llhls_origin::{Body, Origin, RequestBody};
use serde_json::{json, Value};

use crate::streams::{bearer, constant_time_eq, valid_name, Streams};

/// The OpenAPI description of this API, as checked in.
pub const OPENAPI: &str = include_str!("../api/openapi.json");

/// Largest request body read (a revoke request is a few dozen bytes).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The admin API's state.
pub struct Admin {
    token: String,
    /// The server's configuration with secrets redacted (`GET /api/v1/info`).
    config: Value,
    origin: Arc<Origin>,
    streams: Arc<Streams>,
    started: Instant,
}

impl Admin {
    /// The admin API over these streams, answering to `token`.
    pub fn new(token: String, config: Value, origin: Arc<Origin>, streams: Arc<Streams>) -> Self {
        Admin {
            token,
            config,
            origin,
            streams,
            started: Instant::now(),
        }
    }

    /// Answers one request for `/api/v1/...` (mounted with [`Origin::nest_fn`]).
    pub async fn handle(self: Arc<Self>, req: Request<RequestBody>) -> Response<Body> {
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        if method == Method::OPTIONS {
            // A browser's preflight: the router adds the CORS headers.
            let mut r = Response::new(Body::full(Bytes::new()));
            *r.status_mut() = StatusCode::NO_CONTENT;
            r.headers_mut().insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type"),
            );
            r.headers_mut().insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
            );
            return r;
        }
        if path == "/api/v1/openapi.json" && method == Method::GET {
            return json_reply(StatusCode::OK, OPENAPI.as_bytes().to_vec());
        }
        if !self.authorized(&req) {
            let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"llhls admin\""),
            );
            return r;
        }
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method, segs.as_slice()) {
            (Method::GET, ["api", "v1", "streams"]) => {
                let list: Vec<Value> = self
                    .origin
                    .stream_summaries()
                    .into_iter()
                    .filter_map(|s| self.stream_json(&s.name))
                    .collect();
                ok(&Value::Array(list))
            }
            (Method::GET, ["api", "v1", "streams", name]) => match self.stream_json(name) {
                Some(v) => ok(&v),
                None => error(
                    StatusCode::NOT_FOUND,
                    "no such stream (live, or ended and kept)",
                ),
            },
            (Method::DELETE, ["api", "v1", "streams", name]) => {
                let file = self
                    .origin
                    .stream(name)
                    .filter(|s| !s.ended.load(std::sync::atomic::Ordering::Relaxed))
                    .is_some_and(|s| s.publisher() == llhls_origin::Publisher::File);
                if file {
                    // The demo loops a file inside the server: nobody to kick.
                    error(
                        StatusCode::CONFLICT,
                        "this stream is the built-in demo, not a publisher (turn it off with demo = false)",
                    )
                } else if valid_name(name) && self.streams.kick(name) {
                    tracing::info!(stream = %name, "publisher stopped by the admin API");
                    let mut r = Response::new(Body::full(Bytes::new()));
                    *r.status_mut() = StatusCode::NO_CONTENT;
                    r
                } else {
                    error(StatusCode::NOT_FOUND, "no publisher for this stream")
                }
            }
            (Method::POST, ["api", "v1", "keys", "revoke"]) => self.revoke(req).await,
            (Method::GET, ["api", "v1", "info"]) => ok(&json!({
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_secs": self.started.elapsed().as_secs(),
                "config": self.config,
            })),
            (_, ["api", "v1", "streams"] | ["api", "v1", "info"]) => {
                allow(error(StatusCode::METHOD_NOT_ALLOWED, "use GET"), "GET")
            }
            (_, ["api", "v1", "streams", _]) => allow(
                error(StatusCode::METHOD_NOT_ALLOWED, "use GET or DELETE"),
                "GET, DELETE",
            ),
            (_, ["api", "v1", "keys", "revoke"]) => {
                allow(error(StatusCode::METHOD_NOT_ALLOWED, "use POST"), "POST")
            }
            _ => error(StatusCode::NOT_FOUND, "no such admin endpoint"),
        }
    }

    fn authorized(&self, req: &Request<RequestBody>) -> bool {
        let given = bearer(req).unwrap_or_default();
        constant_time_eq(given.as_bytes(), self.token.as_bytes())
    }

    /// One stream: its publisher and counters, and whether it is live or has ended and is
    /// kept (until when).
    fn stream_json(&self, name: &str) -> Option<Value> {
        let stream = self.origin.stream(name)?;
        let published = stream.current()?;
        let kept_until = stream.kept_until();
        let summary = llhls_origin::stats::StreamSummary::new(&stream, &published.snapshot);
        let st = &stream.stats;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        let publisher = crate::admission::publisher(name).map(|p| {
            json!({
                "protocol": p.protocol,
                "remote_addr": p.remote_addr.map(|a| a.to_string()),
                "forwarded_for": p.forwarded_for,
                "user_agent": p.user_agent,
                "since": p.since.to_rfc3339(),
            })
        });
        Some(json!({
            "name": name,
            "playlist": format!("/live/{name}/index.m3u8"),
            "state": if kept_until.is_some() { "ended" } else { "live" },
            "kept_until": kept_until.map(|t| t.to_rfc3339()),
            "publisher": publisher,
            "codecs": summary.codecs,
            "width": summary.resolution.map(|r| r.0),
            "height": summary.resolution.map(|r| r.1),
            "frame_rate": summary.frame_rate,
            "bitrate": summary.bitrate,
            "frames_in": load(&st.frames_in),
            "bytes_in": load(&st.bytes_in),
            "gap_parts": load(&st.gap_parts),
            "discontinuities": load(&st.discontinuities),
            "held_playlists": st.held_playlists.load(std::sync::atomic::Ordering::Relaxed),
            "viewers": summary.viewers,
            "edge_age_ms": u64::try_from(published.at.elapsed().as_millis()).unwrap_or(u64::MAX),
            "part_target": published
                .snapshot
                .renditions
                .first()
                .map(|r| r.part_target),
            "part_hold_back": published.snapshot.timing.part_hold_back,
            "renditions": published
                .snapshot
                .listed()
                .map(|r| r.name.clone())
                .collect::<Vec<_>>(),
        }))
    }

    async fn revoke(&self, req: Request<RequestBody>) -> Response<Body> {
        let body = match Limited::new(req.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("the body could not be read, or is over {MAX_BODY_BYTES} bytes"),
                )
            }
        };
        #[derive(serde::Deserialize)]
        struct Revoke {
            key: String,
        }
        let key = match serde_json::from_slice::<Revoke>(&body) {
            Ok(r) if !r.key.is_empty() => r.key,
            Ok(_) => return error(StatusCode::BAD_REQUEST, "key is empty"),
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("expected {{\"key\": \"...\"}}: {e}"),
                )
            }
        };
        let names = crate::admission::revoke(&key);
        let kicked: Vec<String> = names.into_iter().filter(|n| self.streams.kick(n)).collect();
        tracing::info!(kicked = %kicked.join(","), "publish key revoked by the admin API");
        ok(&json!({ "revoked": true, "kicked": kicked }))
    }
}

fn json_reply(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Body::full(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn ok(v: &Value) -> Response<Body> {
    json_reply(StatusCode::OK, serde_json::to_vec(v).unwrap_or_default())
}

fn error(status: StatusCode, why: &str) -> Response<Body> {
    json_reply(
        status,
        serde_json::to_vec(&json!({ "error": why })).unwrap_or_default(),
    )
}

fn allow(mut r: Response<Body>, methods: &'static str) -> Response<Body> {
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(methods));
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_openapi_description_is_json() {
        let v: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        assert_eq!(v["openapi"].as_str().map(|s| &s[..2]), Some("3."));
        for p in [
            "/api/v1/streams",
            "/api/v1/streams/{name}",
            "/api/v1/keys/revoke",
            "/api/v1/info",
        ] {
            assert!(v["paths"][p].is_object(), "{p}");
        }
    }
}
