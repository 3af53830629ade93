"""Hostile inputs cost bounded memory and time.

Each case runs in a child process under an address-space limit (RLIMIT_AS), so a regression
fails the test with a MemoryError instead of taking the machine down. Importing torch and
loading the models reserves about 1.1 GB of address space; the limits leave a few hundred MB
above that, far below what the unbounded code needed (6.6 GB for the 1 Hz WAV, 10 GB for the
patched MP3, 14 GB for a 100 KB text, 4 GB for a 30 s output).
"""
from __future__ import annotations

import os
import resource
import struct
import subprocess
import sys
import wave

import numpy as np
import pytest
import soundfile as sf

CLI = "import sys; from sv2tts.cli import main; sys.argv[0] = 'sv2tts'; main()"


def run_limited(args: list[str], limit_mb: int, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -c <args[0]> args[1:]`` with at most ``limit_mb`` MB of address space."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (limit_mb << 20, limit_mb << 20))

    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}  # glibc reserves 64 MB of address space per thread arena
    return subprocess.run([sys.executable, "-c", *args], preexec_fn=limit, env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_a_wav_declaring_1_hz_is_refused_before_decoding(tmp_path):
    path = tmp_path / "one_hz.wav"
    with wave.open(str(path), "wb") as w:  # 40 KB that would be 5.5 h at 16 kHz
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(1)
        w.writeframes(np.zeros(20000, np.int16).tobytes())
    out = run_limited([CLI, "embed", str(path), "-o", str(tmp_path / "v.npy")], limit_mb=1500, timeout=60)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == f"Error: {path}: sample rate 1 is outside 4000-384000 Hz"


def test_an_mp3_whose_header_claims_hours_decodes_at_most_max_seconds(tmp_path):
    path = tmp_path / "short.mp3"
    t = np.arange(16000) / 16000
    try:
        sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    except (sf.LibsndfileError, TypeError, ValueError):
        pytest.skip("this libsndfile cannot write MP3")
    data = bytearray(path.read_bytes())
    xing = data.find(b"Xing")
    assert xing > 0 and struct.unpack(">I", data[xing + 4:xing + 8])[0] & 1  # the frame-count field is there
    data[xing + 8:xing + 12] = struct.pack(">I", 0xFFFF_FFFF)  # 2^32 MPEG frames: decades of audio
    path.write_bytes(data)
    assert sf.info(path).frames > 10 ** 12  # the decoder believes the header
    code = ("import sys, sv2tts; wav, rate = sv2tts.load_audio(sys.argv[1], 16000, max_seconds=30); "
            "print(len(wav), rate)")
    out = run_limited([code, str(path)], limit_mb=1000, timeout=60)
    assert out.returncode == 0, out.stderr
    n, rate = map(int, out.stdout.split())
    assert rate == 16000 and 16000 <= n <= 30 * 16000
    assert "only the first 30 s are used" in out.stderr or n < 30 * 16000


def test_three_hours_of_flac_cost_only_the_first_max_seconds(tmp_path):
    path = tmp_path / "three_hours.flac"
    rate = 16000
    block = np.zeros(rate * 60, np.float32)
    block[::97] = 0.01  # not digital silence: something for the encoder to keep
    with sf.SoundFile(path, "w", rate, 1, format="FLAC") as f:
        for _ in range(180):
            f.write(block)
    assert path.stat().st_size < 50 * 2 ** 20 and sf.info(path).duration == 3 * 3600
    code = ("import sys, sv2tts; wav, rate = sv2tts.load_audio(sys.argv[1], 16000); "
            "print(len(wav), rate)")
    out = run_limited([code, str(path)], limit_mb=1000, timeout=60)  # all of it would need 0.7 GB alone
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(120 * rate), "16000"]
    assert "longer than 120 s: only the first 120 s are used" in out.stderr


def test_a_100_kb_text_is_refused_before_any_model_runs(tmp_path, example_clip, model_files):
    text = ("The quick brown fox jumps over the lazy dog. " * 2300)[:100_000]
    out = run_limited([CLI, "clone", str(example_clip), text, "-o", str(tmp_path / "o.wav"),
                       "--synthesizer", str(model_files["synthesizer"]),
                       "--vocoder", str(model_files["vocoder"])], limit_mb=1500, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "the text has 100,000 characters; the limit is 5,000" in out.stderr and "--max-text-chars" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not (tmp_path / "o.wav").exists()


@pytest.mark.slow
def test_vocoder_memory_does_not_grow_with_the_length_of_the_output(tmp_path):
    """A full-size WaveRNN makes 30 s of audio in bounded pieces: about 1 GB of address space at
    most for the pieces, where one allocation per output second needed 100 MB per second."""
    import torch

    from sv2tts.vocoder.config import VocoderConfig
    from sv2tts.vocoder.model import WaveRNN

    torch.manual_seed(0)
    torch.save({"model_state": WaveRNN(VocoderConfig()).state_dict(), "optimizer_state": {}},
               tmp_path / "vocoder.pt")
    code = ("import sys, numpy as np, sv2tts; v = sv2tts.Vocoder.load(sys.argv[1], precision='int8'); "
            "mel = np.random.default_rng(0).uniform(-4, 4, (80, 2400)).astype(np.float32); "
            "wav = v.vocode(mel, seed=0); print(len(wav), bool(np.isfinite(wav).all()))")
    out = run_limited([code, str(tmp_path / "vocoder.pt")], limit_mb=2600, timeout=300)
    assert out.returncode == 0, out.stderr
    n, finite = out.stdout.split()
    assert int(n) > 29 * 16000 and finite == "True"
