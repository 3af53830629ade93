"""Speaker-embedding throughput: sv2tts vs resemblyzer's VoiceEncoder, same CPU, same run.

    pip install --no-deps resemblyzer==0.1.4     # for the comparison (optional)
    python benchmarks/encoder_speed.py [--audio-dir ../shared/golden/audio] [--repeats 5]

Prints seconds of audio embedded per second of wall time (whole path from a 16 kHz float
array: volume normalisation, VAD trimming, mel, partials, network) for a 10 s and a 60 s clip
of real speech, and the ratio to resemblyzer. Targets: >= 1.0x resemblyzer, >= 100x real time.
"""
from __future__ import annotations

import argparse
import glob
import os
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from sv2tts.encoder import Encoder

RATE = 16000


def speech(seconds: float, audio_dir: Path) -> np.ndarray:
    clips = [sf.read(p, dtype="float32")[0] for p in sorted(glob.glob(str(audio_dir / "*.flac")))]
    one = np.concatenate(clips)
    return np.tile(one, int(seconds * RATE) // len(one) + 1)[: int(seconds * RATE)]


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up (JIT compilation, caches)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def resemblyzer_embedder():
    try:
        import resemblyzer
        from resemblyzer import audio as rz_audio
    except ImportError:
        return None
    import librosa

    def mel_keywords(wav):  # resemblyzer 0.1.4 calls librosa positionally (TypeError on >= 0.10)
        frames = librosa.feature.melspectrogram(
            y=wav, sr=rz_audio.sampling_rate, n_fft=int(rz_audio.sampling_rate * rz_audio.mel_window_length / 1000),
            hop_length=int(rz_audio.sampling_rate * rz_audio.mel_window_step / 1000), n_mels=rz_audio.mel_n_channels)
        return frames.astype(np.float32).T

    rz_audio.wav_to_mel_spectrogram = mel_keywords
    import resemblyzer.voice_encoder as rz_ve

    rz_ve.wav_to_mel_spectrogram = mel_keywords
    encoder = resemblyzer.VoiceEncoder(device="cpu", verbose=False)
    return lambda wav: encoder.embed_utterance(rz_audio.preprocess_wav(wav, source_sr=RATE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_dir = Path(__file__).resolve().parents[1].parent / "shared" / "golden" / "audio"
    parser.add_argument("--audio-dir", type=Path, default=Path(os.environ.get("SV2TTS_GOLDEN", default_dir.parent)) / "audio")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    ours = Encoder.load()
    theirs = resemblyzer_embedder()
    if theirs is None:
        print("resemblyzer not installed: `pip install --no-deps resemblyzer==0.1.4` for the comparison")
    print(f"{'clip':>6} {'sv2tts x RT':>12} {'resemblyzer x RT':>17} {'ratio':>7} {'cosine':>7}")
    for seconds in (10, 60):
        wav = speech(seconds, args.audio_dir)
        t_ours = best_time(lambda: ours.embed((wav, RATE)), args.repeats)
        line = f"{seconds:>5}s {seconds / t_ours:>11.1f}x"
        if theirs is not None:
            t_theirs = best_time(lambda: theirs(wav), args.repeats)
            cos = float(ours.embed((wav, RATE)) @ theirs(wav))
            line += f" {seconds / t_theirs:>16.1f}x {t_theirs / t_ours:>6.2f}x {cos:>7.4f}"
        print(line)


if __name__ == "__main__":
    main()
