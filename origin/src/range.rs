//! `Range` requests (RFC 9110 §14, RFC 8673): the header parser and the 206 / 416 replies for a
//! complete object. Growing segments are in `growing`.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::StatusCode;

use crate::error::Error;
use crate::headers::{media_reply, Reply};
use crate::metrics::Class;

/// RFC 8673: the last byte position a client can name, 2^53 - 1. A range ending there on a
/// growing segment is open-ended: the origin streams parts as they complete.
pub const RANGE_MAX: u64 = 9_007_199_254_740_991;

/// A single byte range (multi-range requests are answered in full, as RFC 9110 allows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=A-B`: A through B inclusive (`A <= B`).
    FromTo(u64, u64),
    /// `bytes=A-`: A to the end.
    From(u64),
    /// `bytes=-N`: the last N bytes.
    Suffix(u64),
}

/// A `Range` header we cannot parse (answered 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed Range header")]
pub struct MalformedRange;

/// Parses a `Range` header value. `Ok(None)` for a valid header we choose to ignore (multiple
/// ranges: the whole object is sent); `Err` for garbage. Never panics.
pub fn parse(v: &[u8]) -> Result<Option<ByteRange>, MalformedRange> {
    let s = std::str::from_utf8(v).map_err(|_| MalformedRange)?.trim();
    let spec = s.strip_prefix("bytes=").ok_or(MalformedRange)?;
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(MalformedRange)?;
    let num = |x: &str| -> Result<u64, MalformedRange> {
        let x = x.trim();
        if x.is_empty() || x.len() > 19 || !x.bytes().all(|c| c.is_ascii_digit()) {
            return Err(MalformedRange);
        }
        x.parse().map_err(|_| MalformedRange)
    };
    match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, true) => Err(MalformedRange),
        (true, false) => Ok(Some(ByteRange::Suffix(num(b)?))),
        (false, true) => Ok(Some(ByteRange::From(num(a)?))),
        (false, false) => {
            let (a, b) = (num(a)?, num(b)?);
            if b < a {
                return Err(MalformedRange);
            }
            Ok(Some(ByteRange::FromTo(a, b)))
        }
    }
}

/// A complete object, whole (200) or the requested range of it (206), or 416.
pub(crate) fn serve_bytes(
    class: Class,
    ct: &'static str,
    bytes: Bytes,
    range: Option<ByteRange>,
) -> Result<Reply, Error> {
    let len = bytes.len() as u64;
    let Some(range) = range else {
        return Ok(media_reply(class, ct, vec![bytes]));
    };
    let (start, last) = resolve(range, len)?;
    // `start <= last < len`.
    let body = bytes.slice(start as usize..=last as usize);
    Ok(ranged(class, ct, body, (start, last), len))
}

/// The first and last byte `range` names in an object of `len` bytes (`start <= last < len`),
/// or 416.
pub(crate) fn resolve(range: ByteRange, len: u64) -> Result<(u64, u64), Error> {
    let (start, last) = match range {
        ByteRange::FromTo(a, b) => (a, b.min(len.saturating_sub(1))),
        ByteRange::From(a) => (a, len.saturating_sub(1)),
        ByteRange::Suffix(n) => (len.saturating_sub(n), len.saturating_sub(1)),
    };
    if start >= len || last < start {
        return Err(Error::RangeNotSatisfiable { len });
    }
    Ok((start, last))
}

/// 206 with `body`, bytes `start..=last` of an object of `len` bytes.
pub(crate) fn ranged(
    class: Class,
    ct: &'static str,
    body: Bytes,
    (start, last): (u64, u64),
    len: u64,
) -> Reply {
    partial(
        media_reply(class, ct, vec![body]),
        format!("bytes {start}-{last}/{len}"),
    )
}

/// Turns a media reply into 206 Partial Content with this Content-Range.
pub(crate) fn partial(mut r: Reply, content_range: String) -> Reply {
    r.status = StatusCode::PARTIAL_CONTENT;
    r.headers.push((
        header::CONTENT_RANGE,
        HeaderValue::from_str(&content_range).unwrap_or(HeaderValue::from_static("bytes */*")),
    ));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse(b"bytes=0-99"), Ok(Some(ByteRange::FromTo(0, 99))));
        assert_eq!(parse(b"bytes=100-"), Ok(Some(ByteRange::From(100))));
        assert_eq!(parse(b"bytes=-5"), Ok(Some(ByteRange::Suffix(5))));
        assert_eq!(
            parse(b"bytes=100-9007199254740991"),
            Ok(Some(ByteRange::FromTo(100, RANGE_MAX)))
        );
        assert_eq!(parse(b"bytes=0-1,5-6"), Ok(None));
        for bad in [
            &b"bytes=5-1"[..],
            b"bytes=-",
            b"items=0-1",
            b"bytes=a-b",
            b"bytes=99999999999999999999-",
        ] {
            assert_eq!(
                parse(bad),
                Err(MalformedRange),
                "{:?}",
                std::str::from_utf8(bad)
            );
        }
    }

    fn served(len: usize, range: ByteRange) -> Result<(StatusCode, String), Error> {
        let bytes = Bytes::from(vec![0u8; len]);
        let r = serve_bytes(Class::Segment, "video/mp4", bytes, Some(range))?;
        let cr = r
            .headers
            .iter()
            .find(|(k, _)| k == header::CONTENT_RANGE)
            .map(|(_, v)| v.to_str().unwrap_or("").to_string())
            .unwrap_or_default();
        Ok((r.status, cr))
    }

    #[test]
    fn complete_objects() {
        let ok = |s: &str| Ok((StatusCode::PARTIAL_CONTENT, s.to_string()));
        assert_eq!(served(10, ByteRange::FromTo(2, 4)), ok("bytes 2-4/10"));
        assert_eq!(served(10, ByteRange::FromTo(5, 99)), ok("bytes 5-9/10"));
        assert_eq!(served(10, ByteRange::From(9)), ok("bytes 9-9/10"));
        assert_eq!(served(10, ByteRange::Suffix(3)), ok("bytes 7-9/10"));
        assert_eq!(served(10, ByteRange::Suffix(30)), ok("bytes 0-9/10"));
        for r in [ByteRange::From(10), ByteRange::FromTo(10, 12)] {
            assert!(matches!(
                served(10, r),
                Err(Error::RangeNotSatisfiable { len: 10 })
            ));
        }
        assert!(served(0, ByteRange::Suffix(3)).is_err(), "empty object");
    }
}
