//! The lean HTTP/1.1 path (`llhls_origin::h1`): arbitrary bytes from a client, in arbitrary
//! pieces, against a service that answers with sized, chunked (unknown size) and bodiless
//! responses. Never panics or hangs; what it hands to hyper is exactly the client's bytes that
//! it did not answer (a run of the input, never altered); every byte it writes parses as
//! complete HTTP/1.1 responses, one per request it answered.
#![no_main]

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use libfuzzer_sys::fuzz_target;
use llhls_origin::h1::{serve, Ended};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A body of unknown size (as a hinted part that grows): two chunks.
struct Growing(u8);

impl http_body::Body for Growing {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.0 == 0 {
            return Poll::Ready(None);
        }
        self.0 -= 1;
        Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
            b"part",
        )))))
    }
}

type Body = http_body_util::Either<http_body_util::Full<Bytes>, Growing>;

fn answer(req: &Request<http_body_util::Empty<Bytes>>) -> Response<Body> {
    let path = req.uri().path().as_bytes();
    let mut r = match path.last().copied().unwrap_or(0) % 4 {
        0 => Response::new(Body::Right(Growing(2))),
        1 => {
            let mut r = Response::new(Body::Left(http_body_util::Full::new(Bytes::new())));
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r
        }
        _ => Response::new(Body::Left(http_body_util::Full::new(
            Bytes::copy_from_slice(path),
        ))),
    };
    if path.len() % 7 == 3 {
        r.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    r
}

/// Checks that `b` is one complete HTTP/1.1 response per request answered (`heads[i]`: the
/// i-th was a HEAD), in order; panics otherwise.
fn check_responses(mut b: &[u8], heads: &[bool]) {
    for (i, &head_only) in heads.iter().enumerate() {
        let mut fields = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut fields);
        let len = match r.parse(b) {
            Ok(httparse::Status::Complete(len)) => len,
            other => panic!(
                "response {i} of {}: not a complete head ({other:?}): {:?}",
                heads.len(),
                String::from_utf8_lossy(b)
            ),
        };
        let field = |name: &str| {
            r.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let status = r.code.unwrap_or(0);
        let rest = &b[len..];
        let body = if head_only || status == 304 {
            0
        } else if let Some(l) = field("content-length") {
            l.parse::<usize>().expect("a number")
        } else if field("transfer-encoding").is_some() {
            let s = String::from_utf8_lossy(rest);
            s.find("0\r\n\r\n").expect("a chunked body's end") + 5
        } else {
            assert_eq!(i + 1, heads.len(), "a close-delimited response is the last");
            rest.len()
        };
        assert!(rest.len() >= body, "response {i} cut short");
        b = &rest[body..];
    }
    assert!(
        b.is_empty(),
        "bytes after the last response: {:?}",
        String::from_utf8_lossy(b)
    );
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    // First byte: the head limit; second: how the input is cut into writes.
    let max_head = 64 + usize::from(data[0]) * 16;
    let piece = 1 + usize::from(data[1]);
    let input = data[2..].to_vec();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (client, server) = tokio::io::duplex(input.len() + 1);
        let (_stop, rx) = tokio::sync::watch::channel(false);
        let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let h = heads.clone();
        let task = tokio::spawn(serve(
            server,
            move |req| {
                h.lock().unwrap().push(req.method() == http::Method::HEAD);
                let r = answer(&req);
                async move { r }
            },
            max_head,
            rx,
        ));
        let (mut rd, mut wr) = tokio::io::split(client);
        let sent = input.clone();
        let writer = tokio::spawn(async move {
            for chunk in sent.chunks(piece) {
                if wr.write_all(chunk).await.is_err() {
                    return;
                }
                tokio::task::yield_now().await;
            }
            let _ = wr.shutdown().await;
        });
        let reader = tokio::spawn(async move {
            let mut out = Vec::new();
            let _ = rd.read_to_end(&mut out).await;
            out
        });
        let ended = tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("the lean path hung")
            .unwrap();
        writer.abort();
        if let Ok(Ended::HandOff(_, read)) = &ended {
            // What hyper gets is a run of the client's bytes, unaltered.
            assert!(
                read.is_empty() || input.windows(read.len()).any(|w| w == &read[..]),
                "handed over bytes that were not sent"
            );
        }
        // The server's end closes: the reader sees everything written.
        drop(ended);
        let out = reader.await.unwrap();
        check_responses(&out, &heads.lock().unwrap());
    });
});
