#!/usr/bin/env bash
# Test-only tools the suite uses when they are there, in the repo's own .venv/:
# - schemathesis, the OpenAPI fuzzer that tests/e2e/schema_fuzz.rs runs against a real gateway;
# - aiosmtpd, the SMTP server tests/e2e/mail.rs sends failure emails to (tests/support/smtp.rs).
# Idempotent: a tool already installed at its pinned version is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
AIOSMTPD_VERSION=1.4.6

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
