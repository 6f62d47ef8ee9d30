//! The RTMP publish state machine (`llhls_ingest::rtmp::publish::Publish`): client bytes in,
//! in reads of a size the input picks, the publish accepted or refused as the input says.
//! Seeded with a real ffmpeg publish session. Never panics; frames only come after the start.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llhls_ingest::rtmp::publish::{Output, Publish};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let keys = if mode & 0x80 != 0 { vec!["secret".to_string()] } else { Vec::new() };
    let accept = mode & 0x40 == 0;
    let chunk = [1usize, 7, 128, 1000, 4096, 65536][usize::from(mode & 0x07) % 6];
    let mut m = Publish::new(keys);
    let mut started = false;
    for piece in input.chunks(chunk) {
        if m.handle_input(piece).is_err() {
            return;
        }
        while let Some(out) = m.poll_output() {
            match out {
                Output::PublishRequested { .. } => {
                    let answered = if accept {
                        m.accept_publish()
                    } else {
                        m.refuse_publish("taken")
                    };
                    if answered.is_err() {
                        return;
                    }
                }
                Output::Start { tracks, .. } => {
                    assert!(!tracks.is_empty(), "a start without tracks");
                    started = true;
                }
                Output::Frame(_) => assert!(started, "a frame before the start"),
                _ => {}
            }
        }
    }
});
