#!/usr/bin/env bash
# Cluster mode against one single-node broker, in one run on this machine:
# produce throughput (100 B and 1 KiB, acks=all, 12 partitions) of a 3-broker
# cluster (PostgreSQL + SeaweedFS on loopback, scripts/herald-cluster.sh) and
# of a single-node Herald; objects and database commits per second during the
# cluster runs; produce and end-to-end latency p50/p99 at the default flush
# (250 ms) and at 25 ms. Writes the "Cluster mode" section of docs/benchmarks.md.
#
#   bench/cluster.sh                       # release build
#   COUNT_100=300000 COUNT_1K=100000 bench/cluster.sh   # quicker
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${HERALD_BIN:-target/release/herald}
COUNT_100=${COUNT_100:-4000000}
COUNT_1K=${COUNT_1K:-1500000}
REPS=${REPS:-3}
E2E_RATE=${E2E_RATE:-1000}
E2E_SECONDS=${E2E_SECONDS:-15}
OUT=${OUT:-docs/benchmarks.md}
[ -x "$BIN" ] || cargo build --release -p herald
export HERALD_BIN="$BIN"

work=$(mktemp -d /tmp/herald-cluster-bench.XXXXXX)
chmod 755 "$work"
single_pid=""
cleanup() {
  [ -n "$single_pid" ] && kill "$single_pid" 2>/dev/null || true
  scripts/herald-cluster.sh stop "$work/cluster" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
results="$work/results.jsonl"
: > "$results"

tag() { python3 -c "import json,sys; r=json.load(sys.stdin); r.update($1); print(json.dumps(r))" >> "$results"; }

produce() { # TARGET BROKERS SIZE COUNT TOPIC
  "$BIN" --brokers "$2" --format json bench produce --topic "$5" --size "$3" --count "$4" \
    --acks all --partitions 12 --linger-ms 5 --no-progress | tag "{'target': '$1'}"
}

# Single node.
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$work/single" 2> "$work/single.log" &
single_pid=$!
for _ in $(seq 1 100); do
  single=$(grep -o 'listen=[^ ]*' "$work/single.log" 2>/dev/null | head -1 | cut -d= -f2 || true)
  [ -n "$single" ] && break
  sleep 0.1
done
[ -n "$single" ] || { cat "$work/single.log"; exit 1; }
for rep in $(seq 1 "$REPS"); do
  echo "single node: produce (rep $rep)" >&2
  produce single "$single" 100 "$COUNT_100" "s100-$rep"
  produce single "$single" 1024 "$COUNT_1K" "s1k-$rep"
done
kill "$single_pid"; wait "$single_pid" 2>/dev/null || true; single_pid=""

# db_stats: "objects commits" counters of the cluster database.
db_stats() {
  psql "$HERALD_CLUSTER_DB" -Atc "SELECT (SELECT last_value FROM objects_object_id_seq),
    (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())" | tr '|' ' '
}

# cpu_by_command: cumulative CPU seconds of SeaweedFS, the brokers, PostgreSQL, the load generator
cpu_by_command() {
  ps -eo times=,args= | awk '
    / serve /      {t["brokers"]+=$1; next}
    / bench /      {t["client"]+=$1; next}
    /weed/         {t["weed"]+=$1; next}
    /postgres/     {t["postgres"]+=$1; next}
    END {printf "{\"weed\": %d, \"brokers\": %d, \"postgres\": %d, \"client\": %d}", t["weed"], t["brokers"], t["postgres"], t["client"]}'
}

cluster_run() { # FLUSH_MS LABEL: starts a fresh 3-broker cluster, measures, stops it
  local flush=$1 label=$2
  rm -rf "$work/cluster"
  HERALD_CLUSTER_FLUSH_MS=$flush scripts/herald-cluster.sh start "$work/cluster" --brokers 3 >&2
  # shellcheck disable=SC1091
  . "$work/cluster/env"
  local brokers=127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094
  if [ "$label" = default ]; then
    for rep in $(seq 1 "$REPS"); do for size in 100 1024; do
      local count=$COUNT_100; [ "$size" = 1024 ] && count=$COUNT_1K
      echo "cluster ($label flush): produce ${size} B (rep $rep)" >&2
      read -r o1 c1 < <(db_stats); t1=$(date +%s.%N); cpu1=$(cpu_by_command)
      produce cluster "$brokers" "$size" "$count" "c$size-$rep"
      t2=$(date +%s.%N); read -r o2 c2 < <(db_stats); cpu2=$(cpu_by_command)
      python3 -c "import json; d=$t2-$t1; a=$cpu1; b=$cpu2; print(json.dumps({'kind':'cluster_db','size':$size,'seconds':d,'objects_per_sec':($o2-$o1)/d,'commits_per_sec':($c2-$c1)/d,'cpu_seconds':{k: b[k]-a[k] for k in a}}))" >> "$results"
    done; done
  fi
  echo "cluster ($label flush): e2e at $E2E_RATE msg/s" >&2
  "$BIN" --brokers "$brokers" --format json bench e2e --topic "e2e-$label" --size 100 --rate "$E2E_RATE" \
    --duration "$E2E_SECONDS" --acks all --linger-ms 5 --partitions 12 --no-progress | tag "{'target': 'cluster', 'flush': '$label', 'rate': $E2E_RATE}"
  echo "cluster ($label flush): produce latency at $E2E_RATE msg/s" >&2
  "$BIN" --brokers "$brokers" --format json bench produce --topic "lat-$label" --size 100 --rate "$E2E_RATE" \
    --duration "$E2E_SECONDS" --acks all --linger-ms 5 --partitions 12 --no-progress | tag "{'target': 'cluster-latency', 'flush': '$label'}"
  scripts/herald-cluster.sh stop "$work/cluster" >&2
}
cluster_run 250 default
cluster_run 25 25ms

python3 - "$results" "$OUT" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$REPS" <<'PY'
import json, sys, datetime, re, statistics
results_path, out, commit, load, reps = sys.argv[1:6]
rows = [json.loads(l) for l in open(results_path) if l.strip()]
def one(pred):
    for r in rows:
        if pred(r):
            return r
    return None
L = ["<!-- cluster:begin -->", "## Cluster mode", ""]
L.append(f"Generated by `bench/cluster.sh` on {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, commit `{commit}`, "
         f"load average before the run {load}. Everything on this one 2-core machine: the load generator "
         "(`herald bench`, librdkafka), PostgreSQL 15, SeaweedFS (S3) and the brokers, on loopback. "
         "**single** is one `herald serve` (fsync on ack); **cluster** is three brokers started by "
         "`scripts/herald-cluster.sh` (bootstrap: all three). Produce: acks=all, 12 partitions, linger.ms=5, "
         f"batch.size=1000000, one producer; medians of {reps} runs. CPU seconds are read from `ps` (whole seconds; the "
         "load generator takes most of the rest).\n")
L.append("| size | single msg/s | cluster msg/s | cluster MB/s | cluster / single | WAL objects/s | DB commits/s | CPU s over the runs: SeaweedFS / brokers / PostgreSQL (of the machine's) |")
L.append("|---|---|---|---|---|---|---|---|")
def med(pred, key):
    v = [r[key] for r in rows if pred(r)]
    return statistics.median(v) if v else float("nan")
for size in (100, 1024):
    is_s = lambda r: r.get("kind") == "produce" and r.get("target") == "single" and r["size"] == size
    is_c = lambda r: r.get("kind") == "produce" and r.get("target") == "cluster" and r["size"] == size
    ds = [r for r in rows if r.get("kind") == "cluster_db" and r["size"] == size]
    if not ds:
        continue
    s, c, mb = med(is_s, "msgs_per_sec"), med(is_c, "msgs_per_sec"), med(is_c, "mb_per_sec")
    objs = statistics.median(d["objects_per_sec"] for d in ds)
    commits = statistics.median(d["commits_per_sec"] for d in ds)
    cpu = {k: sum(d["cpu_seconds"][k] for d in ds) for k in ("weed", "brokers", "postgres")}
    secs = sum(d["seconds"] for d in ds)
    L.append(f"| {size} B | {s:,.0f} | {c:,.0f} | {mb:,.1f} | {c/s:.2f} | {objs:.1f} | {commits:.1f} | "
             f"{cpu['weed']} / {cpu['brokers']} / {cpu['postgres']} (of {2*secs:.0f}) |")
L.append("")
L.append("Latency at a fixed rate (100 B, acks=all, linger.ms=5 (librdkafka's default), 12 partitions): produce is send to acknowledgement; "
         "end to end is send to receipt by a consumer.\n")
L.append("| flush | rate msg/s | produce p50 ms | produce p99 ms | e2e p50 ms | e2e p99 ms | e2e max ms |")
L.append("|---|---|---|---|---|---|---|")
for flush, label in (("default", "250 ms (default)"), ("25ms", "25 ms")):
    p = one(lambda r: r.get("target") == "cluster-latency" and r.get("flush") == flush)
    e = one(lambda r: r.get("kind") == "e2e" and r.get("flush") == flush)
    if p and e:
        pl, el = p["latency_ms"], e["latency_ms"]
        L.append(f"| {label} | {e.get('rate', '')} | {pl['p50']:.0f} | {pl['p99']:.0f} | {el['p50']:.0f} | {el['p99']:.0f} | {el.get('max', float('nan')):.0f} |")
L.append("")
L.append("<!-- cluster:end -->")
block = "\n".join(L) + "\n"
try:
    text = open(out).read()
except FileNotFoundError:
    text = "# Herald benchmarks\n"
if "<!-- cluster:begin -->" in text:
    text = re.sub(r"<!-- cluster:begin -->.*?<!-- cluster:end -->\n?", block, text, flags=re.S)
else:
    text = text.rstrip("\n") + "\n\n" + block
open(out, "w").write(text)
print(block)
PY
