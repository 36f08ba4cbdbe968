#!/usr/bin/env bash
# Produce throughput of one herald build with the HTTP server and metrics on
# (`--http-listen 127.0.0.1:0`, /metrics scraped every SCRAPE_S seconds
# during the run) against off (`--http-listen off`: no server, nothing
# recorded), alternating REPS times in the same run; `herald bench produce`
# acks=all (fsync on ack, the default) at 100 B and 1 KiB. Prints the
# medians and the ratio on/off.
#
#   HERALD=target/release/herald bench/ab-metrics.sh
#   REPS=5 COUNT_100=3000000 COUNT_1K=1000000 SCRAPE_S=1 (defaults)
set -euo pipefail
HERALD=${HERALD:?path to the herald binary}
REPS=${REPS:-5}
COUNT_100=${COUNT_100:-3000000}
COUNT_1K=${COUNT_1K:-1000000}
SCRAPE_S=${SCRAPE_S:-1}
work=$(mktemp -d /tmp/herald-ab-metrics.XXXXXX)
pid=""
scraper=""
cleanup() {
  [ -n "$scraper" ] && kill "$scraper" 2>/dev/null || true
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
results="$work/results.jsonl"
: > "$results"
run=0
for rep in $(seq 1 "$REPS"); do
  for which in off on; do
    http=off; [ "$which" = on ] && http=127.0.0.1:0
    rm -rf "$work/data"
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
    for spec in "100 $COUNT_100" "1024 $COUNT_1K"; do
      set -- $spec
      run=$((run + 1))
      "$HERALD" --brokers "$addr" --format json bench produce --topic "b$run" --size "$1" --count "$2" \
        --acks all --no-progress \
        | python3 -c "import json,sys; r=json.load(sys.stdin); r['build']='$which'; print(json.dumps(r))" >> "$results"
    done
    [ -n "$scraper" ] && { kill "$scraper" 2>/dev/null || true; wait "$scraper" 2>/dev/null || true; scraper=""; }
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  done
done
echo "scrapes during the 'on' runs: $(wc -l < "$work/scrapes" 2>/dev/null || echo 0)"
python3 - "$results" <<'PY'
import json, statistics as st, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
for size in (100, 1024):
    runs = {b: [r["msgs_per_sec"] for r in rs if r["build"] == b and r["size"] == size] for b in ("off", "on")}
    m = {b: st.median(v) for b, v in runs.items()}
    print(f"size={size} off={m['off']:.0f} msg/s on={m['on']:.0f} msg/s on/off={m['on']/m['off']:.3f}"
          f"  (off runs {[round(x) for x in runs['off']]}, on runs {[round(x) for x in runs['on']]})")
PY
