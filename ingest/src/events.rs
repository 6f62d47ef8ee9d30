//! Lifecycle webhooks (`events_webhook`): every stream start and end, publisher disconnect and
//! reconnect, and refused publish is POSTed to the platform as one JSON object.
//!
//! Delivery is at least once, in the order the events happened: one task sends the queue's
//! oldest event until the webhook answers 2xx, retrying with a growing pause (250 ms doubling
//! to 30 s) while it fails, then moves on. A 4xx other than 408 and 429 rejects that event:
//! it is counted and not retried (it would hold every later event back). Every event carries an `id`, also sent as the
//! `Idempotency-Key` header, so the platform can drop a repeat (a retry whose earlier answer
//! was lost). The queue is bounded: when the webhook has been down long enough to fill it, new
//! events are dropped and counted (`llhls_events_dropped_total`). Emitting never waits.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use llhls_origin::StreamEvent;
use serde_json::{json, Value};

use crate::webhook::{post_json, WebhookUrl};

/// Lifecycle webhook settings.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// Where events go.
    pub url: WebhookUrl,
    /// The most one delivery attempt may take.
    pub timeout: Duration,
    /// Events held while the webhook is down; more are dropped.
    pub queue: usize,
}

/// The pause before the first retry; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest pause between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The queue and its counters.
pub struct Events {
    config: EventsConfig,
    queue: Mutex<VecDeque<Value>>,
    wake: tokio::sync::Notify,
    /// This run's prefix of event ids (random), so ids never repeat across restarts.
    run: String,
    next: AtomicU64,
    delivered: AtomicU64,
    retries: AtomicU64,
    dropped: AtomicU64,
    rejected: AtomicU64,
}

static EVENTS: OnceLock<Arc<Events>> = OnceLock::new();

impl Events {
    /// Starts the delivery task and makes [`emit`] send to it. Call inside the runtime.
    pub fn install(config: EventsConfig) -> Arc<Events> {
        let mut r = [0u8; 8];
        let _ = getrandom::fill(&mut r);
        let e = Arc::new(Events {
            config,
            queue: Mutex::new(VecDeque::new()),
            wake: tokio::sync::Notify::new(),
            run: r.iter().map(|b| format!("{b:02x}")).collect(),
            next: AtomicU64::new(1),
            delivered: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        });
        if EVENTS.set(e.clone()).is_ok() {
            tokio::spawn(e.clone().deliver());
        }
        EVENTS.get().cloned().unwrap_or(e)
    }

    /// The origin's stream events (start, end) as lifecycle events.
    pub fn origin_sink() -> llhls_origin::EventSink {
        Arc::new(|ev| match ev {
            StreamEvent::Started {
                stream,
                publisher,
                codecs,
                resolution,
                frame_rate,
                renditions,
            } => emit(
                "stream_started",
                &stream,
                json!({
                    "publisher": publisher,
                    "codecs": codecs,
                    "width": resolution.map(|r| r.0),
                    "height": resolution.map(|r| r.1),
                    "frame_rate": frame_rate,
                    "renditions": renditions,
                }),
            ),
            StreamEvent::Ended {
                stream,
                duration_secs,
                bytes_in,
                frames_in,
                discontinuities,
                recording,
            } => emit(
                "stream_ended",
                &stream,
                json!({
                    "duration_secs": (duration_secs * 1000.0).round() / 1000.0,
                    "bytes_in": bytes_in,
                    "frames_in": frames_in,
                    "discontinuities": discontinuities,
                    "recording": recording,
                }),
            ),
        })
    }

    fn push(&self, kind: &str, stream: &str, fields: Value) {
        let seq = self.next.fetch_add(1, Relaxed);
        let mut ev = json!({
            "id": format!("{}-{seq}", self.run),
            "sequence": seq,
            "type": kind,
            "stream": stream,
            "time": llhls_origin::wall_now().to_rfc3339(),
        });
        if let (Some(obj), Value::Object(extra)) = (ev.as_object_mut(), fields) {
            obj.extend(extra);
        }
        {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            if q.len() >= self.config.queue {
                drop(q);
                let n = self.dropped.fetch_add(1, Relaxed) + 1;
                if n == 1 || n.is_multiple_of(100) {
                    tracing::warn!(
                        dropped = n,
                        event = kind,
                        stream,
                        "events webhook queue full: event dropped"
                    );
                }
                return;
            }
            q.push_back(ev);
        }
        self.wake.notify_one();
    }

    async fn deliver(self: Arc<Self>) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let next = self
                .queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .front()
                .cloned();
            let Some(ev) = next else {
                self.wake.notified().await;
                continue;
            };
            let id = ev["id"].as_str().unwrap_or_default().to_string();
            let body = serde_json::to_vec(&ev).unwrap_or_default();
            let headers = [("idempotency-key", id.clone())];
            let answer = post_json(&self.config.url, body, &headers, self.config.timeout).await;
            let failure = match answer {
                Ok((status, _)) if status.is_success() => None,
                // The platform refuses this event (not a passing fault: 408 and 429 are
                // retried): retrying it would hold every later event back for good.
                Ok((status, text))
                    if status.is_client_error()
                        && status != http::StatusCode::REQUEST_TIMEOUT
                        && status != http::StatusCode::TOO_MANY_REQUESTS =>
                {
                    let text = String::from_utf8_lossy(&text[..text.len().min(200)]).into_owned();
                    tracing::warn!(event = %id, status = status.as_u16(), "the events webhook rejected this event ({}); not retried", text.trim());
                    self.queue
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .pop_front();
                    self.rejected.fetch_add(1, Relaxed);
                    backoff = FIRST_BACKOFF;
                    continue;
                }
                Ok((status, _)) => Some(format!("status {status}")),
                Err(e) => Some(e),
            };
            match failure {
                None => {
                    self.queue
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .pop_front();
                    self.delivered.fetch_add(1, Relaxed);
                    backoff = FIRST_BACKOFF;
                }
                Some(why) => {
                    let n = self.retries.fetch_add(1, Relaxed) + 1;
                    if backoff == FIRST_BACKOFF || n.is_multiple_of(20) {
                        tracing::warn!(event = %id, webhook = %self.config.url, retry_in_ms = backoff.as_millis() as u64, "events webhook failed ({why}): retrying");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// The `/metrics` lines.
    pub fn render_metrics(&self) -> String {
        let queued = self.queue.lock().unwrap_or_else(|e| e.into_inner()).len();
        format!(
            "# HELP llhls_events_delivered_total Lifecycle events the events webhook accepted (2xx).\n\
             # TYPE llhls_events_delivered_total counter\n\
             llhls_events_delivered_total {}\n\
             # HELP llhls_events_retries_total Failed deliveries of lifecycle events, each retried.\n\
             # TYPE llhls_events_retries_total counter\n\
             llhls_events_retries_total {}\n\
             # HELP llhls_events_dropped_total Lifecycle events dropped because the queue was full.\n\
             # TYPE llhls_events_dropped_total counter\n\
             llhls_events_dropped_total {}\n\
             # HELP llhls_events_rejected_total Lifecycle events the events webhook answered with a 4xx (other than 408 and 429): not retried.\n\
             # TYPE llhls_events_rejected_total counter\n\
             llhls_events_rejected_total {}\n\
             # HELP llhls_events_queued Lifecycle events waiting for delivery.\n\
             # TYPE llhls_events_queued gauge\n\
             llhls_events_queued {queued}\n",
            self.delivered.load(Relaxed),
            self.retries.load(Relaxed),
            self.dropped.load(Relaxed),
            self.rejected.load(Relaxed),
        )
    }
}

/// Queues lifecycle event `kind` about `stream` with these extra fields (a JSON object), when
/// the events webhook is on; returns at once.
pub fn emit(kind: &str, stream: &str, fields: Value) {
    if let Some(e) = EVENTS.get() {
        e.push(kind, stream, fields);
    }
}

/// A refused publish, as a lifecycle event.
pub fn refused(protocol: &str, stream: &str, remote: Option<std::net::SocketAddr>, reason: &str) {
    emit(
        "publish_refused",
        stream,
        json!({
            "protocol": protocol,
            "remote_addr": remote.map(|a| a.to_string()),
            "reason": reason,
        }),
    );
}
