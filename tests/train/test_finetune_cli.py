"""`sv2tts finetune`: bad input refused (exit 2, the files named, nothing trained), a tiny
synthesizer fine-tuned end to end (loss falls, samples, clone reloads it, resume is exact),
Ctrl-C and a full disk keep a usable checkpoint, the vocoder run on GTA mels.

Clips are cut from examples/reference.flac or made here; models are conftest's small random
checkpoints (`model_files`)."""
from __future__ import annotations

import errno
import json
import shutil
import signal

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

import sv2tts
from sv2tts.cli import main
from sv2tts.train import synthesizer as S

TEXTS = ["The quick brown fox jumps over the lazy dog.", "She sells sea shells by the sea shore.",
         "How much wood would a woodchuck chuck?", "Peter Piper picked a peck of pickled peppers."]


def invoke(*args: str):
    return CliRunner().invoke(main, ["finetune", *map(str, args)])


@pytest.fixture(scope="module")
def clips(example_clip, tmp_path_factory):
    """Four 2.5 s windows of the example clip, each with its transcript (folder layout)."""
    wav, rate = sf.read(example_clip, dtype="float32")
    folder = tmp_path_factory.mktemp("clips")
    for i, text in enumerate(TEXTS):
        start = int(i * 0.8 * rate)
        sf.write(folder / f"clip{i}.flac", wav[start:start + int(2.5 * rate)], rate)
        (folder / f"clip{i}.txt").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def data(clips, tmp_path):
    """A private copy of the clips a test may spoil."""
    return shutil.copytree(clips, tmp_path / "data")


def syn_args(data, out, model_files, *extra):
    return ["synthesizer", data, "-o", out, "--from", model_files["synthesizer"], "--batch-size", 3,
            "--lr", "2e-3", "-q", *extra]


def assert_refused(result, *fragments):
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Error: ") and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in line, line


def assert_nothing_trained(out):
    assert not (out / "synthesizer.pt").exists() and not (out / "metrics.jsonl").exists()


# ------------------------------------------------------------------------------ bad input
def test_folder_without_transcripts(data, tmp_path, model_files):
    for p in data.glob("*.txt"):
        p.unlink()
    result = invoke(*syn_args(data, tmp_path / "out", model_files))
    assert_refused(result, "no transcripts", "clip0.txt", "clip0.flac")
    assert_nothing_trained(tmp_path / "out")


def test_transcripts_without_audio(data, tmp_path, model_files):
    (data / "extra.txt").write_text("Nobody reads me.")
    (data / "sub").mkdir()
    (data / "sub" / "more.txt").write_text("Nor me.")
    result = invoke(*syn_args(data, tmp_path / "out", model_files))
    assert_refused(result, "transcripts without an audio file", "extra.txt", "more.txt")
    assert "clip" not in result.output
    assert_nothing_trained(tmp_path / "out")


def test_empty_and_non_utf8_transcripts(data, tmp_path, model_files):
    (data / "clip1.txt").write_text('  " "\n', encoding="utf-8")  # nothing left after RTVC's cleaning
    (data / "clip2.txt").write_bytes("café au lait".encode("latin-1"))
    result = invoke(*syn_args(data, tmp_path / "out", model_files))
    assert_refused(result, "not UTF-8", "clip2.txt", "empty: ", "clip1.txt")
    assert_nothing_trained(tmp_path / "out")


def test_unreadable_and_silent_audio(data, tmp_path, model_files):
    (data / "broken.wav").write_bytes(b"RIFF\x00\x00not really a wav file")
    (data / "broken.txt").write_text("This file is broken.")
    sf.write(data / "quiet.wav", np.zeros(48000, np.float32), 16000)
    (data / "quiet.txt").write_text("Silence.")
    result = invoke(*syn_args(data, tmp_path / "out", model_files))
    assert_refused(result, "unreadable audio", "broken.wav", "silent audio", "quiet.wav")
    assert "clip0" not in result.output
    assert_nothing_trained(tmp_path / "out")
    report = json.loads((tmp_path / "out" / "data" / "report.json").read_text())
    assert sorted(d["reason"] for d in report["dropped"]) == ["silent", "unreadable"]


def test_all_utterances_too_short(example_clip, tmp_path, model_files):
    wav, rate = sf.read(example_clip, dtype="float32")
    data = tmp_path / "short"
    data.mkdir()
    for i in range(2):
        sf.write(data / f"short{i}.wav", wav[i * rate:i * rate + rate], rate)  # 1 s < RTVC's 1.6 s
        (data / f"short{i}.txt").write_text("Too short.")
    result = invoke(*syn_args(data, tmp_path / "out", model_files))
    assert_refused(result, "no utterance is usable", "all 2 were dropped", "short0.wav", "short1.wav",
                   "under 1.6 s")
    assert_nothing_trained(tmp_path / "out")


def test_manifests_and_ljspeech(clips, tmp_path):
    rows = [(f"clips/clip{i}.flac", TEXTS[i]) for i in range(2)]
    shutil.copytree(clips, tmp_path / "clips")
    (tmp_path / "m.csv").write_text("audio,text\n" + "".join(f'{a},"{t}"\n' for a, t in rows), encoding="utf-8")
    (tmp_path / "m.jsonl").write_text("".join(json.dumps({"audio": a, "text": t}) + "\n" for a, t in rows))
    lj = tmp_path / "lj"
    (lj / "wavs").mkdir(parents=True)
    for i in range(2):
        data, rate = sf.read(clips / f"clip{i}.flac")
        sf.write(lj / "wavs" / f"LJ001-000{i}.wav", data, rate)
    (lj / "metadata.csv").write_text("LJ001-0000|Raw text 1.|Normalized one.\nLJ001-0001|Only raw two.\n")
    for manifest in (tmp_path / "m.csv", tmp_path / "m.jsonl"):
        found = sv2tts.train.find_utterances(manifest)
        assert [(s.name, s.text) for s in found] == [("clips_clip0", TEXTS[0]), ("clips_clip1", TEXTS[1])]
    for source in (lj, lj / "metadata.csv"):
        found = sv2tts.train.find_utterances(source)
        assert [(s.audio.name, s.text) for s in found] == [("LJ001-0000.wav", "Normalized one."),
                                                           ("LJ001-0001.wav", "Only raw two.")]
    (tmp_path / "gone.csv").write_text("audio,text\nnowhere.wav,Hello.\n")
    with pytest.raises(sv2tts.InputError, match="audio files not found: .*nowhere.wav"):
        sv2tts.train.find_utterances(tmp_path / "gone.csv")


# ------------------------------------------------------------------- fine-tuning end to end
def losses(out) -> list[float]:
    return [e["loss"] for e in sv2tts.train.run_folder.MetricsLog(out / "metrics.jsonl").read()]


@pytest.mark.slow
def test_resume_continues_exactly(clips, tmp_path, model_files):
    """Stopping at step 4 and resuming to 6 gives the losses and weights of a straight run to 6."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    args = ("--save-every", 2, "--sample-every", 100, "--val-fraction", 0)
    assert invoke(*syn_args(clips, straight, model_files, "--steps", 6, *args)).exit_code == 0
    assert invoke(*syn_args(clips, resumed, model_files, "--steps", 4, *args)).exit_code == 0
    result = invoke(*syn_args(clips, resumed, model_files, "--steps", 6, "--resume", *args))
    assert result.exit_code == 0, result.output
    assert losses(resumed) == losses(straight) and len(losses(straight)) == 6
    a = torch.load(straight / "synthesizer.pt", weights_only=True)
    b = torch.load(resumed / "synthesizer.pt", weights_only=True)
    assert a["step"] == b["step"] == 6 and set(a) == {"model_state", "optimizer_state", "step"}
    assert all(torch.equal(a["model_state"][k], v) for k, v in b["model_state"].items())


def test_other_runs_refused_unless_overwrite(clips, tmp_path, model_files):
    out = tmp_path / "out"
    assert invoke(*syn_args(clips, out, model_files, "--steps", 1)).exit_code == 0
    other = tmp_path / "other.pt"
    ckpt = torch.load(model_files["synthesizer"], weights_only=True)
    ckpt["model_state"]["decoder.stop_proj.bias"] += 1.0
    torch.save(ckpt, other)
    before = (out / "synthesizer.pt").read_bytes()
    result = invoke("synthesizer", clips, "-o", out, "--from", other, "-q")
    assert_refused(result, str(out), "different synthesizer", "--overwrite")
    result = invoke("vocoder", clips, "-o", out, "--synthesizer", out / "synthesizer.pt",
                    "--from", model_files["vocoder"], "-q")
    assert_refused(result, "holds a synthesizer fine-tuning run, not a vocoder one")
    assert (out / "synthesizer.pt").read_bytes() == before
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    shutil.copy(model_files["vocoder"], foreign / "vocoder.pt")
    assert_refused(invoke(*syn_args(clips, foreign, model_files, "--steps", 1)), "vocoder.pt from another run")
    result = invoke("synthesizer", clips, "-o", out, "--from", other, "--steps", 1, "--overwrite", "-q", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["steps_done"] == 1
    assert json.loads((out / "finetune.json").read_text())["start"] == str(other.resolve())
    assert_refused(invoke("synthesizer", clips, "-o", tmp_path / "new", "--from", other, "--resume", "-q"),
                   "nothing to resume")


def test_full_disk_keeps_previous_checkpoint(clips, tmp_path, model_files, monkeypatch):
    out = tmp_path / "out"
    real_save, calls = torch.save, []

    def save_then_fill_disk(obj, f, *args, **kwargs):
        calls.append(obj.get("step"))
        if len(calls) > 1:
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_then_fill_disk)
    result = invoke(*syn_args(clips, out, model_files, "--steps", 4, "--save-every", 2, "--sample-every", 100))
    monkeypatch.undo()
    assert result.exit_code == 1 and "No space left on device" in result.output, result.output
    assert calls == [2, 4]
    assert torch.load(out / "synthesizer.pt", weights_only=True)["step"] == 2
    assert sorted(p.name for p in out.iterdir()) == ["data", "finetune.json", "metrics.jsonl", "synthesizer.pt",
                                                     "voice.npy"]  # no temporary left behind


def test_ctrl_c_saves_then_stops(clips, tmp_path, model_files, monkeypatch):
    out = tmp_path / "out"
    real_step = S.train_step

    def step_then_interrupt(*args, **kwargs):
        result = real_step(*args, **kwargs)
        if result.step == 3:
            signal.raise_signal(signal.SIGINT)  # the user presses Ctrl-C during step 3
        return result

    monkeypatch.setattr(S, "train_step", step_then_interrupt)
    args = [a for a in syn_args(clips, out, model_files, "--steps", 50, "--save-every", 100) if a != "-q"]
    result = invoke(*args)
    assert result.exit_code == 130, result.output
    assert "Interrupted at step 3" in result.output and "run the same command to resume" in result.output
    assert torch.load(out / "synthesizer.pt", weights_only=True)["step"] == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


@pytest.mark.slow
def test_finetune_tiny_synthesizer_cli(clips, tmp_path, model_files):
    """A few dozen steps: the loss falls, samples appear, clone loads the result, resume goes on."""
    out = tmp_path / "my_voice"
    result = invoke(*syn_args(clips, out, model_files, "--steps", 30, "--sample-every", 15, "--save-every", 10,
                              "--val-fraction", 0.25, "--json"))
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["step"], report["kept"], report["dropped"], report["interrupted"]) == (30, 4, 0, False)
    entries = sv2tts.train.run_folder.MetricsLog(out / "metrics.jsonl").read()
    assert [e["step"] for e in entries] == list(range(1, 31))
    assert set(entries[0]) >= {"loss", "mel_mse", "mel_l1", "postnet_mse", "stop_bce", "grad_norm", "lr",
                               "steps_per_s"}
    assert entries[0]["lr"] == 2e-3 and all(e["steps_per_s"] > 0 for e in entries)
    loss = [e["loss"] for e in entries]
    assert np.mean(loss[-5:]) < 0.6 * np.mean(loss[:5]), loss
    assert [e["step"] for e in entries if "val_loss" in e] == [15, 30]
    assert np.isfinite([e["val_loss"] for e in entries if "val_loss" in e]).all()
    names = sorted(p.name for p in (out / "samples").iterdir())
    assert names == ["step-000015-alignment.png", "step-000015.wav", "step-000030-alignment.png",
                     "step-000030.wav"]
    assert (out / "samples" / names[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    wav, rate = sf.read(out / "samples" / "step-000030.wav")
    assert rate == 16000 and len(wav) > 0
    assert json.loads((out / "data" / "report.json").read_text())["dropped"] == []

    clone = CliRunner().invoke(main, ["clone", str(out / "voice.npy"), "Hello there.", "--synthesizer",
                                      str(out / "synthesizer.pt"), "--vocoder", "griffinlim", "--max-frames", "40",
                                      "-o", str(tmp_path / "hello.wav"), "-q"])
    assert clone.exit_code == 0, clone.output
    assert sf.info(tmp_path / "hello.wav").frames > 0

    more = invoke(*syn_args(clips, out, model_files, "--steps", 33, "--sample-every", 100, "--json"))
    assert more.exit_code == 0, more.output
    assert json.loads(more.output)["steps_done"] == 3
    assert [e["step"] for e in sv2tts.train.run_folder.MetricsLog(out / "metrics.jsonl").read()] == list(range(1, 34))


@pytest.mark.slow
def test_finetune_vocoder_cli(clips, tmp_path, model_files):
    """GTA mels from a synthesizer, a tiny WaveRNN trained on them, resumed, loadable."""
    out = tmp_path / "voc"
    args = ["vocoder", clips, "--synthesizer", model_files["synthesizer"], "-o", out, "--from",
            model_files["vocoder"], "--batch-size", 4, "--lr", "1e-2", "--sample-every", 6, "--val-fraction", 0.25,
            "-q", "--json"]
    result = invoke(*args, "--steps", 6)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["step"] == 6
    assert len(list((out / "gta" / "mels_gta").glob("mel-*.npy"))) == 4
    entries = sv2tts.train.run_folder.MetricsLog(out / "metrics.jsonl").read()
    assert entries[0]["loss"] == pytest.approx(np.log(512), rel=0.05) and entries[-1]["loss"] < entries[0]["loss"]
    assert "val_loss" in entries[-1] and (out / "samples" / "step-000006.wav").is_file()
    assert sv2tts.Vocoder.load(out / "vocoder.pt").config.rnn_dims == 32
    result = invoke(*args, "--steps", 8)
    assert result.exit_code == 0 and json.loads(result.output)["steps_done"] == 2, result.output
