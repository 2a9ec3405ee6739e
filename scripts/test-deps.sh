#!/usr/bin/env bash
# Test-only tools the suite uses when they are there: schemathesis (the OpenAPI fuzzer that
# tests/e2e/schema_fuzz.rs runs against a real gateway), in the repo's own .venv/, and axe-core
# (the accessibility engine tests/support/browser.rs injects into each console page), in .tools/.
# Idempotent: a second run with the pinned versions already installed does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
AXE_CORE_VERSION=4.14.1

if command -v npm >/dev/null 2>&1; then
  if [ "$(node -p 'require("./.tools/node_modules/axe-core/package.json").version' 2>/dev/null)" != "$AXE_CORE_VERSION" ]; then
    npm install --prefix .tools --no-audit --no-fund --silent "axe-core@${AXE_CORE_VERSION}"
  fi
else
  echo "npm not found: axe-core not installed (the browser tests' accessibility checks need it)" >&2
fi

if [ -x .venv/bin/schemathesis ] \
  && [ "$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null)" = "$SCHEMATHESIS_VERSION" ]; then
  exit 0
fi
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check "schemathesis==${SCHEMATHESIS_VERSION}"
.venv/bin/schemathesis --version
