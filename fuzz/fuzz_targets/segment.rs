#![no_main]
//! See `herald_fuzz_harness::run_target("segment", _)` for what this feeds and checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    herald_fuzz_harness::run_target("segment", data);
});
