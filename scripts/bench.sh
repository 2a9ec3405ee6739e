#!/usr/bin/env bash
# Runs the README's external-benchmark matrix against the release binary: for each store
# (SQLite; PostgreSQL with 1 and 2 nodes) and with/without the `template` plugin, starts fresh
# gateway process(es), runs `bench` (closed loop, 500/s, 2,000/s, backlog drain; --repeat 3),
# stops them by pid and removes their data dir / schema. Output: one log per row in $OUT.
#
#   scripts/bench.sh [sqlite|pg1|pg2 ...]       (default: all three)
#   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test  BENCH_REPEAT=3  OUT=bench-out
#   BENCH_MODES="closed rate500 rate2000 drain"  BENCH_TEMPLATES="off on"  BENCH_IDLE_SECS=30 (0: skip)
#   GW=path/to/webhook-gateway BENCH=path/to/bench  (measure those binaries; nothing is built)
set -euo pipefail
cd "$(dirname "$0")/.."

DB="${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
REPEAT="${BENCH_REPEAT:-3}"
OUT="${OUT:-bench-out}"
MODES="${BENCH_MODES:-closed rate500 rate2000 drain}"
TEMPLATES="${BENCH_TEMPLATES:-off on}"
STORES=("${@:-sqlite pg1 pg2}")
read -r -a STORES <<<"${STORES[*]}"
export BENCH_TOKEN="bench-admin-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
mkdir -p "$OUT"

# GW / BENCH name other binaries (e.g. a build of an earlier commit, for a before/after pair);
# unset, the current tree is built.
if [ -z "${GW:-}" ] || [ -z "${BENCH:-}" ]; then
  cargo build --release -p webhook-gateway -p gateway-e2e --bin webhook-gateway --bin bench
fi
GW="${GW:-target/release/webhook-gateway}"
BENCH="${BENCH:-target/release/bench}"

PIDS=() DIRS=() URLS=() SCHEMA=""
stop_all() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  for d in "${DIRS[@]}"; do rm -rf "$d"; done
  if [ -n "$SCHEMA" ]; then
    psql -q "$DB" -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null || true
    rm -f "$OUT/secrets-$SCHEMA.key"
  fi
  PIDS=() DIRS=() URLS=() SCHEMA=""
}
trap stop_all EXIT

# Starts one gateway on 127.0.0.1:0 with a fresh data dir; waits for its banner (60 s at most).
start_node() {
  local dir log pid base
  dir="$(mktemp -d)"; log="$dir/log"
  ( export GATEWAY_ADMIN_TOKEN="$BENCH_TOKEN" GATEWAY_ALLOWED_NETWORKS=127.0.0.0/8 \
      GATEWAY_DATA_DIR="$dir" GATEWAY_LISTEN=127.0.0.1:0 GATEWAY_LOG=warn
    if [ -n "${1:-}" ]; then export GATEWAY_DATABASE_URL="$1"; fi
    exec "$GW" serve ) >"$log" 2>&1 &
  pid=$!
  PIDS+=("$pid"); DIRS+=("$dir")
  for _ in $(seq 1 600); do
    grep -q "console:" "$log" && break
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "gateway exited" >&2; return 1; }
    sleep 0.1
  done
  base="$(sed -n 's/.*console: *\(http:\/\/[^ ]*\)\/console\/.*/\1/p' "$log" | head -1)"
  [ -n "$base" ] || { tail -20 "$log" >&2; echo "gateway did not start" >&2; return 1; }
  URLS+=("$base")
}

start_store() {
  case "$1" in
    sqlite) start_node "" ;;
    pg1|pg2)
      SCHEMA="bench_$$_$RANDOM"
      psql -q "$DB" -c "CREATE SCHEMA $SCHEMA" >/dev/null
      local url="$DB?options=-csearch_path%3D$SCHEMA"
      # Nodes on one database share its secrets master key (each has its own data dir).
      # A named key file must exist (the gateway creates only its default one): write it.
      export GATEWAY_SECRETS_KEY_FILE="$OUT/secrets-$SCHEMA.key"
      (umask 077; head -c 32 /dev/urandom | base64 >"$GATEWAY_SECRETS_KEY_FILE")
      start_node "$url"
      if [ "$1" = pg2 ]; then start_node "$url"; fi ;;
    *) echo "unknown store $1 (sqlite, pg1, pg2)" >&2; exit 2 ;;
  esac
}

mode_args() {
  case "$1" in
    closed) echo "closed --events 5000 --concurrency 64" ;;
    rate500) echo "rate --rate 500 --seconds 6" ;;
    rate2000) echo "rate --rate 2000 --seconds 3" ;;
    drain) echo "drain --events 5000 --concurrency 64" ;;
    *) echo "unknown mode $1" >&2; exit 2 ;;
  esac
}

for store in "${STORES[@]}"; do
  for tpl in $TEMPLATES; do
    for mode in $MODES; do
      start_store "$store"
      urls="$(IFS=,; echo "${URLS[*]}")"; pids="$(IFS=,; echo "${PIDS[*]}")"
      log="$OUT/$store-$mode-template-$tpl.txt"
      echo "== $store, template $tpl, $mode (uptime: $(uptime))" | tee "$log"
      # shellcheck disable=SC2046
      timeout 600 "$BENCH" --url "$urls" --pids "$pids" --template "$tpl" --repeat "$REPEAT" --wait-secs 15 \
        $(mode_args "$mode") 2>&1 | tee -a "$log" || echo "bench failed or timed out: $log" >&2
      stop_all
    done
  done
done

# Idle cost of one SQLite gateway.
[ "${BENCH_IDLE_SECS:-30}" = 0 ] && exit 0
start_store sqlite
sleep 5
timeout 120 "$BENCH" idle --pid "${PIDS[0]}" --seconds "${BENCH_IDLE_SECS:-30}" | tee "$OUT/idle.txt"
stop_all
