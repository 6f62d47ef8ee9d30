//! Media objects: init segments, parts and segments, whole or by range. A part (or segment) the
//! playlist hints at but that is not stored yet is held until it is (LLHLS-RULES rules 48-49),
//! or answered 404 at once when it never will be.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use llhls_packager::{ObjectKey, ObjectKind};

use crate::error::Error;
use crate::growing::serve_growing;
use crate::headers::Reply;
use crate::live::{Object, Stream};
use crate::metrics::Class;
use crate::range::{self, serve_bytes};
use crate::Origin;

/// An object request: `key` in the store of stream `stream`.
pub(crate) struct ObjectRequest<'a> {
    pub(crate) stream: &'a str,
    pub(crate) key: ObjectKey,
    /// The `Range` header, if any.
    pub(crate) range: Option<HeaderValue>,
}

/// `GET /live/STREAM/RENDITION/FILE`.
pub(crate) async fn object(origin: &Origin, req: ObjectRequest<'_>) -> Reply {
    let class = match req.key.kind() {
        ObjectKind::Init => Class::Init,
        ObjectKind::Part(_) => Class::Part,
        ObjectKind::Segment => Class::Segment,
    };
    serve(origin, &req, class)
        .await
        .unwrap_or_else(|e| e.reply(class))
}

async fn serve(origin: &Origin, req: &ObjectRequest<'_>, class: Class) -> Result<Reply, Error> {
    let s = origin.stream(req.stream).ok_or(Error::NoSuchStream)?;
    let content_type = req.key.content_type();
    let range = match &req.range {
        None => None,
        Some(v) => range::parse(v.as_bytes())?,
    };
    let obj = match s.object(&req.key) {
        Some(o) => o,
        None => await_object(origin, &s, req)
            .await
            .ok_or(Error::NoSuchObject)?,
    };
    match obj {
        Object::Complete(bytes) => serve_bytes(class, content_type, bytes, range),
        Object::Growing(_) => serve_growing(origin, &s, &req.key, class, content_type, range).await,
    }
}

/// A part (or segment) the playlist hints at but that does not exist yet: hold until it is
/// stored, or until it never will be (404). Rule 48-49.
async fn await_object(origin: &Origin, s: &Arc<Stream>, req: &ObjectRequest<'_>) -> Option<Object> {
    let key = &req.key;
    let (msn, part, rendition) = (key.msn(), key.part_index(), key.rendition());
    if key.is_init() {
        return None;
    }
    let p = s.current()?;
    if p.snapshot.ended {
        return None;
    }
    let r = p.snapshot.rendition(rendition)?;
    let open = r.open.as_ref()?;
    let (last_msn, next_part) = (open.msn, open.parts.len() as u32);
    let ahead = match part {
        // The hinted part, or a few parts beyond it (rule 41's advance limit).
        Some(i) => {
            (msn == last_msn && i >= next_part && i <= next_part + 16)
                || (msn == last_msn + 1 && i <= 16)
        }
        // A whole segment not complete yet (files mode).
        None => msn == last_msn,
    };
    if !ahead {
        return None;
    }
    let _guard = origin.hold(s)?;
    let td = u64::from(p.snapshot.timing.target_duration);
    let mut rx = s.published.clone();
    let mut shutdown = origin.shutdown.subscribe();
    let stream = s.clone();
    // Stop when it exists, or when it never will: the stream ended or its parent closed.
    let wait = rx.wait_for(move |p| {
        stream.object(key).is_some()
            || p.as_ref().is_none_or(|p| {
                p.snapshot.ended
                    || p.snapshot
                        .rendition(rendition)
                        .and_then(|r| r.open.as_ref())
                        .is_none_or(|o| o.msn > msn)
            })
    });
    let done = tokio::select! {
        r = tokio::time::timeout(Duration::from_secs(3 * td), wait) => r.is_ok(),
        _ = shutdown.wait_for(|s| *s) => false,
    };
    if done {
        if let Some(p) = s.current() {
            origin.metrics.wake(p.at.elapsed().as_secs_f64());
        }
    }
    s.object(key)
}
