"""Exception types users catch.

Every error caused by user input (a bad file, a bad checkpoint, bad text) is a subclass of
:class:`Sv2ttsError`, itself a :class:`ValueError`, with a one-line message that names the
file or argument and the problem. The CLI prints that line and exits with code 2.
"""


class Sv2ttsError(ValueError):
    """Base class of every error sv2tts raises for bad input."""


class AudioError(Sv2ttsError):
    """An audio file or array that cannot be used (missing, unreadable, empty, silent, NaN...)."""


class CheckpointError(Sv2ttsError):
    """A model checkpoint that cannot be loaded (missing, truncated, wrong model, unsafe)."""


class TextError(Sv2ttsError):
    """Text that cannot be synthesised (empty, nothing pronounceable, not a str)."""


class InputError(Sv2ttsError):
    """An array argument of the wrong shape, dtype or with non-finite values."""


class ModelNotFoundError(Sv2ttsError):
    """A default model is not in the cache and cannot be downloaded."""


class DownloadError(Sv2ttsError):
    """A model download failed (network, wrong size, wrong hash)."""
