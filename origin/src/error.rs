//! One error type for every request the origin refuses, mapped to a status, a one-line text
//! body and `Cache-Control: no-store` (an error must never be cached by an edge). The texts
//! name what the client got wrong, never the origin's internals.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::StatusCode;

use crate::body::Body;
use crate::headers::Reply;
use crate::metrics::Class;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No route, page or nested service for the path (404). The text lists what is served.
    #[error("not found: this server answers / (the player page), /live/NAME/index.m3u8 (a stream's playlist), /streams.json, /metrics, /healthz, WHIP publishers at /whip/live/NAME, and browser publishing at /publish")]
    NotFound,
    /// The stream is not live (404).
    #[error("no such stream")]
    NoSuchStream,
    /// The stream is live but its first segment has not closed (404).
    #[error("stream has no playlist yet")]
    NoPlaylistYet,
    /// The stream has no rendition of that name (404).
    #[error("no such rendition")]
    NoSuchRendition,
    /// The object is not stored and will not be soon (404).
    #[error("no such object")]
    NoSuchObject,
    /// A whole growing segment was asked for and did not complete in time (404).
    #[error("segment did not complete")]
    SegmentIncomplete,
    /// A closed range of a growing segment did not become available in time (404).
    #[error("range never became available")]
    RangeUnavailable,
    /// Bad `_HLS_*` delivery directives: the parser's or classifier's own words (400).
    #[error("{0}")]
    BadDirectives(String),
    /// A bad query on a recording (a clip's `start`/`end`, an export's rendition): the reason
    /// (400).
    #[error("{0}")]
    BadQuery(String),
    /// A `Range` header we cannot parse (400).
    #[error("malformed Range header")]
    MalformedRange,
    /// The range starts at or beyond the object's end (416, with `Content-Range: bytes */len`).
    #[error("range not satisfiable")]
    RangeNotSatisfiable {
        /// The object's length.
        len: u64,
    },
    /// Not GET, HEAD or OPTIONS on an origin path (405, with `Allow`).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The stream's limit of held requests is reached, or the origin is shutting down (503).
    #[error("too many held requests")]
    TooManyHeld,
    /// A blocking reload's part did not appear within 3 target durations (503, `Retry-After`).
    #[error("the requested part did not become available in time")]
    HoldTimedOut,
    /// This client IP holds as many requests as it may (429, `Retry-After`).
    #[error("too many held requests from this address")]
    TooManyHeldFromIp,
    /// The stream is private and the playback token is missing, wrong or expired (403).
    #[error("{0}")]
    Forbidden(crate::token::TokenError),
    /// The platform's playback webhook refused this viewer, or could not be asked (403).
    #[error("playback refused: {0}")]
    PlaybackRefused(String),
}

impl Error {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::NotFound
            | Error::NoSuchStream
            | Error::NoPlaylistYet
            | Error::NoSuchRendition
            | Error::NoSuchObject
            | Error::SegmentIncomplete
            | Error::RangeUnavailable => StatusCode::NOT_FOUND,
            Error::BadDirectives(_) | Error::BadQuery(_) | Error::MalformedRange => {
                StatusCode::BAD_REQUEST
            }
            Error::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::TooManyHeld | Error::HoldTimedOut => StatusCode::SERVICE_UNAVAILABLE,
            Error::TooManyHeldFromIp => StatusCode::TOO_MANY_REQUESTS,
            Error::Forbidden(_) | Error::PlaybackRefused(_) => StatusCode::FORBIDDEN,
        }
    }

    /// The reply: status, `text\n`, no-store, and the headers the status calls for.
    pub(crate) fn reply(self, class: Class) -> Reply {
        let body = Bytes::from(format!("{self}\n"));
        let mut headers = vec![
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ];
        match self {
            Error::MethodNotAllowed => headers.push((
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, OPTIONS"),
            )),
            Error::HoldTimedOut | Error::TooManyHeldFromIp => {
                headers.push((header::RETRY_AFTER, HeaderValue::from_static("1")))
            }
            Error::RangeNotSatisfiable { len } => headers.push((
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{len}"))
                    .unwrap_or(HeaderValue::from_static("bytes */*")),
            )),
            _ => {}
        }
        Reply {
            status: self.status(),
            class,
            headers,
            len: Some(body.len() as u64),
            body: Body::full(body),
        }
    }
}

impl From<crate::range::MalformedRange> for Error {
    fn from(_: crate::range::MalformedRange) -> Self {
        Error::MalformedRange
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_path_says_what_is_served() {
        let text = Error::NotFound.to_string();
        for url in [
            "/live/NAME/index.m3u8",
            "/streams.json",
            "/whip/live/NAME",
            "/publish",
        ] {
            assert!(text.contains(url), "{text}");
        }
    }

    fn header(r: &Reply, name: header::HeaderName) -> Option<&str> {
        r.headers
            .iter()
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.to_str().ok())
    }

    #[test]
    fn statuses_texts_and_headers() {
        let r = Error::RangeNotSatisfiable { len: 42 }.reply(Class::Part);
        assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(header(&r, header::CONTENT_RANGE), Some("bytes */42"));
        assert_eq!(header(&r, header::CACHE_CONTROL), Some("no-store"));
        assert_eq!(r.len, Some("range not satisfiable\n".len() as u64));
        let r = Error::HoldTimedOut.reply(Class::BlockingPlaylist);
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header(&r, header::RETRY_AFTER), Some("1"));
        let r = Error::MethodNotAllowed.reply(Class::Other);
        assert_eq!(header(&r, header::ALLOW), Some("GET, HEAD, OPTIONS"));
        let e = Error::BadDirectives("_HLS_part without _HLS_msn".into());
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(e.to_string(), "_HLS_part without _HLS_msn");
        assert_eq!(Error::NoSuchObject.status(), StatusCode::NOT_FOUND);
    }
}
