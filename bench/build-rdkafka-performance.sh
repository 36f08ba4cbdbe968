#!/usr/bin/env bash
# Builds librdkafka's own load generator, rdkafka_performance, from the
# librdkafka sources bundled in the rdkafka-sys crate (already downloaded by
# cargo) against the static librdkafka cargo built. Prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/rdkafka_performance
if [ -x "$out" ]; then echo "$out"; exit 0; fi
cargo build --release -p herald >&2
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/rdkafka-sys-*/librdkafka 2>/dev/null | sort | tail -1)
lib=$(find target/release/build -path '*rdkafka-sys-*/out/src/librdkafka.a' | head -1)
zstd=$(find target/release/build -path '*zstd-sys-*/out/libzstd.a' | head -1)
[ -n "$src" ] && [ -n "$lib" ] || { echo "librdkafka sources or library not found" >&2; exit 1; }
gcc -O2 -o "$out" "$src/examples/rdkafka_performance.c" -I"$(dirname "$lib")" -I"$src/src" \
  "$lib" ${zstd:+"$zstd"} -lz -lpthread -lm -ldl -lrt >&2
echo "$out"
