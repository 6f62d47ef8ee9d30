//! VP8/VP9 (what some WebRTC publishers can only send) to H.264 (what every HLS player
//! decodes) through `ffmpeg-next`: FFmpeg's VP8/VP9 decoder and libx264 (`veryfast`,
//! `zerolatency`: one frame in, one frame out, no B-frames). Output access units are
//! length-prefixed like the depacketizer's, with SPS/PPS before every IDR, so the ingest
//! reads the parameter sets like any H.264 publisher's. Keyframes are made on request ([`VideoTranscoder::force_keyframe`]), which is
//! how segments start on time: the publisher's own keyframes only matter to the decoder.

use anyhow::{bail, Context};
use bytes::Bytes;
use ffmpeg_next as ffmpeg;
use ffmpeg_next::format::Pixel;
use llhls_packager::codec::annex_b_to_length_prefixed;

use super::depacketize::{VpxFrame, VpxKind};

/// One H.264 access unit out of the transcoder.
pub struct Encoded {
    /// RTP timestamp (90 kHz) of the input frame.
    pub ts: i64,
    /// H.264 access unit, 4-byte length-prefixed NAL units.
    pub data: Bytes,
}

struct Encoder {
    enc: ffmpeg::encoder::Video,
    width: u32,
    height: u32,
}

/// One session's VP8/VP9 to H.264 transcoder.
pub struct VideoTranscoder {
    decoder: ffmpeg::decoder::Video,
    encoder: Option<Encoder>,
    decoded: ffmpeg::frame::Video,
    packet: ffmpeg::Packet,
    force_key: bool,
    /// After loss: drop input until the publisher's next keyframe (the decoder would show
    /// broken references otherwise).
    need_key: bool,
    /// Frames the decoder refused.
    pub decode_errors: u64,
    /// Access units produced.
    pub frames: u64,
}

impl VideoTranscoder {
    /// A transcoder for `kind` input (fails when FFmpeg lacks the decoder or libx264).
    pub fn new(kind: VpxKind) -> anyhow::Result<Self> {
        let id = match kind {
            VpxKind::Vp8 => ffmpeg::codec::Id::VP8,
            VpxKind::Vp9 => ffmpeg::codec::Id::VP9,
        };
        let codec = ffmpeg::decoder::find(id).context("this FFmpeg has no VP8/VP9 decoder")?;
        let decoder = ffmpeg::codec::context::Context::new_with_codec(codec)
            .decoder()
            .open_as(codec)
            .context("opening the VP8/VP9 decoder")?
            .video()
            .context("VP8/VP9 decoder")?;
        if ffmpeg::encoder::find_by_name("libx264").is_none() {
            bail!("this FFmpeg has no libx264 encoder: cannot transcode VP8/VP9 to H.264");
        }
        Ok(VideoTranscoder {
            decoder,
            encoder: None,
            decoded: ffmpeg::frame::Video::empty(),
            packet: ffmpeg::Packet::empty(),
            force_key: true,
            need_key: true,
            decode_errors: 0,
            frames: 0,
        })
    }

    /// The next output frame will be an IDR.
    pub fn force_keyframe(&mut self) {
        self.force_key = true;
    }

    /// Is the transcoder waiting for a publisher keyframe (so the session should ask)?
    pub fn needs_keyframe(&self) -> bool {
        self.need_key
    }

    fn open_encoder(width: u32, height: u32) -> anyhow::Result<Encoder> {
        let codec = ffmpeg::encoder::find_by_name("libx264").context("libx264")?;
        let mut enc = ffmpeg::codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .context("H.264 encoder")?;
        enc.set_width(width);
        enc.set_height(height);
        enc.set_format(Pixel::YUV420P);
        enc.set_time_base((1, 90_000));
        enc.set_frame_rate(Some((30, 1)));
        enc.set_max_b_frames(0);
        // Keyframes come on request (segment boundaries); this is only a backstop.
        enc.set_gop(300);
        // About 0.1 bit per pixel at 30 fps: 2.8 Mbit/s at 720p, 0.7 at 360p.
        let rate = (u64::from(width) * u64::from(height) * 3).clamp(300_000, 8_000_000) as usize;
        enc.set_bit_rate(rate);
        let mut opts = ffmpeg::Dictionary::new();
        opts.set("preset", "veryfast");
        opts.set("tune", "zerolatency");
        opts.set("forced-idr", "1");
        opts.set(
            "x264-params",
            &format!("vbv-maxrate={0}:vbv-bufsize={0}", rate / 1000),
        );
        let enc = enc.open_as_with(codec, opts).context("opening libx264")?;
        Ok(Encoder { enc, width, height })
    }

    /// Takes one VP8/VP9 frame; returns the H.264 access units now ready.
    pub fn push(&mut self, f: &VpxFrame) -> anyhow::Result<Vec<Encoded>> {
        let mut out = Vec::new();
        if !f.contiguous {
            self.need_key = true;
        }
        if self.need_key && !f.keyframe {
            return Ok(out);
        }
        if self.need_key {
            // Output resumes after a hole: resume with an IDR too, so the stream restarts
            // with an independent segment, as after any other publisher's gap.
            self.need_key = false;
            self.force_key = true;
        }
        let packet = ffmpeg::Packet::copy(&f.data);
        if self.decoder.send_packet(&packet).is_err() {
            self.decode_errors += 1;
            self.need_key = true;
            return Ok(out);
        }
        while self.decoder.receive_frame(&mut self.decoded).is_ok() {
            let (w, h) = (self.decoded.width(), self.decoded.height());
            if w == 0 || h == 0 {
                continue;
            }
            if self
                .encoder
                .as_ref()
                .is_none_or(|e| e.width != w || e.height != h)
            {
                // First frame, or the publisher changed resolution: a new encoder (its IDR
                // carries the new SPS; the ingest starts a new init section).
                self.encoder = Some(Self::open_encoder(w, h)?);
                self.force_key = true;
            }
            if self.decoded.format() != Pixel::YUV420P {
                // VP8 and VP9 profile 0 (what browsers send) decode to 4:2:0 8-bit.
                bail!(
                    "unsupported pixel format {:?} (VP9 profile 1-3?): publish H.264 or VP8",
                    self.decoded.format()
                );
            }
            let mut frame = self.decoded.clone();
            frame.set_pts(Some(f.ts));
            frame.set_kind(if std::mem::take(&mut self.force_key) {
                ffmpeg::picture::Type::I
            } else {
                ffmpeg::picture::Type::None
            });
            let enc = self.encoder.as_mut().expect("opened above");
            enc.enc.send_frame(&frame).context("libx264")?;
            while enc.enc.receive_packet(&mut self.packet).is_ok() {
                if let Some(d) = self.packet.data() {
                    self.frames += 1;
                    out.push(Encoded {
                        ts: self.packet.pts().unwrap_or(f.ts),
                        // libx264 writes Annex-B.
                        data: Bytes::from(annex_b_to_length_prefixed(d)),
                    });
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// VP8 frames from ffmpeg's libvpx in an IVF stream (32-byte header, then 12-byte frame
    /// headers: size, timestamp).
    fn vp8_frames(secs: u32) -> Vec<Vec<u8>> {
        let out = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size=320x240:rate=30:duration={secs}"))
            .args([
                "-c:v",
                "libvpx",
                "-g",
                "30",
                "-deadline",
                "realtime",
                "-f",
                "ivf",
                "-",
            ])
            .output()
            .expect("ffmpeg runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let d = out.stdout;
        let mut frames = Vec::new();
        let mut i = 32;
        while i + 12 <= d.len() {
            let n = u32::from_le_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]) as usize;
            frames.push(d[i + 12..i + 12 + n].to_vec());
            i += 12 + n;
        }
        frames
    }

    fn nal_types(au: &[u8]) -> Vec<u8> {
        llhls_packager::codec::length_prefixed_nals(au)
            .unwrap()
            .iter()
            .filter_map(|n| n.first().map(|h| h & 0x1f))
            .collect()
    }

    #[test]
    fn vp8_becomes_h264_with_keyframes_on_request() {
        crate::source::init().unwrap();
        let frames = vp8_frames(2);
        assert!(frames.len() >= 59);
        let mut t = VideoTranscoder::new(VpxKind::Vp8).unwrap();
        let mut out = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            if i == 20 {
                t.force_keyframe();
            }
            let vf = VpxFrame {
                ts: 1000 + i as i64 * 3000,
                data: Bytes::from(f.clone()),
                keyframe: f[0] & 1 == 0,
                contiguous: true,
                arrival: Instant::now(),
                sr: None,
            };
            out.extend(t.push(&vf).unwrap());
        }
        assert_eq!(out.len(), frames.len(), "one frame out per frame in");
        assert_eq!(out[0].ts, 1000);
        let first = nal_types(&out[0].data);
        assert!(
            first.contains(&7) && first.contains(&8) && first.contains(&5),
            "{first:?}"
        );
        assert!(nal_types(&out[20].data).contains(&5), "IDR on request");
        assert!(!nal_types(&out[10].data).contains(&5));
        // Loss: input is skipped until the publisher's next keyframe.
        let lost = VpxFrame {
            ts: 999_000,
            data: Bytes::from(frames[5].clone()),
            keyframe: false,
            contiguous: false,
            arrival: Instant::now(),
            sr: None,
        };
        assert!(t.push(&lost).unwrap().is_empty());
        assert!(t.needs_keyframe());
    }
}
