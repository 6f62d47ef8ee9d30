//! The packager driven by arbitrary operation sequences with values a real (if broken)
//! publisher could send: timestamps within ±34 years, timescales of at least 1 kHz, wall clocks
//! between 1970 and 3000. Same invariants as `packager_ops`; it reaches the cutting, GAP and
//! window logic that absurd values stop short of.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llhls_fuzz::ops::{run, Domain, Script};

fuzz_target!(|script: Script| {
    let _ = run(&script, Domain::Plausible);
});
