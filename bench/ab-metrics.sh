#!/usr/bin/env bash
# Produce throughput of one herald build with the HTTP server and metrics on
# (`--http-listen 127.0.0.1:0`, /metrics scraped every SCRAPE_S seconds
# during the run) against off (`--http-listen off`: no server, nothing
# recorded), alternating REPS times in the same run; `herald bench produce`
# acks=all (fsync on ack, the default) at 100 B and 1 KiB, and at 100 B in
# batches of 16 records (`batch.num.messages=16`: ~20 000 requests/s, where
# the per-request hooks cost most). Prints the medians, the ratio on/off,
# and the broker's CPU time per message.
#
#   HERALD=target/release/herald bench/ab-metrics.sh
#   REPS=5 COUNT_100=1500000 COUNT_1K=300000 COUNT_SMALL=500000 SCRAPE_S=1 (defaults:
#   about 550 MB on disk per broker); KEEP=1 keeps the logs
set -euo pipefail
HERALD=${HERALD:?path to the herald binary}
REPS=${REPS:-5}
COUNT_100=${COUNT_100:-1500000}
COUNT_1K=${COUNT_1K:-300000}
COUNT_SMALL=${COUNT_SMALL:-500000}
SCRAPE_S=${SCRAPE_S:-1}
work=$(mktemp -d /tmp/herald-ab-metrics.XXXXXX)
pid=""
scraper=""
cleanup() {
  [ -n "$scraper" ] && kill "$scraper" 2>/dev/null || true
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  # KEEP=1 keeps the broker logs and bench stderr for a failed run.
  if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
results="$work/results.jsonl"
: > "$results"
run=0
for rep in $(seq 1 "$REPS"); do
  for which in off on; do
    http=off; [ "$which" = on ] && http=127.0.0.1:0
    rm -rf "$work/data"
    # The previous round's log must be gone before the address is read from
    # it: the redirect below truncates it only once the child has started.
    rm -f "$work/$which.log"
    "$HERALD" serve --listen 127.0.0.1:0 --http-listen "$http" --data-dir "$work/data" > /dev/null 2> "$work/$which.log" &
    pid=$!
    addr=""
    for _ in $(seq 1 100); do
      addr=$(grep -o 'listen=[^ ]*' "$work/$which.log" | head -1 | cut -d= -f2 || true)
      [ -n "$addr" ] && break
      sleep 0.1
    done
    if [ "$which" = on ]; then
      web=""
      for _ in $(seq 1 100); do
        web=$(grep -o 'http listening on http://[^ ]*' "$work/on.log" | head -1 | sed 's|.*http://||' || true)
        [ -n "$web" ] && break
        sleep 0.1
      done
      # A Prometheus scraping the broker while it works (scrape bytes counted).
      ( while sleep "$SCRAPE_S"; do curl -sf "http://$web/metrics" | wc -c >> "$work/scrapes"; done ) &
      scraper=$!
    fi
    for spec in "100 $COUNT_100 large" "1024 $COUNT_1K large" "100 $COUNT_SMALL small"; do
      set -- $spec
      run=$((run + 1))
      batching=(); [ "$3" = small ] && batching=(-X batch.num.messages=16)
      "$HERALD" --brokers "$addr" --format json bench produce --topic "b$run" --size "$1" --count "$2" \
        --acks all --no-progress "${batching[@]}" 2> "$work/bench-$run.err" \
        | python3 -c "import json,sys; r=json.load(sys.stdin); r['build']='$which'; r['batches']='$3'; print(json.dumps(r))" >> "$results"
    done
    [ -n "$scraper" ] && { kill "$scraper" 2>/dev/null || true; wait "$scraper" 2>/dev/null || true; scraper=""; }
    # The broker's CPU time (user + system, clock ticks) over both runs.
    echo "{\"build\": \"$which\", \"cpu_ticks\": $(awk '{print $14 + $15}' "/proc/$pid/stat"), \"messages\": $((COUNT_100 + COUNT_1K + COUNT_SMALL))}" >> "$work/cpu.jsonl"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  done
done
echo "scrapes during the 'on' runs: $(wc -l < "$work/scrapes" 2>/dev/null || echo 0)"
python3 - "$results" "$work/cpu.jsonl" <<'PY'
import json, os, statistics as st, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
for size, batches in ((100, "large"), (1024, "large"), (100, "small")):
    runs = {b: [r["msgs_per_sec"] for r in rs if r["build"] == b and r["size"] == size and r["batches"] == batches] for b in ("off", "on")}
    m = {b: st.median(v) for b, v in runs.items()}
    # Each round's on run against the off run just before it.
    paired = st.median(on / off for off, on in zip(runs["off"], runs["on"]))
    print(f"size={size} batches={batches} off={m['off']:.0f} msg/s on={m['on']:.0f} msg/s on/off={m['on']/m['off']:.3f}"
          f" paired-median={paired:.3f}"
          f"  (off runs {[round(x) for x in runs['off']]}, on runs {[round(x) for x in runs['on']]})")
tick = os.sysconf("SC_CLK_TCK")
cpu = [json.loads(l) for l in open(sys.argv[2])]
us = {b: st.median(c["cpu_ticks"] / tick * 1e6 / c["messages"] for c in cpu if c["build"] == b) for b in ("off", "on")}
print(f"broker CPU per message (median of rounds): off={us['off']:.3f} us on={us['on']:.3f} us on/off={us['on']/us['off']:.3f}")
PY
