//! The packager driven by arbitrary operation sequences with any values the types allow (any
//! i64 timestamp, any timescale, any wall clock, any first MSN); invariants checked after every
//! step (see `llhls_fuzz::ops`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use llhls_fuzz::ops::{run, Domain, Script};

fuzz_target!(|script: Script| {
    let _ = run(&script, Domain::Hostile);
});
