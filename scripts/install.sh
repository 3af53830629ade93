#!/usr/bin/env bash
# Install sv2tts (editable) and the given extras into a virtualenv, once:
#   bash scripts/install.sh VENV [EXTRAS]       e.g. bash scripts/install.sh .venv test
# Re-running does nothing unless pyproject.toml, setup.py, the C sources or Python changed
# (a stamp file in VENV records what was installed). torch is pinned to the CPU build first:
# a bare "torch" requirement would pull several GB of CUDA libraries.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:?usage: install.sh VENV [EXTRAS]}"
extras="${2:-}"
python="${PYTHON:-python3}"
stamp_of() {
    { "$python" --version; echo "extras=$extras"; cat pyproject.toml setup.py sv2tts/csrc/*; } 2>&1 | sha256sum | cut -c1-16
}
want=$(stamp_of)
if [ -f "$venv/.sv2tts-installed" ] && [ "$(cat "$venv/.sv2tts-installed")" = "$want" ]; then
    echo "sv2tts: $venv is up to date (delete $venv/.sv2tts-installed to reinstall)"
    exit 0
fi
echo "sv2tts: installing into $venv (torch CPU build, then sv2tts${extras:+[$extras]} and its C engine) ..."
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q torch==2.13.0
"$venv/bin/python" -m pip install -q -e ".${extras:+[$extras]}"
"$venv/bin/python" -c "
try:
    import sv2tts._native as n
    print('sv2tts: C engine built; kernels here: ' + ', '.join(p for i, p in enumerate(('float32', 'bfloat16', 'int8')) if n.supports(i)))
except ImportError:
    print('sv2tts: C engine not built (no C compiler?): torch runs everything, slower')
"
echo "$want" > "$venv/.sv2tts-installed"
echo "sv2tts: installed"
