"""Synthesizer stage: text + speaker embedding -> mel spectrogram (RTVC's Tacotron).

    from sv2tts.synthesizer import Synthesizer
    syn = Synthesizer.load("synthesizer.pt")
    mel = syn.synthesize("Hello world.", embedding, seed=0)   # (80, T) float32

`text_to_sequence(text)` shows the ids the model sees; `split_sentences(text)` the groups a
long text is synthesised in (by the pipeline).
"""
from .api import Synthesizer, is_pronounceable, trim_trailing
from .config import SynthesizerConfig
from .text import split_sentences, text_to_sequence

__all__ = ["Synthesizer", "SynthesizerConfig", "is_pronounceable", "split_sentences", "text_to_sequence",
           "trim_trailing"]
