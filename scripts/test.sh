#!/usr/bin/env bash
# Install what the tests need (once) and run them:
#   bash scripts/test.sh             the whole suite (what CI runs)
#   bash scripts/test.sh --quick     the fast subset: tests not marked slow
# Other arguments go to pytest. The virtualenv is $SV2TTS_VENV (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${SV2TTS_VENV:-.venv}"
bash scripts/install.sh "$venv" test,codecs,serve,ray
if [ "${CI:-}" = "true" ]; then  # CI must test the C engine, not silently fall back
    "$venv/bin/python" -c "import sv2tts._native"
fi
# the web page's tests drive Debian's chromium (Playwright's own browser download is not used)
if ! command -v chromium >/dev/null 2>&1; then
    if [ "${CI:-}" = "true" ]; then
        echo "sv2tts: installing chromium for the browser tests (apt-get)"
        sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
        $sudo_ apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq chromium >/dev/null
    else
        echo "sv2tts: no chromium here: the browser tests will be skipped (apt-get install chromium)"
    fi
fi
args=()
for a in "$@"; do
    if [ "$a" = "--quick" ]; then args+=(-m "not slow"); else args+=("$a"); fi
done
echo "sv2tts: running the tests ${args[*]:-}"
exec "$venv/bin/python" -m pytest -q "${args[@]}"
