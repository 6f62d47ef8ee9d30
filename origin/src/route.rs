//! Routing: a request path to a typed [`Route`]. Pure, so it is tested (and fuzzable) alone.
//! Object paths are parsed into an [`ObjectKey`] here, once: a path that is not exactly what
//! the packager names its objects is [`Route::Other`] (404 at once, like any unknown path).

use llhls_packager::ObjectKey;

/// Where a request is going.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/live/STREAM/index.m3u8`.
    Multivariant {
        /// The stream name.
        stream: &'a str,
    },
    /// `/live/STREAM/RENDITION.m3u8`.
    Media {
        /// The stream name.
        stream: &'a str,
        /// The rendition name.
        rendition: &'a str,
    },
    /// `/live/STREAM/RENDITION/FILE` where `RENDITION/FILE` parses as an [`ObjectKey`]: an
    /// init segment, part or segment.
    Object {
        /// The stream name.
        stream: &'a str,
        /// The object: its key in the stream's object store.
        key: ObjectKey,
    },
    /// `/healthz`.
    Healthz,
    /// `/metrics`.
    Metrics,
    /// `/streams.json`.
    StreamList,
    /// Anything else: a page, a nested service, or 404.
    Other,
}

/// One path segment we accept: short, no leading dot, only `[A-Za-z0-9._-]`.
fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// The route of `path` (no query). Never panics; anything unexpected is [`Route::Other`].
pub fn parse(path: &str) -> Route<'_> {
    match path {
        "/healthz" => return Route::Healthz,
        "/metrics" => return Route::Metrics,
        "/streams.json" => return Route::StreamList,
        _ => {}
    }
    let Some(rest) = path.strip_prefix("/live/") else {
        return Route::Other;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    if !parts.iter().all(|p| valid_segment(p)) {
        return Route::Other;
    }
    match parts.as_slice() {
        [stream, "index.m3u8"] => Route::Multivariant { stream },
        [stream, file] => match file.strip_suffix(".m3u8") {
            Some(rendition) => Route::Media { stream, rendition },
            None => Route::Other,
        },
        [stream, rendition, file] => match format!("{rendition}/{file}").parse() {
            Ok(key) => Route::Object { stream, key },
            Err(_) => Route::Other,
        },
        _ => Route::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            parse("/live/demo/index.m3u8"),
            Route::Multivariant { stream: "demo" }
        );
        assert_eq!(
            parse("/live/demo/media.m3u8"),
            Route::Media {
                stream: "demo",
                rendition: "media"
            }
        );
        assert_eq!(
            parse("/live/demo/media/12.3.m4s"),
            Route::Object {
                stream: "demo",
                key: ObjectKey::part("media", 12, 3)
            }
        );
        assert_eq!(parse("/live/../etc/passwd"), Route::Other);
        assert_eq!(parse("/live/demo/../../x"), Route::Other);
        assert_eq!(parse("/live/demo/%2e%2e/x"), Route::Other);
        assert_eq!(parse("/live//index.m3u8"), Route::Other);
        assert_eq!(parse("/live/demo/a/b/c"), Route::Other);
    }

    #[test]
    fn media_files() {
        let object = |file: &str| match parse(&format!("/live/demo/media/{file}")) {
            Route::Object { key, .. } => Some(key),
            _ => None,
        };
        assert_eq!(object("12.3.m4s"), Some(ObjectKey::part("media", 12, 3)));
        assert_eq!(object("12.m4s"), Some(ObjectKey::segment("media", 12)));
        assert_eq!(object("init-12.mp4"), Some(ObjectKey::init("media", 12)));
        assert_eq!(object("init.mp4"), None);
        assert_eq!(object("abc.m4s"), None);
        assert_eq!(object("1.x.m4s"), None);
        assert_eq!(object("012.m4s"), None, "not a name the packager writes");
    }
}
