"""Model cache and downloads (sv2tts.models), against a local HTTP server; never the network.

The server (fixture ``hub``) listens on 127.0.0.1 on an ephemeral port, serves in-memory files
with Range support, and can cut a transfer, state a right or wrong sha256, ignore Range,
omit Content-Length, stall, or redirect like Hugging Face's /resolve/ URLs.
"""
from __future__ import annotations

import hashlib
import logging
import http.server
import json
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sv2tts import models
from sv2tts.core.errors import DownloadError, ModelNotFoundError, Sv2ttsError
from sv2tts.models import ModelFile

NAMES = ("encoder", "synthesizer", "vocoder")


# --------------------------------------------------------------------------- local server


@dataclass
class Served:
    data: bytes
    sha_header: str | None = None  # header name that states the sha256 ("X-Checksum-Sha256", "ETag")
    sha_value: str | None = None  # None: the right hash
    cuts: int = 0  # how many responses are cut ...
    cut_after: int = 0  # ... after this many body bytes
    ignore_range: bool = False
    no_length: bool = False
    stall: bool = False
    hf_redirect: bool = False  # /<name> answers 302 with X-Linked-ETag/X-Linked-Size -> /cdn/<name>
    loop: bool = False  # every request answers 302 to itself
    trickle: bool = False  # the body is sent one byte every 20 ms
    status: int = 200


@dataclass
class Hub:
    url: str
    files: dict[str, Served] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def add(self, filename: str, data: bytes, **options) -> Served:
        self.files[filename] = Served(data, **options)
        return self.files[filename]

    def gets(self, filename: str) -> list[dict[str, str]]:
        return [h for p, h in self.requests if p.rsplit("/", 1)[-1] == filename]


def _make_handler(hub: Hub):
    class Handler(http.server.BaseHTTPRequestHandler):
        timeout = 10  # seconds a handler waits on a silent client

        def log_message(self, *args):  # keep pytest output clean
            pass

        def do_GET(self):  # noqa: N802 - http.server API
            hub.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            cdn = self.path.startswith("/cdn/")
            entry = hub.files.get(self.path.rsplit("/", 1)[-1])
            if entry is None:
                self.send_error(404, "Not Found")
                return
            if entry.status != 200:
                self.send_error(entry.status)
                return
            if entry.loop:
                self.send_response(302)
                self.send_header("Location", self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = entry.data
            sha = entry.sha_value or hashlib.sha256(data).hexdigest()
            if entry.hf_redirect and not cdn:
                self.send_response(302)
                self.send_header("Location", f"/cdn/{self.path.rsplit('/', 1)[-1]}")
                self.send_header("X-Linked-ETag", f'"{sha}"')
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if entry.stall:
                hub.release.wait(5)
                return
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
            if match and not entry.ignore_range:
                start = int(match.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            if not entry.no_length:
                self.send_header("Content-Length", str(len(body)))
            if entry.sha_header and not cdn:
                self.send_header(entry.sha_header, f'"{sha}"' if entry.sha_header == "ETag" else sha)
            self.end_headers()
            if entry.cuts > 0:
                entry.cuts -= 1
                body = body[: entry.cut_after]
            if entry.trickle:
                for i in range(len(body)):
                    try:
                        self.wfile.write(body[i:i + 1])
                        self.wfile.flush()
                    except OSError:  # the client gave up
                        return
                    time.sleep(0.02)
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True

    return Handler


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A local file server (127.0.0.1, ephemeral port); SV2TTS_HOME and SV2TTS_MODEL_URL point at it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), None)
    server.daemon_threads = True
    state = Hub(url=f"http://127.0.0.1:{server.server_address[1]}/models/")
    server.RequestHandlerClass = _make_handler(state)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("SV2TTS_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("SV2TTS_MODEL_URL", state.url)
    monkeypatch.delenv("SV2TTS_OFFLINE", raising=False)
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def fake_model(monkeypatch, name: str, data: bytes, size: int | None = -1, sha256: str | None = None) -> Path:
    """Make MODELS[name] describe ``data`` (or ``size``); return where it will be cached."""
    size = len(data) if size == -1 else size
    monkeypatch.setitem(models.MODELS, name, ModelFile(name, f"{name}.pt", size, sha256))
    return models.model_path(name)


def payload(n: int = 300_000, seed: int = 0) -> bytes:
    return hashlib.sha256(str(seed).encode()).digest() * (n // 32) + b"x" * (n % 32)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/models"


def status_of(name: str, **kw) -> models.ModelStatus:
    return {s.name: s for s in models.list_models(**kw)}[name]


# --------------------------------------------------------------------------- locations


def test_published_table_matches_rtvc():
    assert {n: (m.filename, m.size) for n, m in models.MODELS.items()} == {
        "encoder": ("encoder.pt", 17_090_379),
        "synthesizer": ("synthesizer.pt", 370_554_559),
        "vocoder": ("vocoder.pt", 53_845_290),
    }
    assert models.DEFAULT_BASE_URL == "https://huggingface.co/CorentinJ/SV2TTS/resolve/main"


def test_cache_dir_and_urls(monkeypatch, tmp_path):
    for var in ("SV2TTS_HOME", "XDG_CACHE_HOME", "SV2TTS_MODEL_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    if os.name != "nt":
        assert models.model_cache_dir() == tmp_path / "home" / ".cache" / "sv2tts"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models.model_cache_dir() == tmp_path / "xdg" / "sv2tts"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # XDG spec: relative paths are invalid
    assert models.model_cache_dir() != Path("relative/ignored/sv2tts")
    monkeypatch.setenv("SV2TTS_HOME", str(tmp_path / "mine"))
    assert models.model_cache_dir() == tmp_path / "mine"
    assert models.model_path("synthesizer") == tmp_path / "mine" / "synthesizer.pt"
    assert models.base_url() == models.DEFAULT_BASE_URL
    assert models.model_url("vocoder") == models.DEFAULT_BASE_URL + "/vocoder.pt"
    monkeypatch.setenv("SV2TTS_MODEL_URL", "http://mirror.example/sv2tts//")
    assert models.base_url() == "http://mirror.example/sv2tts"
    monkeypatch.setenv("SV2TTS_MODEL_URL", "ftp://mirror.example")
    with pytest.raises(DownloadError, match="SV2TTS_MODEL_URL"):
        models.base_url()
    with pytest.raises(ModelNotFoundError, match="unknown model 'tacotron'.*encoder, synthesizer, vocoder"):
        models.model_path("tacotron")


# --------------------------------------------------------------------------- downloads


def test_fresh_download_verified(hub, monkeypatch):
    data = payload()
    path = fake_model(monkeypatch, "encoder", data)
    hub.add("encoder.pt", data, sha_header="X-Checksum-Sha256")
    assert models.download_model("encoder", progress=False) == path
    assert path.read_bytes() == data
    assert not Path(f"{path}.part").exists()
    record = json.loads(Path(f"{path}.json").read_text())
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["checked_against"] == "X-Checksum-Sha256"
    assert hub.gets("encoder.pt")[0]["accept-encoding"] == "identity"
    assert "range" not in hub.gets("encoder.pt")[0]
    st = status_of("encoder")
    assert (st.present, st.size, st.expected_size, st.verified) == (True, len(data), len(data), True)
    assert st.sha256 == record["sha256"]
    # in place with the right size: no second request
    assert models.download_model("encoder", progress=False) == path
    assert len(hub.gets("encoder.pt")) == 1
    # force: fetched again
    models.download_model("encoder", progress=False, force=True)
    assert len(hub.gets("encoder.pt")) == 2


def test_resume_after_interrupted_transfer(hub, monkeypatch):
    data = payload(300_001)
    path = fake_model(monkeypatch, "vocoder", data)
    hub.add("vocoder.pt", data, sha_header="X-Checksum-Sha256", cuts=1, cut_after=123_457)
    with pytest.raises(DownloadError, match=r"vocoder\.pt .*interrupted at 123,457 of 300,001 bytes.*resume"):
        models.download_model("vocoder", progress=False)
    part = Path(f"{path}.part")
    assert not path.exists() and part.read_bytes() == data[:123_457]
    st = status_of("vocoder")
    assert (st.present, st.partial_size) == (False, 123_457) and "partial" in st.detail
    models.download_model("vocoder", progress=False)
    first, second = hub.gets("vocoder.pt")
    assert "range" not in first and second["range"] == "bytes=123457-"
    assert path.read_bytes() == data and not part.exists()
    # the server's sha256 covers the whole file: the resumed prefix was hashed too
    assert status_of("vocoder").verified is True


def test_retries_resume_within_one_call(hub, monkeypatch):
    data = payload()
    path = fake_model(monkeypatch, "encoder", data)
    hub.add("encoder.pt", data, sha_header="X-Checksum-Sha256", cuts=2, cut_after=50_000)
    models.download_model("encoder", progress=False, retries=2)
    assert path.read_bytes() == data
    assert [h.get("range") for h in hub.gets("encoder.pt")] == [None, "bytes=50000-", "bytes=100000-"]


def test_wrong_size_stated_by_server(hub, monkeypatch):
    data = payload()
    path = fake_model(monkeypatch, "synthesizer", data, size=len(data) + 10)
    hub.add("synthesizer.pt", data)
    with pytest.raises(DownloadError, match=rf"synthesizer\.pt .*{len(data):,} bytes, expected {len(data) + 10:,}"):
        models.download_model("synthesizer", progress=False)
    assert not path.exists() and not Path(f"{path}.part").exists()


@pytest.mark.parametrize("extra", [-1000, 1000])
def test_wrong_size_without_content_length(hub, monkeypatch, extra):
    data = payload()
    path = fake_model(monkeypatch, "synthesizer", data, size=len(data) - extra)
    hub.add("synthesizer.pt", data, no_length=True)
    with pytest.raises(DownloadError, match=r"synthesizer\.pt .*expected"):
        models.download_model("synthesizer", progress=False)
    assert not path.exists() and not Path(f"{path}.part").exists()


@pytest.mark.parametrize("header", ["X-Checksum-Sha256", "ETag"])
def test_wrong_hash(hub, monkeypatch, header):
    data = payload()
    path = fake_model(monkeypatch, "encoder", data)
    bad = hashlib.sha256(b"something else").hexdigest()
    hub.add("encoder.pt", data, sha_header=header, sha_value=bad)
    with pytest.raises(DownloadError, match=rf"encoder\.pt .*sha256 {hashlib.sha256(data).hexdigest()}.*{bad}.*{header}"):
        models.download_model("encoder", progress=False)
    assert not path.exists() and not Path(f"{path}.part").exists()
    assert status_of("encoder").present is False


def test_known_hash_in_table_is_checked(hub, monkeypatch):
    data = payload()
    fake_model(monkeypatch, "encoder", data, sha256=hashlib.sha256(b"other").hexdigest())
    hub.add("encoder.pt", data)  # the server states no hash
    with pytest.raises(DownloadError, match="MODELS"):
        models.download_model("encoder", progress=False)
    path = fake_model(monkeypatch, "encoder", data, sha256=hashlib.sha256(data).hexdigest())
    models.download_model("encoder", progress=False)
    assert path.read_bytes() == data and status_of("encoder", rehash=True).verified is True


def test_huggingface_style_redirect(hub, monkeypatch):
    data = payload()
    path = fake_model(monkeypatch, "vocoder", data)
    hub.add("vocoder.pt", data, hf_redirect=True, cuts=1, cut_after=70_000)
    with pytest.raises(DownloadError, match="interrupted"):
        models.download_model("vocoder", progress=False)
    models.download_model("vocoder", progress=False)
    paths = [p for p, _ in hub.requests]
    assert paths == ["/models/vocoder.pt", "/cdn/vocoder.pt"] * 2
    assert hub.requests[3][1]["range"] == "bytes=70000-"  # Range survives the redirect
    assert path.read_bytes() == data
    assert json.loads(Path(f"{path}.json").read_text())["checked_against"] == "X-Linked-ETag"
    # a wrong X-Linked-ETag on the redirect is caught
    path.unlink()
    hub.files["vocoder.pt"].sha_value = "0" * 64
    with pytest.raises(DownloadError, match="X-Linked-ETag"):
        models.download_model("vocoder", progress=False)
    assert not path.exists()


def test_server_without_range_support_restarts(hub, monkeypatch):
    data = payload()
    path = fake_model(monkeypatch, "encoder", data)
    Path(path).parent.mkdir(parents=True)
    Path(f"{path}.part").write_bytes(b"\0" * 100_000)  # a stale part (wrong bytes)
    hub.add("encoder.pt", data, sha_header="X-Checksum-Sha256", ignore_range=True)
    models.download_model("encoder", progress=False)
    assert hub.gets("encoder.pt")[0]["range"] == "bytes=100000-"
    assert path.read_bytes() == data and not Path(f"{path}.part").exists()


def test_part_already_complete_416(hub, monkeypatch):
    data = payload()
    path = fake_model(monkeypatch, "encoder", data)
    path.parent.mkdir(parents=True)
    Path(f"{path}.part").write_bytes(data)
    hub.add("encoder.pt", data)
    models.download_model("encoder", progress=False)
    assert [h["range"] for h in hub.gets("encoder.pt")] == [f"bytes={len(data)}-"]  # nothing re-fetched
    assert path.read_bytes() == data


def test_size_from_server_when_table_has_none(hub, monkeypatch):
    data = payload(12_345)
    path = fake_model(monkeypatch, "encoder", data, size=None)
    hub.add("encoder.pt", data)
    models.download_model("encoder", progress=False)
    assert path.read_bytes() == data
    st = status_of("encoder")
    assert st.verified is None and "stated no sha256" in st.detail


def test_http_error_and_timeout(hub, monkeypatch, caplog):
    fake_model(monkeypatch, "encoder", b"x")
    with caplog.at_level(logging.DEBUG, logger="sv2tts"), pytest.raises(DownloadError, match=r"HTTP 404.*encoder\.pt"):
        models.download_model("encoder", progress=False)
    assert f"GET {hub.url}encoder.pt" in caplog.text and "HTTP 404" in caplog.text  # what -vv shows
    data = payload()
    path = fake_model(monkeypatch, "vocoder", data)
    hub.add("vocoder.pt", data, stall=True)
    t0 = time.perf_counter()
    with pytest.raises(DownloadError, match=r"127\.0\.0\.1.*vocoder\.pt.*timed out"):
        models.download_model("vocoder", progress=False, timeout=0.5)
    assert time.perf_counter() - t0 < 4
    assert not path.exists()


def test_progress_bar_on_stderr(hub, monkeypatch, capsys):
    data = payload()
    fake_model(monkeypatch, "encoder", data)
    hub.add("encoder.pt", data)
    models.download_model("encoder", progress=True)
    captured = capsys.readouterr()
    assert "encoder.pt" in captured.err and captured.out == ""


def test_concurrent_callers_download_once(hub, monkeypatch):
    data = payload(2_000_000)
    fake_model(monkeypatch, "synthesizer", data)
    hub.add("synthesizer.pt", data, sha_header="X-Checksum-Sha256")
    results, errors = [], []

    def worker():
        try:
            results.append(models.ensure_model("synthesizer", progress=False))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors and len(set(results)) == 1 and len(results) == 4
    assert len(hub.gets("synthesizer.pt")) == 1
    assert results[0].read_bytes() == data


# --------------------------------------------------------------------------- offline / missing


def test_offline_message(hub, monkeypatch):
    data = payload()
    path = fake_model(monkeypatch, "synthesizer", data)
    url = closed_port_url()
    monkeypatch.setenv("SV2TTS_MODEL_URL", url)
    with pytest.raises(ModelNotFoundError) as info:
        models.ensure_model("synthesizer", progress=False)
    msg = str(info.value)
    assert isinstance(info.value, DownloadError) and isinstance(info.value, Sv2ttsError)
    assert "\n" not in msg
    for part in (str(path), str(path.parent), "synthesizer.pt", f"{url}/synthesizer.pt",
                 f"{len(data):,} bytes", "sv2tts models download", "could not be downloaded"):
        assert part in msg, (part, msg)
    assert re.search("refused", msg, re.I)
    assert not path.exists()


def test_missing_without_download(hub, monkeypatch):
    path = fake_model(monkeypatch, "vocoder", payload())
    hub.add("vocoder.pt", payload())
    for kwargs, env in (({"download_missing": False}, None), ({}, "1")):
        if env:
            monkeypatch.setenv("SV2TTS_OFFLINE", env)
        with pytest.raises(ModelNotFoundError) as info:
            models.ensure_model("vocoder", **kwargs)
        assert not isinstance(info.value, DownloadError)
        msg = str(info.value)
        for part in (str(path), "downloads disabled", f"{hub.url}vocoder.pt", "sv2tts models download"):
            assert part in msg, (part, msg)
    assert hub.requests == []


def test_ensure_models_offline_one_message_one_attempt(hub, monkeypatch):
    for name in NAMES:
        fake_model(monkeypatch, name, payload(1000))
    url = closed_port_url()
    monkeypatch.setenv("SV2TTS_MODEL_URL", url)
    with pytest.raises(ModelNotFoundError) as info:
        models.ensure_models(progress=False)
    msg = str(info.value)
    assert "encoder.pt, synthesizer.pt, vocoder.pt" in msg and str(models.model_cache_dir()) in msg
    assert msg.count("cannot reach") == 1  # the network is down: not tried three times
    assert f"{url}/<file name>" in msg and "sv2tts models download" in msg


def test_ensure_models_reports_all_missing_at_once(hub, monkeypatch):
    for name in NAMES:
        fake_model(monkeypatch, name, payload(1000))
    hub.add("encoder.pt", payload(1000))  # only the encoder is on the mirror
    with pytest.raises(ModelNotFoundError) as info:
        models.ensure_models(progress=False)
    msg = str(info.value)
    assert "synthesizer.pt, vocoder.pt" in msg and "HTTP 404" in msg and "sv2tts models download" in msg
    assert models.model_path("encoder").read_bytes() == payload(1000)


def test_ensure_model_present_and_wrong_size(hub, monkeypatch):
    data = payload()
    path = fake_model(monkeypatch, "encoder", data)
    path.parent.mkdir(parents=True)
    path.write_bytes(data)  # placed by hand: used as is, no request
    assert models.ensure_model("encoder", download_missing=False) == path
    path.write_bytes(data[:-1])  # wrong size counts as missing (RTVC)
    with pytest.raises(ModelNotFoundError, match=f"unusable: .* has the wrong size \\({len(data) - 1:,} bytes"):
        models.ensure_model("encoder", download_missing=False)
    assert models.list_models()[0].detail.startswith("wrong size")  # the same words
    hub.add("encoder.pt", data)
    assert models.ensure_model("encoder", progress=False) == path and path.read_bytes() == data
    assert len(hub.requests) == 1


# --------------------------------------------------------------------------- list


def test_list_models_states(hub, monkeypatch):
    datas = {name: payload(5000 + i, seed=i) for i, name in enumerate(NAMES)}
    paths = {name: fake_model(monkeypatch, name, d) for name, d in datas.items()}
    for name, d in datas.items():
        hub.add(f"{name}.pt", d, sha_header="X-Checksum-Sha256")
    statuses = models.list_models()
    assert [s.name for s in statuses] == list(NAMES)
    assert all(not s.present and s.verified is None and s.size is None for s in statuses)
    assert all(s.url == f"{hub.url}{s.filename}" and s.path == paths[s.name] for s in statuses)

    models.download_model("encoder", progress=False)
    models.download_model("synthesizer", progress=False)
    paths["vocoder"].write_bytes(datas["vocoder"])  # placed by hand
    st = status_of("encoder")
    assert (st.present, st.verified) == (True, True) and "X-Checksum-Sha256" in st.detail
    st = status_of("vocoder")
    assert (st.present, st.verified, st.sha256) == (True, None, None) and "by hand" in st.detail
    st = status_of("vocoder", rehash=True)
    assert st.verified is None and st.sha256 == hashlib.sha256(datas["vocoder"]).hexdigest()

    # same size, other content: the record no longer matches the mtime; rehash says it is wrong
    tampered = bytearray(datas["synthesizer"])
    tampered[10] ^= 1
    paths["synthesizer"].write_bytes(bytes(tampered))
    assert status_of("synthesizer").verified is None
    st = status_of("synthesizer", rehash=True)
    assert st.verified is False and "changed" in st.detail
    paths["synthesizer"].write_bytes(datas["synthesizer"][:-1])
    st = status_of("synthesizer")
    assert (st.verified, st.size) == (False, len(datas["synthesizer"]) - 1) and "wrong size" in st.detail


def test_offline_flag_stops_explicit_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("SV2TTS_HOME", str(tmp_path))
    monkeypatch.setenv("SV2TTS_MODEL_URL", "http://127.0.0.1:9")  # never reached
    monkeypatch.setenv("SV2TTS_OFFLINE", "1")
    with pytest.raises(DownloadError, match="downloads are disabled by SV2TTS_OFFLINE"):
        models.download_model("vocoder", progress=False)
    assert not list(tmp_path.iterdir())  # nothing written


def test_missing_model_message_gives_the_offline_routes(tmp_path, monkeypatch):
    monkeypatch.setenv("SV2TTS_HOME", str(tmp_path))
    with pytest.raises(ModelNotFoundError) as info:
        models.ensure_model("synthesizer", download_missing=False)
    msg = str(info.value)
    assert "--synthesizer PATH" in msg and "synthesizer=PATH" in msg and str(tmp_path) in msg


def test_planted_part_symlink_is_never_written_through(hub, monkeypatch, tmp_path):
    data = payload()
    path = fake_model(monkeypatch, "vocoder", data)
    path.parent.mkdir(parents=True, exist_ok=True)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    Path(f"{path}.part").symlink_to(victim)
    hub.add("vocoder.pt", data)
    assert models.download_model("vocoder", progress=False) == path
    assert victim.read_bytes() == b"precious"
    assert path.read_bytes() == data and not path.is_symlink()


def test_a_full_disk_is_not_retried_as_a_network_cut(hub, monkeypatch):
    import errno

    data = payload()
    fake_model(monkeypatch, "vocoder", data)
    hub.add("vocoder.pt", data)
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, block):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

    monkeypatch.setattr(models.os, "fdopen", lambda *a, **k: Full(real_fdopen(*a, **k)))
    with pytest.raises(OSError, match="No space left"):
        models.download_model("vocoder", progress=False, retries=4)
    assert len(hub.gets("vocoder.pt")) == 1  # not retried


def test_a_redirect_loop_is_one_line(hub, monkeypatch):
    fake_model(monkeypatch, "vocoder", payload())
    hub.add("vocoder.pt", b"", loop=True)
    with pytest.raises(DownloadError) as info:
        models.download_model("vocoder", progress=False)
    assert "infinite loop" in str(info.value) and "\n" not in str(info.value)


def test_a_trickling_server_is_given_up_and_the_part_kept(hub, monkeypatch):
    data = payload()
    path = fake_model(monkeypatch, "vocoder", data)
    hub.add("vocoder.pt", data, trickle=True)
    monkeypatch.setattr(models, "_SLOW_WINDOW", 0.5)  # 50 bytes/s arrive: far below 1 KiB/s
    t0 = time.perf_counter()
    with pytest.raises(DownloadError, match=rf"interrupted at \d+ of {len(data):,} bytes \(slower than 1,024 "
                                            r"bytes/s for 0.5 s\); run again to resume"):
        models.download_model("vocoder", progress=False)
    assert time.perf_counter() - t0 < 5
    part = Path(f"{path}.part")
    assert 0 < part.stat().st_size < len(data) and part.read_bytes() == data[:part.stat().st_size]


# --------------------------------------------------------------------------- Hugging Face conventions


def test_hf_endpoint_is_a_mirror_and_sv2tts_model_url_wins(monkeypatch):
    monkeypatch.delenv("SV2TTS_MODEL_URL", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.example/")
    assert models.model_url("vocoder") == "https://hf-mirror.example/CorentinJ/SV2TTS/resolve/main/vocoder.pt"
    monkeypatch.setenv("HF_ENDPOINT", "mirror.example")
    with pytest.raises(DownloadError, match="HF_ENDPOINT='mirror.example/CorentinJ/SV2TTS/resolve/main': not an"):
        models.base_url()
    monkeypatch.setenv("SV2TTS_MODEL_URL", "http://mine.example/m")
    assert models.model_url("vocoder") == "http://mine.example/m/vocoder.pt"


def test_hf_hub_offline_stops_downloads(hub, monkeypatch):
    fake_model(monkeypatch, "vocoder", payload())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError, match="downloads are disabled by SV2TTS_OFFLINE / HF_HUB_OFFLINE"):
        models.download_model("vocoder", progress=False)
    with pytest.raises(ModelNotFoundError):
        models.ensure_model("vocoder")
    assert hub.requests == []


def hf_snapshot(monkeypatch, tmp_path, filename: str, data: bytes, revision: str = "0123abc") -> Path:
    """``filename`` in a Hugging Face cache laid out as huggingface_hub does (blob + snapshot symlink)."""
    repo = tmp_path / "hf" / "models--CorentinJ--SV2TTS"
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
    blob.write_bytes(data)
    link = repo / "snapshots" / revision / filename
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(blob)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    return link


def test_a_model_in_the_hugging_face_cache_is_used_instead_of_downloading(hub, monkeypatch, tmp_path):
    data = payload()
    fake_model(monkeypatch, "vocoder", data)
    link = hf_snapshot(monkeypatch, tmp_path, "vocoder.pt", data)
    assert models.ensure_model("vocoder") == link
    assert models.download_model("vocoder", progress=False) == link
    st = status_of("vocoder")
    assert st.present and st.path == link and st.size == len(data)
    assert hub.requests == [] and not models.model_path("vocoder").exists()  # nothing fetched or copied


def test_a_wrong_size_copy_in_the_hugging_face_cache_is_ignored(hub, monkeypatch, tmp_path):
    data = payload()
    path = fake_model(monkeypatch, "vocoder", data)
    hf_snapshot(monkeypatch, tmp_path, "vocoder.pt", data[:-10])
    hub.add("vocoder.pt", data)
    assert models.ensure_model("vocoder") == path and path.read_bytes() == data
