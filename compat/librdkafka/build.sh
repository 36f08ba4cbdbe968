#!/usr/bin/env bash
# Build librdkafka's own integration test suite (tests/test-runner) from the
# librdkafka source bundled in the rdkafka-sys crate in the local cargo registry.
#
# Nothing from librdkafka is committed: the source is copied to a build directory
# outside version control (default: <repo>/target/librdkafka-tests, gitignored).
#
# Idempotent: installs only missing Debian packages, copies the source only once,
# configures only once, and lets make skip what is up to date.
#
# Environment:
#   COMPAT_BUILD_DIR     build directory (default <repo>/target/librdkafka-tests)
#   LIBRDKAFKA_SRC       librdkafka source dir (default: newest
#                        ~/.cargo/registry/src/*/rdkafka-sys-*/librdkafka)
#   RDKAFKA_SYS_VERSION  pin the crate version (default 4.10.0+2.12.1)
#   JOBS                 make parallelism (default: nproc)
#   COMPAT_NO_APT=1      never call apt-get (fail if headers are missing)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
BUILD_DIR="${COMPAT_BUILD_DIR:-$REPO/target/librdkafka-tests}"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
RDKAFKA_SYS_VERSION="${RDKAFKA_SYS_VERSION:-4.10.0+2.12.1}"

log() { printf '[build.sh] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- 1. Debian deps
# rapidjson-dev is optional for librdkafka but lets 0053_stats and 0110 check
# the statistics JSON (they skip without it).
DEPS=(build-essential python3 pkg-config libssl-dev libsasl2-dev libzstd-dev liblz4-dev zlib1g-dev rapidjson-dev)
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${DEPS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
fi
if ((${#missing[@]})); then
  if [[ "${COMPAT_NO_APT:-0}" == 1 ]]; then
    log "missing packages (COMPAT_NO_APT=1, not installing): ${missing[*]}"
  else
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    log "installing missing packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y --no-install-recommends "${missing[@]}" \
      || { $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends "${missing[@]}"; }
  fi
else
  log "Debian build dependencies present"
fi

# ---------------------------------------------------------------- 2. locate source
if [[ -z "${LIBRDKAFKA_SRC:-}" ]]; then
  shopt -s nullglob
  cands=("${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/rdkafka-sys-"$RDKAFKA_SYS_VERSION"/librdkafka)
  if ((${#cands[@]} == 0)); then
    # Any version, newest last (version sort).
    mapfile -t cands < <(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/rdkafka-sys-*/librdkafka 2>/dev/null | sort -V)
  fi
  shopt -u nullglob
  if ((${#cands[@]} == 0)); then
    log "no rdkafka-sys crate source in the cargo registry; run 'cargo fetch' in the repo (rdkafka is a dev-dependency) or set LIBRDKAFKA_SRC"
    exit 1
  fi
  LIBRDKAFKA_SRC="${cands[-1]}"
fi
[[ -f "$LIBRDKAFKA_SRC/tests/test.c" ]] || { log "$LIBRDKAFKA_SRC has no tests/test.c"; exit 1; }
log "librdkafka source: $LIBRDKAFKA_SRC"

# ---------------------------------------------------------------- 3. copy
SRC="$BUILD_DIR/librdkafka"
mkdir -p "$BUILD_DIR"
if [[ ! -f "$SRC/.copied-from" || "$(cat "$SRC/.copied-from")" != "$LIBRDKAFKA_SRC" ]]; then
  log "copying source to $SRC"
  rm -rf "$SRC"
  cp -a "$LIBRDKAFKA_SRC" "$SRC.tmp"
  chmod -R u+w "$SRC.tmp"
  mv "$SRC.tmp" "$SRC"
  echo "$LIBRDKAFKA_SRC" > "$SRC/.copied-from"
else
  log "source already copied"
fi

cd "$SRC"

# ---------------------------------------------------------------- 4. configure
# libcurl (OIDC) and GSSAPI are not needed: those tests are excluded.
# Reconfigure (and rebuild) when the installed dependencies changed.
CONF_KEY="--disable-curl --disable-gssapi; $(dpkg-query -W -f='${Package}=${Version} ' "${DEPS[@]}" 2>/dev/null || true)"
if [[ ! -f Makefile.config || "$(cat .configured-with 2>/dev/null)" != "$CONF_KEY" ]]; then
  log "configuring"
  ./configure --disable-curl --disable-gssapi >_configure_output.txt 2>&1 || { tail -50 _configure_output.txt; exit 1; }
  echo "$CONF_KEY" > .configured-with
  rm -f .build-ok
  if [[ -f src/librdkafka.a ]]; then make clean >/dev/null 2>&1 || true; fi
else
  log "already configured"
fi

# ---------------------------------------------------------------- 5. build
if [[ -x tests/test-runner && -f .build-ok ]] && [[ -z "$(find src src-cpp tests -newer .build-ok \( -name '*.c' -o -name '*.cpp' -o -name '*.h' \) -print -quit)" ]]; then
  log "test-runner up to date: $SRC/tests/test-runner"
else
  log "building libs (make -j$JOBS libs)"
  make -j"$JOBS" libs >make-libs.log 2>&1 || { tail -50 make-libs.log; exit 1; }
  log "building tests (make -C tests build)"
  make -j"$JOBS" -C tests build >make-tests.log 2>&1 || { tail -50 make-tests.log; exit 1; }
  touch .build-ok
  log "built $SRC/tests/test-runner"
fi

# ---------------------------------------------------------------- 6. tests-rf1
# librdkafka's CI runs against 3 brokers; a few transaction tests create their
# topics with replication factor 3, which one node refuses
# (INVALID_REPLICATION_FACTOR, as Kafka does). tests-rf1 is a copy of tests/
# whose only change is that argument of test_create_topic_wait_exists(): 3 -> 1,
# in the files below; the harness runs the tests of rf1.txt with it as
# separate "(rf1)" rows, next to the unmodified ones. The copy keeps the
# objects, so make rebuilds only the patched files and relinks.
RF1_SOURCES=(0103-transactions.c 0098-consumer-txn.cpp)
RF1="$SRC/tests-rf1"
if [[ ! -x "$RF1/test-runner" || tests/test-runner -nt "$RF1/test-runner" ]]; then
  log "copying tests/ to tests-rf1/"
  rm -rf "$RF1.tmp"
  cp -a tests "$RF1.tmp"
  rm -rf "$RF1"
  mv "$RF1.tmp" "$RF1"
fi
for f in "${RF1_SOURCES[@]}"; do
  want=$(grep -c 'create_topic_wait_exists(.*, 3, 5000);' "tests/$f" || true)
  sed -E '/create_topic_wait_exists\(/ s/, 3, 5000\);/, 1, 5000);/' "tests/$f" > "$RF1/$f.tmp"
  changed=$(diff "tests/$f" "$RF1/$f.tmp" | grep -c '^>' || true)
  if [[ "$want" == 0 || "$changed" != "$want" ]]; then
    log "tests-rf1: $f: expected to change $want create_topic_wait_exists(..., 3, 5000) lines, changed $changed"
    exit 1
  fi
  if cmp -s "$RF1/$f.tmp" "$RF1/$f"; then rm -f "$RF1/$f.tmp"; else mv -f "$RF1/$f.tmp" "$RF1/$f"; fi
done
make -j"$JOBS" -C "$RF1" build >"$RF1/make.log" 2>&1 || { tail -30 "$RF1/make.log"; exit 1; }
log "tests-rf1 (replication factor 1 in ${RF1_SOURCES[*]}): $RF1/test-runner"

# ---------------------------------------------------------------- 7. Kafka CLI shims
# A few tests shell out to $KAFKA_PATH/bin/kafka-topics.sh (topic configs,
# partition increase, deletion) and kafka-acls.sh (0109, 0115, 0119: deny ACLs).
# run.sh points KAFKA_PATH at this directory. Both are built on librdkafka's
# Admin API, so the broker under test serves the requests.
SHIM="$BUILD_DIR/kafka-shim"
mkdir -p "$SHIM/bin"
# Wrappers are replaced atomically and only when they change: a harness running
# in parallel (cargo runs the quick and security selections' test functions in
# one process) may be executing them.
put() {  # put FILE: stdin -> FILE
  local tmp="$1.tmp.$$"
  cat >"$tmp" && chmod +x "$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv -f "$tmp" "$1"; fi
}
for tool in topics acls; do
  if [[ ! -x "$SHIM/bin/kafka-$tool" || "$HERE/kafka-$tool-shim.c" -nt "$SHIM/bin/kafka-$tool" || src/librdkafka.so.1 -nt "$SHIM/bin/kafka-$tool" ]]; then
    log "building kafka-$tool shim"
    cc -O1 -Wall -I"$SRC/src" -o "$SHIM/bin/kafka-$tool.tmp.$$" "$HERE/kafka-$tool-shim.c" \
       -L"$SRC/src" -Wl,-rpath,"$SRC/src" -lrdkafka
    mv -f "$SHIM/bin/kafka-$tool.tmp.$$" "$SHIM/bin/kafka-$tool"
  fi
  put "$SHIM/bin/kafka-$tool.sh" <<SH
#!/bin/sh
# Generated by compat/librdkafka/build.sh: kafka-$tool.sh stand-in (Admin API).
exec "$SHIM/bin/kafka-$tool" "\$@"
SH
done
for tool in kafka-configs.sh kafka-consumer-groups.sh; do
  put "$SHIM/bin/$tool" <<SH
#!/bin/sh
# Generated by compat/librdkafka/build.sh: not provided by the Herald harness.
echo "$tool: not available in the Herald compatibility harness (no Kafka distribution)" >&2
exit 1
SH
done
# test_run_java() (0098's TransactionProducerCli, 0113's IncrementalRebalanceCli)
# runs `make -C java` (javac against $KAFKA_PATH/libs/kafka-clients-*.jar) and
# java/run-class.sh, which execs $KAFKA_PATH/bin/kafka-run-class.sh. The client
# matrix's Java kafka-clients 4.3 jars serve both: libs/ links to them and
# kafka-run-class.sh runs java with them on the class path.
JAVA_LIBS="${COMPAT_JAVA_LIBS:-${HERALD_COMPAT_CLIENTS_DIR:-$REPO/target/compat-clients}/java/libs}"
if compgen -G "$JAVA_LIBS/kafka-clients-*.jar" >/dev/null && command -v java >/dev/null; then
  ln -sfn "$JAVA_LIBS" "$SHIM/libs"
  put "$SHIM/bin/kafka-run-class.sh" <<SH
#!/bin/sh
# Generated by compat/librdkafka/build.sh: kafka-run-class.sh stand-in (the
# client matrix's kafka-clients jars in $JAVA_LIBS).
exec java -Xshare:auto -XX:TieredStopAtLevel=1 -cp "\${CLASSPATH:+\$CLASSPATH:}$SHIM/libs/*" "\$@"
SH
  log "Java tools: kafka-clients from $JAVA_LIBS"
else
  rm -f "$SHIM/libs" "$SHIM/bin/kafka-run-class.sh"
  log "no kafka-clients jars in $JAVA_LIBS (compat/clients/run.py --install-only): Java-driven tests (0098) cannot run"
fi
log "Kafka CLI shims: $SHIM/bin"
