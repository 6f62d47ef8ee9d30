//! A time-bounded jitter buffer for one RTP stream, without I/O.
//!
//! It releases packets in sequence order and waits for a missing one at most `max_wait`
//! (long enough for a NACK retransmission on a normal path, short enough that the packager
//! never sees a stall), then skips it and marks the next packet as following a gap.
//! Sequence numbers that jump far ahead or behind start a new sequence rather than stall the
//! stream or flood it with "late" drops.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

/// One received RTP packet (already decrypted; sequence number and timestamp extended to
/// 64 bits by the WebRTC stack).
#[derive(Debug, Clone)]
pub struct Packet {
    /// Sequence number, extended to 64 bits.
    pub seq: u64,
    /// RTP timestamp, extended to 64 bits.
    pub ts: i64,
    /// The RTP marker bit (last packet of a frame).
    pub marker: bool,
    /// The payload after the RTP header.
    pub payload: Bytes,
    /// When it arrived.
    pub arrival: Instant,
    /// Latest RTCP sender report of the stream: (NTP wall clock, RTP time).
    pub sr: Option<(SystemTime, i64)>,
}

/// A sequence-number jump larger than this starts a new sequence.
const RESYNC: u64 = 3000;

/// Reorders one RTP stream.
pub struct JitterBuffer {
    buf: BTreeMap<u64, Packet>,
    /// Released by a resync, in order, with their gap flags.
    flushed: std::collections::VecDeque<(Packet, bool)>,
    next: Option<u64>,
    max_wait: Duration,
    max_len: usize,
    /// Packets given up on.
    pub lost: u64,
    /// Duplicates and packets older than what was already released.
    pub late: u64,
    /// New sequences started after a wild jump.
    pub resyncs: u64,
}

impl JitterBuffer {
    /// A buffer waiting at most `max_wait` for a missing packet, holding at most `max_len`.
    pub fn new(max_wait: Duration, max_len: usize) -> Self {
        JitterBuffer {
            buf: BTreeMap::new(),
            flushed: Default::default(),
            next: None,
            max_wait,
            max_len: max_len.max(2),
            lost: 0,
            late: 0,
            resyncs: 0,
        }
    }

    /// Takes one packet.
    pub fn push(&mut self, p: Packet) {
        let next = *self.next.get_or_insert(p.seq);
        // Saturating: a sequence number is extended by the WebRTC stack and cannot reach
        // u64::MAX, but this takes whatever it is given.
        if p.seq.saturating_add(RESYNC) < next || p.seq > next.saturating_add(RESYNC) {
            // A publisher restart or a broken sender: whatever is buffered is released
            // first, then the new sequence starts after a gap.
            self.resyncs += 1;
            self.release_all();
            self.flushed.push_back((p.clone(), true));
            self.next = Some(p.seq.saturating_add(1));
            return;
        }
        if p.seq < next || self.buf.contains_key(&p.seq) {
            self.late += 1;
            return;
        }
        self.buf.insert(p.seq, p);
    }

    /// The next packet in order, if it is here or waiting for a missing one has lasted long
    /// enough; `true` when packets were skipped before it.
    pub fn pop(&mut self, now: Instant) -> Option<(Packet, bool)> {
        if let Some(f) = self.flushed.pop_front() {
            return Some(f);
        }
        let n = self.next?;
        if let Some(p) = self.buf.remove(&n) {
            self.next = Some(n.saturating_add(1));
            return Some((p, false));
        }
        let (_, oldest) = self.buf.first_key_value()?;
        if now.saturating_duration_since(oldest.arrival) >= self.max_wait
            || self.buf.len() > self.max_len
        {
            let (first, p) = self.buf.pop_first()?;
            // Buffered packets are all at or after `next` (push drops the rest).
            self.lost += first.saturating_sub(n);
            self.next = Some(first.saturating_add(1));
            return Some((p, true));
        }
        None
    }

    /// Gives up waiting for missing packets: everything buffered is released by the next
    /// `pop` calls, in order, with its gap flag. For the end of a session (the publisher's
    /// `DELETE`): the packets after a hole would otherwise wait out `max_wait` and be lost
    /// with the session.
    pub fn release_all(&mut self) {
        let Some(mut expect) = self.next else {
            return;
        };
        for (seq, q) in std::mem::take(&mut self.buf) {
            let gap = seq != expect;
            if gap {
                self.lost += seq.saturating_sub(expect);
            }
            self.flushed.push_back((q, gap));
            expect = seq.saturating_add(1);
        }
        self.next = Some(expect);
    }

    /// When `pop` may release a packet without new input (for the session's timer).
    pub fn deadline(&self) -> Option<Instant> {
        self.buf.values().next().map(|p| p.arrival + self.max_wait)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A test packet (shared with the depacketizer tests).
    pub(crate) fn pkt(seq: u64, ts: i64, marker: bool, payload: &[u8], at: Instant) -> Packet {
        Packet {
            seq,
            ts,
            marker,
            payload: Bytes::copy_from_slice(payload),
            arrival: at,
            sr: None,
        }
    }

    fn drain(j: &mut JitterBuffer, now: Instant) -> Vec<(u64, bool)> {
        std::iter::from_fn(|| j.pop(now))
            .map(|(p, g)| (p.seq, g))
            .collect()
    }

    #[test]
    fn reorders_and_waits_a_bounded_time_for_loss() {
        let t = Instant::now();
        let mut j = JitterBuffer::new(Duration::from_millis(100), 500);
        j.push(pkt(10, 0, false, b"a", t));
        j.push(pkt(12, 0, false, b"c", t));
        j.push(pkt(11, 0, false, b"b", t));
        assert_eq!(
            drain(&mut j, t),
            vec![(10, false), (11, false), (12, false)]
        );
        j.push(pkt(14, 0, false, b"e", t)); // 13 missing
        assert!(drain(&mut j, t + Duration::from_millis(50)).is_empty());
        assert_eq!(j.deadline(), Some(t + Duration::from_millis(100)));
        j.push(pkt(11, 0, false, b"late", t));
        assert_eq!(
            drain(&mut j, t + Duration::from_millis(100)),
            vec![(14, true)]
        );
        assert_eq!((j.lost, j.late), (1, 1));
        j.push(pkt(13, 0, false, b"too late", t));
        assert_eq!(j.late, 2);
    }

    #[test]
    fn release_all_gives_up_on_missing_packets_at_once() {
        let t = Instant::now();
        let mut j = JitterBuffer::new(Duration::from_millis(100), 500);
        j.push(pkt(10, 0, false, b"a", t));
        j.push(pkt(13, 0, false, b"d", t)); // 11 and 12 missing
        j.push(pkt(14, 0, true, b"e", t));
        assert_eq!(drain(&mut j, t), vec![(10, false)]);
        j.release_all();
        assert_eq!(drain(&mut j, t), vec![(13, true), (14, false)]);
        assert_eq!(j.lost, 2);
        assert_eq!(j.deadline(), None);
        // The sequence goes on after what was released.
        j.push(pkt(15, 0, false, b"f", t));
        assert_eq!(drain(&mut j, t), vec![(15, false)]);
    }

    #[test]
    fn sequence_numbers_at_the_ends_of_the_range_do_not_overflow() {
        let t = Instant::now();
        let mut j = JitterBuffer::new(Duration::from_millis(100), 500);
        j.push(pkt(u64::MAX - 1, 0, false, b"a", t));
        j.push(pkt(u64::MAX, 0, false, b"b", t));
        assert_eq!(
            drain(&mut j, t),
            vec![(u64::MAX - 1, false), (u64::MAX, false)]
        );
        j.push(pkt(0, 0, false, b"c", t));
        j.push(pkt(u64::MAX - 5000, 0, false, b"d", t));
        j.push(pkt(3, 0, false, b"e", t));
        let later = t + Duration::from_secs(1);
        let out = drain(&mut j, later);
        assert!(out.contains(&(0, true)), "{out:?}");
        assert!(j.resyncs >= 1);
    }

    #[test]
    fn wild_sequence_jumps_start_a_new_sequence() {
        let t = Instant::now();
        let mut j = JitterBuffer::new(Duration::from_millis(100), 500);
        j.push(pkt(100, 0, false, b"a", t));
        assert_eq!(drain(&mut j, t), vec![(100, false)]);
        j.push(pkt(102, 0, false, b"b", t)); // waiting for 101
        j.push(pkt(40_000, 0, false, b"c", t));
        j.push(pkt(40_001, 0, false, b"d", t));
        assert_eq!(
            drain(&mut j, t),
            vec![(102, true), (40_000, true), (40_001, false)]
        );
        j.push(pkt(5, 0, false, b"back", t)); // far behind: another restart
        assert_eq!(drain(&mut j, t), vec![(5, true)]);
        assert_eq!(j.resyncs, 2);
    }
}
