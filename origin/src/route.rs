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
    /// `/recordings.json`.
    RecordingList,
    /// `/recordings/NAME/START/FILE`: a file of a recording. NAME and START are
    /// `[A-Za-z0-9_-]` only ([`crate::record::valid_name`]).
    Recording {
        /// The stream name.
        name: &'a str,
        /// The recording's start (`20261201T133000Z`).
        id: &'a str,
        /// The file.
        file: RecordingFile<'a>,
    },
    /// Anything else: a page, a nested service, or 404.
    Other,
}

/// A file of a recording.
#[derive(Debug, PartialEq, Eq)]
pub enum RecordingFile<'a> {
    /// `index.m3u8` (the multivariant playlist) or `RENDITION.m3u8`: the name without `.m3u8`.
    Playlist(&'a str),
    /// `RENDITION/FILE`: an init section or a segment (never a part: recordings keep none).
    Object(ObjectKey),
    /// `export.mp4`: one rendition as a single fragmented MP4 file.
    Export,
}

impl Route<'_> {
    /// The live stream a request is for (its playlists and objects), if any.
    pub fn stream(&self) -> Option<&str> {
        match self {
            Route::Multivariant { stream }
            | Route::Media { stream, .. }
            | Route::Object { stream, .. } => Some(stream),
            _ => None,
        }
    }
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
        "/recordings.json" => return Route::RecordingList,
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("/recordings/") {
        return recording(rest);
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

/// `NAME/START/FILE` under `/recordings/`.
fn recording(rest: &str) -> Route<'_> {
    use crate::record::valid_name;
    let parts: Vec<&str> = rest.split('/').collect();
    let file = match parts.as_slice() {
        [_, _, "export.mp4"] => RecordingFile::Export,
        [_, _, file] => match file.strip_suffix(".m3u8") {
            Some(p) if valid_name(p) => RecordingFile::Playlist(p),
            _ => return Route::Other,
        },
        [_, _, rendition, file] if valid_name(rendition) && valid_segment(file) => {
            match format!("{rendition}/{file}").parse::<ObjectKey>() {
                Ok(key) if !key.is_part() => RecordingFile::Object(key),
                _ => return Route::Other,
            }
        }
        _ => return Route::Other,
    };
    if !valid_name(parts[0]) || !valid_name(parts[1]) {
        return Route::Other;
    }
    Route::Recording {
        name: parts[0],
        id: parts[1],
        file,
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
    fn recordings_stay_inside_their_directory() {
        assert_eq!(parse("/recordings.json"), Route::RecordingList);
        assert_eq!(
            parse("/recordings/cam-1/20261201T133000Z/index.m3u8"),
            Route::Recording {
                name: "cam-1",
                id: "20261201T133000Z",
                file: RecordingFile::Playlist("index")
            }
        );
        assert_eq!(
            parse("/recordings/cam/20261201T133000Z/export.mp4"),
            Route::Recording {
                name: "cam",
                id: "20261201T133000Z",
                file: RecordingFile::Export
            }
        );
        assert_eq!(
            parse("/recordings/cam/20261201T133000Z/video/12.m4s"),
            Route::Recording {
                name: "cam",
                id: "20261201T133000Z",
                file: RecordingFile::Object(ObjectKey::segment("video", 12))
            }
        );
        for bad in [
            "/recordings/../x/index.m3u8",
            "/recordings/cam/../index.m3u8",
            "/recordings/cam/..%2f..%2fetc/index.m3u8",
            "/recordings/cam/a%2Fb/index.m3u8",
            "/recordings/cam/s/../../../../etc/passwd",
            "/recordings//etc/passwd",
            "/recordings/cam/s//etc/passwd",
            "/recordings/cam/s/video/12.3.m4s",
            "/recordings/cam/s/.m3u8",
            "/recordings/cam/s/a.b.m3u8",
            "/recordings/c.m/s/index.m3u8",
            "/recordings/cam/s/video/../../x.m4s",
            "/recordings/cam/s/video/init-1.mp4/x",
            "/recordings/cam/s/video/export.mp4",
            "/recordings/cam/../export.mp4",
        ] {
            assert_eq!(parse(bad), Route::Other, "{bad}");
        }
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
