//! The name of every object the packager produces: the one URI contract between the packager,
//! the origin and the tests.
//!
//! An [`ObjectKey`] is a rendition name, a media sequence number and a kind. Its `Display` is
//! the URI relative to the stream root (`video/1000.m4s`, `video/1000.3.m4s`,
//! `media/init-1000.mp4`); its `FromStr` accepts exactly the strings `Display` produces and
//! nothing else, so a request path either names an object the packager could have produced or
//! is rejected before any lookup.

use std::fmt;
use std::str::FromStr;

/// What an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// An init segment (EXT-X-MAP): `{rendition}/init-{msn}.mp4`, where `msn` is the first
    /// segment it applies to.
    Init,
    /// A part file: `{rendition}/{msn}.{index}.m4s`.
    Part(u32),
    /// A whole segment (or, with byte-range addressing, the growing segment):
    /// `{rendition}/{msn}.m4s`.
    Segment,
}

/// The key of one object: rendition, media sequence number and kind. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    rendition: String,
    msn: u64,
    kind: ObjectKind,
}

/// Why a string is not an [`ObjectKey`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectKeyError {
    /// Not `{rendition}/{file}`.
    #[error("{0:?} is not RENDITION/FILE")]
    Shape(String),
    /// The rendition name is empty or has characters other than ASCII letters, digits, `-`
    /// and `_`.
    #[error("{0:?} is not a rendition name")]
    Rendition(String),
    /// The file name is none of `init-N.mp4`, `N.m4s`, `N.P.m4s`.
    #[error("{0:?} is not init-MSN.mp4, MSN.m4s or MSN.PART.m4s")]
    File(String),
    /// A number with a sign, leading zeros, or too many digits for its type.
    #[error("{0:?} is not a canonical number in range")]
    Number(String),
}

impl ObjectKey {
    /// The init segment of `rendition` that first applies to segment `msn`.
    pub fn init(rendition: impl Into<String>, msn: u64) -> Self {
        Self::new(rendition, msn, ObjectKind::Init)
    }

    /// Part `index` of segment `msn`.
    pub fn part(rendition: impl Into<String>, msn: u64, index: u32) -> Self {
        Self::new(rendition, msn, ObjectKind::Part(index))
    }

    /// Segment `msn`.
    pub fn segment(rendition: impl Into<String>, msn: u64) -> Self {
        Self::new(rendition, msn, ObjectKind::Segment)
    }

    /// A key from its parts. The rendition name is trusted (the packager's names are fixed);
    /// use `str::parse` for names that come from outside.
    pub fn new(rendition: impl Into<String>, msn: u64, kind: ObjectKind) -> Self {
        ObjectKey {
            rendition: rendition.into(),
            msn,
            kind,
        }
    }

    /// The rendition (the media playlist is `{rendition}.m3u8`).
    pub fn rendition(&self) -> &str {
        &self.rendition
    }

    /// The media sequence number (for an init segment: the first segment it applies to).
    pub fn msn(&self) -> u64 {
        self.msn
    }

    /// Init, part or segment.
    pub fn kind(&self) -> ObjectKind {
        self.kind
    }

    /// The part index, for a part.
    pub fn part_index(&self) -> Option<u32> {
        match self.kind {
            ObjectKind::Part(index) => Some(index),
            _ => None,
        }
    }

    /// Is this an init segment?
    pub fn is_init(&self) -> bool {
        self.kind == ObjectKind::Init
    }

    /// Is this a part file?
    pub fn is_part(&self) -> bool {
        matches!(self.kind, ObjectKind::Part(_))
    }

    /// Is this a whole segment?
    pub fn is_segment(&self) -> bool {
        self.kind == ObjectKind::Segment
    }

    /// The Content-Type to serve it with: `audio/mp4` for media of the `audio` rendition,
    /// `video/mp4` for everything else (init segments included).
    pub fn content_type(&self) -> &'static str {
        if self.kind != ObjectKind::Init && self.rendition == "audio" {
            "audio/mp4"
        } else {
            "video/mp4"
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (rendition, msn) = (&self.rendition, self.msn);
        match self.kind {
            ObjectKind::Init => write!(f, "{rendition}/init-{msn}.mp4"),
            ObjectKind::Part(index) => write!(f, "{rendition}/{msn}.{index}.m4s"),
            ObjectKind::Segment => write!(f, "{rendition}/{msn}.m4s"),
        }
    }
}

impl FromStr for ObjectKey {
    type Err = ObjectKeyError;

    fn from_str(uri: &str) -> Result<Self, Self::Err> {
        let (rendition, file) = uri
            .split_once('/')
            .ok_or_else(|| ObjectKeyError::Shape(uri.to_string()))?;
        if rendition.is_empty()
            || !rendition
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ObjectKeyError::Rendition(rendition.to_string()));
        }
        let bad_file = || ObjectKeyError::File(file.to_string());
        let (msn, kind) = if let Some(msn) = file
            .strip_prefix("init-")
            .and_then(|f| f.strip_suffix(".mp4"))
        {
            (number::<u64>(msn)?, ObjectKind::Init)
        } else {
            let stem = file.strip_suffix(".m4s").ok_or_else(bad_file)?;
            match stem.split_once('.') {
                Some((msn, index)) => (number::<u64>(msn)?, ObjectKind::Part(number(index)?)),
                None => (number::<u64>(stem)?, ObjectKind::Segment),
            }
        };
        Ok(ObjectKey::new(rendition, msn, kind))
    }
}

/// A decimal number exactly as `Display` writes it: digits only, no leading zero (except `0`
/// itself), in range.
fn number<T: FromStr>(digits: &str) -> Result<T, ObjectKeyError> {
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    let bad = || ObjectKeyError::Number(digits.to_string());
    if !canonical {
        return Err(bad());
    }
    digits.parse().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_todays_uris() {
        assert_eq!(
            ObjectKey::part("video", 1000, 3).to_string(),
            "video/1000.3.m4s"
        );
        assert_eq!(
            ObjectKey::segment("audio", 1000).to_string(),
            "audio/1000.m4s"
        );
        assert_eq!(
            ObjectKey::init("media", 1000).to_string(),
            "media/init-1000.mp4"
        );
    }

    #[test]
    fn round_trips() {
        for key in [
            ObjectKey::part("video", 1000, 3),
            ObjectKey::part("media", 0, 0),
            ObjectKey::part("audio", u64::MAX, u32::MAX),
            ObjectKey::segment("audio", 17_000_000_000),
            ObjectKey::init("media", 1),
            ObjectKey::init("low_720p-2", u64::MAX),
        ] {
            let uri = key.to_string();
            assert_eq!(uri.parse::<ObjectKey>(), Ok(key), "{uri}");
        }
        for uri in [
            "video/1000.3.m4s",
            "audio/7.m4s",
            "media/init-12.mp4",
            "a/0.0.m4s",
        ] {
            let key: ObjectKey = uri.parse().unwrap();
            assert_eq!(key.to_string(), uri);
        }
    }

    #[test]
    fn rejects_what_display_never_writes() {
        for uri in [
            "",
            "video",
            "/1.m4s",
            "video/",
            "../1.m4s",
            "video/../1.m4s",
            "video/sub/1.m4s",
            "vi.deo/1.m4s",
            "video/1..m4s",
            "video/1.2.3.m4s",
            "video/.1.m4s",
            "video/1..2.m4s",
            "video/01.m4s",
            "video/1.01.m4s",
            "video/init-01.mp4",
            "video/+1.m4s",
            "video/-1.m4s",
            "video/1.-1.m4s",
            "video/18446744073709551616.m4s",
            "video/1.4294967296.m4s",
            "video/init-18446744073709551616.mp4",
            "video/1.mp4",
            "video/init-1.m4s",
            "video/init.mp4",
            "video/1.m4s?x=1",
            "video/ 1.m4s",
            "video/1.M4S",
            "video/１.m4s",
        ] {
            assert!(uri.parse::<ObjectKey>().is_err(), "accepted {uri:?}");
        }
    }

    #[test]
    fn kinds_and_content_types() {
        let part = ObjectKey::part("audio", 5, 2);
        assert!(part.is_part() && !part.is_segment() && !part.is_init());
        assert_eq!(part.part_index(), Some(2));
        assert_eq!(part.content_type(), "audio/mp4");
        assert_eq!(ObjectKey::segment("audio", 5).content_type(), "audio/mp4");
        // Init segments are served as video/mp4 whatever the rendition, as the origin did.
        assert_eq!(ObjectKey::init("audio", 5).content_type(), "video/mp4");
        assert_eq!(ObjectKey::segment("video", 5).content_type(), "video/mp4");
        assert_eq!(ObjectKey::part("media", 5, 0).content_type(), "video/mp4");
        assert_eq!(ObjectKey::segment("media", 5).part_index(), None);
    }
}
