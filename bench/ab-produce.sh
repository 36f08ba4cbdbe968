#!/usr/bin/env bash
# A/B produce throughput of two herald builds (fsync on ack, the default):
# alternates BASE and NEW, REPS times, `herald bench produce` acks=all at
# 100 B and 1 KiB, and prints the medians and the ratio new/base.
#
#   BASE=/tmp/herald-base NEW=target/debug/herald bench/ab-produce.sh
#   REPS=5 COUNT_100=3000000 COUNT_1K=1000000 (defaults)
set -euo pipefail
BASE=${BASE:?path to the base herald binary}
NEW=${NEW:?path to the new herald binary}
REPS=${REPS:-5}
COUNT_100=${COUNT_100:-3000000}
COUNT_1K=${COUNT_1K:-1000000}
work=$(mktemp -d /tmp/herald-ab.XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
results="$work/results.jsonl"
: > "$results"
run=0
for rep in $(seq 1 "$REPS"); do
  for which in base new; do
    bin=$BASE; [ "$which" = new ] && bin=$NEW
    rm -rf "$work/data"
    # The previous round's log must be gone before the address is read from
    # it: the redirect below truncates it only once the child has started.
    rm -f "$work/$which.log"
    "$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" > /dev/null 2> "$work/$which.log" &
    pid=$!
    addr=""
    for _ in $(seq 1 100); do
      addr=$(grep -o 'listen=[^ ]*' "$work/$which.log" | head -1 | cut -d= -f2 || true)
      [ -n "$addr" ] && break
      sleep 0.1
    done
    for spec in "100 $COUNT_100" "1024 $COUNT_1K"; do
      set -- $spec
      run=$((run + 1))
      "$NEW" --brokers "$addr" --format json bench produce --topic "b$run" --size "$1" --count "$2" \
        --acks all --no-progress \
        | python3 -c "import json,sys; r=json.load(sys.stdin); r['build']='$which'; print(json.dumps(r))" >> "$results"
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  done
done
python3 - "$results" <<'PY'
import json, statistics as st, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
for size in (100, 1024):
    m = {b: st.median([r["msgs_per_sec"] for r in rs if r["build"] == b and r["size"] == size]) for b in ("base", "new")}
    print(f"size={size} base={m['base']:.0f} msg/s new={m['new']:.0f} msg/s new/base={m['new']/m['base']:.3f}")
PY
