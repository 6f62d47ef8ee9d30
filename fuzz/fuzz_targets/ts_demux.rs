//! MPEG-TS as SRT publishers send it, through the demuxer and the SRT publish machine
//! (`llhls_ingest::srt::publish::TsPublish`: start-up and DTS interleaving), in reads of a
//! size the first byte picks. Seeded with ffmpeg's TS (`ingest/tests/fixtures/*.ts`).
//! Never panics; frames only come after the start, carry the track set's ids, and video
//! frames are well-formed length-prefixed NAL units; a codec configuration that comes out
//! yields a codec string and an init segment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llhls_fuzz::exercise_codec;
use llhls_ingest::srt::publish::{Output, TsPublish};
use llhls_ingest::tracks::{AUDIO, VIDEO};
use llhls_packager::codec::length_prefixed_nals;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let chunk = [1usize, 7, 188, 1316, 4096, 65536][usize::from(mode & 0x07) % 6];
    let mut p = TsPublish::new();
    let mut tracks = None;
    let mut check = |p: &mut TsPublish| {
        while let Some(out) = p.poll_output() {
            match out {
                Output::Start(t) | Output::Reconfigure(t) => {
                    assert!(!t.is_empty());
                    for c in &t {
                        exercise_codec(&c.codec);
                    }
                    tracks = Some(t);
                }
                Output::Frame(f) => {
                    let t = tracks.as_ref().expect("frames come after the start");
                    assert!(f.track == VIDEO || f.track == AUDIO);
                    assert!(t.iter().any(|c| c.id == f.track), "a frame for a started track");
                    if f.track == VIDEO {
                        assert!(length_prefixed_nals(&f.data).is_ok());
                    }
                }
                Output::Warning(_) => {}
            }
        }
    };
    for piece in input.chunks(chunk) {
        p.handle_input(piece);
        check(&mut p);
    }
    p.finish();
    check(&mut p);
});
