//! The lean HTTP/1.1 path: a held viewer costs a few KB, not hyper's 20.
//!
//! A blocking playlist request is held for up to three target durations, and on HTTP/1.1 each
//! held viewer is a connection. hyper keeps an 8 KB read buffer and an 8 KB write buffer on
//! every connection for its whole life (neither is configurable below 8 KB), so a held
//! HTTP/1.1 viewer cost 24-25 KB of server memory, of which the request itself was under 1 KB
//! (`origin/tests/held_memory.rs`, benches/README.md "Memory per held viewer").
//!
//! This module reads and answers the requests players and CDN edges send, those without a
//! body, itself: the request head is read into a buffer that is freed once parsed (it is empty
//! while the request waits), the response head is built in a buffer sized to it and dropped
//! once written, and the body goes out with vectored writes straight from the origin's
//! `Bytes`. Framing follows RFC 9112: `Content-Length` when the body's size is known,
//! chunked otherwise (hinted parts that grow), close-delimited for HTTP/1.0; keep-alive and
//! pipelining as HTTP/1.1 defines them; a `Date` header on every response (cached per second,
//! as hyper does). While a request waits, the socket is watched: a client that hangs up drops
//! its request at once, and bytes it pipelines are kept for the next request.
//!
//! Everything else is handed to hyper with the bytes already read, and hyper serves the rest of
//! the connection: a request with a body or `Expect` (WHIP offers), an `Upgrade`, `CONNECT`,
//! the HTTP/2 preface, a head this parser rejects or one over the size limit (hyper then
//! answers 400 or 431 as it always did). So the lean path never has to be right about
//! anything but simple requests, and hyper stays the authority for the rest.

use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Version};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Most header fields a request may carry (hyper's limit too); more goes to hyper, which
/// answers 431.
const MAX_HEADERS: usize = 100;
/// First size of the read buffer: players' and edges' request heads are 200-800 bytes.
const FIRST_READ: usize = 1024;

/// How the lean path let go of a connection.
pub enum Ended<IO> {
    /// Closed, or to be closed: the client hung up, asked to close, or the server is shutting
    /// down.
    Closed,
    /// hyper serves the rest of the connection, starting with these bytes already read.
    HandOff(IO, Bytes),
}

/// A request head read off the connection.
struct Head {
    request: Request<http_body_util::Empty<Bytes>>,
    /// Bytes of the buffer the head took.
    len: usize,
    /// The client keeps the connection open after this request.
    keep_alive: bool,
}

// A return value, never stored: boxing the head would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Parsed {
    Complete(Head),
    Partial,
    /// Not one for the lean path: hyper takes the connection.
    Other,
}

/// Whether a `Connection` header lists `token`.
fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

fn parse(buf: &[u8]) -> Parsed {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Request::new(&mut fields);
    let len = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    let (Some(method), Some(path), Some(version)) = (r.method, r.path, r.version) else {
        return Parsed::Other;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::Other;
    };
    if method == Method::CONNECT {
        return Parsed::Other;
    }
    let Ok(uri) = path.parse::<http::Uri>() else {
        return Parsed::Other;
    };
    let mut headers = HeaderMap::with_capacity(r.headers.len());
    for f in r.headers.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(f.name.as_bytes()),
            HeaderValue::from_bytes(f.value),
        ) else {
            return Parsed::Other;
        };
        // A body (or the promise of one), or a protocol switch: hyper's.
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::EXPECT
            || name == header::UPGRADE
        {
            return Parsed::Other;
        }
        headers.append(name, value);
    }
    let version = if version == 1 {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    let keep_alive = if version == Version::HTTP_11 {
        !connection_has(&headers, "close")
    } else {
        connection_has(&headers, "keep-alive")
    };
    let mut request = Request::new(http_body_util::Empty::new());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    Parsed::Complete(Head {
        request,
        len,
        keep_alive,
    })
}

/// The `Date` header value, formatted once per second per thread.
fn date() -> HeaderValue {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static CACHED: RefCell<(u64, Option<HeaderValue>)> = const { RefCell::new((0, None)) };
    }
    let now = SystemTime::now();
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    CACHED.with(|c| {
        let mut c = c.borrow_mut();
        match &c.1 {
            Some(v) if c.0 == secs => v.clone(),
            _ => {
                let v = HeaderValue::from_str(&httpdate::fmt_http_date(now))
                    .expect("an HTTP date is a valid header value");
                *c = (secs, Some(v.clone()));
                v
            }
        }
    })
}

/// Resolves once the server starts shutting down (never, if the sender is gone).
async fn shutting_down(rx: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Reads what the client sends while its request waits or its response streams: pipelined
/// requests are kept (up to `max`, then the socket is left unread), a hang-up (end of stream
/// or an error) resolves `false`. Resolves `true` after bytes were kept.
async fn watch_client<IO: AsyncRead + Unpin>(io: &mut IO, buf: &mut Vec<u8>, max: usize) -> bool {
    if buf.len() >= max {
        std::future::pending::<()>().await;
    }
    let mut chunk = [0u8; 256];
    match io.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

/// Writes every byte of `parts` in as few (vectored) writes as the socket takes.
async fn write_all<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    parts: &mut [&[u8]],
) -> std::io::Result<()> {
    let mut i = 0;
    while i < parts.len() {
        if parts[i].is_empty() {
            i += 1;
            continue;
        }
        let mut iov = [IoSlice::new(&[]); 4];
        let n_iov = (parts.len() - i).min(iov.len());
        for (slot, p) in iov.iter_mut().zip(&parts[i..i + n_iov]) {
            *slot = IoSlice::new(p);
        }
        let mut n = io.write_vectored(&iov[..n_iov]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 && i < parts.len() {
            let take = n.min(parts[i].len());
            parts[i] = &parts[i][take..];
            n -= take;
            if parts[i].is_empty() {
                i += 1;
            }
        }
    }
    Ok(())
}

/// How a response's body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    /// `Content-Length`.
    Length,
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes (HTTP/1.0, size unknown).
    Close,
}

/// The response head, with the `Date`, framing and `Connection` headers it needs.
fn response_head(
    parts: &mut http::response::Parts,
    size: Option<u64>,
    head_request: bool,
    version: Version,
    keep_alive: &mut bool,
) -> (Vec<u8>, Framing) {
    let status = parts.status;
    let h = &mut parts.headers;
    if connection_has(h, "close") {
        *keep_alive = false;
    }
    let bodiless = status.is_informational()
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED;
    let framing = if head_request || bodiless {
        Framing::None
    } else if h.contains_key(header::CONTENT_LENGTH) {
        Framing::Length
    } else if let Some(n) = size {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        Framing::Length
    } else if version == Version::HTTP_11 {
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        Framing::Chunked
    } else {
        *keep_alive = false;
        Framing::Close
    };
    if !h.contains_key(header::DATE) {
        h.insert(header::DATE, date());
    }
    if !*keep_alive && version == Version::HTTP_11 && !connection_has(h, "close") {
        h.append(header::CONNECTION, HeaderValue::from_static("close"));
    } else if *keep_alive && version == Version::HTTP_10 {
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    }
    let size: usize = h.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    let mut out = Vec::with_capacity(size + 40);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (k, v) in h.iter() {
        out.extend_from_slice(k.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    (out, framing)
}

/// Serves the connection's requests until it closes or a request is one for hyper.
/// `call` answers one request; `max_head` bounds a request head (and what a waiting client may
/// pipeline); after `shutdown` turns true, the connection closes once its response is out.
pub async fn serve<IO, F, Fut, B>(
    mut io: IO,
    call: F,
    max_head: usize,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<Ended<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    F: Fn(Request<http_body_util::Empty<Bytes>>) -> Fut,
    Fut: Future<Output = Response<B>>,
    B: http_body::Body<Data = Bytes>,
{
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // A complete request head.
        let head = loop {
            if !buf.is_empty() {
                match parse(&buf) {
                    Parsed::Complete(h) => break h,
                    Parsed::Partial if buf.len() < max_head => {}
                    Parsed::Partial | Parsed::Other => {
                        return Ok(Ended::HandOff(io, Bytes::from(buf)));
                    }
                }
            }
            if buf.len() == buf.capacity() {
                buf.reserve(if buf.is_empty() {
                    FIRST_READ
                } else {
                    buf.len()
                });
            }
            let n = if buf.is_empty() {
                tokio::select! {
                    r = io.read_buf(&mut buf) => r?,
                    _ = shutting_down(&mut shutdown) => return Ok(Ended::Closed),
                }
            } else {
                io.read_buf(&mut buf).await?
            };
            if n == 0 {
                return Ok(Ended::Closed);
            }
        };
        buf.drain(..head.len);
        if buf.is_empty() {
            // Nothing pipelined: hold no buffer while the request waits.
            buf = Vec::new();
        }
        let head_request = head.request.method() == Method::HEAD;
        let version = head.request.version();
        let mut keep_alive = head.keep_alive;

        // The response, while watching for the client hanging up.
        let response = call(head.request);
        tokio::pin!(response);
        // Biased: a response that is ready wins over the client's end of stream (a client may
        // send its request and half-close at once, as `nc -N` does).
        let response = loop {
            tokio::select! {
                biased;
                r = &mut response => break r,
                open = watch_client(&mut io, &mut buf, max_head) => {
                    if !open {
                        return Ok(Ended::Closed);
                    }
                }
            }
        };
        if *shutdown.borrow() {
            keep_alive = false;
        }
        let (mut parts, body) = response.into_parts();
        let size = body.size_hint().exact();
        let (head_bytes, framing) =
            response_head(&mut parts, size, head_request, version, &mut keep_alive);
        drop(parts);
        let mut head = Some(head_bytes);
        if framing != Framing::None {
            let mut body = std::pin::pin!(body);
            loop {
                let frame = loop {
                    tokio::select! {
                        biased;
                        f = body.frame() => break f,
                        open = watch_client(&mut io, &mut buf, max_head) => {
                            if !open {
                                return Ok(Ended::Closed);
                            }
                        }
                    }
                };
                let data = match frame {
                    // A body error (none today: bodies are infallible) ends the connection.
                    Some(Err(_)) => return Ok(Ended::Closed),
                    Some(Ok(f)) => match f.into_data() {
                        Ok(d) => d,
                        Err(_) => continue, // trailers: not sent on HTTP/1.1
                    },
                    None => break,
                };
                if data.is_empty() {
                    continue;
                }
                let h = head.take().unwrap_or_default();
                if framing == Framing::Chunked {
                    let size = format!("{:x}\r\n", data.len());
                    write_all(&mut io, &mut [&h, size.as_bytes(), &data, b"\r\n"]).await?;
                } else {
                    write_all(&mut io, &mut [&h, &data]).await?;
                }
            }
        }
        let h = head.take().unwrap_or_default();
        let end: &[u8] = if framing == Framing::Chunked {
            b"0\r\n\r\n"
        } else {
            b""
        };
        write_all(&mut io, &mut [&h, end]).await?;
        io.flush().await?;
        if !keep_alive {
            let _ = io.shutdown().await;
            return Ok(Ended::Closed);
        }
    }
}

/// A connection whose first bytes were already read: they are read again first.
pub(crate) struct Rewind<IO> {
    pre: Bytes,
    io: IO,
}

impl<IO> Rewind<IO> {
    pub(crate) fn new(io: IO, pre: Bytes) -> Self {
        Rewind { pre, io }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewind<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.pre.is_empty() {
            let n = self.pre.len().min(buf.remaining());
            buf.put_slice(&self.pre[..n]);
            self.pre.advance(n);
            if self.pre.is_empty() {
                self.pre = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Rewind<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use http_body_util::Full;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::DuplexStream;

    /// A body of two chunks whose size is not known in advance (a hinted part that grows).
    struct Growing(Vec<Bytes>);

    impl http_body::Body for Growing {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            if self.0.is_empty() {
                Poll::Ready(None)
            } else {
                Poll::Ready(Some(Ok(http_body::Frame::data(self.0.remove(0)))))
            }
        }
    }

    type Body = http_body_util::Either<Full<Bytes>, Growing>;

    /// Answers `/growing` with a chunked body, `/close` with `Connection: close`, anything else
    /// with its path as a sized body.
    fn answer(req: &Request<http_body_util::Empty<Bytes>>) -> Response<Body> {
        match req.uri().path() {
            "/growing" => Response::new(http_body_util::Either::Right(Growing(vec![
                Bytes::from_static(b"abc"),
                Bytes::from_static(b"defgh"),
            ]))),
            path => {
                let mut r = Response::new(http_body_util::Either::Left(Full::new(
                    Bytes::copy_from_slice(path.as_bytes()),
                )));
                if path == "/close" {
                    r.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                if path == "/304" {
                    *r.status_mut() = StatusCode::NOT_MODIFIED;
                }
                r
            }
        }
    }

    struct Server {
        client: DuplexStream,
        task: tokio::task::JoinHandle<std::io::Result<Ended<DuplexStream>>>,
        stop: tokio::sync::watch::Sender<bool>,
        calls: Arc<AtomicUsize>,
    }

    fn start(max_head: usize) -> Server {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (stop, rx) = tokio::sync::watch::channel(false);
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let task = tokio::spawn(serve(
            server,
            move |req| {
                c.fetch_add(1, Ordering::SeqCst);
                let r = answer(&req);
                async move { r }
            },
            max_head,
            rx,
        ));
        Server {
            client,
            task,
            stop,
            calls,
        }
    }

    /// Reads until `n` responses have arrived whole (by their framing) or the stream ends;
    /// returns the raw bytes.
    async fn read_responses(c: &mut DuplexStream, n: usize) -> String {
        let mut out = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if count_responses(&out) >= n {
                break;
            }
            match tokio::time::timeout(std::time::Duration::from_secs(5), c.read(&mut chunk))
                .await
                .expect("response within 5 s")
                .unwrap()
            {
                0 => break,
                k => out.extend_from_slice(&chunk[..k]),
            }
        }
        String::from_utf8(out).unwrap()
    }

    /// Sends `req` and reads until the server closes the connection.
    async fn until_closed(c: &mut DuplexStream, req: &[u8]) -> String {
        c.write_all(req).await.unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).await.unwrap();
        got
    }

    /// Complete responses in `b` (sized, chunked or bodiless).
    fn count_responses(mut b: &[u8]) -> usize {
        let mut n = 0;
        loop {
            let mut fields = [httparse::EMPTY_HEADER; 32];
            let mut r = httparse::Response::new(&mut fields);
            let Ok(httparse::Status::Complete(len)) = r.parse(b) else {
                return n;
            };
            let field = |name: &str| {
                r.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| std::str::from_utf8(h.value).unwrap().to_owned())
            };
            let rest = &b[len..];
            let body = if let Some(l) = field("content-length") {
                l.parse::<usize>().unwrap()
            } else if field("transfer-encoding").is_some() {
                match std::str::from_utf8(rest)
                    .ok()
                    .and_then(|s| s.find("0\r\n\r\n"))
                {
                    Some(i) => i + 5,
                    None => return n,
                }
            } else {
                0
            };
            if rest.len() < body {
                return n;
            }
            n += 1;
            b = &rest[body..];
        }
    }

    #[tokio::test]
    async fn keep_alive_and_pipelined_requests_are_answered_in_order_with_dates() {
        let mut s = start(8192);
        s.client
            .write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /bb?q=1 HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let got = read_responses(&mut s.client, 2).await;
        let first = got.find("\r\n\r\n/a").expect("first body");
        let second = got.find("\r\n\r\n/bb").expect("second body");
        assert!(first < second, "{got}");
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        assert_eq!(got.matches("content-length: 2\r\n").count(), 1, "{got}");
        assert_eq!(got.matches("content-length: 3\r\n").count(), 1, "{got}");
        assert_eq!(got.matches("\r\ndate: ").count(), 2, "{got}");
        assert!(!got.contains("connection: close"), "{got}");
        // The connection stays open for a third request.
        s.client
            .write_all(b"HEAD /ccc HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let got = read_responses(&mut s.client, 1).await;
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        assert!(got.ends_with("\r\n\r\n"), "HEAD has no body: {got}");
        assert_eq!(s.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_body_of_unknown_size_is_chunked_on_http_1_1_and_closes_on_http_1_0() {
        let mut s = start(8192);
        s.client
            .write_all(b"GET /growing HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let got = read_responses(&mut s.client, 1).await;
        assert!(
            got.contains("transfer-encoding: chunked\r\n")
                && got.ends_with("\r\n\r\n3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n"),
            "{got}"
        );
        let rest = until_closed(&mut s.client, b"GET /growing HTTP/1.0\r\n\r\n").await;
        assert!(
            !rest.contains("transfer-encoding") && rest.ends_with("\r\n\r\nabcdefgh"),
            "{rest}"
        );
        assert!(matches!(s.task.await.unwrap(), Ok(Ended::Closed)));
    }

    #[tokio::test]
    async fn close_is_honoured_both_ways_and_http_1_0_keeps_alive_only_when_asked() {
        // The client asks.
        let mut s = start(8192);
        let got = until_closed(
            &mut s.client,
            b"GET /a HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n",
        )
        .await;
        assert!(got.contains("connection: close\r\n"), "{got}");
        // The response says so.
        let mut s = start(8192);
        let got = until_closed(
            &mut s.client,
            b"GET /close HTTP/1.1\r\n\r\nGET /never HTTP/1.1\r\n\r\n",
        )
        .await;
        assert!(got.ends_with("/close") && !got.contains("/never"), "{got}");
        assert_eq!(s.calls.load(Ordering::SeqCst), 1);
        // HTTP/1.0 with keep-alive stays open and says so; a 304 has no body.
        let mut s = start(8192);
        s.client
            .write_all(b"GET /304 HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .await
            .unwrap();
        let got = read_responses(&mut s.client, 1).await;
        assert!(
            got.starts_with("HTTP/1.1 304 Not Modified\r\n")
                && got.contains("connection: keep-alive\r\n")
                && got.ends_with("\r\n\r\n"),
            "{got}"
        );
        let got = until_closed(&mut s.client, b"GET /b HTTP/1.0\r\n\r\n").await;
        assert!(got.ends_with("\r\n\r\n/b"), "{got}");
    }

    #[tokio::test]
    async fn bodies_upgrades_http2_and_bad_or_huge_heads_go_to_hyper_with_their_bytes() {
        let cases: [&[u8]; 7] = [
            b"POST /whip/live/x HTTP/1.1\r\nContent-Length: 3\r\n\r\nv=0",
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            b"PUT /x HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET /a HTTP/1.1\r\nBad Header: x\r\n\r\n",
            b"CONNECT example.com:443 HTTP/1.1\r\n\r\n",
        ];
        for bytes in cases {
            let mut s = start(8192);
            s.client.write_all(bytes).await.unwrap();
            match s.task.await.unwrap() {
                Ok(Ended::HandOff(_, read)) => assert_eq!(&read[..], bytes),
                _ => panic!("not handed over: {}", String::from_utf8_lossy(bytes)),
            }
            assert_eq!(s.calls.load(Ordering::SeqCst), 0);
        }
        // A head that does not end within the limit.
        let mut s = start(1024);
        let mut big = b"GET /a HTTP/1.1\r\n".to_vec();
        big.extend(std::iter::repeat_n(b"X-Pad: 0123456789\r\n".as_slice(), 100).flatten());
        s.client.write_all(&big).await.unwrap();
        match s.task.await.unwrap() {
            Ok(Ended::HandOff(_, read)) => assert!(read.len() >= 1024 && big.starts_with(&read)),
            _ => panic!("an oversized head was not handed over"),
        }
        // After a lean request, a request with a body still reaches hyper with its bytes.
        let mut s = start(8192);
        s.client
            .write_all(b"GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 1\r\n\r\nz")
            .await
            .unwrap();
        let got = read_responses(&mut s.client, 1).await;
        assert!(got.ends_with("/a"), "{got}");
        match s.task.await.unwrap() {
            Ok(Ended::HandOff(_, read)) => {
                assert_eq!(&read[..], b"POST /b HTTP/1.1\r\nContent-Length: 1\r\n\r\nz")
            }
            _ => panic!("not handed over"),
        }
    }

    #[tokio::test]
    async fn a_request_sent_with_a_half_close_still_gets_its_ready_answer() {
        for _ in 0..20 {
            let mut s = start(8192);
            s.client
                .write_all(b"GET /a HTTP/1.0\r\n\r\n")
                .await
                .unwrap();
            s.client.shutdown().await.unwrap();
            let mut got = String::new();
            s.client.read_to_string(&mut got).await.unwrap();
            assert!(got.ends_with("\r\n\r\n/a"), "{got}");
        }
    }

    #[tokio::test]
    async fn a_client_that_hangs_up_drops_its_waiting_request_and_shutdown_closes_idle_ones() {
        struct Guard(Arc<AtomicUsize>);
        impl Drop for Guard {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let (mut client, server) = tokio::io::duplex(4096);
        let dropped = Arc::new(AtomicUsize::new(0));
        let d = dropped.clone();
        let (_stop, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(serve(
            server,
            move |_req| {
                let g = Guard(d.clone());
                async move {
                    std::future::pending::<()>().await;
                    drop(g);
                    Response::new(Full::new(Bytes::new()))
                }
            },
            8192,
            rx,
        ));
        client
            .write_all(b"GET /live/x/media.m3u8?_HLS_msn=9 HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(dropped.load(Ordering::SeqCst), 0, "still waiting");
        drop(client);
        assert!(matches!(task.await.unwrap(), Ok(Ended::Closed)));
        assert_eq!(dropped.load(Ordering::SeqCst), 1);

        // Shutdown: an idle connection closes at once, one whose response is out is told so.
        let mut s = start(8192);
        s.client
            .write_all(b"GET /a HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        read_responses(&mut s.client, 1).await;
        s.stop.send(true).unwrap();
        assert!(matches!(s.task.await.unwrap(), Ok(Ended::Closed)));
        let mut s = start(8192);
        s.stop.send(true).unwrap();
        let got = until_closed(&mut s.client, b"GET /a HTTP/1.1\r\n\r\n").await;
        // Either closed before reading it, or answered with `connection: close`.
        assert!(
            got.is_empty() || got.contains("connection: close\r\n"),
            "{got}"
        );
    }
}
