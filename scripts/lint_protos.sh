#!/usr/bin/env bash
# Lint protos/gantry/** with buf (STANDARD rules, see protos/buf.yaml).
#
# - Installs the buf CLI (npm @bufbuild/buf, pinned) into .tools/ on first use.
# - Copies the third-party imports (googleapis from the googleapis-common-protos wheel,
#   well-known types from grpc_tools) into protos/.build/third_party, a second buf module
#   that resolves imports but is not linted. The BSR is not used.
# Exits non-zero on any lint failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUF_VERSION="1.75.0"
TOOLS="$ROOT/.tools"
BUF="$TOOLS/node_modules/.bin/buf"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"

if [[ ! -x "$BUF" ]] || [[ "$("$BUF" --version 2>/dev/null)" != "$BUF_VERSION" ]]; then
  echo "installing @bufbuild/buf@$BUF_VERSION into .tools/" >&2
  npm install --prefix "$TOOLS" --no-audit --no-fund --silent "@bufbuild/buf@$BUF_VERSION" >&2
fi

THIRD_PARTY="$ROOT/protos/.build/third_party"
rm -rf "$THIRD_PARTY"
"$PYTHON" "$ROOT/scripts/gen_protos.py" --vendor-only "$THIRD_PARTY"

cd "$ROOT/protos"
"$BUF" lint
echo "buf lint: ok"
