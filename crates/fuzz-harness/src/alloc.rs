//! A counting global allocator: live bytes and their peak since the last
//! reset, so a test can bound the memory one request makes the broker hold.
//! A binary opts in with
//! `#[global_allocator] static A: herald_fuzz_harness::alloc::Counting = Counting;`.
//!
//! The counts are process-wide: the broker's own background tasks (flushers,
//! the group coordinator's tick) add their few KiB too, which is noise next to
//! the limits the tests assert.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
/// An allocation larger than this fails (Rust then aborts with "memory
/// allocation of N bytes failed", which libFuzzer reports as a crash). The
/// no-sanitizer build has no `-malloc_limit_mb`; this is its stand-in.
static ALLOCATION_BYTES_MAX: AtomicUsize = AtomicUsize::new(usize::MAX);
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);

fn too_large(bytes: usize) -> bool {
    bytes > ALLOCATION_BYTES_MAX.load(Ordering::Relaxed)
}

/// Makes any single allocation above `bytes` fail (and so abort).
pub fn fail_allocations_above(bytes: usize) {
    ALLOCATION_BYTES_MAX.store(bytes, Ordering::Relaxed);
}

fn grew(by: usize) {
    let live = LIVE_BYTES.fetch_add(by, Ordering::Relaxed) + by;
    PEAK_BYTES.fetch_max(live, Ordering::Relaxed);
}

fn shrank(by: usize) {
    LIVE_BYTES.fetch_sub(by, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if too_large(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if too_large(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if too_large(new_size) {
            return std::ptr::null_mut();
        }
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }
}

/// Bytes allocated and not yet freed.
pub fn live_bytes() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// Starts a new measurement: the peak becomes the current live bytes, which
/// are returned as the baseline.
pub fn reset_peak() -> usize {
    let live = live_bytes();
    PEAK_BYTES.store(live, Ordering::Relaxed);
    live
}

/// The most bytes live at once since `reset_peak`.
pub fn peak_bytes() -> usize {
    PEAK_BYTES.load(Ordering::Relaxed)
}
