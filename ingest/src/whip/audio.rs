//! Opus (what WebRTC publishers send) to AAC-LC (what every HLS player decodes) through
//! `ffmpeg-next`: FFmpeg's Opus decoder, a planar float FIFO that regroups 960-sample Opus
//! frames into 1024-sample AAC frames, and FFmpeg's native AAC encoder. Output timestamps
//! follow the input timestamps sample for sample; lost packets become silence, so audio stays
//! continuous and in sync with video.

use anyhow::{bail, Context};
use bytes::Bytes;
use ffmpeg_next as ffmpeg;
use ffmpeg_next::format::sample::{Sample as SampleFormat, Type as SampleType};
use ffmpeg_next::ChannelLayout;
use llhls_packager::codec::{AacConfig, CodecConfig};
use llhls_packager::{Frame, MediaTime, Timescale};

const RATE: u32 = 48_000;
const CHANNELS: usize = 2;
const AAC_FRAME: usize = 1024;
/// Gaps up to this long are filled with silence; longer ones restart the timeline there.
const MAX_FILL: i64 = RATE as i64;

/// The AAC track configuration the transcoder produces.
pub fn aac_config() -> CodecConfig {
    CodecConfig::Aac(AacConfig::lc(RATE, CHANNELS as u8).expect("48 kHz has an index"))
}

/// Near-silent samples to exact zero. Decoded quiet passages carry denormal floats, which
/// x86 FPUs process very slowly: FFmpeg's AAC encoder took 8% of a core on a mostly silent
/// Chromium stream, against 2% on a tone.
fn flush_denormal(x: f32) -> f32 {
    if x.abs() < 1e-20 {
        0.0
    } else {
        x
    }
}

/// One session's Opus to AAC transcoder.
pub struct OpusToAac {
    decoder: ffmpeg::decoder::Audio,
    encoder: ffmpeg::encoder::Audio,
    /// Planar samples waiting to fill an AAC frame.
    fifo: [Vec<f32>; CHANNELS],
    /// Timestamp (48 kHz) of `fifo[_][0]`.
    fifo_pts: Option<i64>,
    /// Where the next Opus packet is expected to start.
    next_in: Option<i64>,
    decoded: ffmpeg::frame::Audio,
    packet: ffmpeg::Packet,
    track: llhls_packager::TrackId,
    /// Opus packets FFmpeg could not decode.
    pub decode_errors: u64,
    /// Opus packets taken.
    pub packets_in: u64,
    /// Samples decoded (per channel).
    pub samples_decoded: u64,
    /// Samples of silence inserted for lost packets.
    pub samples_filled: u64,
    /// AAC frames produced.
    pub frames_out: u64,
    /// Time spent decoding.
    pub decode_time: std::time::Duration,
    /// Time spent encoding.
    pub encode_time: std::time::Duration,
}

impl OpusToAac {
    /// A transcoder writing frames for `track`.
    pub fn new(track: llhls_packager::TrackId, bitrate: usize) -> anyhow::Result<Self> {
        let dcodec = ffmpeg::decoder::find(ffmpeg::codec::Id::OPUS)
            .context("this FFmpeg has no Opus decoder")?;
        // Without an OpusHead, FFmpeg's Opus decoder decodes to 48 kHz stereo, what WebRTC's
        // `opus/48000/2` promises.
        let decoder = ffmpeg::codec::context::Context::new_with_codec(dcodec)
            .decoder()
            .open_as(dcodec)
            .context("opening the Opus decoder")?
            .audio()
            .context("Opus decoder")?;

        let ecodec = ffmpeg::encoder::find(ffmpeg::codec::Id::AAC)
            .context("this FFmpeg has no AAC encoder")?;
        let mut enc = ffmpeg::codec::context::Context::new_with_codec(ecodec)
            .encoder()
            .audio()
            .context("AAC encoder")?;
        enc.set_rate(RATE as i32);
        enc.set_format(SampleFormat::F32(SampleType::Planar));
        enc.set_channel_layout(ChannelLayout::STEREO);
        enc.set_channels(CHANNELS as i32);
        enc.set_bit_rate(bitrate);
        enc.set_time_base((1, RATE as i32));
        let encoder = enc.open_as(ecodec).context("opening the AAC encoder")?;
        if encoder.frame_size() as usize != AAC_FRAME {
            bail!("unexpected AAC frame size {}", encoder.frame_size());
        }
        Ok(OpusToAac {
            decoder,
            encoder,
            fifo: [Vec::new(), Vec::new()],
            fifo_pts: None,
            next_in: None,
            decoded: ffmpeg::frame::Audio::empty(),
            packet: ffmpeg::Packet::empty(),
            track,
            decode_errors: 0,
            packets_in: 0,
            samples_decoded: 0,
            samples_filled: 0,
            frames_out: 0,
            decode_time: std::time::Duration::ZERO,
            encode_time: std::time::Duration::ZERO,
        })
    }

    /// Takes one Opus packet at `pts` (48 kHz ticks); returns the AAC frames now complete.
    pub fn push(&mut self, pts: i64, opus: &[u8]) -> Vec<Frame> {
        let mut out = Vec::new();
        if self.next_in.is_none() && (1..RATE as i64).contains(&pts) {
            // The stream's timeline starts at its first video keyframe (0); the first audio
            // packet lands up to a frame later. Start the audio at 0 with silence so the two
            // tracks start together (players wait at a start where one track has no data).
            self.next_in = Some(0);
        }
        if let Some(next) = self.next_in {
            // Saturating: `pts` is a media time the assembler derived from the publisher's
            // RTP timestamps.
            let gap = pts.saturating_sub(next);
            if gap < -(AAC_FRAME as i64) {
                // Overlaps what we already have: a duplicate or a late packet.
                return out;
            }
            if gap > MAX_FILL {
                // A long silence (or a re-anchored clock): flush and restart the timeline.
                self.pad_and_flush(&mut out);
                self.fifo_pts = None;
            } else if gap > 0 {
                self.samples_filled += gap as u64;
                self.fifo_pts.get_or_insert(next);
                for ch in &mut self.fifo {
                    ch.extend(std::iter::repeat_n(0.0, gap as usize));
                }
            }
        }
        self.packets_in += 1;
        let t0 = std::time::Instant::now();
        let packet = ffmpeg::Packet::copy(opus);
        let mut samples = 0usize;
        if self.decoder.send_packet(&packet).is_err() {
            self.decode_errors += 1;
        }
        while self.decoder.receive_frame(&mut self.decoded).is_ok() {
            let n = self.decoded.samples();
            let chans = usize::from(self.decoded.channels()).max(1);
            let planar = self.decoded.is_planar();
            if self.fifo_pts.is_none() {
                self.fifo_pts = Some(pts);
            }
            match (self.decoded.format(), planar) {
                (SampleFormat::F32(_), true) => {
                    for (c, ch) in self.fifo.iter_mut().enumerate() {
                        let plane: &[f32] = self.decoded.plane(c.min(chans - 1));
                        ch.extend(
                            plane[..n.min(plane.len())]
                                .iter()
                                .map(|&x| flush_denormal(x)),
                        );
                    }
                }
                (SampleFormat::F32(_), false) => {
                    let data: &[f32] = self.decoded.plane(0);
                    for (c, ch) in self.fifo.iter_mut().enumerate() {
                        let c = c.min(chans - 1);
                        ch.extend(
                            (0..n).filter_map(|i| {
                                data.get(i * chans + c).map(|&x| flush_denormal(x))
                            }),
                        );
                    }
                }
                _ => {
                    self.decode_errors += 1;
                    continue;
                }
            }
            samples += n;
        }
        self.samples_decoded += samples as u64;
        self.decode_time += t0.elapsed();
        if samples == 0 {
            // Undecodable: keep the timeline with silence of one Opus frame.
            let n = llhls_packager::codec::opus_packet_samples(opus).unwrap_or(960) as usize;
            if self.fifo_pts.is_none() {
                self.fifo_pts = Some(pts);
            }
            for ch in &mut self.fifo {
                ch.extend(std::iter::repeat_n(0.0, n));
            }
            samples = n;
        }
        self.next_in = Some(pts.saturating_add(samples as i64));
        let t1 = std::time::Instant::now();
        self.encode_full(&mut out);
        self.encode_time += t1.elapsed();
        out
    }

    fn encode_full(&mut self, out: &mut Vec<Frame>) {
        while self.fifo[0].len() >= AAC_FRAME {
            let pts = self.fifo_pts.unwrap_or(0);
            let mut frame =
                ffmpeg::frame::Audio::new(self.encoder.format(), AAC_FRAME, ChannelLayout::STEREO);
            frame.set_rate(RATE);
            for (c, ch) in self.fifo.iter_mut().enumerate() {
                frame.plane_mut::<f32>(c)[..AAC_FRAME].copy_from_slice(&ch[..AAC_FRAME]);
                ch.drain(..AAC_FRAME);
            }
            frame.set_pts(Some(pts));
            self.fifo_pts = Some(pts.saturating_add(AAC_FRAME as i64));
            if self.encoder.send_frame(&frame).is_err() {
                continue;
            }
            self.receive(out);
        }
    }

    fn receive(&mut self, out: &mut Vec<Frame>) {
        while self.encoder.receive_packet(&mut self.packet).is_ok() {
            let Some(data) = self.packet.data() else {
                continue;
            };
            // The encoder's pts already accounts for its priming (1024 samples): decoded, the
            // frame at `pts` plays the input samples fed at `pts`. The first frame holds only
            // priming and starts before the stream; drop it.
            let pts = self.packet.pts().unwrap_or(0);
            if pts < 0 {
                continue;
            }
            let t = MediaTime::new(pts, Timescale::new(RATE).expect("nonzero"));
            self.frames_out += 1;
            out.push(Frame {
                track: self.track,
                dts: t,
                pts: t,
                keyframe: true,
                data: Bytes::copy_from_slice(data),
            });
        }
    }

    /// The input has ended (the publisher's `DELETE`): encodes what is waiting for a full
    /// frame (padded with silence) and drains the encoder, whose lookahead holds about two
    /// frames (43 ms) of the last audio taken. The transcoder takes no more input after it.
    pub fn finish(&mut self) -> Vec<Frame> {
        let mut out = Vec::new();
        self.pad_and_flush(&mut out);
        if self.encoder.send_eof().is_ok() {
            self.receive(&mut out);
        }
        out
    }

    fn pad_and_flush(&mut self, out: &mut Vec<Frame>) {
        let have = self.fifo[0].len();
        if have > 0 && have < AAC_FRAME {
            for ch in &mut self.fifo {
                ch.resize(AAC_FRAME, 0.0);
            }
        }
        self.encode_full(out);
    }
}

impl Drop for OpusToAac {
    fn drop(&mut self) {
        tracing::debug!(
            packets = self.packets_in,
            samples = self.samples_decoded,
            filled = self.samples_filled,
            aac_frames = self.frames_out,
            decode_errors = self.decode_errors,
            decode_ms = self.decode_time.as_millis() as u64,
            encode_ms = self.encode_time.as_millis() as u64,
            "Opus to AAC transcoder done"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opus packets from FFmpeg's own encoder (libopus), 20 ms each.
    fn opus_packets(secs: u32) -> Vec<Vec<u8>> {
        crate::source::init().unwrap();
        let codec = ffmpeg::encoder::find_by_name("libopus")
            .or_else(|| ffmpeg::encoder::find(ffmpeg::codec::Id::OPUS))
            .expect("an Opus encoder");
        let mut enc = ffmpeg::codec::context::Context::new_with_codec(codec)
            .encoder()
            .audio()
            .unwrap();
        enc.set_rate(48_000);
        enc.set_format(SampleFormat::I16(SampleType::Packed));
        enc.set_channel_layout(ChannelLayout::STEREO);
        enc.set_channels(2);
        enc.set_bit_rate(64_000);
        enc.set_time_base((1, 48_000));
        let mut enc = enc.open_as(codec).unwrap();
        let n = enc.frame_size() as usize;
        let mut out = Vec::new();
        let mut pkt = ffmpeg::Packet::empty();
        for i in 0..(secs as usize * 48_000 / n) {
            let mut f = ffmpeg::frame::Audio::new(enc.format(), n, ChannelLayout::STEREO);
            f.set_rate(48_000);
            let data = f.plane_mut::<(i16, i16)>(0);
            for (j, s) in data.iter_mut().enumerate() {
                let t = (i * n + j) as f64 / 48_000.0;
                let v = ((t * 440.0 * std::f64::consts::TAU).sin() * 8000.0) as i16;
                *s = (v, v);
            }
            f.set_pts(Some((i * n) as i64));
            enc.send_frame(&f).unwrap();
            while enc.receive_packet(&mut pkt).is_ok() {
                out.push(pkt.data().unwrap().to_vec());
            }
        }
        out
    }

    #[test]
    fn finish_outputs_every_sample_taken() {
        let packets = opus_packets(1);
        let mut t = OpusToAac::new(crate::tracks::AUDIO, 128_000).unwrap();
        let mut frames = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            frames.extend(t.push(i as i64 * 960, p));
        }
        let taken = packets.len() as i64 * 960;
        let covered = |f: &[Frame]| f.last().map_or(0, |l| l.dts.ticks + 1024);
        // The encoder's lookahead and the partial frame are still inside...
        assert!(covered(&frames) < taken, "{} of {taken}", covered(&frames));
        frames.extend(t.finish());
        // ... until the end flushes them: the last audio taken is in the output.
        assert!(
            covered(&frames) >= taken,
            "{} of {taken} samples",
            covered(&frames)
        );
        for w in frames.windows(2) {
            assert_eq!(w[1].dts.ticks - w[0].dts.ticks, 1024, "continuous");
        }
        assert!(t.finish().is_empty(), "a second finish adds nothing");
    }

    #[test]
    fn transcodes_with_continuous_timestamps_and_fills_loss() {
        let packets = opus_packets(2);
        assert!(packets.len() >= 90);
        let mut t = OpusToAac::new(crate::tracks::AUDIO, 128_000).unwrap();
        let mut frames = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            if i == 40 || i == 41 {
                continue; // two lost packets
            }
            frames.extend(t.push(1_000 + i as i64 * 960, p));
        }
        assert_eq!(t.decode_errors, 0);
        assert_eq!(flush_denormal(1e-30), 0.0);
        assert_eq!(flush_denormal(-0.25), -0.25);
        // 2 s of 48 kHz is 93.75 AAC frames; the encoder holds back a couple.
        assert!(frames.len() >= 88, "{} frames", frames.len());
        for w in frames.windows(2) {
            assert_eq!(w[1].dts.ticks - w[0].dts.ticks, 1024, "continuous");
        }
        assert_eq!(
            frames[0].dts.ticks, 0,
            "starts at the stream's start, with silence"
        );
        // A garbage packet is survived and keeps the timeline.
        let more = t.push(1_000 + packets.len() as i64 * 960, &[0xff, 0xff, 0xff]);
        assert!(more
            .iter()
            .all(|f| f.dts.ticks > frames.last().unwrap().dts.ticks));
        // Timestamps at the ends of the range are survived, not overflowed.
        for pts in [i64::MAX - 100, i64::MAX, i64::MIN, 0, i64::MAX] {
            let _ = t.push(pts, &packets[0]);
        }
    }
}
