//! The packager's three time scales as types, so they cannot mix:
//!
//! - [`InputNs`]: a frame's timestamp on the publisher's clock, in nanoseconds. Built only
//!   through a range check, so arithmetic on it cannot overflow.
//! - [`LeadTicks`]: output time on the lead track's clock (90 kHz for video, the sample rate
//!   for audio-only): the grid of parts and segments, the timeline's end, GAP spans.
//! - [`TrackTicks`]: output time on one track's own clock: sample DTS in fragments.
//!
//! Values derived from input are bounded ([`InputNs::LIMIT`], [`OUTPUT_LIMIT_NS`]) at the
//! edge, so the plain `+`/`-` on ticks inside the packager stay far from `i64` limits.

use std::ops::{Add, AddAssign, Mul, Sub};

use crate::media::{rescale, MediaTime, WallClock};

/// Nanoseconds per second.
pub(super) const NS: u32 = 1_000_000_000;

/// Largest output time (either sign) in nanoseconds: 2^61 ns, 73 years.
pub(super) const OUTPUT_LIMIT_NS: i64 = 1 << 61;

/// `ticks` from `from` Hz to `to` Hz, `None` when the result does not fit in `limit` (either
/// sign). Exact rounding as [`rescale`], computed in 128 bits.
pub(super) fn rescale_within(ticks: i64, from: u32, to: u32, limit: i64) -> Option<i64> {
    let num = i128::from(ticks) * i128::from(to);
    let den = i128::from(from.max(1));
    let q = if num >= 0 {
        (num + den / 2) / den
    } else {
        (num - den / 2) / den
    };
    (q.abs() <= i128::from(limit)).then_some(q as i64)
}

/// A frame timestamp on the publisher's clock in nanoseconds, within ±[`InputNs::LIMIT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct InputNs(i64);

impl InputNs {
    /// 2^60 ns (36 years) either side of zero: beyond any real clock, and small enough that
    /// differences and shifts of two input times fit in an `i64`.
    pub(super) const LIMIT: i64 = 1 << 60;

    /// `time` in nanoseconds, or `None` beyond the limit.
    pub(super) fn from_media(time: MediaTime) -> Option<Self> {
        rescale_within(time.ticks, time.scale.hz(), NS, Self::LIMIT).map(InputNs)
    }

    /// Nanoseconds.
    pub(super) fn get(self) -> i64 {
        self.0
    }

    /// `self - earlier` in nanoseconds (cannot overflow: both are within the limit).
    pub(super) fn since(self, earlier: InputNs) -> i64 {
        self.0 - earlier.0
    }
}

macro_rules! ticks {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
        pub(super) struct $name(pub(super) i64);

        impl $name {
            /// Ticks.
            pub(super) fn get(self) -> i64 {
                self.0
            }
        }

        impl Add for $name {
            type Output = $name;
            fn add(self, other: $name) -> $name {
                $name(self.0 + other.0)
            }
        }

        impl AddAssign for $name {
            fn add_assign(&mut self, other: $name) {
                self.0 += other.0;
            }
        }

        impl Sub for $name {
            type Output = $name;
            fn sub(self, other: $name) -> $name {
                $name(self.0 - other.0)
            }
        }

        impl Mul<$name> for i64 {
            type Output = $name;
            fn mul(self, ticks: $name) -> $name {
                $name(self * ticks.0)
            }
        }
    };
}

ticks!(
    /// Output time (or a span) on the lead track's clock.
    LeadTicks
);

ticks!(
    /// Output time (or a span) on one track's own clock.
    TrackTicks
);

impl LeadTicks {
    /// A lead-track sample's time: the lead track's clock is the lead clock.
    pub(super) fn of_lead_sample(dts: TrackTicks) -> Self {
        LeadTicks(dts.0)
    }

    /// Seconds, for durations in playlists and log lines.
    pub(super) fn secs(self, lead_scale: i64) -> f64 {
        self.0 as f64 / lead_scale as f64
    }

    /// Nanoseconds (exact rounding; lead times are within the output limit).
    pub(super) fn to_ns(self, lead_scale: i64) -> i64 {
        rescale(self.0, lead_scale as u32, NS)
    }

    /// The wall-clock time `self` is at, given that `anchor` was at `anchor_wall`; `None` if
    /// it does not fit.
    pub(super) fn wall_clock(
        self,
        anchor: LeadTicks,
        anchor_wall: WallClock,
        lead_scale: i64,
    ) -> Option<WallClock> {
        let ms = (i128::from(self.0) - i128::from(anchor.0)) * 1000 / i128::from(lead_scale);
        i64::try_from(i128::from(anchor_wall.0) + ms)
            .ok()
            .map(WallClock)
    }

    /// Where the lead clock is at wall-clock `now`, given that `anchor` was at `anchor_wall`;
    /// `None` if it does not fit within the output limit.
    pub(super) fn at_wall_clock(
        now: WallClock,
        anchor: LeadTicks,
        anchor_wall: WallClock,
        lead_scale: i64,
    ) -> Option<LeadTicks> {
        let ticks = i128::from(anchor.0)
            + (i128::from(now.0) - i128::from(anchor_wall.0)) * i128::from(lead_scale) / 1000;
        let limit = i128::from(OUTPUT_LIMIT_NS) * i128::from(lead_scale) / i128::from(NS);
        (ticks.abs() <= limit).then_some(LeadTicks(ticks as i64))
    }
}

impl TrackTicks {
    /// The same instant on the lead clock.
    pub(super) fn to_lead(self, track_scale: u32, lead_scale: i64) -> LeadTicks {
        LeadTicks(rescale(self.0, track_scale, lead_scale as u32))
    }
}

/// Earliest and latest wall clock accepted: years 0000 to 9999, what RFC 3339 (and so
/// EXT-X-PROGRAM-DATE-TIME) can express.
pub(super) const WALL_CLOCK_RANGE: std::ops::RangeInclusive<i64> =
    -62_167_219_200_000..=253_402_300_799_999;

/// Is `wall` a wall clock the packager can date segments with?
pub(super) fn wall_clock_in_range(wall: WallClock) -> bool {
    WALL_CLOCK_RANGE.contains(&wall.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Timescale;

    #[test]
    fn input_times_are_bounded() {
        let at =
            |ticks, hz| InputNs::from_media(MediaTime::new(ticks, Timescale::new(hz).unwrap()));
        assert_eq!(at(1, 1000).map(InputNs::get), Some(1_000_000));
        assert_eq!(at(i64::MAX, 1), None);
        assert_eq!(at(i64::MIN, 1), None);
        assert_eq!(at(i64::MAX, 1000), None);
        assert_eq!(at(i64::MAX, u32::MAX), None);
        assert_eq!(
            at(1 << 40, u32::MAX).map(InputNs::get),
            Some(256_000_000_060)
        );
        assert_eq!(
            at(-(1 << 40), u32::MAX).map(InputNs::get),
            Some(-256_000_000_060)
        );
        let (max, min) = (at(1 << 59, NS).unwrap(), at(-(1 << 59), NS).unwrap());
        assert_eq!(max.since(min), 1 << 60);
    }

    #[test]
    fn rescale_within_rounds_and_refuses_overflow() {
        assert_eq!(rescale_within(1, 1000, 90_000, i64::MAX), Some(90));
        assert_eq!(rescale_within(-1, 1000, 90_000, i64::MAX), Some(-90));
        assert_eq!(rescale_within(i64::MAX, 1, u32::MAX, i64::MAX), None);
        assert_eq!(rescale_within(i64::MIN, 1, 2, i64::MAX), None);
        assert_eq!(rescale_within(100, 1, 1, 99), None);
    }

    #[test]
    fn wall_clock_mapping_does_not_overflow() {
        let anchor = LeadTicks(90_000);
        let wall = WallClock(1_000);
        assert_eq!(
            LeadTicks(180_000).wall_clock(anchor, wall, 90_000),
            Some(WallClock(2_000))
        );
        assert_eq!(
            LeadTicks::at_wall_clock(WallClock(2_000), anchor, wall, 90_000),
            Some(LeadTicks(180_000))
        );
        assert_eq!(
            LeadTicks::at_wall_clock(WallClock(i64::MAX), anchor, WallClock(i64::MIN), 90_000),
            None
        );
        assert_eq!(
            LeadTicks(i64::MAX).wall_clock(LeadTicks(0), WallClock(i64::MAX), 1),
            None
        );
        assert!(wall_clock_in_range(WallClock(0)));
        assert!(!wall_clock_in_range(WallClock(i64::MAX)));
        assert!(!wall_clock_in_range(WallClock(i64::MIN)));
    }

    #[test]
    fn ticks_add_and_scale() {
        assert_eq!(LeadTicks(3) + LeadTicks(4), LeadTicks(7));
        assert_eq!(LeadTicks(3) - LeadTicks(4), LeadTicks(-1));
        assert_eq!(2 * LeadTicks(3), LeadTicks(6));
        assert_eq!(
            TrackTicks(48_000).to_lead(48_000, 90_000),
            LeadTicks(90_000)
        );
        assert_eq!(LeadTicks(45_000).secs(90_000), 0.5);
        assert_eq!(LeadTicks(90).to_ns(90_000), 1_000_000);
    }
}
