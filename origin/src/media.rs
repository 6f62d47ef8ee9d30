//! Media objects: init segments, parts and segments, whole or by range. An object that is not
//! stored yet is held while the packager's [`Availability`] says it will exist (LLHLS-RULES
//! rule 48), and answered 404 at once, or on the snapshot that abandons it, when it will not
//! (rule 49): GAP parts and segments, parts neither listed nor hinted, hints the publisher
//! never filled. Every such 404 is `no-store` (`crate::error`), so no edge keeps a 404 for a
//! name that may still be produced (a part too far ahead now, the same part a moment later).

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use llhls_packager::{Availability, ObjectKey, ObjectKind};

use crate::dvr::DiskFile;
use crate::error::Error;
use crate::growing::serve_growing;
use crate::headers::{media_reply, Reply};
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
        None => await_object(origin, &s, &req.key)
            .await?
            .ok_or(Error::NoSuchObject)?,
    };
    match obj {
        Object::Complete(bytes) => serve_bytes(class, content_type, bytes, range),
        Object::Growing(_) => serve_growing(origin, &s, &req.key, class, content_type, range).await,
        Object::OnDisk(file) => serve_file(class, content_type, &file, range).await,
    }
}

/// A DVR segment from disk, whole or a range of it, with the headers of one in memory. A
/// file deleted meanwhile (it left the window) is a 404.
pub(crate) async fn serve_file(
    class: Class,
    content_type: &'static str,
    file: &DiskFile,
    range: Option<range::ByteRange>,
) -> Result<Reply, Error> {
    let (start, last) = match range {
        Some(r) => range::resolve(r, file.len)?,
        None if file.len == 0 => return Ok(media_reply(class, content_type, Vec::new())),
        None => (0, file.len - 1),
    };
    let bytes = file.read(start, last - start + 1).await.map_err(|e| {
        tracing::debug!(path = %file.path.display(), "reading a DVR segment: {e}");
        Error::NoSuchObject
    })?;
    Ok(match range {
        Some(_) => range::ranged(class, content_type, bytes, (start, last), file.len),
        None => media_reply(class, content_type, vec![bytes]),
    })
}

/// An object that is not stored (yet): the packager's [`Availability`] for it in the current
/// snapshot decides, so the origin never guesses from names or windows.
///
/// - `Pending` (the preload hint, a later part of the open segment, the open segment itself):
///   held (rule 48) until it is stored or a later snapshot no longer says `Pending`, re-checked
///   on every snapshot change and bounded by 3 x TD; `None` (404) if it is still not stored.
/// - `Gap` (a GAP part or segment: it never has bytes) and `Never` (neither listed nor hinted,
///   an abandoned hint, after the end of the stream): `None` at once (rule 49), never held.
/// - `Available`: listed, so stored before the snapshot went out (rule 46); it is looked up
///   once more, and is `None` only if it expired meanwhile.
///
/// An error when the request may not be held (the stream's or the client's limit).
async fn await_object(
    origin: &Origin,
    s: &Arc<Stream>,
    key: &ObjectKey,
) -> Result<Option<Object>, Error> {
    let Some(p) = s.current() else {
        return Ok(None);
    };
    if p.snapshot.availability(key) != Availability::Pending {
        return Ok(s.object(key));
    }
    let _guard = origin.hold(s)?;
    let td = u64::from(p.snapshot.timing.target_duration);
    let mut rx = s.published.clone();
    let mut shutdown = origin.shutdown.subscribe();
    let stream = s.clone();
    // Stop when it exists, or when a snapshot says it exists (it was stored first), has become
    // a GAP or never will (the stream ended, the hint was abandoned, the stream went away).
    let wait = rx.wait_for(move |p| {
        stream.object(key).is_some()
            || p.as_ref()
                .is_none_or(|p| p.snapshot.availability(key) != Availability::Pending)
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
    Ok(s.object(key))
}
