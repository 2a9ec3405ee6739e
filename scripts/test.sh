#!/usr/bin/env bash
# The whole test suite: unit tests, store suites, plugin host tests and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo test --workspace --all-targets
