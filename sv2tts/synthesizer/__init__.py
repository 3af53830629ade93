"""Synthesizer stage: text + speaker embedding -> mel spectrogram (RTVC's Tacotron).

    from sv2tts.synthesizer import Synthesizer
    syn = Synthesizer.load("synthesizer.pt")
    mel = syn.synthesize("Hello world.", embedding, seed=0)   # (80, T) float32

`text_to_sequence(text)` shows the ids the model sees; `griffin_lim(mel)` makes a mel
audible without a vocoder.
"""
from .api import PAUSE_FRAMES, Synthesizer, synthesize, trim_trailing
from .audio import griffin_lim, linearspectrogram, melspectrogram
from .config import MelConfig, SynthesizerConfig
from .text import split_sentences, text_to_sequence

__all__ = [
    "PAUSE_FRAMES", "MelConfig", "Synthesizer", "SynthesizerConfig", "griffin_lim",
    "linearspectrogram", "melspectrogram", "split_sentences", "synthesize", "text_to_sequence",
    "trim_trailing",
]
