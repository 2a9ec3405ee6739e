#!/usr/bin/env bash
# Test-only tools the suite uses when they are there: schemathesis (the OpenAPI fuzzer that
# tests/e2e/schema_fuzz.rs runs against a real gateway), in the repo's own .venv/.
# Idempotent: a second run with the pinned version already installed does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5

if [ -x .venv/bin/schemathesis ] \
  && [ "$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null)" = "$SCHEMATHESIS_VERSION" ]; then
  exit 0
fi
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check "schemathesis==${SCHEMATHESIS_VERSION}"
.venv/bin/schemathesis --version
