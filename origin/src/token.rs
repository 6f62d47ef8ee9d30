//! Playback tokens for private streams. With a playback secret set, every live playlist and
//! media object is served only under a token path:
//!
//! ```text
//! /live/t/TOKEN/NAME/index.m3u8      TOKEN = EXPIRES-SIGNATURE
//! EXPIRES   = Unix time in seconds after which the token is refused
//! SIGNATURE = lowercase hex of HMAC-SHA256(secret, "NAME:EXPIRES")
//! ```
//!
//! The playlists' URIs are relative, so a player that opened the multivariant playlist under
//! a token path resolves every media playlist, part, segment and init section under the same
//! prefix: the token travels with no playlist rewriting, in every player. The token names the
//! stream and an expiry, not a viewer: a site that mints one token per stream and expiry
//! period (for example the next full hour) gives every viewer the same URLs, so a CDN edge
//! still collapses them into one origin request per object.
//!
//! A wrong, missing or expired token is a 403; only the first characters of a token are ever
//! logged.
//!
//! With a [`PlaybackAuth`] set (the binary's playback webhook), a viewer that asks for a
//! private stream's multivariant playlist without a token is not refused at once: the
//! platform is asked about that viewer, once, and on a yes the viewer is redirected (302) to
//! the stream's token path with a token minted here, shared by every viewer admitted in the
//! same period ([`shared_expiry`]) so the edge still collapses them. Parts and segments never
//! call the platform.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use ring::hmac;

/// Why a token was refused (the 403's text says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The request is not under a token path.
    #[error("this stream needs a playback token: request /live/t/TOKEN/NAME/index.m3u8")]
    Missing,
    /// Not `EXPIRES-SIGNATURE` with a decimal expiry and a 64-digit hex signature.
    #[error("malformed playback token: expected EXPIRES-SIGNATURE (Unix seconds, 64 hex digits)")]
    Malformed,
    /// Its expiry has passed.
    #[error("playback token expired")]
    Expired,
    /// The signature does not match the stream and expiry.
    #[error("playback token not valid for this stream")]
    BadSignature,
}

/// Checks (and mints) tokens with one secret.
#[derive(Clone)]
pub struct PlaybackTokens {
    key: hmac::Key,
}

impl std::fmt::Debug for PlaybackTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.write_str("PlaybackTokens(..)")
    }
}

/// The message a token signs.
fn message(stream: &str, expires: u64) -> String {
    format!("{stream}:{expires}")
}

fn hex_nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl PlaybackTokens {
    /// Tokens signed with `secret`.
    pub fn new(secret: &[u8]) -> Self {
        PlaybackTokens {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// A token for `stream` valid until `expires` (Unix seconds).
    pub fn mint(&self, stream: &str, expires: u64) -> String {
        let tag = hmac::sign(&self.key, message(stream, expires).as_bytes());
        let mut s = format!("{expires}-");
        for b in tag.as_ref() {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// Is `token` valid for `stream` at Unix time `now`? The signature is compared in
    /// constant time.
    pub fn check(&self, stream: &str, token: Option<&str>, now: u64) -> Result<(), TokenError> {
        let token = token.ok_or(TokenError::Missing)?;
        let (expires, sig) = token.split_once('-').ok_or(TokenError::Malformed)?;
        if expires.is_empty() || expires.len() > 20 || !expires.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(TokenError::Malformed);
        }
        let expires: u64 = expires.parse().map_err(|_| TokenError::Malformed)?;
        if sig.len() != 64 {
            return Err(TokenError::Malformed);
        }
        let mut tag = [0u8; 32];
        for (i, pair) in sig.as_bytes().chunks(2).enumerate() {
            let hi = hex_nibble(pair[0]).ok_or(TokenError::Malformed)?;
            let lo = hex_nibble(pair[1]).ok_or(TokenError::Malformed)?;
            tag[i] = hi << 4 | lo;
        }
        hmac::verify(&self.key, message(stream, expires).as_bytes(), &tag)
            .map_err(|_| TokenError::BadSignature)?;
        if now > expires {
            return Err(TokenError::Expired);
        }
        Ok(())
    }
}

/// Splits a token path `/live/t/TOKEN/NAME/REST` into `/live/NAME/REST` and the token. Any
/// other path comes back as it is, with no token. A stream called `t` keeps its own paths:
/// its playlists and objects (`/live/t/index.m3u8`, `/live/t/REND/FILE`) have fewer segments
/// than any token path.
pub fn split(path: &str) -> (Cow<'_, str>, Option<&str>) {
    if let Some(rest) = path.strip_prefix("/live/t/") {
        if let Some((token, tail)) = rest.split_once('/') {
            if tail.contains('/') {
                return (Cow::Owned(format!("/live/{tail}")), Some(token));
            }
        }
    }
    (Cow::Borrowed(path), None)
}

/// The first characters of a token, for logs (enough to tell tokens apart, too few to use).
pub fn prefix(token: &str) -> &str {
    let end = token
        .char_indices()
        .nth(16)
        .map(|(i, _)| i)
        .unwrap_or(token.len());
    &token[..end]
}

/// `path` with any token shortened to its [`prefix`], for logs.
pub fn redact(path: &str) -> Cow<'_, str> {
    match split(path) {
        (tail, Some(token)) if token.len() > prefix(token).len() => Cow::Owned(format!(
            "/live/t/{}.../{}",
            prefix(token),
            tail.trim_start_matches("/live/")
        )),
        _ => Cow::Borrowed(path),
    }
}

/// Unix time in seconds.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewers_of_one_period_share_a_token_that_lives_at_least_a_period() {
        assert_eq!(shared_expiry(3600, 3600), 3 * 3600);
        assert_eq!(shared_expiry(7199, 3600), 3 * 3600);
        assert_eq!(shared_expiry(7200, 3600), 4 * 3600);
        for now in [0, 1, 3599, 3600, 1_796_140_000] {
            let e = shared_expiry(now, 3600);
            assert!(e - now >= 3600 && e - now <= 7200, "{now} -> {e}");
        }
        assert_eq!(shared_expiry(u64::MAX, 3600), u64::MAX, "saturates");
        assert!(shared_expiry(5, 0) > 5);
    }

    #[test]
    fn a_minted_token_passes_until_it_expires() {
        let t = PlaybackTokens::new(b"0123456789abcdef");
        let tok = t.mint("cam", 2_000);
        assert!(tok.starts_with("2000-") && tok.len() == 5 + 64, "{tok}");
        assert_eq!(t.check("cam", Some(&tok), 1_999), Ok(()));
        assert_eq!(t.check("cam", Some(&tok), 2_000), Ok(()));
        assert_eq!(t.check("cam", Some(&tok), 2_001), Err(TokenError::Expired));
        assert_eq!(
            t.check("other", Some(&tok), 1_000),
            Err(TokenError::BadSignature)
        );
        let other = PlaybackTokens::new(b"another secret!!");
        assert_eq!(
            other.check("cam", Some(&tok), 1_000),
            Err(TokenError::BadSignature)
        );
        // A later expiry with the old signature.
        let forged = tok.replacen("2000", "9000", 1);
        assert_eq!(
            t.check("cam", Some(&forged), 1_000),
            Err(TokenError::BadSignature)
        );
        assert_eq!(t.check("cam", None, 0), Err(TokenError::Missing));
        for bad in [
            "",
            "2000",
            "-abc",
            "x-00",
            "2000-zz",
            "2000-é",
            &tok[..tok.len() - 1],
        ] {
            assert_eq!(
                t.check("cam", Some(bad), 0),
                Err(TokenError::Malformed),
                "{bad}"
            );
        }
        let multibyte = format!("2000-{}", "é".repeat(32));
        assert_eq!(
            t.check("cam", Some(&multibyte), 0),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn known_answer() {
        // printf 'cam:2000' | openssl dgst -sha256 -hmac 0123456789abcdef
        let t = PlaybackTokens::new(b"0123456789abcdef");
        assert_eq!(
            t.mint("cam", 2000),
            "2000-7026483654c0f1ade6de56c73d7b3fd1956614740c9d504d8fd3899ca48e5d5a"
        );
    }

    #[test]
    fn token_paths() {
        assert_eq!(
            split("/live/t/123-ab/cam/index.m3u8"),
            (Cow::Borrowed("/live/cam/index.m3u8"), Some("123-ab"))
        );
        assert_eq!(
            split("/live/t/123-ab/cam/video/5.1.m4s"),
            (Cow::Borrowed("/live/cam/video/5.1.m4s"), Some("123-ab"))
        );
        // The stream called `t`.
        for own in [
            "/live/t/index.m3u8",
            "/live/t/video.m3u8",
            "/live/t/video/5.1.m4s",
        ] {
            assert_eq!(split(own), (Cow::Borrowed(own), None));
        }
        assert_eq!(split("/healthz").1, None);
        let long = "/live/t/1700000000-0123456789abcdef/cam/index.m3u8";
        let r = redact(long);
        assert!(!r.contains("0123456789abcdef"), "{r}");
        assert!(r.ends_with("/cam/index.m3u8"), "{r}");
    }
}

/// A viewer asking for a private stream's multivariant playlist without a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaybackRequest {
    /// The stream.
    pub stream: String,
    /// The client's address as the socket saw it.
    pub remote_addr: Option<std::net::IpAddr>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
    /// `Referer` (the page embedding the player).
    pub referer: Option<String>,
    /// The query string of the request (where a site passes its own viewer credential).
    pub query: String,
}

/// The platform's answer about one viewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaybackDecision {
    /// Admit: redirect to a token path.
    Allow,
    /// Refuse (403), with the reason said to the viewer and logged.
    Deny(String),
}

/// Decides whether a viewer may watch a private stream (see the module's documentation).
pub trait PlaybackAuth: Send + Sync {
    /// Asks about one viewer.
    fn authorize(
        &self,
        req: PlaybackRequest,
    ) -> Pin<Box<dyn Future<Output = PlaybackDecision> + Send + 'static>>;
}

/// The expiry of tokens minted at Unix time `now` for a lifetime of `secs`: the end of the
/// next whole period, so a token lives between `secs` and twice that, and every viewer
/// admitted in one period shares one token (one set of URLs for the edge).
pub fn shared_expiry(now: u64, secs: u64) -> u64 {
    let secs = secs.max(1);
    (now / secs).saturating_add(2).saturating_mul(secs)
}
