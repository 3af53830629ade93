#!/usr/bin/env bash
# Install sv2tts in a fresh virtualenv and clone the example voice:
#   bash demo.sh ["Text to speak."]        -> demo.wav
# Needs the synthesizer and vocoder checkpoints: downloaded on first use (about 424 MB) into
# $SV2TTS_HOME (default ~/.cache/sv2tts). Offline, see README "Offline use".
set -euo pipefail
cd "$(dirname "$0")"
text="${1:-Hello! This voice was cloned from five seconds of an audiobook recording.}"
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q torch==2.13.0   # CPU build; a bare "torch" would pull several GB of CUDA
python -m pip install -q -e .
sv2tts clone examples/reference.flac "$text" -o demo.wav
echo "Listen to demo.wav"
