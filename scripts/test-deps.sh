#!/usr/bin/env bash
# Test-only tools the suite uses when they are there:
# - schemathesis, the OpenAPI fuzzer that tests/e2e/schema_fuzz.rs runs against a real gateway,
#   and aiosmtpd, the SMTP server tests/e2e/mail.rs sends failure emails to, in the repo's .venv/;
# - axe-core, the accessibility engine tests/support/browser.rs injects into each console page,
#   in .tools/ (npm).
# Idempotent: a tool already installed at its pinned version is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
AIOSMTPD_VERSION=1.4.6
AXE_CORE_VERSION=4.14.1

if command -v npm >/dev/null 2>&1; then
  if [ "$(node -p 'require("./.tools/node_modules/axe-core/package.json").version' 2>/dev/null)" != "$AXE_CORE_VERSION" ]; then
    npm install --prefix .tools --no-audit --no-fund --silent "axe-core@${AXE_CORE_VERSION}"
  fi
else
  echo "npm not found: axe-core not installed (the browser tests' accessibility checks need it)" >&2
fi

installed() {
  .venv/bin/python -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || true
}

[ -x .venv/bin/python ] || python3 -m venv .venv
if [ "$(installed schemathesis)" != "$SCHEMATHESIS_VERSION" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "schemathesis==${SCHEMATHESIS_VERSION}"
fi
if [ "$(installed aiosmtpd)" != "$AIOSMTPD_VERSION" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "aiosmtpd==${AIOSMTPD_VERSION}"
fi
.venv/bin/schemathesis --version
.venv/bin/python -c "import aiosmtpd; print('aiosmtpd', aiosmtpd.__version__)"
