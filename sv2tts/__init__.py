"""sv2tts: voice cloning with SV2TTS (GE2E speaker encoder, Tacotron, WaveRNN).

Public API. Names are imported lazily so that ``import sv2tts`` (and ``sv2tts --help``)
does not pay for torch and librosa until a model is actually used.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "embed": "sv2tts.pipeline",
    "synthesize": "sv2tts.pipeline",
    "vocode": "sv2tts.pipeline",
    "clone": "sv2tts.pipeline",
    "Pipeline": "sv2tts.pipeline",
    "Encoder": "sv2tts.encoder",
    "Synthesizer": "sv2tts.synthesizer",
    "Vocoder": "sv2tts.vocoder",
    "griffin_lim": "sv2tts.synthesizer.audio",
    "load_audio": "sv2tts.audio",
    "to_wav_bytes": "sv2tts.audio",
    "to_base64": "sv2tts.audio",
    "Sv2ttsError": "sv2tts.errors",
    "AudioError": "sv2tts.errors",
    "CheckpointError": "sv2tts.errors",
    "TextError": "sv2tts.errors",
    "InputError": "sv2tts.errors",
    "ModelNotFoundError": "sv2tts.errors",
    "DownloadError": "sv2tts.errors",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .audio import load_audio, to_base64, to_wav_bytes
    from .encoder import Encoder
    from .errors import (AudioError, CheckpointError, DownloadError, InputError,
                         ModelNotFoundError, Sv2ttsError, TextError)
    from .pipeline import Pipeline, clone, embed, synthesize, vocode
    from .synthesizer import Synthesizer
    from .synthesizer.audio import griffin_lim
    from .vocoder import Vocoder


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sv2tts' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
