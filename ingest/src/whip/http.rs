//! The WHIP HTTP endpoint: `POST /whip/live/NAME` (offer in, answer and session out),
//! `DELETE /whip/session/ID`, CORS preflights. It checks the request (content type, size,
//! key, session limit), plans the offer ([`super::sdp`]), claims the stream name, builds the
//! session's `str0m::Rtc`, registers its route with the UDP dispatcher and spawns the
//! session task.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use llhls_origin::{Body, RequestBody};
use str0m::change::SdpOffer;
use str0m::{Candidate, IceCreds, Rtc};
use tokio::sync::{mpsc, oneshot};

use super::session::{self, SessionParams};
use super::{sdp, Entry, Whip};
use crate::streams::{bearer, PublishError};

/// Largest SDP offer accepted (browsers send 5-10 KB).
pub const MAX_OFFER_BYTES: usize = 64 * 1024;
/// Datagrams queued per session before the dispatcher drops them.
const SESSION_QUEUE: usize = 1024;

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).expect("the OS random source works");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn reply(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(Body::full(Bytes::from(format!("{text}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn allow(mut r: Response<Body>, methods: &'static str) -> Response<Body> {
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(methods));
    r
}

impl Whip {
    /// Answers one request for `/whip/...` (mounted with `Origin::nest_fn`).
    pub async fn handle(self: Arc<Self>, req: Request<RequestBody>) -> Response<Body> {
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match segs.as_slice() {
            ["whip", "live", name] => {
                let name = (*name).to_string();
                match method {
                    Method::OPTIONS => preflight("POST, OPTIONS"),
                    Method::POST => {
                        let r = self.publish(&name, req).await;
                        let counter = if r.status() == StatusCode::CREATED {
                            &self.stats.sessions_started
                        } else {
                            &self.stats.sessions_refused
                        };
                        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        r
                    }
                    _ => allow(
                        reply(StatusCode::METHOD_NOT_ALLOWED, "WHIP endpoint: POST an SDP offer"),
                        "POST, OPTIONS",
                    ),
                }
            }
            ["whip", "session", id] => match method {
                Method::OPTIONS => preflight("DELETE, PATCH, OPTIONS"),
                Method::DELETE => self.delete(id),
                Method::PATCH => allow(
                    reply(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "trickle ICE and ICE restarts are not supported: the answer carries the server's only candidate (ICE-lite)",
                    ),
                    "DELETE, OPTIONS",
                ),
                _ => allow(
                    reply(StatusCode::METHOD_NOT_ALLOWED, "WHIP session: DELETE ends it"),
                    "DELETE, OPTIONS",
                ),
            },
            _ => reply(StatusCode::NOT_FOUND, "not found: WHIP endpoints are /whip/live/NAME"),
        }
    }

    fn delete(&self, id: &str) -> Response<Body> {
        let entry = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(id)
            .and_then(|e| e.stop.take().map(|s| (s, e.name.clone())));
        match entry {
            Some((stop, name)) => {
                tracing::info!(session = %id, stream = %name, "WHIP session deleted by the publisher");
                let _ = stop.send(());
                reply(StatusCode::OK, "session ended")
            }
            None => reply(StatusCode::NOT_FOUND, "no such WHIP session"),
        }
    }

    async fn publish(self: &Arc<Self>, name: &str, req: Request<RequestBody>) -> Response<Body> {
        // The socket's address, and the client a proxy in front says it forwards (for the log).
        // The per-IP session limit counts the client: the TCP peer, or the address a trusted
        // proxy forwards for (`trusted_proxies`).
        let ip = req
            .extensions()
            .get::<llhls_origin::limits::ClientIp>()
            .map(|c| c.0)
            .or_else(|| {
                req.extensions()
                    .get::<llhls_origin::server::PeerAddr>()
                    .map(|p| p.0.ip())
            });
        let socket = req
            .extensions()
            .get::<llhls_origin::server::PeerAddr>()
            .map(|p| p.0.to_string());
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string());
        let socket_addr = req
            .extensions()
            .get::<llhls_origin::server::PeerAddr>()
            .map(|p| p.0);
        let forwarded_for = forwarded.clone();
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let peer = match (socket, forwarded) {
            (Some(s), Some(f)) => format!("{s} (forwarded for {f})"),
            (Some(s), None) => s,
            (None, Some(f)) => f,
            (None, None) => "unknown".to_string(),
        };
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("application/sdp")
        {
            return reply(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "WHIP offers must be Content-Type: application/sdp",
            );
        }
        if req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .is_some_and(|n| n > MAX_OFFER_BYTES)
        {
            return reply(StatusCode::PAYLOAD_TOO_LARGE, "SDP offer too large");
        }
        let key = bearer(&req).or_else(|| query_key(req.uri().query().unwrap_or("")));
        if self.session_count() >= self.config.max_sessions {
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many WHIP sessions on this server",
            );
        }
        if let Some(ip) = ip.filter(|_| self.config.max_sessions_per_ip > 0) {
            if self.sessions_from(ip) >= self.config.max_sessions_per_ip {
                tracing::warn!(stream = %name, %ip, limit = self.config.max_sessions_per_ip, "WHIP offer refused: too many sessions from this address");
                let mut r = reply(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many WHIP sessions from this address",
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                return r;
            }
        }
        // Read the body before claiming the name: a slow upload must not hold the stream.
        let body = match Limited::new(req.into_body(), MAX_OFFER_BYTES)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    return reply(StatusCode::PAYLOAD_TOO_LARGE, "SDP offer too large");
                }
                return reply(StatusCode::BAD_REQUEST, "could not read the SDP offer");
            }
        };
        let Ok(text) = std::str::from_utf8(&body) else {
            return reply(StatusCode::BAD_REQUEST, "the SDP offer is not UTF-8 text");
        };
        let plan = match sdp::plan(text, self.config.transcode_video) {
            Ok(p) => p,
            Err(why) => {
                tracing::warn!(stream = %name, "WHIP offer refused: {why}");
                return reply(StatusCode::UNPROCESSABLE_ENTITY, &why);
            }
        };
        let offer = match SdpOffer::from_sdp_string(text) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(stream = %name, "malformed WHIP offer: {e}");
                return reply(
                    StatusCode::BAD_REQUEST,
                    &format!("malformed SDP offer: {e}"),
                );
            }
        };
        let asked = crate::admission::PublishRequest {
            protocol: "whip",
            stream: name.to_string(),
            key: key.clone(),
            remote_addr: socket_addr,
            forwarded_for: forwarded_for.clone(),
            user_agent: user_agent.clone(),
        };
        let admitted = match crate::admission::admit(&asked).await {
            Ok(n) => n,
            Err(why) => {
                let mut r = reply(StatusCode::FORBIDDEN, &why);
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"llhls\""),
                );
                return r;
            }
        };
        let name = admitted.as_str();
        let publication = match self.streams.claim(name, key.as_deref()) {
            Ok(mut p) => {
                crate::admission::claimed(&self.streams, name, &asked);
                p.set_publisher(llhls_origin::Publisher::Whip);
                p
            }
            Err(e) => {
                tracing::warn!(stream = %name, "WHIP publish refused: {e}");
                crate::events::refused("whip", name, socket_addr, &e.to_string());
                let status = match e {
                    PublishError::Duplicate(_) => StatusCode::CONFLICT,
                    PublishError::BadName(_) => StatusCode::BAD_REQUEST,
                    PublishError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
                    PublishError::TooManyStreams(..) => StatusCode::SERVICE_UNAVAILABLE,
                };
                let mut r = reply(status, &e.to_string());
                if status == StatusCode::UNAUTHORIZED {
                    r.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer realm=\"llhls\""),
                    );
                }
                return r;
            }
        };
        let ufrag = random_hex(8);
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .set_local_ice_credentials(IceCreds {
                ufrag: ufrag.clone(),
                pass: random_hex(16),
            })
            .clear_codecs()
            .enable_h264(plan.video == Some(sdp::Offered::H264))
            .enable_vp8(plan.video == Some(sdp::Offered::Vp8))
            .enable_vp9(plan.video == Some(sdp::Offered::Vp9))
            .enable_opus(true, false)
            // Packets, not frames: our jitter buffer waits a bounded time for a missing
            // packet, where str0m's frame API waits for a number of packets.
            .set_rtp_mode(true)
            .build(Instant::now());
        let candidate = match Candidate::host(self.config.candidate, "udp") {
            Ok(c) => c,
            Err(e) => {
                return reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("bad WHIP candidate address {}: {e}", self.config.candidate),
                )
            }
        };
        rtc.add_local_candidate(candidate);
        let answer = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rtc.sdp_api().accept_offer(offer)
        })) {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                tracing::warn!(stream = %name, "WHIP offer not accepted: {e}");
                return reply(
                    StatusCode::BAD_REQUEST,
                    &format!("SDP offer not accepted: {e}"),
                );
            }
            Err(_) => {
                tracing::error!(stream = %name, "the WebRTC stack failed on this offer");
                return reply(StatusCode::BAD_REQUEST, "SDP offer not accepted");
            }
        };
        let answer = answer.to_sdp_string();
        let id = random_hex(16);
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        let (stop_tx, stop_rx) = oneshot::channel();
        self.routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(ufrag.clone(), tx);
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id.clone(),
                Entry {
                    name: name.to_string(),
                    ip,
                    ufrag: ufrag.clone(),
                    stop: Some(stop_tx),
                },
            );
        let params = SessionParams {
            id: id.clone(),
            rtc,
            publication,
            plan: plan.clone(),
            rx,
            stop: stop_rx,
            socket: self.socket.clone(),
            local: self.config.candidate,
            audio: self.config.audio,
            aac_bitrate: self.config.aac_bitrate,
            segment_target: self.config.segment_target,
            peer: peer.clone(),
            break_av_sync_ms: self.config.break_av_sync_ms,
            stats: self.stats.clone(),
        };
        tracing::info!(session = %id, stream = %name, video = ?plan.video, audio = ?plan.audio, candidate = %self.config.candidate, "WHIP offer accepted; waiting for ICE");
        let whip = self.clone();
        let sid = id.clone();
        let sname = name.to_string();
        tokio::spawn(async move {
            let run = tokio::spawn(session::run(params));
            let why = match run.await {
                Ok(why) => why.to_string(),
                Err(e) => format!("session task failed: {e}"),
            };
            whip.forget(&sid);
            tracing::info!(session = %sid, stream = %sname, "WHIP session ended: {why}");
        });
        let mut r = Response::new(Body::full(Bytes::from(answer)));
        *r.status_mut() = StatusCode::CREATED;
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/sdp"),
        );
        if let Ok(v) = HeaderValue::from_str(&format!("/whip/session/{id}")) {
            h.insert(header::LOCATION, v);
        }
        if let Ok(v) = HeaderValue::from_str(&format!("\"{id}\"")) {
            h.insert(header::ETAG, v);
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Location, ETag, Link"),
        );
        r
    }
}

fn preflight(methods: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type, If-Match"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, ETag, Link"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    h.insert("accept-post", HeaderValue::from_static("application/sdp"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn query_key(q: &str) -> Option<String> {
    q.split('&')
        .find_map(|kv| kv.strip_prefix("key="))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_header_or_query() {
        let r = Request::builder()
            .header("authorization", "Bearer s3cret")
            .body(())
            .unwrap();
        assert_eq!(bearer(&r).as_deref(), Some("s3cret"));
        assert_eq!(query_key("a=1&key=k2").as_deref(), Some("k2"));
        let r = Request::builder()
            .header("authorization", "Basic xyz")
            .body(())
            .unwrap();
        assert_eq!(bearer(&r), None);
    }
}
