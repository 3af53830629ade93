"""`sv2tts batch --ray` and the Ray API (CloneWorkers, CloneBatches) on a local Ray started once
for the session: the same files, audio bytes and report as the local batch, resume, a worker
killed mid-run, with and without a shared path. Under CI=true a missing Ray fails these tests."""
from __future__ import annotations

import collections
import json
import os
import signal
import sys

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

import sv2tts
from sv2tts.cli import main


@pytest.fixture(scope="module")
def ray_session():
    """A local Ray (2 CPUs, no dashboard, a small object store) started once for the tests of this
    file (and shut down after them: the rest of the suite runs without it)."""
    try:
        import ray
    except ImportError:
        msg = 'ray is not installed: pip install "sv2tts[ray]" (scripts/test.sh installs it)'
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2 ** 20, logging_level="warning",
             log_to_driver=False)  # as sv2tts.cluster.connect: workers' log records come with their results
    yield ray
    ray.shutdown()


@pytest.fixture()
def models(model_files):
    """The small test models: WaveRNN (random weights), so the audio depends on the seed."""
    return {"synthesizer": model_files["synthesizer"], "vocoder": model_files["vocoder"]}


@pytest.fixture()
def refs(example_clip, synthetic_clip, tmp_path):
    """A folder of four references (two speakers, one clip twice: embedded once per worker)."""
    folder = tmp_path / "refs"
    folder.mkdir()
    for name, clip in (("a", example_clip), ("b", synthetic_clip), ("c", example_clip), ("d", synthetic_clip)):
        (folder / f"{name}{clip.suffix}").write_bytes(clip.read_bytes())
    return folder


def run(args):
    return CliRunner().invoke(main, [str(a) for a in args])


def model_args(models):
    return ["--synthesizer", models["synthesizer"], "--vocoder", models["vocoder"]]


def files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def without_seconds(report: dict) -> dict:
    return {**report, "seconds": None, "items": [{**i, "seconds": None} for i in report["items"]]}


def outcomes(report: dict) -> list[tuple]:
    """What each item came to: (reference, status, error)."""
    return [(i["reference"], i["status"], i.get("error")) for i in report["items"]]


def local_batch(items, models, **options) -> dict:
    pipe = sv2tts.Pipeline(synthesizer=models["synthesizer"], vocoder=models["vocoder"])
    return sv2tts.run_batch(pipe, items, progress=False, **options)


# -- user errors: one line, exit 2 (no Ray needed) ------------------------------------------------

def test_ray_missing_or_misused_is_a_one_line_error(refs, models, tmp_path, monkeypatch):
    base = ["batch", refs, "--text", "Hi.", "-o", tmp_path / "out", *model_args(models)]
    for extra, fragment in ((["--workers", "2"], "--workers, --cpus-per-worker and --shared-path go with --ray"),
                            (["--ray", "not an address"], "expected auto, local, ray://HOST:PORT or HOST:PORT")):
        res = run(base + extra)
        lines = res.output.strip().splitlines()
        assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("Error: ") and fragment in lines[0]
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    res = run(base + ["--ray"])
    assert res.exit_code == 2, res.output
    assert res.output.strip() == 'Error: Ray is not installed: pip install "sv2tts[ray]"'
    assert not (tmp_path / "out").exists()


# -- the CLI on Ray -------------------------------------------------------------------------------

def test_directory_batch_gives_the_local_files_and_report(ray_session, refs, models, tmp_path):
    local = run(["batch", refs, "--text", "Welcome to the show.", "-o", tmp_path / "local", "--seed", "3",
                 "--json", *model_args(models)])
    assert local.exit_code == 0, local.output
    res = run(["batch", refs, "--text", "Welcome to the show.", "-o", tmp_path / "ray", "--seed", "3", "--json",
               "--group", "2", "--ray", "--workers", "2", "--cpus-per-worker", "1", *model_args(models)])
    assert res.exit_code == 0, res.output
    want, got = json.loads(local.stdout), json.loads(res.stdout)
    assert got["counts"] == {"done": 4, "skipped": 0, "failed": 0, "interrupted": 0}
    assert [i["seconds"] for i in got["items"]] == [i["seconds"] for i in want["items"]]
    ray_files, local_files = files(tmp_path / "ray"), files(tmp_path / "local")
    assert list(ray_files) == ["a.wav", "b.wav", "c.wav", "d.wav"]
    assert ray_files == local_files  # the same bytes for the same seed
    assert ray_files["a.wav"] != ray_files["b.wav"]


def test_manifest_with_bad_rows_reports_as_the_local_batch(ray_session, example_clip, models, tmp_path):
    (tmp_path / "ref.flac").write_bytes(example_clip.read_bytes())
    (tmp_path / "empty.wav").write_bytes(b"")
    rows = [{"reference": "ref.flac", "text": "First item.", "output": "out/one.wav"},
            {"reference": "missing.wav", "text": "Second item.", "output": "out/two.wav"},
            {"reference": "ref.flac", "text": "{HH AH0}", "output": "out/three.wav"},
            {"reference": "empty.wav", "text": "Fourth item.", "output": "out/four.wav"},
            {"reference": "ref.flac", "text": "Fifth item.", "output": "out/five.flac"}]
    (tmp_path / "jobs.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    local = run(["batch", tmp_path / "jobs.jsonl", "--seed", "1", "--json", *model_args(models)])
    assert local.exit_code == 1
    want, want_files = json.loads(local.stdout), files(tmp_path / "out")
    for p in (tmp_path / "out").iterdir():
        p.unlink()
    res = CliRunner().invoke(main, ["batch", str(tmp_path / "jobs.jsonl"), "--seed", "1", "--json", "--ray",
                                    *map(str, model_args(models))])
    assert res.exit_code == 1, res.output
    got = json.loads(res.stdout)
    assert without_seconds(got) == without_seconds(want)  # the same statuses and error messages
    assert [i["status"] for i in got["items"]] == ["done", "failed", "failed", "failed", "done"]
    assert "missing.wav: file not found" in got["items"][1]["error"]
    assert "nothing to synthesise" in got["items"][2]["error"]
    assert "empty.wav: empty file" in got["items"][3]["error"]
    assert files(tmp_path / "out") == want_files and set(want_files) == {"one.wav", "five.flac"}
    assert sf.info(tmp_path / "out" / "five.flac").format == "FLAC"
    assert sum(line.startswith("failed: ") for line in res.stderr.splitlines()) == 3


def test_workers_that_cannot_start_are_one_line_errors(ray_session, refs, models, tmp_path):
    base = ["batch", refs, "--text", "Hi.", "-o", tmp_path / "out", "--ray"]
    res = run(base + ["--workers", "3", *model_args(models)])
    assert res.exit_code == 2 and res.output.startswith("Error: 3 Ray worker(s) of 1 CPU(s) do not fit in the cluster "
                                                         "(room for 2)") and len(res.output.splitlines()) == 1
    res = run(base + ["--synthesizer", tmp_path / "nowhere.pt", "--vocoder", models["vocoder"]])
    assert res.exit_code == 2 and res.output.startswith("Error: a Ray worker on ") and len(res.output.splitlines()) == 1
    assert "nowhere.pt" in res.output
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


# -- the Python API: resume, a killed worker, shared path or not -----------------------------------

def test_interrupted_run_resumes_to_the_local_files(ray_session, refs, models, tmp_path):
    items = sv2tts.directory_items(refs, "Hello there.", tmp_path / "ray")
    want = local_batch(sv2tts.directory_items(refs, "Hello there.", tmp_path / "local"), models, seed=5)
    done = []

    def ctrl_c_after_the_first(item, entry):
        done.append(item)
        if len(done) == 1:
            raise KeyboardInterrupt

    with sv2tts.CloneWorkers(2, synthesizer=models["synthesizer"], vocoder=models["vocoder"]) as pool:
        assert [w["threads"] for w in pool.info] == [1, 1]  # torch set to the worker's CPUs
        first = pool.run(items, seed=5, group=1, shared_path=False, on_item=ctrl_c_after_the_first)
        assert first["interrupted"] and first["stopped"] == "interrupted"
        assert first["counts"]["done"] == 1 and first["counts"]["interrupted"] == 3
        assert list(files(tmp_path / "ray")) == [done[0].output.name]  # nothing half-written
        second = pool.run(items, seed=5, group=1, shared_path=False)
    assert second["counts"] == {"done": 3, "skipped": 1, "failed": 0, "interrupted": 0}
    assert files(tmp_path / "ray") == files(tmp_path / "local") and want["counts"]["done"] == 4


def test_a_killed_worker_costs_only_a_retry(ray_session, refs, models, tmp_path, monkeypatch):
    import sv2tts.cluster.driver as driver

    (refs / "bad.wav").write_bytes(b"RIFF, but not audio")  # four good items and a bad one
    items = sv2tts.directory_items(refs, "Hello.", tmp_path / "ray")
    want = local_batch(sv2tts.directory_items(refs, "Hello.", tmp_path / "local"), models, seed=2)
    writes = collections.Counter()
    real_write = driver.write_bytes_atomic

    def counted(path, data):
        writes[path.name] += 1
        real_write(path, data)

    monkeypatch.setattr(driver, "write_bytes_atomic", counted)
    with sv2tts.CloneWorkers(2, synthesizer=models["synthesizer"], vocoder=models["vocoder"]) as pool:
        pids = pool.pids()

        def kill_worker_0_after_the_first(item, entry):
            if sum(writes.values()) == 1 and entry["status"] == "done":
                os.kill(pids[0], signal.SIGKILL)  # its process ends with groups in flight

        report = pool.run(items, seed=2, group=1, shared_path=False, on_item=kill_worker_0_after_the_first)
        assert pool.pids()[0] != pids[0]  # Ray restarted it (models loaded again)
    assert outcomes(report) == outcomes(want) and report["counts"] == want["counts"]
    assert report["counts"] == {"done": 4, "skipped": 0, "failed": 1, "interrupted": 0}
    assert writes == {f"{p.stem}.wav": 1 for p in refs.iterdir() if p.name != "bad.wav"}  # each once
    assert files(tmp_path / "ray") == files(tmp_path / "local")


def test_shared_path_or_shipped_bytes_give_the_same_files(ray_session, refs, models, tmp_path, caplog):
    want = local_batch(sv2tts.directory_items(refs, "Good day.", tmp_path / "local"), models, seed=7, group=3)
    assert want["counts"]["done"] == 4
    with sv2tts.CloneWorkers(2, synthesizer=models["synthesizer"], vocoder=models["vocoder"]) as pool:
        assert pool.shares_files(sv2tts.directory_items(refs, "x", tmp_path / "probe"))  # one machine: shared
        assert not (tmp_path / "probe").exists()  # detection writes nothing
        for shared in (True, False):
            out = tmp_path / f"ray-{shared}"
            report = pool.run(sv2tts.directory_items(refs, "Good day.", out), seed=7, group=3, shared_path=shared)
            assert report["counts"]["done"] == 4
            assert files(out) == files(tmp_path / "local"), shared


# -- ray.data ------------------------------------------------------------------------------------

def test_clone_batches_gives_clone_audio_per_row(ray_session, example_clip, synthetic_clip, models, tmp_path):
    from sv2tts.cluster.dataset import CloneBatches

    clone = CloneBatches(synthesizer=models["synthesizer"], vocoder=models["vocoder"], threads=1)
    batch = {"reference": np.array([example_clip.read_bytes(), str(synthetic_clip), b"not audio"], dtype=object),
             "text": np.array(["Hello there.", "Good day.", "Hi."]), "seed": np.array([1, 2, 3]),
             "reference_name": np.array(["a.flac", "b", "c.wav"])}
    out = clone(batch)
    assert list(out["error"][:2]) == ["", ""] and out["audio"][2] == b""
    assert out["error"][2].startswith("c.wav: not a readable audio file")
    for row, (ref, text, seed) in enumerate([(example_clip, "Hello there.", 1), (synthetic_clip, "Good day.", 2)]):
        wav = sv2tts.clone(ref, text, seed=seed, **models)
        assert out["audio"][row] == sv2tts.to_wav_bytes(wav)
        assert out["seconds"][row] == round(len(wav) / 16000, 3)
    assert list(out["text"]) == list(batch["text"])


@pytest.mark.slow
def test_map_batches_with_an_actor_pool(ray_session, example_clip, models):
    import ray.data

    rows = [{"reference": example_clip.read_bytes(), "text": f"Item {n}.", "seed": n} for n in range(3)]
    ds = ray.data.from_items(rows).map_batches(
        sv2tts.CloneBatches, fn_constructor_kwargs={**models, "threads": 1}, batch_size=2,
        compute=ray.data.ActorPoolStrategy(size=1), num_cpus=1)
    out = sorted(ds.take_all(), key=lambda r: r["seed"])
    assert [r["error"] for r in out] == ["", "", ""]
    for n, row in enumerate(out):
        assert row["audio"] == sv2tts.to_wav_bytes(sv2tts.clone(example_clip, f"Item {n}.", seed=n, **models))
