//! Byte ranges of a growing segment (byte-range addressing, LLHLS-RULES §3): a closed range is
//! held until its bytes exist; an open-ended range (`bytes=N-` or RFC 8673's `bytes=N-2^53-1`,
//! what a preload hint asks for) is answered at once with 206 and streams each part, by
//! reference, as it completes, until the segment does. The whole segment waits for completion.
//!
//! Only a stored (growing) segment gets here; one not stored yet is `crate::media`'s: held
//! while the packager says it is pending, 404 once it is a GAP segment or will never exist.
//! A growing segment has media, so it never becomes a GAP segment: it completes (on a cut, a
//! stall or the end of the stream, each of which closes it with the samples left), or the
//! hold deadline passes. The open-ended response has sent its 206 head already (RFC 8673:
//! at once, rule 50), so the streamer cannot turn into a 404 then: it ends the body cleanly at
//! the segment's end, or when the stream ends, the segment expires or the deadline passes
//! without growth (the client sees a complete body, as RFC 8673 allows, and reloads the
//! playlist). A closed range that never becomes available is a 404 (`no-store`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use llhls_packager::ObjectKey;

use crate::body::Body;
use crate::error::Error;
use crate::headers::{media_reply, Reply};
use crate::live::{Object, Stream};
use crate::metrics::Class;
use crate::range::{partial, serve_bytes, ByteRange, RANGE_MAX};
use crate::Origin;

/// Bodies of open-ended responses queue this many chunks before the streamer waits.
const STREAM_QUEUE: usize = 8;

/// Serves `range` of the growing segment `key`.
pub(crate) async fn serve_growing(
    origin: &Origin,
    s: &Arc<Stream>,
    key: &ObjectKey,
    class: Class,
    content_type: &'static str,
    range: Option<ByteRange>,
) -> Result<Reply, Error> {
    let td = s
        .current()
        .map(|p| u64::from(p.snapshot.timing.target_duration))
        .unwrap_or(6);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3 * td);
    let (start, end) = match range {
        Some(ByteRange::FromTo(a, b)) => (a, Some(b)),
        Some(ByteRange::From(a)) => (a, None),
        Some(ByteRange::Suffix(_)) | None => {
            // The whole segment: wait for it to complete.
            let _g = origin.hold(s)?;
            return match wait_object(s, key, deadline, |o| matches!(o, Object::Complete(_))).await {
                Some(Object::Complete(b)) => serve_bytes(class, content_type, b, range),
                _ => Err(Error::SegmentIncomplete),
            };
        }
    };
    let end = match end {
        Some(end) if end < RANGE_MAX => end,
        _ => {
            let reply = media_reply(class, content_type, Vec::new());
            return open_ended(origin, s, key, reply, (start, end), deadline);
        }
    };
    let _g = origin.hold(s)?;
    let o = wait_object(s, key, deadline, |o| {
        o.len() > end || matches!(o, Object::Complete(_))
    })
    .await
    .ok_or(Error::RangeUnavailable)?;
    closed(class, content_type, &o, start, end)
}

/// `bytes=start-end` of what `o` holds now: 206 with the available part of the range (total
/// `*` while the segment grows), or 416 when it starts beyond the end.
fn closed(
    class: Class,
    content_type: &'static str,
    o: &Object,
    start: u64,
    end: u64,
) -> Result<Reply, Error> {
    let len = o.len();
    if start >= len {
        return Err(Error::RangeNotSatisfiable { len });
    }
    // `start < len`, so `len - 1` does not underflow and `start <= last`.
    let last = end.min(len - 1);
    let total = if matches!(o, Object::Complete(_)) {
        len.to_string()
    } else {
        "*".into()
    };
    Ok(partial(
        media_reply(class, content_type, o.slice(start, last + 1)),
        format!("bytes {start}-{last}/{total}"),
    ))
}

/// RFC 8673 open-ended range on a growing segment: 206 now (`reply` with a streamed body),
/// then each part as it completes.
fn open_ended(
    origin: &Origin,
    s: &Arc<Stream>,
    key: &ObjectKey,
    reply: Reply,
    (start, end): (u64, Option<u64>),
    deadline: tokio::time::Instant,
) -> Result<Reply, Error> {
    let guard = origin.hold(s)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(STREAM_QUEUE);
    let stream = s.clone();
    let key = key.clone();
    let metrics = origin.metrics.clone();
    tokio::spawn(async move {
        let _guard = guard;
        let mut sent = start;
        loop {
            // `None`: the segment is gone (expired).
            let Some(o) = wait_object(&stream, &key, deadline, |o| {
                o.len() > sent || matches!(o, Object::Complete(_))
            })
            .await
            else {
                break;
            };
            let (len, complete) = (o.len(), matches!(o, Object::Complete(_)));
            if len <= sent && !complete {
                // Not ready: the stream ended or the deadline passed with nothing new. End
                // the body rather than wait again (after the end, `wait_object` would return
                // at once, every time).
                break;
            }
            if len > sent {
                // Each part as stored, by reference: no copy per viewer.
                for chunk in o.slice(sent, len) {
                    metrics
                        .bytes_out
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    if tx.send(chunk).await.is_err() {
                        return;
                    }
                }
                sent = len;
            }
            if complete {
                break;
            }
        }
    });
    let end_s = end
        .map(|e| e.to_string())
        .unwrap_or_else(|| RANGE_MAX.to_string());
    let mut r = partial(reply, format!("bytes {start}-{end_s}/*"));
    r.body = Body::Stream(rx);
    r.len = None;
    Ok(r)
}

/// The object `key` once `ready` holds, the stream ends, or `deadline` passes (then only if
/// `ready`); `None` when it is gone.
async fn wait_object(
    s: &Arc<Stream>,
    key: &ObjectKey,
    deadline: tokio::time::Instant,
    ready: impl Fn(&Object) -> bool,
) -> Option<Object> {
    let mut rx = s.published.clone();
    loop {
        let o = s.object(key)?;
        if ready(&o) {
            return Some(o);
        }
        if s.current().is_some_and(|p| p.snapshot.ended) {
            return s.object(key);
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            _ => return s.object(key).filter(|o| ready(o)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rope::Rope;
    use http::header::CONTENT_RANGE;
    use http::StatusCode;

    fn growing(parts: &[&'static [u8]]) -> Object {
        let mut r = Rope::default();
        for p in parts {
            r.push(Bytes::from_static(p));
        }
        Object::Growing(r)
    }

    fn range_of(r: &Reply) -> &str {
        r.headers
            .iter()
            .find(|(k, _)| k == CONTENT_RANGE)
            .and_then(|(_, v)| v.to_str().ok())
            .unwrap_or("")
    }

    #[test]
    fn closed_ranges_of_a_growing_segment() {
        let o = growing(&[b"abc", b"defg"]);
        let r = closed(Class::Part, "video/mp4", &o, 2, 4).unwrap();
        assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(range_of(&r), "bytes 2-4/*");
        assert_eq!(r.len, Some(3));
        match &r.body {
            Body::Chunks(c) => assert_eq!(c.len(), 2, "one frame per part"),
            other => panic!("{other:?}"),
        }
        let r = closed(Class::Part, "video/mp4", &o, 5, 100).unwrap();
        assert_eq!(range_of(&r), "bytes 5-6/*", "clamped to what exists");
        assert!(matches!(
            closed(Class::Part, "video/mp4", &o, 7, 9),
            Err(Error::RangeNotSatisfiable { len: 7 })
        ));
        let done = Object::Complete(Bytes::from_static(b"abcdefg"));
        let r = closed(Class::Part, "video/mp4", &done, 0, 99).unwrap();
        assert_eq!(range_of(&r), "bytes 0-6/7", "the total once complete");
    }
}
