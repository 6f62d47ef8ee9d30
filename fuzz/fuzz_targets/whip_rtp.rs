//! The WHIP receive path below the WebRTC stack: RTP packets with arbitrary sequence numbers,
//! timestamps, markers, payloads and arrival times go through the jitter buffer into the
//! H.264 and VP8/VP9 depacketizers. Never panics; every H.264 access unit is well-formed
//! length-prefixed NAL units; the buffer releases packets in sequence order.
#![no_main]

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use llhls_ingest::whip::depacketize::{H264Depacketizer, VpxDepacketizer, VpxKind};
use llhls_ingest::whip::jitter::{JitterBuffer, Packet};

#[derive(Arbitrary, Debug)]
struct Rtp {
    seq_step: i16,
    ts_step: i32,
    marker: bool,
    wait_ms: u8,
    payload: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    codec: u8,
    first_seq: u32,
    first_ts: i32,
    packets: Vec<Rtp>,
}

fuzz_target!(|input: Input| {
    let t0 = Instant::now();
    let mut now = t0;
    let mut jitter = JitterBuffer::new(Duration::from_millis(150), 512);
    let mut h264 = H264Depacketizer::default();
    let mut vpx = VpxDepacketizer::new(if input.codec & 1 == 0 { VpxKind::Vp8 } else { VpxKind::Vp9 });
    let (mut seq, mut ts) = (u64::from(input.first_seq), i64::from(input.first_ts));
    let mut last_released: Option<u64> = None;
    let (mut units, mut frames) = (Vec::new(), Vec::new());
    for p in input.packets.into_iter().take(2000) {
        seq = seq.saturating_add_signed(i64::from(p.seq_step));
        ts = ts.saturating_add(i64::from(p.ts_step));
        now += Duration::from_millis(u64::from(p.wait_ms));
        jitter.push(Packet {
            seq,
            ts,
            marker: p.marker,
            payload: Bytes::from(p.payload),
            arrival: now,
            sr: None,
        });
        while let Some((packet, gap)) = jitter.pop(now) {
            if let Some(prev) = last_released {
                // In order, except after a resync (a wild jump starts a new sequence).
                assert!(packet.seq > prev || gap, "released {} after {prev}", packet.seq);
            }
            last_released = Some(packet.seq);
            if input.codec & 2 == 0 {
                h264.push(packet, gap, &mut units);
            } else {
                vpx.push(packet, gap, &mut frames);
            }
        }
    }
    for au in &units {
        // Length-prefixed NAL units that exactly fill the access unit.
        let mut rest = &au.data[..];
        while !rest.is_empty() {
            assert!(rest.len() >= 4, "truncated length prefix");
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            assert!(len > 0 && rest.len() >= 4 + len, "NAL length {len} overruns the unit");
            rest = &rest[4 + len..];
        }
    }
});
