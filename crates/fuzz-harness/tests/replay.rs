//! Replays every saved fuzz input through the same path as its target:
//! `fuzz/corpus/<target>/*` (seeds and what coverage-guided runs kept) and
//! `fuzz/artifacts/<target>/*` (every crash found, kept after its fix as a
//! regression input). A panic on any thread, or more than
//! `INPUT_ALLOC_PEAK_BYTES_MAX` live at once for one input, fails the test
//! and names the file.

use std::path::{Path, PathBuf};

use herald_fuzz_harness::alloc::{self, Counting};
use herald_fuzz_harness::{TARGETS, count_panics, panics_seen, run_target};

#[global_allocator]
static ALLOC: Counting = Counting;

/// Saved inputs are at most a few hundred KiB; the storage targets open logs
/// (index buffers, a tokio runtime the first time), so the bound is looser
/// than the property tests' per-request one.
const INPUT_ALLOC_PEAK_BYTES_MAX: usize = 128 << 20;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn inputs(target: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for kind in ["corpus", "artifacts"] {
        let dir = fuzz_dir().join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.path().is_file() {
                files.push(e.path());
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_saved_input_replays_cleanly() {
    count_panics();
    let mut replayed = 0;
    let mut failures = Vec::new();
    for target in TARGETS {
        let files = inputs(target);
        for file in &files {
            let data = std::fs::read(file).expect("read input");
            let panics = panics_seen();
            let baseline = alloc::reset_peak();
            let result = std::panic::catch_unwind(|| run_target(target, &data));
            let peak = alloc::peak_bytes().saturating_sub(baseline);
            if result.is_err() || panics_seen() != panics {
                failures.push(format!("{target}: {} panicked", file.display()));
            } else if peak > INPUT_ALLOC_PEAK_BYTES_MAX {
                failures.push(format!(
                    "{target}: {} held {peak} bytes at once",
                    file.display()
                ));
            }
            replayed += 1;
        }
        eprintln!("{target}: {} inputs replayed", files.len());
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // The corpora are committed: an empty replay means they went missing.
    assert!(
        replayed >= 150,
        "only {replayed} saved inputs found under {}",
        fuzz_dir().display()
    );
}
