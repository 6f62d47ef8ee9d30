//! The track numbering every ingest uses, and the track set it starts a stream with.

use llhls_packager::codec::CodecConfig;
use llhls_packager::{TrackConfig, TrackId};

/// The video track's id in the packager.
pub const VIDEO: TrackId = TrackId(1);
/// The audio track's id in the packager.
pub const AUDIO: TrackId = TrackId(2);

/// The track set of a stream with this video and audio (either may be absent): video first.
pub fn tracks(video: Option<&CodecConfig>, audio: Option<&CodecConfig>) -> Vec<TrackConfig> {
    let video = video.map(|c| TrackConfig {
        id: VIDEO,
        codec: c.clone(),
    });
    let audio = audio.map(|c| TrackConfig {
        id: AUDIO,
        codec: c.clone(),
    });
    video.into_iter().chain(audio).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use llhls_packager::codec::AacConfig;

    #[test]
    fn video_first_and_absent_tracks_left_out() {
        let aac = CodecConfig::Aac(AacConfig::lc(48_000, 2).unwrap());
        let t = tracks(None, Some(&aac));
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].id, AUDIO);
        assert!(tracks(None, None).is_empty());
    }
}
