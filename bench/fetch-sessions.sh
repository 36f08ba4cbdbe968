#!/usr/bin/env bash
# KIP-227 fetch sessions on and off, in one run on this machine: a Java
# consumer (kafka-clients 4.3, tests/python/java/FetchSessionCheck.java)
# assigned every partition of a 1 000-partition topic, idle but for a trickle
# of produce (one record a second to a random partition, `herald produce`).
# "off" runs the broker with --max-incremental-fetch-session-cache-slots 0
# (every Fetch names and answers all 1 000 partitions), "on" with the default.
# Measured from the broker over DURATION seconds after a WARMUP: Fetch
# requests, request and response bytes per Fetch (herald_fetch_*_bytes),
# partitions per request and response, and the broker's CPU time
# (/proc/PID/stat utime+stime). Prints one line per mode and the ratios.
#
#   bench/fetch-sessions.sh                       # release build, 30 s per mode
#   DURATION=20 HERALD_BIN=target/debug/herald bench/fetch-sessions.sh
#   HERALD_COMPAT_CLIENTS_DIR=... (the Java jars, default target/compat-clients)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${HERALD_BIN:-target/release/herald}
DURATION=${DURATION:-30}
WARMUP=${WARMUP:-10}
PARTITIONS=${PARTITIONS:-1000}
LIBS=${HERALD_COMPAT_CLIENTS_DIR:-target/compat-clients}/java/libs
[ -x "$BIN" ] || { echo "no $BIN: nice cargo build --release -p herald (or set HERALD_BIN)" >&2; exit 1; }
ls "$LIBS"/kafka-clients-*.jar >/dev/null 2>&1 || { echo "no Java jars in $LIBS: python3 compat/clients/run.py --install-only" >&2; exit 1; }
CP=$(ls "$LIBS"/*.jar | tr '\n' ':')

work=$(mktemp -d /tmp/herald-fetch-sessions.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
javac -d "$work/classes" -cp "$CP" tests/python/java/FetchSessionCheck.java

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# One scrape per snapshot, so that its counters agree with each other.
scrape() { curl -s "http://$HTTP/metrics" >"$work/metrics.txt"; }
# Sum of a family's samples in the last scrape with this label set ("" for all).
metric() { awk -v n="$1" -v l="$2" '$1 ~ "^"n && index($1, l) {s+=$2} END {printf "%d", s}' "$work/metrics.txt"; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

run() {
    local mode=$1 slots=$2
    local port http data=$work/data-$mode
    port=$(free_port); http=$(free_port)
    HTTP=127.0.0.1:$http
    "$BIN" serve --listen 127.0.0.1:"$port" --http-listen "$HTTP" --data-dir "$data" \
        --max-incremental-fetch-session-cache-slots "$slots" 2>"$work/broker-$mode.log" &
    local broker=$!; pids+=("$broker")
    for _ in $(seq 100); do curl -sf "http://$HTTP/readyz" >/dev/null && break; sleep 0.1; done
    "$BIN" -b 127.0.0.1:"$port" topic create bench -p "$PARTITIONS" >/dev/null
    java -cp "$CP:$work/classes" FetchSessionCheck 127.0.0.1:"$port" bench 1000000000 \
        $((WARMUP + DURATION + 30)) >"$work/java-$mode.log" 2>&1 &
    local java=$!; pids+=("$java")
    sleep "$WARMUP"
    local r0 q0 s0 t0 p0 c0
    scrape
    r0=$(metric herald_fetch_requests_total ""); q0=$(metric herald_fetch_request_bytes_total "")
    s0=$(metric herald_fetch_response_bytes_total ""); p0=$(metric herald_fetch_request_partitions_total "")
    t0=$(metric herald_fetch_response_partitions_total ""); c0=$(cpu_ticks "$broker")
    for i in $(seq "$DURATION"); do
        "$BIN" -b 127.0.0.1:"$port" produce bench -p $((RANDOM % PARTITIONS)) -v "r$i" >/dev/null 2>&1 &
        sleep 1
    done
    local r q s p t c
    scrape
    r=$(( $(metric herald_fetch_requests_total "") - r0 ))
    q=$(( $(metric herald_fetch_request_bytes_total "") - q0 ))
    s=$(( $(metric herald_fetch_response_bytes_total "") - s0 ))
    p=$(( $(metric herald_fetch_request_partitions_total "") - p0 ))
    t=$(( $(metric herald_fetch_response_partitions_total "") - t0 ))
    c=$(( $(cpu_ticks "$broker") - c0 ))
    local hz; hz=$(getconf CLK_TCK)
    kill "$java" "$broker" 2>/dev/null || true; wait "$java" "$broker" 2>/dev/null || true
    [ "$r" -gt 0 ] || { echo "no fetches in mode $mode" >&2; exit 1; }
    printf '%s %d %d %d %d %d %s\n' "$mode" "$r" $((q / r)) $((s / r)) $((p / r)) $((t / r)) \
        "$(awk -v c="$c" -v hz="$hz" -v d="$DURATION" 'BEGIN {printf "%.1f", 100 * c / hz / d}')" >>"$work/results"
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
run off 0
run on 1000
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '%-5s %9s %14s %15s %15s %16s %9s\n' mode fetches "req bytes/f" "resp bytes/f" "req parts/f" "resp parts/f" "cpu %"
while read -r m r q s p t c; do
    printf '%-5s %9d %14d %15d %15d %16d %9s\n' "$m" "$r" "$q" "$s" "$p" "$t" "$c"
done <"$work/results"
awk 'NR==1 {q=$3; s=$4; c=$7} NR==2 {printf "\noff/on: request bytes %.0fx, response bytes %.0fx, broker CPU %.1fx\n", q/($3?$3:1), s/($4?$4:1), c/($7?$7:0.1)}' "$work/results"
