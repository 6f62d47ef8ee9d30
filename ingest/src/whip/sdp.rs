//! What a WHIP offer asks for, read from the SDP text before the WebRTC stack sees it, so an
//! offer we cannot package is refused with a reason a publisher can act on.

/// Codec families the ingest knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// H.264.
    H264,
    /// VP8.
    Vp8,
    /// VP9.
    Vp9,
    /// Opus.
    Opus,
    /// Anything else.
    Other,
}

/// One `m=` section of the offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// `audio`, `video`, `application`...
    pub kind: String,
    /// Payload types and codec names (upper case) from the `a=rtpmap` lines, in offer order.
    pub codecs: Vec<(u8, String)>,
    /// Does the publisher send on it (`sendonly`/`sendrecv`, or no direction: sendrecv)?
    pub sends: bool,
}

/// What the offer means for ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The video codec used, if the offer sends video.
    pub video: Option<Offered>,
    /// The audio codec used, if the offer sends audio.
    pub audio: Option<Offered>,
    /// Payload types of the codecs we take: H.264 ones for video, Opus ones for audio.
    pub video_pts: Vec<u8>,
    /// Payload types of the Opus codecs offered.
    pub audio_pts: Vec<u8>,
}

/// Splits an SDP offer into its media sections.
pub fn sections(sdp: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=") {
            out.push(Section {
                kind: m.split(' ').next().unwrap_or("").to_ascii_lowercase(),
                codecs: Vec::new(),
                sends: true,
            });
        } else if let Some(cur) = out.last_mut() {
            if let Some(map) = line.strip_prefix("a=rtpmap:") {
                let mut it = map.split(' ');
                let pt = it.next().and_then(|p| p.parse::<u8>().ok());
                let name = it.next().and_then(|c| c.split('/').next());
                if let (Some(pt), Some(name)) = (pt, name) {
                    cur.codecs.push((pt, name.to_ascii_uppercase()));
                }
            } else if line == "a=recvonly" || line == "a=inactive" {
                cur.sends = false;
            }
        }
    }
    out
}

fn family(name: &str) -> Offered {
    match name {
        "H264" => Offered::H264,
        "VP8" => Offered::Vp8,
        "VP9" => Offered::Vp9,
        "OPUS" => Offered::Opus,
        _ => Offered::Other,
    }
}

/// Decides which codec each kind will use, or why the offer cannot be packaged.
/// `transcode_video`: VP8/VP9 are acceptable (they are transcoded to H.264).
pub fn plan(sdp: &str, transcode_video: bool) -> Result<Plan, String> {
    let secs = sections(sdp);
    if secs.is_empty() {
        return Err("the offer has no media sections (m= lines)".into());
    }
    let mut plan = Plan {
        video: None,
        audio: None,
        video_pts: Vec::new(),
        audio_pts: Vec::new(),
    };
    for s in secs.iter().filter(|s| s.sends) {
        match s.kind.as_str() {
            "video" if plan.video.is_none() => {
                let fams: Vec<Offered> = s.codecs.iter().map(|(_, c)| family(c)).collect();
                if fams.contains(&Offered::H264) {
                    plan.video = Some(Offered::H264);
                    plan.video_pts = pts_of(s, "H264");
                } else if let Some(v) = fams
                    .iter()
                    .find(|f| matches!(f, Offered::Vp8 | Offered::Vp9))
                {
                    if !transcode_video {
                        return Err(format!(
                            "video codec {} is not supported: publish H.264 (OBS: Settings > \
                             Output > Video Encoder x264 or a hardware H.264 encoder; browsers: \
                             offer H.264, which every current browser can send), or start \
                             llhls with whip_transcode_video = true",
                            if *v == Offered::Vp8 { "VP8" } else { "VP9" }
                        ));
                    }
                    plan.video = Some(*v);
                    plan.video_pts = pts_of(s, if *v == Offered::Vp8 { "VP8" } else { "VP9" });
                } else {
                    return Err(format!(
                        "no usable video codec in the offer ({}): publish H.264",
                        list(&s.codecs)
                    ));
                }
            }
            "audio" if plan.audio.is_none() => {
                if s.codecs.iter().any(|(_, c)| c == "OPUS") {
                    plan.audio = Some(Offered::Opus);
                    plan.audio_pts = pts_of(s, "OPUS");
                } else {
                    return Err(format!(
                        "no usable audio codec in the offer ({}): publish Opus",
                        list(&s.codecs)
                    ));
                }
            }
            _ => {}
        }
    }
    if plan.video.is_none() && plan.audio.is_none() {
        return Err(
            "the offer sends no audio or video (every media section is recvonly, inactive or data)"
                .into(),
        );
    }
    Ok(plan)
}

fn pts_of(s: &Section, name: &str) -> Vec<u8> {
    s.codecs
        .iter()
        .filter(|(_, n)| n == name)
        .map(|(pt, _)| *pt)
        .collect()
}

fn list(codecs: &[(u8, String)]) -> String {
    let mut v: Vec<&str> = codecs
        .iter()
        .map(|(_, c)| c.as_str())
        .filter(|c| {
            !matches!(
                *c,
                "RTX" | "RED" | "ULPFEC" | "FLEXFEC-03" | "CN" | "TELEPHONE-EVENT"
            )
        })
        .collect();
    v.dedup();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:63 red/48000/2\r\na=sendonly\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=rtpmap:102 H264/90000\r\na=sendonly\r\n";

    #[test]
    fn browser_offer_picks_h264_and_opus() {
        let p = plan(CHROME, false).unwrap();
        assert_eq!(p.video, Some(Offered::H264));
        assert_eq!(p.audio, Some(Offered::Opus));
        assert_eq!(
            (p.video_pts.as_slice(), p.audio_pts.as_slice()),
            (&[102u8][..], &[111u8][..])
        );
    }

    #[test]
    fn vp8_only_is_refused_with_the_fix() {
        let sdp = CHROME.replace("a=rtpmap:102 H264/90000\r\n", "");
        let e = plan(&sdp, false).unwrap_err();
        assert!(e.contains("VP8") && e.contains("H.264"), "{e}");
        assert_eq!(plan(&sdp, true).unwrap().video, Some(Offered::Vp8));
    }

    #[test]
    fn unusable_offers() {
        assert!(plan("", false).is_err());
        assert!(plan(
            "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n",
            false
        )
        .unwrap_err()
        .contains("no audio or video"));
        let pcmu = "v=0\r\nm=audio 9 RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n";
        assert!(plan(pcmu, false).unwrap_err().contains("PCMU"));
        let av1 = "v=0\r\nm=video 9 RTP/SAVPF 45 46\r\na=rtpmap:45 AV1/90000\r\na=rtpmap:46 rtx/90000\r\n";
        assert!(plan(av1, false).unwrap_err().contains("AV1"));
        let recv = "v=0\r\nm=video 9 RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\na=recvonly\r\n";
        assert!(plan(recv, false).is_err());
    }
}
