//! Packager settings and their validation.

use std::time::Duration;

use super::PackagerError;

/// Where audio goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Video and audio in the same fragments and one media playlist (half the blocking
    /// requests per viewer).
    #[default]
    Muxed,
    /// Video and audio as separate CMAF tracks with their own media playlists, audio in an
    /// EXT-X-MEDIA group (the CMAF way).
    Separate,
}

/// How parts are addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Addressing {
    /// One URI per part (`video/123.4.m4s`), plus one per segment.
    #[default]
    Files,
    /// Parts are byte ranges of the growing segment (`BYTERANGE`, `BYTERANGE-START` hints).
    ByteRange,
}

/// Packager settings. Timing values derived from them are fixed when the stream starts.
#[derive(Debug, Clone)]
pub struct PackagerConfig {
    /// Nominal part duration (rounded to whole frames at stream start).
    pub part_target: Duration,
    /// Nominal segment duration; segments close on the first keyframe after 3/4 of it.
    pub segment_target: Duration,
    /// Largest EXT-X-TARGETDURATION accepted when the keyframe interval is long (seconds).
    pub max_target_duration: u32,
    /// Complete segments kept in the playlist (at least 6), and without a DVR window the whole
    /// playlist. With one, the segments that stay in memory (the live window): older ones are
    /// announced with [`Output::Spill`](super::Output::Spill) so the caller can move their
    /// bytes to slower storage.
    pub window_segments: usize,
    /// DVR window: media playlists list the last this-much of media (never fewer than
    /// `window_segments` segments). Zero: no DVR, the playlist is the live window.
    pub dvr_window: Duration,
    /// Muxed or separate audio.
    pub layout: Layout,
    /// Part files or byte ranges.
    pub addressing: Addressing,
    /// First media sequence number (>= 1). Use a value derived from the wall clock (`llhls`
    /// uses Unix time in tenths of a second) so a restarted stream never reuses a URI a CDN may
    /// have cached.
    pub first_msn: u64,
    /// Offer delta updates (CAN-SKIP-UNTIL = 6 × TD).
    pub delta_updates: bool,
    /// First EXT-X-DISCONTINUITY-SEQUENCE (0 for a new stream). A stream that continues
    /// another one's URIs elsewhere (a cluster takeover) starts above the old one's, so players
    /// see a discontinuity and re-map timestamps instead of appending over old media.
    pub first_discontinuity_sequence: u64,
    /// Fill a stalled publisher's timeline with filler media (the last keyframe, then pictures
    /// that repeat it, and silence) instead of holding the playlist and publishing GAP parts,
    /// where the codecs allow (H.264 with an IDR keyframe seen; AAC-LC or Opus, mono or
    /// stereo, or no audio): players keep playing a frozen picture and stay at their latency.
    /// See the `gap` module of the packager.
    pub stall_filler: bool,
    /// The stream continues one that players may still be polling (this server's before a
    /// restart, another node's before a takeover): its first playlists re-list that run's last
    /// segment and the MSNs up to [`PackagerConfig::first_msn`] as GAP segments, so players
    /// find MSNs they know ([`Bridge`]). `first_discontinuity_sequence` must then be
    /// `bridge.discontinuity_sequence + 1`.
    pub bridge: Option<Bridge>,
}

/// The previous run's last segment as players last saw it, for [`PackagerConfig::bridge`].
///
/// Why: a player that kept polling through a restart finds, in the continued stream's first
/// playlist, no MSN it knows unless some are re-listed. Shaka Player then places the new
/// segments at the start of its availability window, behind its playhead, and never plays
/// again (shaka-player#6019); hls.js places them by MSN distance and waits seconds. With the
/// bridge, the playlist starts at the old run's last MSN (GAP), goes on with GAP segments over
/// the MSNs the outage skipped, spanning its wall-clock time, and then, after a discontinuity,
/// the new media: players line the new segments up from an MSN they know, skip the GAP
/// and play on at about their old latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bridge {
    /// The old run's last MSN (its open segment's when one was open).
    pub msn: u64,
    /// That segment's EXT-X-PROGRAM-DATE-TIME.
    pub program_date_time: crate::media::WallClock,
    /// That segment's discontinuity sequence number.
    pub discontinuity_sequence: u64,
}

impl Default for PackagerConfig {
    fn default() -> Self {
        PackagerConfig {
            part_target: Duration::from_millis(200),
            segment_target: Duration::from_secs(2),
            max_target_duration: 10,
            window_segments: 12,
            dvr_window: Duration::ZERO,
            layout: Layout::Muxed,
            addressing: Addressing::Files,
            first_msn: 1,
            delta_updates: true,
            first_discontinuity_sequence: 0,
            stall_filler: false,
            bridge: None,
        }
    }
}

/// Largest accepted [`PackagerConfig::first_msn`]: 2^53 (the largest integer a JavaScript
/// player holds exactly) minus room for 2^40 segments (tens of thousands of years).
pub const MAX_FIRST_MSN: u64 = (1 << 53) - (1 << 40);

/// Longest DVR window accepted (seconds): 30 days.
pub const MAX_DVR_WINDOW_SECS: u64 = 30 * 24 * 3600;

impl PackagerConfig {
    /// Checks the settings can produce a valid stream.
    pub(super) fn validate(&self) -> Result<(), PackagerError> {
        if self.window_segments < 6 {
            return Err(PackagerError::Config(
                "window_segments must be at least 6 (Apple authoring spec 8.11)".into(),
            ));
        }
        if self.dvr_window > Duration::from_secs(MAX_DVR_WINDOW_SECS) {
            return Err(PackagerError::Config(format!(
                "the DVR window {} s is longer than {MAX_DVR_WINDOW_SECS} s",
                self.dvr_window.as_secs()
            )));
        }
        if self.first_msn == 0 {
            return Err(PackagerError::Config("first_msn must be at least 1".into()));
        }
        if self.first_msn > MAX_FIRST_MSN {
            return Err(PackagerError::Config(format!(
                "first_msn {} is above {MAX_FIRST_MSN}: players parse MSNs as JavaScript numbers (exact up to 2^53), and the stream needs room to count up",
                self.first_msn
            )));
        }
        if self.first_discontinuity_sequence > MAX_FIRST_MSN {
            return Err(PackagerError::Config(format!(
                "first_discontinuity_sequence {} is above {MAX_FIRST_MSN}: players parse it as a JavaScript number, and it needs room to count up",
                self.first_discontinuity_sequence
            )));
        }
        if let Some(b) = self.bridge {
            let expected = (self.first_msn > b.msn)
                .then(|| b.discontinuity_sequence.checked_add(1))
                .flatten();
            if expected != Some(self.first_discontinuity_sequence) {
                return Err(PackagerError::Config(format!(
                    "bridge from MSN {} (discontinuity sequence {}) to first_msn {}: first_discontinuity_sequence must be {:?}, not {}",
                    b.msn,
                    b.discontinuity_sequence,
                    self.first_msn,
                    expected,
                    self.first_discontinuity_sequence
                )));
            }
        }
        let part_secs = self.part_target.as_secs_f64();
        if !(0.05..=2.0).contains(&part_secs) {
            return Err(PackagerError::Config(format!(
                "part target {part_secs} s is outside 0.05-2 s"
            )));
        }
        let segment_secs = self.segment_target.as_secs_f64();
        if segment_secs < 2.0 * part_secs || segment_secs > f64::from(self.max_target_duration) {
            return Err(PackagerError::Config(format!(
                "segment target {segment_secs} s must be at least two part targets and at most max_target_duration"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_msn_near_the_top_is_refused() {
        // Found by fuzzing: a first MSN near u64::MAX overflowed when segments opened.
        for first_msn in [MAX_FIRST_MSN + 1, u64::MAX - 1, u64::MAX] {
            let config = PackagerConfig {
                first_msn,
                ..PackagerConfig::default()
            };
            assert!(matches!(config.validate(), Err(PackagerError::Config(_))));
        }
        let top = PackagerConfig {
            first_msn: MAX_FIRST_MSN,
            ..PackagerConfig::default()
        };
        assert_eq!(top.validate(), Ok(()));
    }

    #[test]
    fn default_is_valid() {
        assert_eq!(PackagerConfig::default().validate(), Ok(()));
    }

    #[test]
    fn rejects_impossible_settings() {
        let bad = [
            PackagerConfig {
                window_segments: 5,
                ..Default::default()
            },
            PackagerConfig {
                first_msn: 0,
                ..Default::default()
            },
            PackagerConfig {
                first_discontinuity_sequence: MAX_FIRST_MSN + 1,
                ..Default::default()
            },
            PackagerConfig {
                part_target: Duration::from_millis(10),
                ..Default::default()
            },
            PackagerConfig {
                part_target: Duration::from_secs(3),
                ..Default::default()
            },
            PackagerConfig {
                segment_target: Duration::from_millis(300),
                ..Default::default()
            },
            PackagerConfig {
                segment_target: Duration::from_secs(11),
                ..Default::default()
            },
        ];
        for config in bad {
            assert!(
                matches!(config.validate(), Err(PackagerError::Config(_))),
                "{config:?}"
            );
        }
    }
}
