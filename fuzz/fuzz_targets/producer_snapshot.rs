#![no_main]
//! See `herald_fuzz_harness::run_target("producer_snapshot", _)` for what this feeds and checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    herald_fuzz_harness::run_target("producer_snapshot", data);
});
