//! What each fuzz target feeds through Herald. One function per target, used
//! by three callers so that they test the same path:
//! - the coverage-guided `cargo fuzz` targets in `fuzz/fuzz_targets/`,
//! - the structure-aware property tests (`tests/requests.rs`),
//! - the replay of every saved corpus file and crash (`tests/replay.rs`).
//!
//! Each function panics only when Herald misbehaved (a panic inside Herald, a
//! broken invariant such as a recovered log serving a corrupt batch, or a
//! response frame that does not match its request); bad input must end in a
//! typed error, which these functions accept.

pub mod alloc;
pub mod frames;
pub mod mutate;
pub mod request;
pub mod storage;

/// The targets, by the name of their `fuzz/fuzz_targets/<name>.rs` and
/// corpus directory.
pub const TARGETS: &[&str] = &[
    "request",
    "record_batch",
    "segment",
    "index",
    "producer_snapshot",
    "group_log",
    "topic_metadata",
];

/// The largest single allocation a fuzz target may make: above the broker's
/// own bounds (1 MiB frames here, 128 MiB of decompressed records), far
/// below what a length taken from the input unchecked would ask for.
pub const FUZZ_ALLOCATION_BYTES_MAX: usize = 256 << 20;

/// Run once by each fuzz target before its first input.
pub fn init_fuzz_target() {
    alloc::fail_allocations_above(FUZZ_ALLOCATION_BYTES_MAX);
}

/// Runs the target `name` on one input (the corpus replay's entry point).
pub fn run_target(name: &str, data: &[u8]) {
    match name {
        "request" => {
            request::Harness::shared().run_stream(data);
        }
        "record_batch" => storage::record_batch(data),
        "segment" => storage::segment(data),
        "index" => storage::index(data),
        "producer_snapshot" => storage::producer_snapshot(data),
        "group_log" => storage::group_log(data),
        "topic_metadata" => storage::topic_metadata(data),
        other => panic!("unknown fuzz target {other}"),
    }
}

static PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts panics on every thread (a panic in a task the broker spawned does
/// not reach the caller; it must fail the test all the same), then runs the
/// default hook, which prints it.
pub fn count_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            default(info);
        }));
    });
}

/// Panics seen since `count_panics`.
pub fn panics_seen() -> usize {
    PANICS.load(std::sync::atomic::Ordering::SeqCst)
}
