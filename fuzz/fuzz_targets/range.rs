//! The origin's `Range` header parser: never panics, never returns a reversed range, and what
//! it accepts prints back to a header it parses the same way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llhls_origin::range::{parse as parse_range, ByteRange};

fuzz_target!(|data: &[u8]| {
    let Ok(Some(r)) = parse_range(data) else {
        return;
    };
    let text = match r {
        ByteRange::FromTo(a, b) => {
            assert!(a <= b, "reversed range {a}-{b}");
            format!("bytes={a}-{b}")
        }
        ByteRange::From(a) => format!("bytes={a}-"),
        ByteRange::Suffix(n) => format!("bytes=-{n}"),
    };
    assert_eq!(parse_range(text.as_bytes()), Ok(Some(r)), "{text}");
});
