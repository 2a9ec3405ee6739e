#!/usr/bin/env bash
# The whole test suite: gateway unit and integration tests (plugin host, store suites on SQLite
# and PostgreSQL, end-to-end tests), then the plugins' and the SDK's own native tests.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
host="$(rustc -vV | sed -n 's/^host: //p')"

cargo test --workspace
(cd sdk && cargo test --target "$host")
(cd plugins && cargo test --target "$host")
