#![no_main]
//! See `herald_fuzz_harness::run_target("record_batch", _)` for what this feeds and checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    herald_fuzz_harness::run_target("record_batch", data);
});
