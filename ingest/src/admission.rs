//! Publish admission by HTTP callback (`auth_webhook`): before a publisher claims a stream
//! name, the platform's backend is asked, with a JSON POST, whether it may publish. A 2xx
//! admits it; its JSON answer may rename the stream (`name`) and choose per-stream options
//! (`record`, `ladder`). A 4xx refuses it. Anything else (no answer in time, a connection
//! error, 3xx, 5xx, an answer that is not the expected JSON) is a failure, which refuses by
//! default or admits under the original name with `auth_webhook_fail = "open"`.
//!
//! The call runs in the publisher's own task and holds no lock, so a slow webhook only delays
//! the publisher it is about. Answers (admitted or refused, never failures) may be cached for
//! a while per stream name and key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::{Duration, Instant};

use llhls_origin::{Origin, StreamOptions};
use serde::Deserialize;

use crate::streams::valid_name;
use crate::webhook::{post_json, WebhookUrl};

/// Admission settings.
#[derive(Debug, Clone)]
pub struct AdmissionConfig {
    /// Where the POST goes.
    pub url: WebhookUrl,
    /// The most the webhook may take (connection, request and answer).
    pub timeout: Duration,
    /// Admit (under the original name, with the server's settings) when the webhook fails.
    pub fail_open: bool,
    /// How long an answer is reused for the same stream name and key (zero: never).
    pub cache: Duration,
}

/// What the webhook is told about a publish.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// `rtmp`, `whip` or `srt`.
    pub protocol: &'static str,
    /// The stream name the publisher asked for.
    pub stream: String,
    /// The key (RTMP/SRT `?key=`) or WHIP bearer token, if any.
    pub key: Option<String>,
    /// The publisher's address as the server sees it.
    pub remote_addr: Option<SocketAddr>,
    /// The client a proxy in front says it forwards (WHIP `X-Forwarded-For`).
    pub forwarded_for: Option<String>,
    /// The encoder or user agent, when the protocol says it before publishing.
    pub user_agent: Option<String>,
}

/// An admitted publish: the name it publishes under and its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// The stream name (the webhook's `name`, or the one asked for).
    pub name: String,
    /// Per-stream options chosen by the webhook.
    pub options: StreamOptions,
}

/// The webhook's JSON answer (every field optional; unknown fields are ignored).
#[derive(Debug, Deserialize, Default)]
struct Answer {
    name: Option<String>,
    record: Option<bool>,
    ladder: Option<bool>,
}

#[derive(Debug, Clone)]
enum Verdict {
    Admit(Admitted),
    Refuse(String),
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct AdmissionStats {
    admitted: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    cached: AtomicU64,
}

/// Answers are cached per stream name and key.
type CacheKey = (String, Option<String>);

/// The publish webhook and its cache.
pub struct Admission {
    config: AdmissionConfig,
    origin: Arc<Origin>,
    cache: Mutex<HashMap<CacheKey, (Instant, Verdict)>>,
    /// Counters for `/metrics`.
    pub stats: AdmissionStats,
}

/// The server's admission, set once at startup (none: static keys only).
static ADMISSION: OnceLock<Arc<Admission>> = OnceLock::new();

impl Admission {
    /// Sets the server's admission webhook; publishes of every protocol go through it.
    pub fn install(config: AdmissionConfig, origin: Arc<Origin>) -> Arc<Admission> {
        let a = Arc::new(Admission {
            config,
            origin,
            cache: Mutex::new(HashMap::new()),
            stats: AdmissionStats::default(),
        });
        let _ = ADMISSION.set(a.clone());
        ADMISSION.get().cloned().unwrap_or(a)
    }

    /// The `/metrics` lines.
    pub fn render_metrics(&self) -> String {
        let s = &self.stats;
        format!(
            "# HELP llhls_publish_admissions_total Publishes decided by the auth webhook, by result (failed: no usable answer; cached: answered from the cache).\n\
             # TYPE llhls_publish_admissions_total counter\n\
             llhls_publish_admissions_total{{result=\"admitted\"}} {}\n\
             llhls_publish_admissions_total{{result=\"refused\"}} {}\n\
             llhls_publish_admissions_total{{result=\"failed\"}} {}\n\
             llhls_publish_admissions_total{{result=\"cached\"}} {}\n",
            s.admitted.load(Relaxed),
            s.refused.load(Relaxed),
            s.failed.load(Relaxed),
            s.cached.load(Relaxed),
        )
    }

    async fn decide(&self, req: &PublishRequest) -> Result<Admitted, String> {
        let cache_key = (req.stream.clone(), req.key.clone());
        if !self.config.cache.is_zero() {
            let hit = {
                let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                cache.retain(|_, (at, _)| at.elapsed() < self.config.cache);
                cache.get(&cache_key).map(|(_, v)| v.clone())
            };
            if let Some(v) = hit {
                self.stats.cached.fetch_add(1, Relaxed);
                return match v {
                    Verdict::Admit(a) => Ok(a),
                    Verdict::Refuse(why) => Err(why),
                };
            }
        }
        let verdict = match self.ask(req).await {
            Ok(v) => v,
            Err(why) => {
                self.stats.failed.fetch_add(1, Relaxed);
                if self.config.fail_open {
                    tracing::warn!(stream = %req.stream, protocol = req.protocol, webhook = %self.config.url, "auth webhook failed ({why}): admitting, as auth_webhook_fail is open");
                    self.stats.admitted.fetch_add(1, Relaxed);
                    return Ok(Admitted {
                        name: req.stream.clone(),
                        options: StreamOptions::default(),
                    });
                }
                return Err(format!("the auth webhook failed: {why}"));
            }
        };
        match &verdict {
            Verdict::Admit(_) => self.stats.admitted.fetch_add(1, Relaxed),
            Verdict::Refuse(_) => self.stats.refused.fetch_add(1, Relaxed),
        };
        if !self.config.cache.is_zero() {
            self.cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(cache_key, (Instant::now(), verdict.clone()));
        }
        match verdict {
            Verdict::Admit(a) => Ok(a),
            Verdict::Refuse(why) => Err(why),
        }
    }

    /// One webhook call: a verdict, or why there is none.
    async fn ask(&self, req: &PublishRequest) -> Result<Verdict, String> {
        let body = serde_json::json!({
            "action": "publish",
            "protocol": req.protocol,
            "stream": req.stream,
            "key": req.key,
            "remote_addr": req.remote_addr.map(|a| a.to_string()),
            "forwarded_for": req.forwarded_for,
            "user_agent": req.user_agent,
        });
        let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
        let (status, answer) = post_json(&self.config.url, body, &[], self.config.timeout).await?;
        verdict(&req.stream, status.as_u16(), &answer)
    }
}

/// Reads the webhook's answer: 2xx admits (empty body, or JSON with optional `name`,
/// `record`, `ladder`), 4xx refuses, anything else is a failure.
fn verdict(asked: &str, status: u16, body: &[u8]) -> Result<Verdict, String> {
    match status {
        200..=299 => {
            let answer: Answer = if body.iter().all(u8::is_ascii_whitespace) {
                Answer::default()
            } else {
                serde_json::from_slice(body).map_err(|e| {
                    format!(
                        "status {status} with an answer that is not the expected JSON object: {e}"
                    )
                })?
            };
            let name = match answer.name {
                Some(n) if valid_name(&n) => n,
                Some(n) => {
                    return Err(format!(
                        "the answer renames the stream to {n:?}, which is not a valid stream name (1-64 letters, digits, '-' or '_')"
                    ))
                }
                None => asked.to_string(),
            };
            Ok(Verdict::Admit(Admitted {
                name,
                options: StreamOptions {
                    record: answer.record,
                    ladder: answer.ladder,
                },
            }))
        }
        400..=499 => {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
            let text = text.trim();
            Ok(Verdict::Refuse(if text.is_empty() {
                format!("refused by the auth webhook (status {status})")
            } else {
                format!("refused by the auth webhook (status {status}: {text})")
            }))
        }
        _ => Err(format!("status {status}")),
    }
}

/// Asks the auth webhook, when one is set, whether this publish may go ahead: the name to
/// claim (the webhook may rename the stream), or why not (for the log and the publisher).
/// Without a webhook the name asked for, unchanged (static keys are checked by the claim).
/// The chosen per-stream options are set on the origin for the stream about to start.
pub async fn admit(req: &PublishRequest) -> Result<String, String> {
    if let Some(key) = req.key.as_deref().filter(|k| is_revoked(k)) {
        let why = "the publish key was revoked".to_string();
        tracing::warn!(protocol = req.protocol, stream = %req.stream, remote = ?req.remote_addr, key_len = key.len(), "publish refused: {why}");
        crate::events::refused(req.protocol, &req.stream, req.remote_addr, &why);
        return Err(why);
    }
    let Some(a) = ADMISSION.get() else {
        return Ok(req.stream.clone());
    };
    let started = Instant::now();
    let r = a.decide(req).await;
    let ms = started.elapsed().as_millis() as u64;
    match r {
        Ok(admitted) => {
            if admitted.name != req.stream {
                tracing::info!(protocol = req.protocol, stream = %req.stream, renamed = %admitted.name, webhook_ms = ms, "publish admitted by the auth webhook under another name");
            } else {
                tracing::info!(protocol = req.protocol, stream = %req.stream, webhook_ms = ms, "publish admitted by the auth webhook");
            }
            a.origin
                .set_stream_options(&admitted.name, admitted.options);
            Ok(admitted.name)
        }
        Err(why) => {
            tracing::warn!(protocol = req.protocol, stream = %req.stream, remote = ?req.remote_addr, webhook_ms = ms, "publish refused: {why}");
            crate::events::refused(req.protocol, &req.stream, req.remote_addr, &why);
            Err(why)
        }
    }
}

/// Who publishes a stream, as told at admission: for the admin API's stream list and for
/// kicking the publishers of a revoked key.
#[derive(Debug, Clone)]
pub struct PublisherInfo {
    /// `rtmp`, `whip` or `srt`.
    pub protocol: &'static str,
    /// The publisher's address.
    pub remote_addr: Option<SocketAddr>,
    /// The client a proxy in front says it forwards.
    pub forwarded_for: Option<String>,
    /// The encoder or user agent, if said.
    pub user_agent: Option<String>,
    /// When it claimed the name.
    pub since: llhls_packager::WallClock,
    key: Option<String>,
}

/// Publisher entries kept before those of names no longer claimed are dropped.
const PRUNE_AT: usize = 1024;

static PUBLISHERS: LazyLock<Mutex<HashMap<String, PublisherInfo>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
static REVOKED: LazyLock<Mutex<Vec<String>>> = LazyLock::new(|| Mutex::new(Vec::new()));

/// Notes that `req`'s publisher now holds stream `name` (call after a successful claim).
/// Entries of names no longer claimed are pruned once there are many.
pub fn claimed(streams: &crate::streams::Streams, name: &str, req: &PublishRequest) {
    let mut publishers = PUBLISHERS.lock().unwrap_or_else(|e| e.into_inner());
    if publishers.len() >= PRUNE_AT {
        publishers.retain(|n, _| streams.is_claimed(n));
    }
    publishers.insert(
        name.to_string(),
        PublisherInfo {
            protocol: req.protocol,
            remote_addr: req.remote_addr,
            forwarded_for: req.forwarded_for.clone(),
            user_agent: req.user_agent.clone(),
            since: llhls_origin::wall_now(),
            key: req.key.clone(),
        },
    );
}

/// The last publisher admitted for stream `name`.
pub fn publisher(name: &str) -> Option<PublisherInfo> {
    PUBLISHERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(name)
        .cloned()
}

/// The streams whose last admitted publisher presented `key`, by name.
pub fn streams_with_key(key: &str) -> Vec<String> {
    let mut names: Vec<String> = PUBLISHERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(_, p)| p.key.as_deref() == Some(key))
        .map(|(n, _)| n.clone())
        .collect();
    names.sort();
    names
}

fn is_revoked(key: &str) -> bool {
    REVOKED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .fold(false, |acc, k| {
            acc | crate::streams::constant_time_eq(k.as_bytes(), key.as_bytes())
        })
}

/// Refuses `key` from now on (until a restart), forgets cached webhook answers for it, and
/// returns the streams whose publishers presented it (for the caller to stop them).
pub fn revoke(key: &str) -> Vec<String> {
    {
        let mut r = REVOKED.lock().unwrap_or_else(|e| e.into_inner());
        if !r.iter().any(|k| k == key) {
            r.push(key.to_string());
        }
    }
    if let Some(a) = ADMISSION.get() {
        a.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(_, k), _| k.as_deref() != Some(key));
    }
    streams_with_key(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(v: Result<Verdict, String>) -> Admitted {
        match v {
            Ok(Verdict::Admit(a)) => a,
            other => panic!("not admitted: {other:?}"),
        }
    }

    #[test]
    fn answers() {
        let a = admitted(verdict("cam", 200, b""));
        assert_eq!(a.name, "cam");
        assert_eq!(a.options, StreamOptions::default());
        let a = admitted(verdict(
            "cam",
            204,
            br#"{"name":"public-1","record":true,"ladder":false,"extra":[1]}"#,
        ));
        assert_eq!(a.name, "public-1");
        assert_eq!(a.options.record, Some(true));
        assert_eq!(a.options.ladder, Some(false));
        assert!(matches!(
            verdict("cam", 403, b"banned"),
            Ok(Verdict::Refuse(w)) if w.contains("banned")
        ));
        assert!(verdict("cam", 500, b"").is_err());
        assert!(verdict("cam", 302, b"").is_err());
        assert!(verdict("cam", 200, b"<html>").is_err());
        assert!(verdict("cam", 200, b"[1,2]").is_err());
        assert!(verdict("cam", 200, br#"{"name":"../etc"}"#).is_err());
        assert!(verdict("cam", 200, br#"{"record":"yes"}"#).is_err());
    }
}
