//! Routing: a request path to a typed [`Route`]. Pure, so it is tested (and fuzzable) alone.

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
    /// `/live/STREAM/RENDITION/FILE`: an init segment, part or segment.
    Object {
        /// The stream name.
        stream: &'a str,
        /// `RENDITION/FILE`, the key in the stream's object store.
        uri: String,
        /// The rendition name.
        rendition: &'a str,
        /// The file name.
        file: &'a str,
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
        [stream, rendition, file] => Route::Object {
            stream,
            uri: format!("{rendition}/{file}"),
            rendition,
            file,
        },
        _ => Route::Other,
    }
}

/// Parses `MSN.PART.m4s` / `MSN.m4s`.
pub(crate) fn parse_media_file(file: &str) -> Option<(u64, Option<u32>)> {
    let stem = file.strip_suffix(".m4s")?;
    match stem.split_once('.') {
        Some((m, p)) => Some((m.parse().ok()?, Some(p.parse().ok()?))),
        None => Some((stem.parse().ok()?, None)),
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
        assert!(matches!(
            parse("/live/demo/media/12.3.m4s"),
            Route::Object {
                file: "12.3.m4s",
                ..
            }
        ));
        assert_eq!(parse("/live/../etc/passwd"), Route::Other);
        assert_eq!(parse("/live/demo/../../x"), Route::Other);
        assert_eq!(parse("/live/demo/%2e%2e/x"), Route::Other);
        assert_eq!(parse("/live//index.m3u8"), Route::Other);
        assert_eq!(parse("/live/demo/a/b/c"), Route::Other);
    }

    #[test]
    fn media_files() {
        assert_eq!(parse_media_file("12.3.m4s"), Some((12, Some(3))));
        assert_eq!(parse_media_file("12.m4s"), Some((12, None)));
        assert_eq!(parse_media_file("init.mp4"), None);
        assert_eq!(parse_media_file("abc.m4s"), None);
        assert_eq!(parse_media_file("1.x.m4s"), None);
    }
}
