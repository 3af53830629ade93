"""`sv2tts.embed()` and the `embed` / `similarity` commands: behaviour and bad input."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

import sv2tts
from sv2tts.cli import main
from sv2tts.encoder import Encoder, builtin_weights
from sv2tts.core.errors import AudioError, CheckpointError, InputError

def test_embed_path_list_and_array(example_clip, synthetic_clip):
    e = sv2tts.embed(example_clip)
    assert e.shape == (256,) and e.dtype == np.float32 and abs(np.linalg.norm(e) - 1) < 1e-5
    wav, rate = sf.read(example_clip, dtype="float32")
    np.testing.assert_allclose(sv2tts.embed((wav, rate)), e, atol=1e-6)
    voice = sv2tts.embed([example_clip, synthetic_clip])
    other = sv2tts.embed(synthetic_clip)
    assert voice.shape == (256,) and abs(np.linalg.norm(voice) - 1) < 1e-5
    np.testing.assert_allclose(voice, (e + other) / np.linalg.norm(e + other), atol=1e-6)


@pytest.mark.parametrize("clip", ["example_clip", "synthetic_clip_44k_stereo"])
def test_path_and_array_give_identical_embeddings(request, clip):
    """A file and its samples as (array, rate), also as (n, channels) at 44.1 kHz: same numbers."""
    path = request.getfixturevalue(clip)
    wav, rate = sf.read(path, dtype="float32")
    from_path = sv2tts.embed(path)
    assert np.array_equal(sv2tts.embed((wav, rate)), from_path)
    assert np.array_equal(sv2tts.embed(wav, sample_rate=rate), from_path)
    assert np.array_equal(sv2tts.embed(str(path)), from_path)


def test_embed_is_stable_across_input_formats(example_clip, tmp_path):
    """Stereo, 8/24-bit, float, 8 kHz and 48 kHz versions of a clip all give the same voice."""
    wav, rate = sf.read(example_clip, dtype="float32")
    ref = sv2tts.embed(example_clip)
    import librosa

    variants = {
        "stereo.wav": (np.stack([wav, wav], 1), rate, "PCM_16"),
        "u8.wav": (wav, rate, "PCM_U8"),
        "s24.wav": (wav, rate, "PCM_24"),
        "float.wav": (wav, rate, "FLOAT"),
        "48k.wav": (librosa.resample(wav, orig_sr=rate, target_sr=48000), 48000, "PCM_16"),
        "8k.wav": (librosa.resample(wav, orig_sr=rate, target_sr=8000), 8000, "PCM_16"),
    }
    for name, (data, r, subtype) in variants.items():
        sf.write(tmp_path / name, data, r, subtype=subtype)
        e = sv2tts.embed(tmp_path / name)
        cos = float(e @ ref)
        floor = {"u8.wav": 0.95, "8k.wav": 0.85}.get(name, 0.99)  # 8 bits, 4 kHz band lose detail
        assert cos > floor, f"{name}: cosine {cos:.4f} with the original"


def test_all_silence_is_a_clear_error(tmp_path):
    sf.write(tmp_path / "silent.wav", np.zeros(32000, np.float32), 16000)
    with pytest.raises(AudioError, match="silent"):
        sv2tts.embed(tmp_path / "silent.wav")
    hum = (0.3 * np.sin(2 * np.pi * 100 * np.arange(48000) / 16000)).astype(np.float32)
    sf.write(tmp_path / "hum.wav", hum, 16000)
    with pytest.raises(AudioError, match="no speech found"):
        sv2tts.embed(tmp_path / "hum.wav")


def test_array_without_rate_and_bad_reference_types():
    with pytest.raises(InputError, match="sample rate"):
        sv2tts.embed(np.zeros(16000, np.float32))
    with pytest.raises(InputError, match="reference must be"):
        sv2tts.embed(42)
    with pytest.raises(InputError, match="empty list"):
        sv2tts.embed([])


# -- checkpoints ---------------------------------------------------------------------------

class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_truncated_checkpoint(tmp_path):
    data = builtin_weights().read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        Encoder.load(tmp_path / "cut.pt")


def test_checkpoint_of_another_model(model_files):
    with pytest.raises(CheckpointError, match="not an RTVC speaker encoder checkpoint"):
        Encoder.load(model_files["vocoder"])


def test_pickle_carrying_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model_state": {}, "payload": _Evil()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        Encoder.load(path)
    path.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(CheckpointError):
        Encoder.load(path)


def test_wrong_shapes_are_named(tmp_path):
    state = torch.load(builtin_weights(), weights_only=True)["model_state"]
    state["linear.weight"] = torch.zeros(128, 256)
    torch.save({"model_state": state}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="linear.weight"):
        Encoder.load(tmp_path / "bad.pt")


# -- CLI -------------------------------------------------------------------------------------

def test_cli_embed_then_similarity(example_clip, synthetic_clip, tmp_path):
    runner = CliRunner()
    out = tmp_path / "voice.npy"
    res = runner.invoke(main, ["embed", str(example_clip), "-o", str(out)])
    assert res.exit_code == 0, res.output
    np.testing.assert_allclose(np.load(out), sv2tts.embed(example_clip), atol=1e-6)
    res = runner.invoke(main, ["similarity", str(out), str(example_clip)])
    assert res.exit_code == 0 and abs(float(res.output) - 1.0) < 1e-4
    res = runner.invoke(main, ["similarity", str(example_clip), str(synthetic_clip)])
    assert res.exit_code == 0 and float(res.output) < 0.75  # two different "speakers"
    assert abs(float(res.output) - float(sv2tts.embed(example_clip) @ sv2tts.embed(synthetic_clip))) < 1e-4


@pytest.mark.parametrize("case", ["missing", "directory", "empty", "text", "truncated", "silent", "nan"])
def test_cli_bad_reference_exit_2_one_line_no_output(example_clip, tmp_path, case):
    ref = tmp_path / f"{case}.wav"
    if case == "directory":
        ref = tmp_path / "adir"
        ref.mkdir()
    elif case == "empty":
        ref.write_bytes(b"")
    elif case == "text":
        ref.write_text("hello")
    elif case == "truncated":
        ref = tmp_path / "t.flac"
        data = example_clip.read_bytes()
        ref.write_bytes(data[:20000])
    elif case == "silent":
        sf.write(ref, np.zeros(16000, np.float32), 16000)
    elif case == "nan":
        sf.write(ref, np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT")
    out = tmp_path / "out" / "voice.npy"
    res = CliRunner().invoke(main, ["embed", str(ref), "-o", str(out)])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and str(ref) in lines[0]
    assert "Traceback" not in res.output and not out.exists()


def test_cli_bad_checkpoint_exit_2(example_clip, model_files, tmp_path):
    res = CliRunner().invoke(main, ["embed", str(example_clip), "-o", str(tmp_path / "v.npy"),
                                    "--encoder", str(model_files["vocoder"])])
    assert res.exit_code == 2 and "not an RTVC speaker encoder checkpoint" in res.output


def test_real_subprocess_error_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sv2tts.cli", "similarity", str(tmp_path / "a.wav"),
                           str(tmp_path / "b.wav")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"Error: {tmp_path / 'a.wav'}: file not found"


@pytest.mark.slow
def test_long_file_is_decoded_and_resampled_in_bounded_memory(example_clip, tmp_path):
    """10 minutes of 48 kHz stereo speech: reading + resampling + VAD trimming peak at about
    two float32 copies of the 16 kHz result plus a fixed block buffer, instead of the 2 x 3
    copies a whole-file decode at 48 kHz would hold. (The encoder then embeds 64 partials at
    a time.)"""
    import tracemalloc

    import librosa

    from sv2tts.encoder import Encoder

    speech = sf.read(example_clip, dtype="float32")[0]  # real speech: ~94% survives trimming
    speech48 = librosa.resample(speech, orig_sr=16000, target_sr=48000)
    seconds = 600
    path = tmp_path / "long.wav"
    with sf.SoundFile(path, "w", 48000, 2, subtype="PCM_16") as f:
        for _ in range(seconds * 48000 // len(speech48) + 1):
            f.write(np.stack([speech48, speech48], axis=1))
    copy_16k = sf.info(path).frames / 3 * 4  # bytes of one float32 copy at 16 kHz (~38 MB)
    encoder = Encoder.load()
    tracemalloc.start()
    try:
        wav = encoder.load_reference(path, max_seconds=None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(wav) > 0.8 * seconds * 16000
    assert peak < 2 * copy_16k + 40e6, f"peak {peak / 1e6:.0f} MB, one 16 kHz copy {copy_16k / 1e6:.0f} MB"
    # by default only the first MAX_SECONDS are decoded: memory and time stop growing there
    tracemalloc.start()
    try:
        cut = encoder.load_reference(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(cut) <= 120 * 16000 and peak < 64e6  # 120 s: the same whatever the file length


@pytest.mark.parametrize("rate", [0, -16000, 1, 10 ** 9])
def test_array_references_with_impossible_rates(rate):
    import sv2tts

    with pytest.raises(AudioError, match="sample rate"):
        sv2tts.embed((np.zeros(16000, np.float32), rate))


def test_torch_tensor_references_equal_numpy_ones(example_clip):
    import torch

    import sv2tts

    wav, rate = sf.read(example_clip, dtype="float32")
    np.testing.assert_array_equal(sv2tts.embed((torch.from_numpy(wav), rate)), sv2tts.embed((wav, rate)))


def test_encoder_checkpoint_with_inf_weights_is_refused(tmp_path):
    import torch

    from sv2tts.encoder import Encoder, builtin_weights

    state = torch.load(builtin_weights(), weights_only=True)
    state = state.get("model_state", state)
    state["linear.weight"] = torch.full_like(state["linear.weight"], float("inf"))
    torch.save({"model_state": state}, tmp_path / "encoder.pt")
    with pytest.raises(CheckpointError, match="'linear.weight' holds NaN or inf"):
        Encoder.load(tmp_path / "encoder.pt")
