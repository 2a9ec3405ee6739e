#!/usr/bin/env bash
# Runs the README's first command exactly as written (the first ```sh block), waits for the
# gateway to answer, checks the console and the API reference are reachable, then stops it.
# .ci/run calls this on a fresh clone, so the command a new user copies is proven to work.
set -euo pipefail
cd "$(dirname "$0")/.."

cmd="$(awk '/^```sh$/{f=1; next} /^```$/{if (f) exit} f' README.md | grep -v '^#' | head -1)"
[ -n "$cmd" ] || { echo "no command in the README's first sh block" >&2; exit 1; }
echo "README's first command: $cmd"

log="$(mktemp)"
data="$(mktemp -d)"
# The command as written; only its data dir (a scratch folder) and port (any free one) differ.
( export GATEWAY_DATA_DIR="$data" GATEWAY_LISTEN=127.0.0.1:0; exec setsid bash -c "$cmd" ) >"$log" 2>&1 &
pid=$!
stop() { kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"; }
trap stop EXIT

# A cold release build takes minutes; the gateway prints its console url when it is up.
for _ in $(seq 1 1800); do
  if grep -q "console:" "$log"; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then cat "$log"; echo "the README's command exited" >&2; exit 1; fi
  sleep 1
done
grep -q "console:" "$log" || { tail -50 "$log"; echo "the gateway did not start within 30 minutes" >&2; exit 1; }
base="$(sed -n 's/.*console: *\(http:\/\/[^ ]*\)\/console\/.*/\1/p' "$log" | head -1)"
echo "gateway up at $base"
grep "plugins:" "$log"
for path in /healthz /console/ /api/docs /api/v1/openapi.json; do
  code="$(curl -s -o /dev/null -w '%{http_code}' "$base$path")"
  case "$code" in
    200|303|302) echo "  $path -> $code" ;;
    *) echo "  $path -> $code (expected 200 or a redirect)" >&2; tail -20 "$log"; exit 1 ;;
  esac
done
echo "the README's run command works as written"
