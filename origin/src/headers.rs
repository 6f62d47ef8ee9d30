//! The header policy (LLHLS-RULES §4): Cache-Control per object class, CORS on every response,
//! gzip negotiation for playlists, and [`Reply`], a response under construction.

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Request, StatusCode};

use crate::body::Body;
use crate::live::{Published, Rendered};
use crate::metrics::Class;

/// Media objects never change once served: cache them for a year.
pub(crate) const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// A response before the router adds Content-Length, CORS and metrics.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    /// For metrics.
    pub(crate) class: Class,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) body: Body,
    /// Content-Length, when known.
    pub(crate) len: Option<u64>,
}

/// A small text or page body.
pub(crate) fn text_reply(class: Class, ct: &'static str, body: Bytes, cc: &'static str) -> Reply {
    Reply {
        status: StatusCode::OK,
        class,
        headers: vec![
            (header::CONTENT_TYPE, HeaderValue::from_static(ct)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cc)),
        ],
        len: Some(body.len() as u64),
        body: Body::full(body),
    }
}

/// A media object (or a range of it) sent as the given slices of stored buffers, one body
/// frame each: immutable, byte ranges accepted.
pub(crate) fn media_reply(class: Class, ct: &'static str, body: Vec<Bytes>) -> Reply {
    Reply {
        status: StatusCode::OK,
        class,
        headers: vec![
            (header::CONTENT_TYPE, HeaderValue::from_static(ct)),
            (header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE)),
            (header::ACCEPT_RANGES, HeaderValue::from_static("bytes")),
        ],
        len: Some(body.iter().map(|b| b.len() as u64).sum()),
        body: Body::chunks(body),
    }
}

/// A rendered playlist, gzip'd when the client accepts it, with Cache-Control `cc` (chosen by
/// the caller: blocking reloads and plain reloads differ) and the publish instant.
pub(crate) fn playlist_reply(
    class: Class,
    p: &Published,
    v: &Rendered,
    gzip: bool,
    cc: HeaderValue,
) -> Reply {
    let mut headers = vec![
        (
            HeaderName::from_static("llhls-published-us"),
            p.published_us.clone(),
        ),
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.apple.mpegurl"),
        ),
        (header::CACHE_CONTROL, cc),
        (header::VARY, HeaderValue::from_static("Accept-Encoding")),
    ];
    let body = if gzip {
        headers.push((header::CONTENT_ENCODING, HeaderValue::from_static("gzip")));
        v.gzip()
    } else {
        v.plain.clone()
    };
    Reply {
        status: StatusCode::OK,
        class,
        headers,
        len: Some(body.len() as u64),
        body: Body::full(body),
    }
}

/// The answer to a CORS preflight for the origin's own paths.
pub(crate) fn preflight() -> Reply {
    Reply {
        status: StatusCode::NO_CONTENT,
        class: Class::Other,
        headers: vec![
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, HEAD, OPTIONS"),
            ),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("Range"),
            ),
            (
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("86400"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
        ],
        body: Body::empty(),
        len: Some(0),
    }
}

/// CORS for hls.js on every response, errors included (rule 59).
pub(crate) fn add_cors(h: &mut HeaderMap) {
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    // A nested service (WHIP) may expose its own headers (Location, ETag): keep them.
    h.entry(header::ACCESS_CONTROL_EXPOSE_HEADERS)
        .or_insert(HeaderValue::from_static(
            "Age, Content-Range, Content-Length, Date",
        ));
}

/// Whether the request's Accept-Encoding allows gzip (by name or `*`, with q > 0).
pub(crate) fn accepts_gzip<B>(req: &Request<B>) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| {
            let mut it = e.split(';');
            let name = it.next().unwrap_or("").trim();
            let q_zero = it.any(|p| {
                let p = p.trim();
                p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !q_zero
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation() {
        let req = |v: &str| {
            Request::builder()
                .header("accept-encoding", v)
                .body(())
                .unwrap()
        };
        assert!(accepts_gzip(&req("gzip, deflate, br")));
        assert!(accepts_gzip(&req("br;q=1.0, gzip;q=0.8")));
        assert!(!accepts_gzip(&req("gzip;q=0")));
        assert!(!accepts_gzip(&req("identity")));
    }

    #[test]
    fn cors_keeps_a_nested_services_exposed_headers() {
        let mut h = HeaderMap::new();
        add_cors(&mut h);
        assert_eq!(h["access-control-allow-origin"], "*");
        assert!(h["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("Content-Range"));
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Location"),
        );
        add_cors(&mut h);
        assert_eq!(h["access-control-expose-headers"], "Location");
    }

    #[test]
    fn media_is_immutable_and_ranged() {
        let r = media_reply(
            Class::Part,
            "video/mp4",
            vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cde")],
        );
        assert_eq!(r.len, Some(5));
        let get = |name: HeaderName| {
            r.headers
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get(header::CACHE_CONTROL).unwrap(), IMMUTABLE);
        assert_eq!(get(header::ACCEPT_RANGES).unwrap(), "bytes");
    }
}
