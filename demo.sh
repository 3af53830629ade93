#!/usr/bin/env bash
# Install sv2tts into .venv (once) and clone the example voice:
#   bash demo.sh ["Text to speak."] [SYNTHESIZER.pt VOCODER.pt]      -> demo.wav
# Models: the arguments, else $SV2TTS_SYNTHESIZER / $SV2TTS_VOCODER, else the model cache
# ($SV2TTS_HOME, default ~/.cache/sv2tts), downloaded on first use (about 424 MB).
set -euo pipefail
cd "$(dirname "$0")"
text="${1:-Hello! This voice was cloned from five seconds of an audiobook recording.}"
synthesizer="${2:-${SV2TTS_SYNTHESIZER:-}}"
vocoder="${3:-${SV2TTS_VOCODER:-}}"
bash scripts/install.sh .venv
models=()
[ -n "$synthesizer" ] && models+=(--synthesizer "$synthesizer")
[ -n "$vocoder" ] && models+=(--vocoder "$vocoder")
echo "sv2tts: cloning examples/reference.flac ..."
.venv/bin/sv2tts clone examples/reference.flac "$text" -o demo.wav "${models[@]}"
echo "Listen to demo.wav. To use the sv2tts command yourself: . .venv/bin/activate && sv2tts --help"
