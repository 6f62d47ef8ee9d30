//! FLV tag bodies as RTMP publishers send them (legacy and enhanced RTMP video, AAC/Opus
//! audio): the first byte picks video or audio, the rest is the tag body. Never panics; a
//! codec configuration that parses yields a codec string and an init segment.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use llhls_fuzz::exercise_codec;
use llhls_ingest::flv::{parse_audio, parse_video, FlvEvent};

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let body = Bytes::copy_from_slice(body);
    let event = if which & 1 == 0 {
        parse_video(&body)
    } else {
        parse_audio(&body)
    };
    if let Ok(FlvEvent::Config(c)) = event {
        exercise_codec(&c);
    }
});
