//! WHIP SDP offers: the section splitter and the planner that picks codecs and payload types.
//! Never panics on any text; a plan is either an error with a reason or a plan.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llhls_ingest::whip::sdp::{plan, sections};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = sections(text);
    for transcode in [false, true] {
        if let Err(reason) = plan(text, transcode) {
            assert!(!reason.is_empty(), "a refusal without a reason");
        }
    }
});
