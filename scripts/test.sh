#!/usr/bin/env bash
# Install what the tests need (once) and run them:
#   bash scripts/test.sh             the whole suite (what CI runs)
#   bash scripts/test.sh --quick     the fast subset: tests not marked slow
# Other arguments go to pytest. The virtualenv is $SV2TTS_VENV (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${SV2TTS_VENV:-.venv}"
bash scripts/install.sh "$venv" test,codecs
if [ "${CI:-}" = "true" ]; then  # CI must test the C engine, not silently fall back
    "$venv/bin/python" -c "import sv2tts._native"
fi
args=()
for a in "$@"; do
    if [ "$a" = "--quick" ]; then args+=(-m "not slow"); else args+=("$a"); fi
done
echo "sv2tts: running the tests ${args[*]:-}"
exec "$venv/bin/python" -m pytest -q "${args[@]}"
