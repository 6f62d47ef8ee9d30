//! Delivery directives (`_HLS_msn`, `_HLS_part`, `_HLS_skip`) on media playlist requests:
//! a typed parser and the classifier that decides answer-now, wait, or 400 (rules 37-47).

use crate::playlist::{RenditionSnapshot, StreamSnapshot};
use crate::render::SkipMode;

/// Parsed `_HLS_*` query parameters. Foreign parameters are ignored (and kept by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Directives {
    /// `_HLS_msn`.
    pub msn: Option<u64>,
    /// `_HLS_part`.
    pub part: Option<u32>,
    /// `_HLS_skip`: `YES` or `v2`; other values mean no skip (rule 45 REC).
    pub skip: Option<SkipMode>,
}

/// Why a request gets 400 Bad Request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirectiveError {
    /// A value is not a decimal integer that fits.
    #[error("{name}={value:?} is not a decimal integer")]
    Malformed {
        /// Parameter name.
        name: &'static str,
        /// The value as sent (truncated to 32 chars).
        value: String,
    },
    /// The same directive twice.
    #[error("{0} appears more than once")]
    Repeated(&'static str),
    /// `_HLS_part` without `_HLS_msn` (rule 42).
    #[error("_HLS_part requires _HLS_msn")]
    PartWithoutMsn,
    /// Too far ahead of the live edge (rule 41).
    #[error("{} is too far ahead of the playlist, which ends at {}", requested(*.msn, *.part), playlist_end(*.last_msn, *.last_part))]
    TooFarAhead {
        /// Requested MSN.
        msn: u64,
        /// Requested part.
        part: Option<u32>,
        /// Last MSN in the playlist.
        last_msn: u64,
        /// Last part index.
        last_part: Option<u32>,
    },
}

/// `_HLS_msn=M&_HLS_part=P` (or `_HLS_msn=M`) as a person would type it in an error text.
fn requested(msn: u64, part: Option<u32>) -> String {
    match part {
        Some(p) => format!("_HLS_msn={msn}&_HLS_part={p}"),
        None => format!("_HLS_msn={msn}"),
    }
}

/// The last part (or segment) of a playlist, for an error text.
fn playlist_end(msn: u64, part: Option<u32>) -> String {
    match part {
        Some(p) => format!("segment {msn} part {p}"),
        None => format!("segment {msn}"),
    }
}

impl Directives {
    /// Parses a raw query string (without `?`). Order does not matter (hls.js appends its
    /// directives after foreign params); unknown `_HLS_*` names are ignored.
    pub fn parse(query: &str) -> Result<Self, DirectiveError> {
        let mut d = Directives::default();
        let mut seen_skip = false;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "_HLS_msn" => {
                    if d.msn.is_some() {
                        return Err(DirectiveError::Repeated("_HLS_msn"));
                    }
                    d.msn = Some(parse_num("_HLS_msn", value)?);
                }
                "_HLS_part" => {
                    if d.part.is_some() {
                        return Err(DirectiveError::Repeated("_HLS_part"));
                    }
                    let v = parse_num("_HLS_part", value)?;
                    d.part = Some(u32::try_from(v).map_err(|_| DirectiveError::Malformed {
                        name: "_HLS_part",
                        value: value.chars().take(32).collect(),
                    })?);
                }
                "_HLS_skip" => {
                    if seen_skip {
                        return Err(DirectiveError::Repeated("_HLS_skip"));
                    }
                    seen_skip = true;
                    d.skip = match value {
                        "YES" => Some(SkipMode::Yes),
                        "v2" => Some(SkipMode::V2),
                        _ => None,
                    };
                }
                _ => {}
            }
        }
        if d.part.is_some() && d.msn.is_none() {
            return Err(DirectiveError::PartWithoutMsn);
        }
        Ok(d)
    }

    /// True when the request blocks (has `_HLS_msn`).
    pub fn is_blocking(&self) -> bool {
        self.msn.is_some()
    }
}

fn parse_num(name: &'static str, value: &str) -> Result<u64, DirectiveError> {
    let bad = || DirectiveError::Malformed {
        name,
        value: value.chars().take(32).collect(),
    };
    if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    value.parse::<u64>().map_err(|_| bad())
}

/// What to do with a media playlist request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Answer with the current playlist in this view.
    Now(SkipMode),
    /// Hold until [`RenditionSnapshot::satisfies`]`(msn, part)`, then answer in this view.
    Wait {
        /// Requested MSN.
        msn: u64,
        /// Requested part (None: msn-only).
        part: Option<u32>,
        /// View to render once released.
        skip: SkipMode,
    },
}

/// Classifies a parsed request against the current state (rules 38-45).
pub fn classify(
    d: &Directives,
    snap: &StreamSnapshot,
    r: &RenditionSnapshot,
) -> Result<Decision, DirectiveError> {
    if snap.ended {
        return Ok(Decision::Now(SkipMode::Full));
    }
    let skip = if snap.timing.can_skip_until.is_some() {
        d.skip.unwrap_or(SkipMode::Full)
    } else {
        SkipMode::Full
    };
    let Some(msn) = d.msn else {
        return Ok(Decision::Now(skip));
    };
    if r.satisfies(msn, d.part) {
        return Ok(Decision::Now(skip));
    }
    // Rule 41 with AppleRef's reading: "last MSN" is the last part's MSN.
    let (last_msn, last_part) = match r.last_part() {
        Some((m, p)) => (m, Some(p)),
        None => (r.last_msn().unwrap_or(0), None),
    };
    let too_far = || DirectiveError::TooFarAhead {
        msn,
        part: d.part,
        last_msn,
        last_part,
    };
    if msn > last_msn + 2 {
        return Err(too_far());
    }
    if let (Some(part), Some(lp)) = (d.part, last_part) {
        if r.part_target > 0.0 {
            let pt = r.part_target;
            let limit = if pt < 1.0 {
                (3.0 / pt).ceil() as i64
            } else {
                3
            };
            let per_seg = ((f64::from(snap.timing.target_duration) / pt).ceil() as i64).max(1);
            let distance =
                (msn as i64 - last_msn as i64) * per_seg + i64::from(part) - i64::from(lp);
            if distance > limit {
                return Err(too_far());
            }
        }
    }
    Ok(Decision::Wait {
        msn,
        part: d.part,
        skip,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_far_ahead_reads_as_the_request_was_written() {
        let e = DirectiveError::TooFarAhead {
            msn: 17961007980,
            part: Some(2),
            last_msn: 17961007976,
            last_part: Some(4),
        };
        assert_eq!(
            e.to_string(),
            "_HLS_msn=17961007980&_HLS_part=2 is too far ahead of the playlist, which ends at segment 17961007976 part 4"
        );
        let e = DirectiveError::TooFarAhead {
            msn: 9,
            part: None,
            last_msn: 5,
            last_part: None,
        };
        assert!(!e.to_string().contains("None"), "{e}");
    }

    #[test]
    fn parse_any_order_and_foreign_params() {
        let d = Directives::parse("token=abc&_HLS_part=3&_HLS_msn=12&_HLS_skip=v2&x").unwrap();
        assert_eq!(d.msn, Some(12));
        assert_eq!(d.part, Some(3));
        assert_eq!(d.skip, Some(SkipMode::V2));
        assert_eq!(Directives::parse("").unwrap(), Directives::default());
        assert_eq!(Directives::parse("_HLS_skip=NO").unwrap().skip, None);
        assert_eq!(
            Directives::parse("_HLS_foo=1").unwrap(),
            Directives::default()
        );
    }

    #[test]
    fn parse_rejects_hostile_values() {
        for q in [
            "_HLS_msn=abc",
            "_HLS_msn=-1",
            "_HLS_msn=",
            "_HLS_msn=123456789012345678901234567890",
            "_HLS_msn=18446744073709551616",
            "_HLS_msn=1&_HLS_part=4294967296",
            "_HLS_msn=+1",
            "_HLS_msn=1&_HLS_msn=2",
            "_HLS_msn=1&_HLS_part=1&_HLS_part=1",
        ] {
            assert!(Directives::parse(q).is_err(), "{q} should be rejected");
        }
        assert_eq!(
            Directives::parse("_HLS_part=1"),
            Err(DirectiveError::PartWithoutMsn)
        );
    }
}
