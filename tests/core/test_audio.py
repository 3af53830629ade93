"""Reading audio in every common form, and refusing what is not usable audio."""
import numpy as np
import pytest
import soundfile as sf

from sv2tts.core.audio import load_audio, resample, to_base64, to_wav_bytes, write_audio
from sv2tts.core.errors import AudioError, InputError

RATE = 16000


def tone(seconds=0.5, rate=RATE, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("subtype, atol", [("PCM_U8", 1 / 64), ("PCM_16", 1e-4), ("PCM_24", 1e-6),
                                           ("FLOAT", 0), ("DOUBLE", 0)])
def test_sample_formats_read_as_float32(tmp_path, subtype, atol):
    path = tmp_path / f"x_{subtype}.wav"
    sf.write(path, tone(), RATE, subtype=subtype)
    wav, rate = load_audio(path)
    assert wav.dtype == np.float32 and rate == RATE and len(wav) == RATE // 2
    np.testing.assert_allclose(wav, tone(), atol=atol)


def test_stereo_is_downmixed_by_channel_mean(tmp_path):
    left, right = tone(), tone(freq=220)
    sf.write(tmp_path / "s.wav", np.stack([left, right], axis=1), RATE, subtype="FLOAT")
    wav, _ = load_audio(tmp_path / "s.wav")
    np.testing.assert_allclose(wav, (left + right) / 2, atol=1e-7)


@pytest.mark.parametrize("fmt", ["flac", "ogg", "mp3"])
def test_compressed_formats(tmp_path, fmt):
    path = tmp_path / f"x.{fmt}"
    try:
        sf.write(path, tone(1.0), RATE)
    except (sf.LibsndfileError, TypeError, ValueError):
        pytest.skip(f"this libsndfile cannot write {fmt}")
    wav, rate = load_audio(path)
    assert rate == RATE and abs(len(wav) - RATE) < 2000
    assert 0.3 < np.abs(wav).max() < 0.7


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampling_on_load_equals_resampling_after(tmp_path, rate):
    x = tone(1.3, rate)
    sf.write(tmp_path / "r.wav", x, rate, subtype="FLOAT")
    wav, out_rate = load_audio(tmp_path / "r.wav", sample_rate=RATE)
    assert out_rate == RATE and len(wav) == int(np.ceil(len(x) * RATE / rate))
    np.testing.assert_allclose(wav, resample(x, rate, RATE), atol=1e-7)


def test_streamed_resampling_matches_whole_signal(monkeypatch):
    import librosa

    import sv2tts.core.audio as audio

    monkeypatch.setattr(audio, "_BLOCK_FRAMES", 3000)  # many blocks
    x = np.random.default_rng(0).standard_normal(50_001).astype(np.float32) * 0.1
    for orig in (48000, 44100, 22050, 8000):
        ref = librosa.resample(x, orig_sr=orig, target_sr=RATE, res_type="kaiser_best", fix=True, scale=False)
        np.testing.assert_allclose(audio.resample(x, orig, RATE), ref, atol=1e-6)


def write_bytes(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.wav", "file not found"),
    (lambda d: d, "is a directory"),
    (lambda d: write_bytes(d / "empty.wav", b""), "empty file"),
    (lambda d: write_bytes(d / "text.wav", b"this is not audio at all\n" * 40), "not a readable audio file.*readable formats: WAV, FLAC"),
])
def test_unusable_files_raise_one_clear_error(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(AudioError, match=message) as info:
        load_audio(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_truncated_flac(tmp_path, example_clip):
    data = example_clip.read_bytes()
    path = write_bytes(tmp_path / "cut.flac", data[: len(data) // 2])
    with pytest.raises(AudioError, match="truncated"):
        load_audio(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(tmp_path, bad):
    x = tone()
    x[100] = bad
    sf.write(tmp_path / "nan.wav", x, RATE, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or infinite"):
        load_audio(tmp_path / "nan.wav")


def test_wav_bytes_and_base64_round_trip(tmp_path):
    import base64
    import io

    x = tone()
    back, rate = sf.read(io.BytesIO(to_wav_bytes(x)), dtype="float32")
    assert rate == RATE
    np.testing.assert_allclose(back, x, atol=1 / 32768 + 1e-6)
    assert base64.b64decode(to_base64(x)) == to_wav_bytes(x)
    out = write_audio(tmp_path / "new" / "dir" / "y.flac", x)
    assert sf.info(out).format == "FLAC" and not list(out.parent.glob("*.part"))
    with pytest.raises(InputError, match="unsupported output format"):
        write_audio(tmp_path / "y.mp4", x)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_get_the_mode_a_plain_write_gives(tmp_path, umask, mode):
    """The temporary file's 0600 must not survive the rename: the umask decides."""
    import os

    old = os.umask(umask)
    try:
        path = write_audio(tmp_path / "o.wav", np.zeros(160, np.float32))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode


def _encode(path, fmt, codec, wav, rate):
    """A stereo file in a container libsndfile cannot read, encoded by FFmpeg (PyAV)."""
    av = pytest.importorskip("av")
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=48000 if codec == "libopus" else rate)
        stream.layout = "stereo"
        frame = av.AudioFrame.from_ndarray(np.stack([wav, 0.5 * wav]).astype(np.float32), format="fltp",
                                           layout="stereo")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return path


@pytest.mark.parametrize("name, fmt, codec", [("memo.m4a", "mp4", "aac"), ("browser.webm", "webm", "libopus")])
def test_phone_and_browser_recordings_through_the_codecs_extra(tmp_path, example_clip, name, fmt, codec):
    import sv2tts

    wav, rate = sf.read(example_clip, dtype="float32")
    path = _encode(tmp_path / name, fmt, codec, wav, rate)
    decoded, decoded_rate = load_audio(path, sample_rate=16000)
    assert decoded_rate == 16000 and abs(len(decoded) - len(wav)) < 0.05 * len(wav)  # codec padding only
    # channels averaged: 0.75 of the original, lossy but the same voice
    assert float(sv2tts.embed(example_clip) @ sv2tts.embed(path)) > 0.95


def test_without_the_codecs_extra_the_message_says_how_to_get_it(tmp_path, monkeypatch):
    from sv2tts.core import audio

    monkeypatch.setattr(audio, "_av", lambda: None)
    (tmp_path / "memo.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + b"\x00" * 200)
    with pytest.raises(AudioError, match=r"readable formats: WAV.*\.m4a.*pip install \"sv2tts\[codecs\]\""):
        load_audio(tmp_path / "memo.m4a")


def test_sample_rates_outside_the_accepted_range_are_refused_before_decoding(tmp_path):
    import wave

    path = tmp_path / "one_hz.wav"
    with wave.open(str(path), "wb") as w:  # 40 KB declaring 1 Hz: hours of audio at 16 kHz
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(1)
        w.writeframes(np.zeros(20000, np.int16).tobytes())
    with pytest.raises(AudioError, match="sample rate 1 is outside 4000-384000 Hz"):
        load_audio(path, sample_rate=16000)
    with pytest.raises(AudioError, match="sample rate 0"):
        to_wav_bytes(np.zeros(10, np.float32), 0)
    with pytest.raises(AudioError, match="NaN"):
        to_wav_bytes(np.full(10, np.nan, np.float32))


def test_long_files_are_cut_at_max_seconds(tmp_path, caplog):
    path = tmp_path / "long.flac"
    sf.write(path, np.full(16000 * 5, 0.1, np.float32), 16000)
    with caplog.at_level("WARNING", logger="sv2tts"):
        wav, _ = load_audio(path, max_seconds=2)
    assert len(wav) == 32000 and "longer than 2 s: only the first 2 s are used" in caplog.text
    assert len(load_audio(path, max_seconds=None)[0]) == 80000


def test_special_files_say_what_they_are(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.wav")
    with pytest.raises(AudioError, match="is a named pipe"):
        load_audio(tmp_path / "pipe.wav")
    with pytest.raises(AudioError, match="is a device"):
        load_audio("/dev/zero")
    (tmp_path / "loop.wav").symlink_to(tmp_path / "loop.wav")
    with pytest.raises(AudioError, match="cannot be read"):
        load_audio(tmp_path / "loop.wav")


def test_temporaries_left_by_a_killed_run_are_removed_on_the_next_write(tmp_path):
    import os
    import time

    stale = tmp_path / ".o.wav.abc123.part"
    fresh = tmp_path / ".o.wav.def456.part"  # maybe another run writing right now: kept
    for f in (stale, fresh):
        f.write_bytes(b"half")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    write_audio(tmp_path / "o.wav", np.zeros(160, np.float32))
    assert not stale.exists() and fresh.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [fresh.name, "o.wav"]
