#!/usr/bin/env bash
# The long coverage-guided run: every target in turn, niced, with libFuzzer's
# fork mode so that a crash is saved and the run goes on.
#   scripts/fuzz/long_run.sh [SECONDS_PER_TARGET_SCALE] [OUT_DIR]
# Needs `cargo install cargo-fuzz` (or the binaries from
# crates/fuzz-harness/tests/fuzz_smoke.rs's build). Temporary logs go to
# /dev/shm where it exists (fsync there costs nothing).
set -euo pipefail
cd "$(dirname "$0")/../../fuzz"
scale=${1:-1}
out=${2:-$PWD/long-run}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
[ -d /dev/shm ] && export TMPDIR=/dev/shm
nice cargo fuzz build -s none
bin=$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release
# seconds per target (scale 1: 24 minutes in all)
targets="request:360 record_batch:180 segment:240 index:180 producer_snapshot:120 group_log:180 topic_metadata:180"
mkdir -p "$out"
for entry in $targets; do
  t=${entry%%:*}; secs=$(( ${entry##*:} * scale ))
  mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
  echo "== $t for ${secs}s"
  nice -n 19 "$bin/$t" -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 \
    -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 \
    -artifact_prefix="$out/artifacts/$t/" "$out/corpus/$t" "corpus/$t" \
    > "$out/$t.log" 2>&1 || true
  grep -E "^#[0-9]+" "$out/$t.log" | tail -1 || true
  ls "$out/artifacts/$t" | head
done
