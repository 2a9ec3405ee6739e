#!/usr/bin/env bash
# Test-only tools the suite uses when they are there:
# - schemathesis, the OpenAPI fuzzer that tests/e2e/schema_fuzz.rs runs against a real gateway,
#   and aiosmtpd, the SMTP server tests/e2e/mail.rs sends failure emails to, in the repo's .venv/;
# - axe-core, the accessibility engine tests/support/browser.rs injects into each console page,
#   in .tools/ (npm);
# - componentize-py (.venv/) and componentize-js (.tools/), which build the Python and JavaScript
#   plugin projects `webhook-gateway plugin new` writes (tests/e2e/plugin_langs.rs).
# Idempotent: a tool already installed at its pinned version is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
AIOSMTPD_VERSION=1.4.6
AXE_CORE_VERSION=4.14.1
COMPONENTIZE_PY_VERSION=0.25.1
COMPONENTIZE_JS_VERSION=0.23.0
PREVIEW2_SHIM_VERSION=0.17.4

npm_version() {
  node -p "require('./.tools/node_modules/$1/package.json').version" 2>/dev/null || true
}

if command -v npm >/dev/null 2>&1; then
  # One install for all: a later `npm install` of one package may prune what an earlier one
  # hoisted. componentize-js imports preview2-shim at run time but lists it only as a
  # devDependency, so it is named here.
  if [ "$(npm_version axe-core)" != "$AXE_CORE_VERSION" ] \
    || [ "$(npm_version @bytecodealliance/componentize-js)" != "$COMPONENTIZE_JS_VERSION" ] \
    || [ "$(npm_version @bytecodealliance/preview2-shim)" != "$PREVIEW2_SHIM_VERSION" ]; then
    npm install --prefix .tools --no-audit --no-fund --silent "axe-core@${AXE_CORE_VERSION}" \
      "@bytecodealliance/componentize-js@${COMPONENTIZE_JS_VERSION}" \
      "@bytecodealliance/preview2-shim@${PREVIEW2_SHIM_VERSION}"
  fi
  .tools/node_modules/.bin/componentize-js --version
else
  echo "npm not found: axe-core and componentize-js not installed (the browser tests' accessibility checks and the JavaScript plugin tests need them)" >&2
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
if [ "$(installed componentize-py)" != "$COMPONENTIZE_PY_VERSION" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "componentize-py==${COMPONENTIZE_PY_VERSION}"
fi
.venv/bin/schemathesis --version
.venv/bin/componentize-py --version
.venv/bin/python -c "import aiosmtpd; print('aiosmtpd', aiosmtpd.__version__)"
