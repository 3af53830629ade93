"""sv2tts: voice cloning with SV2TTS (GE2E speaker encoder, Tacotron, WaveRNN).

Public API. Names are imported lazily so that ``import sv2tts`` (and ``sv2tts --help``)
does not pay for torch and librosa until a model is actually used.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    # the pipeline: clone / stream = embed + synthesize + vocode
    "embed": "sv2tts.pipeline",
    "synthesize": "sv2tts.pipeline",
    "vocode": "sv2tts.pipeline",
    "clone": "sv2tts.pipeline",
    "clone_many": "sv2tts.pipeline",
    "stream": "sv2tts.pipeline",
    "Pipeline": "sv2tts.pipeline",
    "CloneQueue": "sv2tts.clone_queue",
    # the stages
    "Encoder": "sv2tts.encoder",
    "Synthesizer": "sv2tts.synthesizer",
    "Vocoder": "sv2tts.vocoder",
    "GriffinLim": "sv2tts.vocoder",
    "griffin_lim": "sv2tts.core.spectrogram",
    # voices, audio files
    "load_voice": "sv2tts.voices",
    "save_voice": "sv2tts.voices",
    "SAMPLE_RATE": "sv2tts.core.dsp",
    "load_audio": "sv2tts.core.audio",
    "write_audio": "sv2tts.core.audio",
    "check_output_path": "sv2tts.core.audio",
    "to_wav_bytes": "sv2tts.core.audio",
    "to_base64": "sv2tts.core.audio",
    "resample": "sv2tts.core.audio",
    "write_bytes_atomic": "sv2tts.core.files",
    # batches and the model cache
    "directory_items": "sv2tts.batch",
    "read_manifest": "sv2tts.batch",
    "run_batch": "sv2tts.batch",
    # batches on a Ray cluster (the ray extra)
    "run_batch_ray": "sv2tts.cluster.driver",
    "CloneWorkers": "sv2tts.cluster.driver",
    "CloneBatches": "sv2tts.cluster.dataset",
    "download_model": "sv2tts.models",
    "list_models": "sv2tts.models",
    "model_cache_dir": "sv2tts.models",
    # errors
    "Sv2ttsError": "sv2tts.core.errors",
    "AudioError": "sv2tts.core.errors",
    "CheckpointError": "sv2tts.core.errors",
    "TextError": "sv2tts.core.errors",
    "InputError": "sv2tts.core.errors",
    "ModelNotFoundError": "sv2tts.core.errors",
    "DownloadError": "sv2tts.core.errors",
}

# subpackages reached as attributes (``sv2tts.train.synthesizer.train_step``), imported on first use
_SUBMODULES = {"train"}  # training and fine-tuning: preprocessing, datasets, training steps

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .batch import directory_items, read_manifest, run_batch
    from .clone_queue import CloneQueue
    from .cluster.dataset import CloneBatches
    from .cluster.driver import CloneWorkers, run_batch_ray
    from .core.audio import check_output_path, load_audio, resample, to_base64, to_wav_bytes, write_audio
    from .core.files import write_bytes_atomic
    from .core.dsp import SAMPLE_RATE
    from .core.errors import (AudioError, CheckpointError, DownloadError, InputError,
                              ModelNotFoundError, Sv2ttsError, TextError)
    from .core.spectrogram import griffin_lim
    from .encoder import Encoder
    from .models import download_model, list_models, model_cache_dir
    from .pipeline import Pipeline, clone, clone_many, embed, stream, synthesize, vocode
    from .synthesizer import Synthesizer
    from .vocoder import GriffinLim, Vocoder
    from .voices import load_voice, save_voice


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sv2tts' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | _SUBMODULES)
