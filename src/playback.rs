//! The playback webhook (`playback_webhook`): the platform decides, once per viewer, whether
//! a viewer may watch a private stream. The origin asks when a viewer without a token opens a
//! stream's multivariant playlist; on a yes it redirects the viewer to the stream's token
//! path (README, "Private streams"). Parts, segments and media playlists never call it.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use llhls_ingest::webhook::{post_json, WebhookUrl};
use llhls_origin::token::{PlaybackAuth, PlaybackDecision, PlaybackRequest};

/// Asks the platform's webhook about viewers.
pub struct PlaybackWebhook {
    url: WebhookUrl,
    timeout: Duration,
}

impl PlaybackWebhook {
    /// The webhook at `url`, given `timeout` to answer.
    pub fn new(url: WebhookUrl, timeout: Duration) -> Self {
        PlaybackWebhook { url, timeout }
    }
}

/// The JSON body POSTed for `req`.
fn body(req: &PlaybackRequest) -> Vec<u8> {
    serde_json::json!({
        "action": "play",
        "stream": req.stream,
        "remote_addr": req.remote_addr.map(|a| a.to_string()),
        "user_agent": req.user_agent,
        "referer": req.referer,
        "query": req.query,
    })
    .to_string()
    .into_bytes()
}

/// What the platform's answer means: a 2xx admits, anything else refuses (a failure too:
/// private streams fail closed), with the reason for the log and the viewer.
fn decide(answer: Result<(http::StatusCode, bytes::Bytes), String>) -> PlaybackDecision {
    match answer {
        Ok((status, _)) if status.is_success() => PlaybackDecision::Allow,
        Ok((status, body)) if status.is_client_error() => {
            let text: String = String::from_utf8_lossy(&body)
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect();
            PlaybackDecision::Deny(if text.trim().is_empty() {
                format!("the platform answered {status}")
            } else {
                format!("the platform answered {status}: {}", text.trim())
            })
        }
        Ok((status, _)) => PlaybackDecision::Deny(format!(
            "the platform could not decide (it answered {status})"
        )),
        Err(e) => PlaybackDecision::Deny(format!("the platform could not be asked: {e}")),
    }
}

impl PlaybackAuth for PlaybackWebhook {
    fn authorize(
        &self,
        req: PlaybackRequest,
    ) -> Pin<Box<dyn Future<Output = PlaybackDecision> + Send + 'static>> {
        let (url, timeout) = (self.url.clone(), self.timeout);
        Box::pin(async move {
            let started = std::time::Instant::now();
            let decision = decide(post_json(&url, body(&req), &[], timeout).await);
            tracing::debug!(
                stream = %req.stream,
                webhook_ms = started.elapsed().as_millis() as u64,
                admitted = matches!(decision, PlaybackDecision::Allow),
                "playback webhook answered"
            );
            decision
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::StatusCode;

    #[test]
    fn only_a_2xx_admits() {
        assert_eq!(
            decide(Ok((StatusCode::NO_CONTENT, Bytes::new()))),
            PlaybackDecision::Allow
        );
        let deny = |r| match decide(r) {
            PlaybackDecision::Deny(why) => why,
            PlaybackDecision::Allow => panic!("admitted"),
        };
        let why = deny(Ok((StatusCode::FORBIDDEN, Bytes::from("not subscribed\n"))));
        assert!(
            why.contains("403") && why.contains("not subscribed"),
            "{why}"
        );
        assert!(deny(Ok((StatusCode::FOUND, Bytes::new()))).contains("could not decide"));
        assert!(deny(Ok((StatusCode::BAD_GATEWAY, Bytes::new()))).contains("502"));
        assert!(deny(Err("no answer within 2000 ms".into())).contains("no answer"));
        let long = deny(Ok((StatusCode::FORBIDDEN, Bytes::from(vec![b'x'; 5000]))));
        assert!(long.len() < 300, "the reason is bounded");
    }

    #[test]
    fn the_body_says_who_asks() {
        let b = body(&PlaybackRequest {
            stream: "cam".into(),
            remote_addr: Some("203.0.113.7".parse().unwrap()),
            user_agent: Some("Mozilla/5.0".into()),
            referer: None,
            query: "session=abc".into(),
        });
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["action"], "play");
        assert_eq!(v["stream"], "cam");
        assert_eq!(v["remote_addr"], "203.0.113.7");
        assert_eq!(v["query"], "session=abc");
        assert!(v["referer"].is_null());
    }
}
