"""The command line end to end: Click's runner and a real subprocess."""
import base64
import functools
import http.server
import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

import sv2tts
from sv2tts.cli import main

@pytest.fixture()
def models(model_files):
    """CLI options selecting the small test models (Griffin-Lim keeps most tests quick)."""
    return ["--synthesizer", str(model_files["synthesizer"]), "--vocoder", "griffinlim"]


def run(args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def assert_user_error(res, *fragments):
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    assert "Traceback" not in res.output
    for f in fragments:
        assert f in lines[0], res.output


@pytest.mark.parametrize("command", [[], ["embed"], ["similarity"], ["clone"], ["batch"], ["models"],
                                     ["models", "download"], ["models", "list"]])
def test_help_everywhere_with_an_example(command):
    res = run(command + ["--help"])
    assert res.exit_code == 0 and "Example" in res.output


def test_clone_with_wavernn_writes_wav(example_clip, model_files, tmp_path):
    out = tmp_path / "new" / "out.wav"
    res = run(["clone", example_clip, "Hello there.", "-o", out, "--seed", 1,
               "--synthesizer", model_files["synthesizer"], "--vocoder", model_files["vocoder"]])
    assert res.exit_code == 0, res.output
    info = sf.info(out)
    assert info.samplerate == 16000 and info.subtype == "PCM_16"
    assert not list(out.parent.glob("*.part"))
    expected = sv2tts.clone(example_clip, "Hello there.", synthesizer=model_files["synthesizer"],
                            vocoder=model_files["vocoder"], seed=1)
    wav, _ = sf.read(out, dtype="float32")
    assert len(wav) == len(expected) > 0
    np.testing.assert_allclose(wav, np.clip(expected, -1, 1), atol=1 / 32767)  # 16-bit, clipped


def test_clone_flac_stdin_and_text_file(example_clip, model_files, models, tmp_path):
    def assert_speaks(path, text):  # the file holds what the API makes of that text
        expected = sv2tts.clone(example_clip, text, synthesizer=model_files["synthesizer"],
                                vocoder="griffinlim", seed=3)
        wav, _ = sf.read(path, dtype="float32")
        assert len(wav) == len(expected)
        np.testing.assert_allclose(wav, np.clip(expected, -1, 1), atol=1 / 32767)

    res = run(["clone", example_clip, "-", "-o", tmp_path / "a.flac", "--seed", 3, *models],
              input="From stdin.")
    assert res.exit_code == 0, res.output
    assert sf.info(tmp_path / "a.flac").format == "FLAC"
    assert_speaks(tmp_path / "a.flac", "From stdin.")
    (tmp_path / "t.txt").write_text("From a file. Two sentences.", encoding="utf-8")
    res = run(["clone", example_clip, "--text-file", tmp_path / "t.txt", "-o", tmp_path / "b.wav",
               "--seed", 3, *models])
    assert res.exit_code == 0, res.output
    assert_speaks(tmp_path / "b.wav", "From a file. Two sentences.")


def test_clone_base64_to_stdout(example_clip, model_files, models):
    res = CliRunner().invoke(
        main, ["clone", str(example_clip), "Web page.", "--base64", "--seed", "2", *models])
    assert res.exit_code == 0, res.stderr
    data = base64.b64decode(res.stdout.strip())
    assert sf.info(io.BytesIO(data)).samplerate == 16000
    expected = sv2tts.clone(example_clip, "Web page.", synthesizer=model_files["synthesizer"],
                            vocoder="griffinlim", seed=2)
    assert data == sv2tts.to_wav_bytes(expected)


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_text(example_clip, models, tmp_path, text):
    res = run(["clone", example_clip, text, "-o", tmp_path / "o.wav", *models])
    assert_user_error(res, "text is empty")
    assert not (tmp_path / "o.wav").exists()


def test_unwritable_output_and_bad_suffix(example_clip, models, tmp_path):
    (tmp_path / "afile").write_text("x")
    res = run(["clone", example_clip, "Hi.", "-o", tmp_path / "afile" / "o.wav", *models])
    assert_user_error(res, "cannot create the output folder")
    res = run(["clone", example_clip, "Hi.", "-o", tmp_path / "o.mp4", *models])
    assert_user_error(res, "unsupported output format")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_output_folder(example_clip, models, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    res = run(["clone", example_clip, "Hi.", "-o", ro / "o.wav", *models])
    assert_user_error(res, "not writable")


def test_wrong_shape_voice_file(models, tmp_path):
    np.save(tmp_path / "v.npy", np.zeros(100, np.float32))
    res = run(["clone", tmp_path / "v.npy", "Hi.", "-o", tmp_path / "o.wav", *models])
    assert_user_error(res, "v.npy", "(256,)")


def test_bad_reference_and_bad_checkpoint(example_clip, model_files, models, tmp_path):
    res = run(["clone", tmp_path / "nope.wav", "Hi.", "-o", tmp_path / "o.wav", *models])
    assert_user_error(res, "nope.wav", "file not found")
    res = run(["clone", example_clip, "Hi.", "-o", tmp_path / "o.wav",
               "--synthesizer", model_files["vocoder"], "--vocoder", "griffinlim"])
    assert res.exit_code == 2 and "vocoder.pt" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o.wav").exists()


# -- batch --------------------------------------------------------------------------------------

def test_batch_over_a_directory_then_resume(example_clip, synthetic_clip, models, tmp_path):
    refs = tmp_path / "refs"
    refs.mkdir()
    (refs / "speaker_a.flac").write_bytes(example_clip.read_bytes())
    (refs / "speaker_b.flac").write_bytes(synthetic_clip.read_bytes())
    (refs / "notes.txt").write_text("not audio, ignored")
    out = tmp_path / "out"
    res = run(["batch", refs, "--text", "Welcome.", "-o", out, "--json", *models])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output[res.output.index("{"):])
    assert report["counts"] == {"done": 2, "skipped": 0, "failed": 0, "interrupted": 0}
    assert sorted(p.name for p in out.iterdir()) == ["speaker_a.wav", "speaker_b.wav"]
    first = (out / "speaker_a.wav").stat().st_mtime_ns
    (out / "speaker_b.wav").unlink()  # as if the first run was interrupted there
    res = run(["batch", refs, "--text", "Welcome.", "-o", out, "--json", *models])
    report = json.loads(res.output[res.output.index("{"):])
    assert report["counts"] == {"done": 1, "skipped": 1, "failed": 0, "interrupted": 0}
    assert (out / "speaker_a.wav").stat().st_mtime_ns == first
    res = run(["batch", refs, "--text", "Welcome.", "-o", out, "--overwrite", "--json", *models])
    assert json.loads(res.output[res.output.index("{"):])["counts"]["done"] == 2


def test_batch_manifest_with_a_bad_row_goes_on_and_fails_overall(example_clip, models, tmp_path):
    (tmp_path / "ref.flac").write_bytes(example_clip.read_bytes())
    rows = [{"reference": "ref.flac", "text": "First item.", "output": "out/one.wav"},
            {"reference": "missing.wav", "text": "Second item.", "output": "out/two.wav"},
            {"reference": "ref.flac", "text": "Third item.", "output": "out/three.flac"}]
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    res = CliRunner().invoke(main, ["batch", str(manifest), "--json", *models])
    assert res.exit_code == 1
    report = json.loads(res.stdout)
    assert report["counts"] == {"done": 2, "skipped": 0, "failed": 1, "interrupted": 0}
    failed = [i for i in report["items"] if i["status"] == "failed"]
    assert "missing.wav" in failed[0]["error"] and "failed:" in res.stderr
    failure = next(line for line in res.stderr.splitlines() if line.startswith("failed:"))
    assert failure.count("missing.wav") == 1  # the path once, not "X: X: file not found"
    assert (tmp_path / "out" / "one.wav").exists() and (tmp_path / "out" / "three.flac").exists()
    assert not (tmp_path / "out" / "two.wav").exists()


def test_batch_csv_manifest(example_clip, models, tmp_path):
    (tmp_path / "ref.flac").write_bytes(example_clip.read_bytes())
    (tmp_path / "jobs.csv").write_text('reference,text,output\nref.flac,"Hello, CSV.",o.wav\n')
    res = run(["batch", tmp_path / "jobs.csv", *models])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o.wav").exists()
    assert "1 done, 0 skipped, 0 failed" in res.output


@pytest.mark.parametrize("name, content, fragment", [
    ("m.csv", b"ref,text\nx.wav,hi\n", "missing column(s) reference, output"),
    ("m.csv", b"reference,text,output\n\xff\xfe\xfa,hi,o.wav\n", "not UTF-8"),
    ("m.jsonl", b'{"reference": "x.wav", "text": "hi"}\n', "line 1 is missing output"),
    ("m.jsonl", b"{not json\n", "line 1 is not valid JSON"),
])
def test_bad_manifests(models, tmp_path, name, content, fragment):
    (tmp_path / name).write_bytes(content)
    assert_user_error(run(["batch", tmp_path / name, *models]), fragment)


# -- models ---------------------------------------------------------------------------------

@pytest.fixture()
def file_server(tmp_path):
    root = tmp_path / "srv"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(5)


def serve_vocoder(file_server, tmp_path, monkeypatch, served_bytes: int) -> None:
    """Serve a fake vocoder.pt of ``served_bytes``; the model table expects 5,000 bytes."""
    from sv2tts import models as models_mod

    root, url = file_server
    (root / "vocoder.pt").write_bytes(b"v" * served_bytes)
    monkeypatch.setitem(models_mod.MODELS, "vocoder", models_mod.ModelFile("vocoder", "vocoder.pt", 5000))
    monkeypatch.setenv("SV2TTS_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("SV2TTS_MODEL_URL", url)


def test_models_download_and_list(file_server, tmp_path, monkeypatch):
    serve_vocoder(file_server, tmp_path, monkeypatch, 5000)
    res = run(["models", "download", "vocoder"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cache" / "vocoder.pt").read_bytes() == b"v" * 5000
    res = run(["models", "list"])
    assert res.exit_code == 0 and str(tmp_path / "cache") in res.output
    lines = {line.split()[0]: line for line in res.output.splitlines()[1:]}
    assert "present" in lines["vocoder"] and "5,000" in lines["vocoder"]
    assert "missing" in lines["synthesizer"]


def test_models_download_wrong_size_is_an_error(file_server, tmp_path, monkeypatch):
    serve_vocoder(file_server, tmp_path, monkeypatch, 4000)
    res = run(["models", "download", "vocoder"])
    assert res.exit_code == 2 and "5000" in res.output.replace(",", "")
    assert not (tmp_path / "cache" / "vocoder.pt").exists()


def test_offline_clone_subprocess(example_clip, tmp_path):
    env = dict(os.environ, SV2TTS_HOME=str(tmp_path / "cache"), SV2TTS_MODEL_URL="http://127.0.0.1:9")
    proc = subprocess.run([sys.executable, "-m", "sv2tts.cli", "clone", str(example_clip), "Hi.",
                           "-o", str(tmp_path / "o.wav")], capture_output=True, text=True, env=env,
                          timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "sv2tts models download" in err[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.slow
def test_clone_subprocess_end_to_end(example_clip, model_files, tmp_path):
    out = tmp_path / "o.wav"
    proc = subprocess.run([sys.executable, "-m", "sv2tts.cli", "clone", str(example_clip),
                           "A real process.", "-o", str(out), "--seed", "5",
                           "--synthesizer", str(model_files["synthesizer"]),
                           "--vocoder", str(model_files["vocoder"])],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert sf.info(out).frames > 0


def test_batch_csv_with_an_unquoted_comma_says_so(tmp_path, models):
    (tmp_path / "jobs.csv").write_text("reference,text,output\nref.flac,Hello, world.,o.wav\n")
    res = run(["batch", tmp_path / "jobs.csv", *models])
    assert_user_error(res, "line 2 has 4 columns, expected 3: quote texts that contain commas")


def test_batch_folder_reports_clashes_and_ignored_files(example_clip, models, tmp_path, caplog):
    refs = tmp_path / "refs"
    refs.mkdir()
    (refs / "a.flac").write_bytes(example_clip.read_bytes())
    (refs / "notes.txt").write_text("not audio")
    out = tmp_path / "out"
    res = run(["batch", refs, "--text", "Hi.", "-o", out, *models])
    assert res.exit_code == 0 and "ignored 1 file(s) that are not audio: notes.txt" in res.stderr
    (refs / "notes.txt").unlink()
    (refs / "a.ogg").write_bytes(b"any")
    res = run(["batch", refs, "--text", "Hi.", "-o", out, "--overwrite", *models])
    assert_user_error(res, "a.flac and a.ogg -> a.wav", "rename them")


def test_models_list_shows_the_encoder_built_in(tmp_path, monkeypatch):
    monkeypatch.setenv("SV2TTS_HOME", str(tmp_path))
    res = run(["models", "list"])
    assert res.exit_code == 0
    line = next(line for line in res.output.splitlines() if line.startswith("encoder"))
    assert "built in" in line and "missing" not in line


def test_batch_folder_takes_a_text_file_and_max_frames(example_clip, model_files, tmp_path, caplog):
    refs = tmp_path / "refs"
    refs.mkdir()
    (refs / "a.flac").write_bytes(example_clip.read_bytes())
    (tmp_path / "t.txt").write_text("Read from a file.", encoding="utf-8")
    res = run(["batch", refs, "--text-file", tmp_path / "t.txt", "-o", tmp_path / "out", "--max-frames", "6",
               "--synthesizer", model_files["synthesizer"], "--vocoder", "griffinlim", "--seed", "0"])
    assert res.exit_code == 0, res.output
    assert "reached max_frames=6" in res.stderr  # the cap reached the synthesizer
    wav, rate = sf.read(tmp_path / "out" / "a.wav")
    expected = sv2tts.clone(example_clip, "Read from a file.", synthesizer=model_files["synthesizer"],
                            vocoder="griffinlim", seed=0, max_frames=6)
    assert rate == 16000 and len(wav) == len(expected)


def test_json_summaries_on_clone_embed_and_similarity(example_clip, synthetic_clip, models, tmp_path):
    res = CliRunner().invoke(main, ["clone", str(example_clip), "Hi.", "-o", str(tmp_path / "o.wav"), "--seed", "3",
                                    "--json", *models])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["output"] == str(tmp_path / "o.wav") and report["seed"] == 3 and report["precision"] == "float32"
    assert report["seconds"] == round(sf.info(tmp_path / "o.wav").frames / 16000, 3) and report["elapsed_s"] > 0
    res = CliRunner().invoke(main, ["embed", str(example_clip), "-o", str(tmp_path / "v.npy"), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["references"] == [str(example_clip)]
    res = CliRunner().invoke(main, ["similarity", str(tmp_path / "v.npy"), str(synthetic_clip), "--json"])
    report = json.loads(res.stdout)
    expected = float(sv2tts.load_voice(tmp_path / "v.npy") @ sv2tts.embed(synthetic_clip))
    assert report["similarity"] == pytest.approx(expected, abs=1e-6)
    res = run(["clone", example_clip, "Hi.", "--base64", "--json", *models])
    assert res.exit_code == 2 and "Error: --json and --base64 both write to stdout" in res.output


def _batch_of_three_with_failures(example_clip, tmp_path, monkeypatch, failures: dict, writes: dict = {}) -> Path:
    """A folder of three references; with --group 1, Pipeline.clone_many raises failures[n] on
    its n-th call (item n), and writing the n-th output raises writes[n]."""
    import sv2tts.batch

    refs = tmp_path / "refs"
    refs.mkdir()
    for name in ("a", "b", "c"):
        (refs / f"{name}.flac").write_bytes(example_clip.read_bytes())
    real, calls = sv2tts.Pipeline.clone_many, []

    def clone_many(self, *args, **kwargs):
        calls.append(args)
        if len(calls) in failures:
            raise failures[len(calls)]
        return real(self, *args, **kwargs)

    real_write, written = sv2tts.batch.write_audio, []

    def write_audio(*args):
        written.append(args)
        if len(written) in writes:
            raise writes[len(written)]
        return real_write(*args)

    monkeypatch.setattr(sv2tts.Pipeline, "clone_many", clone_many)
    monkeypatch.setattr(sv2tts.batch, "write_audio", write_audio)
    return refs


def test_ctrl_c_during_batch_still_prints_the_json_summary(example_clip, models, tmp_path, monkeypatch):
    refs = _batch_of_three_with_failures(example_clip, tmp_path, monkeypatch, {2: KeyboardInterrupt()})
    res = CliRunner().invoke(main, ["batch", str(refs), "--text", "Hi.", "-o", str(tmp_path / "out"), "--json",
                                    "--group", "1", *models])
    assert res.exit_code == 130
    report = json.loads(res.stdout)
    assert report["interrupted"] is True
    assert [i["status"] for i in report["items"]] == ["done", "interrupted", "interrupted"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.wav"]  # nothing half-written


def test_outputs_never_replace_inputs(example_clip, models, tmp_path):
    ref = tmp_path / "same.wav"
    sf.write(ref, sf.read(example_clip, dtype="float32")[0], 16000)
    before = ref.read_bytes()
    res = run(["clone", ref, "Hello.", "-o", ref, *models])
    assert res.exit_code == 2 and "would replace the reference" in res.output and ref.read_bytes() == before
    res = run(["batch", tmp_path, "--text", "Hello.", "-o", tmp_path, "--overwrite", *models])
    assert_user_error(res, "another folder than the references")
    (tmp_path / "jobs.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"reference": "same.wav", "text": "One.", "output": "o.wav"},
        {"reference": "same.wav", "text": "Two.", "output": "o.wav"}]))
    assert_user_error(run(["batch", tmp_path / "jobs.jsonl", *models]), "two items write this output")
    (tmp_path / "jobs.jsonl").write_text(json.dumps({"reference": "same.wav", "text": "One.", "output": "same.wav"}))
    assert_user_error(run(["batch", tmp_path / "jobs.jsonl", "--overwrite", *models]), "would replace a reference")
    assert ref.read_bytes() == before
    res = run(["clone", ref, "Hi.", "-o", tmp_path / "x.wav", "--seed", str(2 ** 64), *models])
    assert_user_error(res, "seed")


def test_batch_goes_on_after_any_item_failure_and_stops_cleanly_on_a_full_disk(example_clip, models, tmp_path,
                                                                              monkeypatch):
    import errno

    refs = _batch_of_three_with_failures(example_clip, tmp_path, monkeypatch, {1: RuntimeError("something unexpected")},
                                         writes={2: OSError(errno.ENOSPC, "No space left on device")})
    res = CliRunner().invoke(main, ["batch", str(refs), "--text", "Hi.", "-o", str(tmp_path / "out"), "--json",
                                    "--group", "1", *models])
    report = json.loads(res.stdout)
    assert res.exit_code == 1 and report["stopped"] == "the disk is full"
    assert [i["status"] for i in report["items"]] == ["failed", "done", "failed"]
    assert "RuntimeError: something unexpected" in report["items"][0]["error"]


def test_text_file_that_is_not_utf8_and_a_bad_mirror_url(tmp_path, monkeypatch, models, example_clip):
    (tmp_path / "t.txt").write_bytes("caf\u00e9 au lait.".encode("latin-1"))
    res = run(["clone", example_clip, "--text-file", tmp_path / "t.txt", "-o", tmp_path / "o.wav", *models])
    assert_user_error(res, "not UTF-8 text (byte 3)")
    monkeypatch.setenv("SV2TTS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SV2TTS_MODEL_URL", "http://[::1")
    assert_user_error(run(["models", "download", "vocoder"]), "SV2TTS_MODEL_URL='http://[::1': not a URL")


def test_batch_groups_give_the_same_files_as_one_at_a_time(example_clip, synthetic_clip, models, tmp_path):
    refs = tmp_path / "refs"
    refs.mkdir()
    for i, clip in enumerate([example_clip, synthetic_clip, example_clip, synthetic_clip, example_clip]):
        (refs / f"{i}{clip.suffix}").write_bytes(clip.read_bytes())
    outputs = {}
    for group in ("1", "2", "8"):
        res = run(["batch", refs, "--text", "Welcome to the show. Enjoy.", "-o", tmp_path / group, "--seed", "3",
                   "--group", group, "--precision", "int8", "--json", *models])
        assert res.exit_code == 0 and json.loads(res.stdout)["counts"]["done"] == 5
        outputs[group] = [p.read_bytes() for p in sorted((tmp_path / group).iterdir())]
    assert outputs["1"] == outputs["2"] == outputs["8"] and len(set(outputs["1"])) > 1
    res = run(["batch", refs, "--text", "Hi.", "-o", tmp_path / "x", "--group", "0", *models])
    assert res.exit_code == 2 and "Invalid value for '--group': 0 is not in the range x>=1" in res.output


def test_threads_option_caps_torch_threads(example_clip, tmp_path):
    import torch

    before = torch.get_num_threads()
    try:
        res = run(["embed", example_clip, "-o", tmp_path / "v.npy", "--threads", "1"])
        assert res.exit_code == 0 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    res = run(["embed", example_clip, "-o", tmp_path / "v.npy", "--threads", "0"])
    assert res.exit_code == 2 and "Invalid value for '--threads'" in res.output
