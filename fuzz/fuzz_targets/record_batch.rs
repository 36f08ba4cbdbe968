#![no_main]
//! See `herald_fuzz_harness::run_target("record_batch", _)` for what this feeds and checks.

use herald_fuzz_harness::alloc::Counting;

/// Fails any allocation above `FUZZ_ALLOCATION_BYTES_MAX` (the stand-in for
/// `-malloc_limit_mb`, which needs a sanitizer).
#[global_allocator]
static ALLOC: Counting = Counting;

libfuzzer_sys::fuzz_target!(
    init: herald_fuzz_harness::init_fuzz_target(),
    |data: &[u8]| herald_fuzz_harness::run_target("record_batch", data)
);
