//! The GAP segments a continued stream lists before its first segment ([`Bridge`]): the
//! previous run's last MSN players saw, then one segment per MSN the outage skipped, together
//! spanning the wall-clock time from that segment's date to the new first segment's, split into
//! GAP parts like a stall's, all with the seen segment's discontinuity sequence number; the new
//! run's first segment then starts a discontinuity. No discontinuity inside the bridge: the old
//! run may have published some of those MSNs after its position was stored, players saw them
//! under the seen segment's number, and hls.js fails for good on an MSN whose number changed
//! ("discontinuity sequence mismatch"). The segments have no objects (their URIs answer 404, as
//! every GAP URI) and leave the window as any segment.

use crate::media::WallClock;

use super::config::Bridge;
use super::fragment::part_target_us;
use super::gap::gap_part_lengths;
use super::output::{Output, Warning};
use super::time::LeadTicks;
use super::window::Open;
use super::Packager;
use crate::key::ObjectKey;

impl Packager {
    /// Lists `bridge` in every rendition before the first segment, which starts at lead time
    /// `at`, dated `first_pdt`. False (nothing listed) when the dates do not allow it: the new
    /// run then starts without it, at its own MSN and discontinuity sequence.
    pub(super) fn list_bridge(
        &mut self,
        bridge: Bridge,
        at: LeadTicks,
        first_pdt: WallClock,
    ) -> bool {
        let Some(locked) = self.locked() else {
            return false;
        };
        let count = self.config.first_msn.saturating_sub(bridge.msn);
        let span_ms = first_pdt.0.saturating_sub(bridge.program_date_time.0);
        if count == 0 || span_ms <= 0 {
            self.outputs.push_back(Output::Warning(Warning {
                message: format!(
                    "the previous run's last segment {} is dated after this run's start: its segments are not re-listed, so players that kept polling may not line the new ones up",
                    bridge.msn
                ),
                keyframe_interval_max: None,
            }));
            return false;
        }
        // Each at most TARGETDURATION: a longer outage than the skipped MSNs can span leaves
        // the new segments a little earlier on players' timelines than on the wall clock.
        let td_ticks = i64::from(locked.target_duration) * self.lead_scale;
        let each = LeadTicks(
            (span_ms.saturating_mul(self.lead_scale) / 1000 / count as i64).clamp(1, td_ticks),
        );
        let lead_scale = self.lead_scale;
        for r in &mut self.renditions {
            r.media_sequence = bridge.msn;
            r.spilled_until = bridge.msn;
            r.discontinuity_sequence = bridge.discontinuity_sequence;
            for i in 0..count {
                let msn = bridge.msn + i;
                let offset = LeadTicks(each.get() * (count - i) as i64);
                let pdt = WallClock(
                    bridge.program_date_time.0
                        + (each.get() * i as i64).saturating_mul(1000) / lead_scale,
                );
                let mut open = Open::new(msn, at - offset, pdt, false, r.map_uri.clone(), false);
                for len in gap_part_lengths(each, locked.part_target) {
                    let index = open.parts.len() as u32;
                    open.push_part(
                        len.secs(lead_scale),
                        ObjectKey::part(&r.name, msn, index).to_string(),
                        false,
                        true,
                        None,
                        part_target_us(r.part_target),
                    );
                }
                open.end_with_last_part();
                r.push_closed(open);
            }
        }
        self.unlist_old_parts();
        self.trim_pending = true;
        self.changed();
        true
    }
}
