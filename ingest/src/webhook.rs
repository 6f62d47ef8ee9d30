//! A minimal HTTP/1.1 client for the platform's webhooks: one POST of a JSON body on a new
//! connection, the whole exchange bounded by a timeout, the answer's body bounded in size.
//! Plain `http://` only: webhooks are expected on the platform's own network (see README,
//! "Platform integration").

use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;

/// The largest webhook answer read; a longer one is a failure.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A webhook URL, checked once at startup.
#[derive(Debug, Clone)]
pub struct WebhookUrl {
    uri: Uri,
    host: String,
    port: u16,
}

impl WebhookUrl {
    /// Parses an `http://host[:port]/path` URL.
    pub fn parse(s: &str) -> Result<WebhookUrl, String> {
        let uri: Uri = s
            .parse()
            .map_err(|e| format!("webhook URL {s:?} does not parse: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "webhook URL {s:?}: only http:// is supported (put the webhook on your own network, or behind a local TLS proxy)"
            ));
        }
        let host = uri
            .host()
            .ok_or_else(|| format!("webhook URL {s:?} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(80);
        Ok(WebhookUrl { uri, host, port })
    }
}

impl std::fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.uri.fmt(f)
    }
}

/// POSTs `body` (JSON) to `url` with these extra headers; the answer's status and body.
/// Errors (connection, timeout, an over-long answer) are said in plain words for the log.
pub async fn post_json(
    url: &WebhookUrl,
    body: Vec<u8>,
    headers: &[(&'static str, String)],
    timeout: Duration,
) -> Result<(StatusCode, Bytes), String> {
    match tokio::time::timeout(timeout, exchange(url, body, headers, timeout)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

async fn exchange(
    url: &WebhookUrl,
    body: Vec<u8>,
    headers: &[(&'static str, String)],
    timeout: Duration,
) -> Result<(StatusCode, Bytes), String> {
    let sock = tokio::net::TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let _ = sock.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(sock))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    // The connection task ends with the exchange, or at the latest a second after the
    // timeout (after the caller's own timeout has said why).
    tokio::spawn(async move {
        let _ = tokio::time::timeout(timeout + Duration::from_secs(1), conn).await;
    });
    let path = url.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let authority = url
        .uri
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    let mut req = Request::post(path)
        .header(header::HOST, authority)
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::USER_AGENT,
            concat!("llhls/", env!("CARGO_PKG_VERSION")),
        );
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("building the request: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the answer (at most {MAX_ANSWER_BYTES} bytes): {e}"))?
        .to_bytes();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(WebhookUrl::parse("http://127.0.0.1:9/auth").is_ok());
        let u = WebhookUrl::parse("http://[::1]:8000/x?y=1").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 8000));
        assert_eq!(WebhookUrl::parse("http://example.net/").unwrap().port, 80);
        assert!(WebhookUrl::parse("https://example.net/").is_err());
        assert!(WebhookUrl::parse("ftp://example.net/").is_err());
        assert!(WebhookUrl::parse("not a url").is_err());
    }
}
