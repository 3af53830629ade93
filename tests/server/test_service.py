"""`sv2tts serve` through a real uvicorn on a loopback port: every endpoint, bad input, limits."""
from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
import soundfile as sf

import sv2tts

TEXT = "Hello there. This is a test."
LONG_TEXT = " ".join(f"Sentence number {i} is here to keep the server busy for a while." for i in range(60))


def clone(server, clip, text=TEXT, files=None, timeout=120, **fields) -> httpx.Response:
    files = files if files is not None else [("reference", (clip.name, clip.read_bytes()))]
    return httpx.post(f"{server.url}/v1/clone", data={"text": text, **fields}, files=files, timeout=timeout)


def error_of(response: httpx.Response, status: int) -> str:
    """The message of a JSON error answer, after checking its status and shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "code"}
    return body["error"]["message"]


def samples(data: bytes) -> np.ndarray:
    wav, rate = sf.read(io.BytesIO(data), dtype="int16")
    assert rate == 16000
    return wav


def metric(server, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def uploads_left(server) -> list:
    """The upload folders in the server's TMPDIR (each request's is removed when its work ends)."""
    return list(server.tmp.glob("sv2tts-upload-*"))


def wait_until(condition, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


# -- the endpoints ----------------------------------------------------------------------------

def test_probes_page_docs_and_config(server):
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/readyz").json() == {"status": "ready"}
    page = httpx.get(f"{server.url}/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"] and "<html" in page.text
    assert "/v1/clone" in httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert httpx.get(f"{server.url}/docs").status_code == 200
    assert httpx.get(f"{server.url}/v1/config").json() == {
        "auth_required": False, "sample_rate": 16000, "max_text_chars": 4096, "max_upload_mb": 20.0,
        "version": sv2tts.__version__}
    assert error_of(httpx.get(f"{server.url}/v1/nothing"), 404) == "Not Found"


def test_clone_gives_the_librarys_audio_in_every_format(server, example_clip, model_files):
    expected = np.concatenate(list(sv2tts.Pipeline(synthesizer=model_files["synthesizer"],
                                                   vocoder=model_files["vocoder"]).stream(example_clip, TEXT, seed=7)))
    expected = samples(sv2tts.to_wav_bytes(expected))  # int16 as the library writes files
    wav = clone(server, example_clip, seed=7)
    assert wav.headers["content-type"] == "audio/wav" and wav.headers["x-seed"] == "7"
    assert wav.headers["x-sample-rate"] == "16000" and len(wav.headers["x-request-id"]) == 32
    assert [t.split(";")[0] for t in wav.headers["server-timing"].split(", ")] == ["embed", "synthesize", "vocode",
                                                                                   "total"]
    np.testing.assert_array_equal(samples(wav.content), expected)
    pcm = clone(server, example_clip, seed=7, response_format="pcm")
    np.testing.assert_array_equal(np.frombuffer(pcm.content, "<i2"), expected)
    flac = clone(server, example_clip, seed=7, response_format="flac")
    assert sf.info(io.BytesIO(flac.content)).format == "FLAC"
    np.testing.assert_allclose(samples(flac.content), expected, atol=1)  # libsndfile's FLAC rounds its own way
    report = clone(server, example_clip, seed=7, response_format="json").json()
    assert report.keys() == {"audio_base64", "format", "sample_rate", "duration_s", "seed", "timings"}
    assert (report["format"], report["sample_rate"], report["seed"]) == ("wav", 16000, 7)
    assert report["duration_s"] == pytest.approx(len(expected) / 16000, abs=1e-3)
    assert set(report["timings"]) == {"embed", "synthesize", "vocode", "total"}
    np.testing.assert_array_equal(samples(base64.b64decode(report["audio_base64"])), expected)


def test_a_request_id_given_by_the_client_comes_back(server, example_clip):
    r = httpx.get(f"{server.url}/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"


def test_without_a_seed_one_is_drawn_and_reported(server, example_clip):
    a, b = clone(server, example_clip), clone(server, example_clip)
    assert a.headers["x-seed"] != b.headers["x-seed"]
    again = clone(server, example_clip, seed=a.headers["x-seed"])
    assert again.content == a.content


def test_streamed_audio_leaves_before_the_text_is_done_and_joins_into_the_same_wav(server, example_clip):
    text = LONG_TEXT[:1000]  # about five sentence groups
    with httpx.stream("POST", f"{server.url}/v1/clone", timeout=120,
                      data={"text": text, "seed": "5", "stream": "true"},
                      files=[("reference", ("ref.flac", example_clip.read_bytes()))]) as r:
        assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
        chunks = r.iter_raw()
        body = next(chunks)
        while len(body) <= 44:  # the header may come alone
            body += next(chunks)
        still_running = metric(server, "sv2tts_running")  # the first audio is here, the rest is not
        body += b"".join(chunks)
    assert still_running == 1
    assert body[4:8] == b"\xff\xff\xff\xff"  # an open-ended header
    whole = clone(server, example_clip, text=text, seed=5)
    np.testing.assert_array_equal(samples(body), samples(whole.content))


def test_concurrent_requests_each_get_their_own_audio(start_server, example_clip, synthetic_clip):
    server = start_server("--workers", "2")
    jobs = [(example_clip, "One voice says this.", 1), (synthetic_clip, "Another voice says that. Twice.", 2),
            (example_clip, "A third text entirely.", 3), (synthetic_clip, "And a fourth one.", 4)]
    alone = [clone(server, clip, text, seed=seed).content for clip, text, seed in jobs]
    together = [None] * len(jobs)

    def run(i):
        clip, text, seed = jobs[i]
        together[i] = clone(server, clip, text, seed=seed).content

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == alone and len(set(alone)) == len(jobs)


# -- voices -----------------------------------------------------------------------------------

def test_voices_are_created_listed_used_and_deleted(server, example_clip, synthetic_clip):
    r = httpx.post(f"{server.url}/v1/voices", data={"name": "  Narrator  one "}, timeout=60,
                   files=[("files", ("a.flac", example_clip.read_bytes())),
                          ("files", ("b.flac", synthetic_clip.read_bytes()))])
    assert r.status_code == 201, r.text
    voice = r.json()
    assert voice["name"] == "Narrator one" and voice["id"].startswith("v_") and 6 < voice["speech_seconds"] < 9.1
    assert voice in httpx.get(f"{server.url}/v1/voices").json()["voices"]
    assert httpx.get(f"{server.url}/v1/voices/{voice['id']}").json() == voice
    expected = sv2tts.embed([example_clip, synthetic_clip])
    np.testing.assert_allclose(sv2tts.load_voice(server.voices_dir / f"{voice['id']}.npy"), expected, atol=1e-6)
    by_voice = clone(server, None, files=[], voice=voice["id"], seed=3)
    by_clips = clone(server, None, seed=3, files=[("reference", ("a.flac", example_clip.read_bytes())),
                                                  ("reference", ("b.flac", synthetic_clip.read_bytes()))])
    assert by_voice.status_code == 200 and by_voice.content == by_clips.content
    assert httpx.delete(f"{server.url}/v1/voices/{voice['id']}").status_code == 204
    assert "not found" in error_of(httpx.get(f"{server.url}/v1/voices/{voice['id']}"), 404)
    assert "not found" in error_of(clone(server, None, files=[], voice=voice["id"]), 404)


def test_a_saved_npy_voice_can_be_uploaded(server, example_clip, tmp_path):
    sv2tts.save_voice(tmp_path / "me.npy", sv2tts.embed(example_clip))
    r = httpx.post(f"{server.url}/v1/voices", data={"name": "me"},
                   files=[("files", ("me.npy", (tmp_path / "me.npy").read_bytes()))])
    assert r.status_code == 201 and r.json()["speech_seconds"] is None


def test_voices_survive_a_restart_and_are_shared_by_two_processes(start_server, example_clip, tmp_path):
    folder = tmp_path / "shared_voices"
    first = start_server(voices_dir=folder)
    voice = httpx.post(f"{first.url}/v1/voices", data={"name": "kept"}, timeout=60,
                       files=[("files", ("a.flac", example_clip.read_bytes()))]).json()
    first.stop()
    second, third = start_server(voices_dir=folder), start_server(voices_dir=folder)
    assert httpx.get(f"{second.url}/v1/voices").json()["voices"] == [voice]
    assert clone(second, None, files=[], voice=voice["id"], seed=1).content == \
        clone(third, None, files=[], voice=voice["id"], seed=1).content
    made_by_third = httpx.post(f"{third.url}/v1/voices", data={"name": "new"},
                               files=[("files", ("a.flac", example_clip.read_bytes()))]).json()
    assert made_by_third in httpx.get(f"{second.url}/v1/voices").json()["voices"]
    assert httpx.delete(f"{second.url}/v1/voices/{made_by_third['id']}").status_code == 204
    error_of(httpx.get(f"{third.url}/v1/voices/{made_by_third['id']}"), 404)


# -- bad input: one clear JSON error, and the server keeps serving ----------------------------

def cli_error(*args) -> str:
    out = subprocess.run([sys.executable, "-c", "from sv2tts.cli import main; main()", *args],
                         capture_output=True, text=True)
    assert out.returncode == 2
    return out.stderr.strip().removeprefix("Error: ")


def test_unusable_references_get_the_clis_message(server, tmp_path):
    (tmp_path / "notes.wav").write_text("not audio at all\n" * 20)
    sf.write(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    sf.write(tmp_path / "blip.wav", 0.3 * np.sin(np.arange(800) / 5).astype(np.float32), 16000)  # 50 ms
    for name, says in [("notes.wav", "not a readable audio file"), ("silent.wav", "completely silent"),
                       ("blip.wav", "no speech found")]:
        path = tmp_path / name
        message = error_of(clone(server, path), 400)
        assert says in message and message == cli_error("embed", str(path), "-o", str(tmp_path / "v.npy")).replace(
            str(path), name)
        assert str(server.tmp) not in message
    assert not uploads_left(server)  # every upload removed
    assert httpx.get(f"{server.url}/readyz").status_code == 200


def test_uploaded_npy_with_a_pickle_is_refused(server, tmp_path):
    np.save(tmp_path / "evil.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    message = error_of(clone(server, tmp_path / "evil.npy"), 400)
    assert "evil.npy: not a voice file" in message


@pytest.mark.parametrize("fields, status, says", [
    ({"text": ""}, 400, "the text is empty"),
    ({"text": "   "}, 400, "the text is empty"),
    ({"text": "x" * 4097}, 413, "the text has 4,097 characters; the server's limit is 4,096"),
    ({"seed": "-1"}, 400, "seed: Input should be greater than or equal to 0"),
    ({"seed": str(2 ** 32)}, 400, "seed: Input should be less than 4294967296"),
    ({"response_format": "mp3"}, 400, "response_format: Input should be 'wav', 'flac', 'pcm' or 'json'"),
    ({"stream": "true", "response_format": "flac"}, 400, "'flac' cannot be streamed"),
    ({"voice": "v_0123456789abcdef"}, 400, "either reference files or a voice id"),
])
def test_bad_fields(server, example_clip, fields, status, says):
    assert says in error_of(clone(server, example_clip, **{"text": TEXT, **fields}), status)


def test_no_server_side_path_or_unknown_voice_is_read(server):
    for voice in ["../../etc/passwd", "/etc/passwd", "v_0123456789abcdef", "alloy"]:
        assert "not found" in error_of(clone(server, None, files=[], voice=voice), 404)
    r = httpx.post(f"{server.url}/v1/clone", data={"text": TEXT, "reference": "/etc/passwd"})
    assert "reference" in error_of(r, 400)


def test_uploads_over_the_limit_are_refused_while_they_arrive(start_server, example_clip):
    server = start_server("--max-upload-mb", "1")
    declared = clone(server, None, files=[("reference", ("big.wav", b"\0" * (3 << 20)))])
    assert "larger than the server's limit of 1 MB" in error_of(declared, 413)
    # no Content-Length: chunks are sent until the server answers; it must answer after ~1 MB
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"POST /v1/clone HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                  b"Content-Type: multipart/form-data; boundary=b\r\n\r\n")
        head = b'--b\r\nContent-Disposition: form-data; name="reference"; filename="a.wav"\r\n\r\n'
        s.sendall(b"%x\r\n%s\r\n" % (len(head), head))
        sent, chunk = 0, b"\0" * 65536
        s.settimeout(0.05)
        answer = b""
        while sent < (50 << 20) and not answer:
            try:
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
                answer = s.recv(65536)
            except TimeoutError:
                pass
            except (BrokenPipeError, ConnectionResetError):
                break
        s.settimeout(5)
        while b"\r\n\r\n" not in answer:
            data = s.recv(65536)
            if not data:
                break
            answer += data
    assert answer.startswith(b"HTTP/1.1 413") and sent < (4 << 20)
    assert clone(server, example_clip).status_code == 200


def test_a_full_queue_answers_429_with_retry_after(start_server, example_clip):
    server = start_server("--workers", "1", "--max-queue", "0")
    busy = threading.Thread(target=clone, args=(server, example_clip, LONG_TEXT[:1500]))
    busy.start()
    assert wait_until(lambda: metric(server, "sv2tts_running") == 1)
    refused = clone(server, example_clip)
    assert "the server is busy" in error_of(refused, 429) and int(refused.headers["retry-after"]) >= 1
    busy.join()
    assert clone(server, example_clip).status_code == 200


def test_a_request_past_its_time_limit_gets_504_and_frees_its_slot(start_server, example_clip):
    server = start_server("--workers", "1", "--timeout", "6", "--max-text-chars", "20000")
    assert clone(server, example_clip).status_code == 200  # warm
    start = time.monotonic()
    message = error_of(clone(server, example_clip, text=" ".join([LONG_TEXT] * 5)), 504)  # 300 sentences
    assert "time limit" in message and time.monotonic() - start < 12
    assert wait_until(lambda: metric(server, "sv2tts_running") == 0, 10)
    assert not uploads_left(server)
    assert clone(server, example_clip).status_code == 200


def test_a_client_that_leaves_frees_its_slot_and_leaves_nothing(start_server, example_clip):
    server = start_server("--workers", "1", "--max-text-chars", "20000")
    request = httpx.Request("POST", f"{server.url}/v1/clone", data={"text": " ".join([LONG_TEXT] * 5)},
                            files=[("reference", ("ref.flac", example_clip.read_bytes()))])
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        head = "POST /v1/clone HTTP/1.1\r\nHost: x\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in request.headers.items() if k.lower() != "host") + "\r\n"
        s.sendall(head.encode() + request.read())
        assert wait_until(lambda: metric(server, "sv2tts_running") == 1)
    start = time.monotonic()
    assert wait_until(lambda: metric(server, "sv2tts_running") == 0, 15)
    assert time.monotonic() - start < 10  # the whole text takes about a minute
    assert wait_until(lambda: not uploads_left(server), 5)
    assert clone(server, example_clip).status_code == 200


def test_an_api_key_guards_the_api_but_not_the_page_or_probes(start_server, example_clip):
    server = start_server(env={"SV2TTS_API_KEY": "s3cret"})
    for path in ["/", "/healthz", "/readyz", "/v1/config"]:
        assert httpx.get(f"{server.url}{path}").status_code == 200
    assert httpx.get(f"{server.url}/v1/config").json()["auth_required"] is True
    for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}]:
        r = httpx.post(f"{server.url}/v1/clone", data={"text": TEXT}, headers=headers,
                       files=[("reference", ("r.flac", example_clip.read_bytes()))])
        assert "API key" in error_of(r, 401) and r.headers["www-authenticate"] == "Bearer"
        assert error_of(httpx.get(f"{server.url}/v1/voices", headers=headers), 401)
    assert metric(server, "sv2tts_stage_runs_total") == 0  # no work was done
    ok = httpx.post(f"{server.url}/v1/clone", data={"text": TEXT}, headers={"Authorization": "Bearer s3cret"},
                    files=[("reference", ("r.flac", example_clip.read_bytes()))], timeout=60)
    assert ok.status_code == 200


def test_cors_is_off_by_default_and_exposes_the_headers_when_allowed(server, start_server, example_clip):
    origin = {"Origin": "https://app.example"}
    assert "access-control-allow-origin" not in httpx.get(f"{server.url}/healthz", headers=origin).headers
    allowed = start_server("--cors-origin", "https://app.example")
    r = httpx.post(
        f"{allowed.url}/v1/clone", data={"text": TEXT}, headers=origin, timeout=60,
        files=[("reference", ("r.flac", example_clip.read_bytes()))])
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    assert {"x-seed", "server-timing", "x-request-id"} <= set(r.headers["access-control-expose-headers"].lower()
                                                              .replace(" ", "").split(","))


def test_metrics_count_requests_stages_and_audio(server, example_clip):
    before = metric(server, "sv2tts_audio_seconds_total")
    r = clone(server, example_clip, response_format="json")
    after = metric(server, "sv2tts_audio_seconds_total")
    assert after - before == pytest.approx(r.json()["duration_s"], abs=2e-3)
    text = httpx.get(f"{server.url}/metrics").text
    assert 'sv2tts_requests_total{route="/v1/clone",status="200"}' in text
    assert 'sv2tts_stage_seconds_total{stage="vocode"}' in text and "sv2tts_queue_depth 0" in text


# -- OpenAI's speech endpoint -----------------------------------------------------------------

@pytest.fixture(scope="module")
def voice_id(server, example_clip) -> str:
    return httpx.post(f"{server.url}/v1/voices", data={"name": "openai"}, timeout=60,
                      files=[("files", ("a.flac", example_clip.read_bytes()))]).json()["id"]


def speech(server, **body) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/audio/speech", json={"model": "tts-1", "input": TEXT, **body}, timeout=60)


def test_openai_speech_formats(server, voice_id):
    wav = speech(server, voice=voice_id, response_format="wav")
    assert wav.status_code == 200 and len(samples(wav.content)) > 0
    pcm = speech(server, voice={"id": voice_id}, response_format="pcm")
    assert pcm.headers["x-sample-rate"] == "24000" and len(pcm.content) % 2 == 0 and pcm.content
    flac = speech(server, voice=voice_id, response_format="flac")
    assert sf.info(io.BytesIO(flac.content)).samplerate == 16000
    events = [json.loads(line[6:]) for line in speech(server, voice=voice_id, response_format="pcm",
                                                       stream_format="sse").text.splitlines()
              if line.startswith("data: ")]
    assert {e["type"] for e in events[:-1]} == {"speech.audio.delta"} and events[-1]["type"] == "speech.audio.done"
    audio = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    assert len(audio) / 2 / 24000 == pytest.approx(events[-1]["duration_s"], abs=1e-3)


@pytest.mark.parametrize("body, status, says", [
    ({"response_format": "mp3"}, 400, "response_format 'mp3' is not supported: use one of wav, flac, pcm"),
    ({"speed": 1.5}, 400, "speed 1.5 is not supported"),
    ({"instructions": "whisper"}, 400, "instructions are not supported"),
    ({"input": "y" * 5000}, 413, "the text has 5,000 characters"),
    ({"stream_format": "sse", "response_format": "flac"}, 400, "cannot be streamed"),
])
def test_openai_speech_refusals(server, voice_id, body, status, says):
    assert says in error_of(speech(server, **{"voice": voice_id, **body}), status)


def test_openai_unknown_voice(server):
    assert "voice 'alloy' not found" in error_of(speech(server, voice="alloy"), 404)


def test_threads_per_worker():
    from sv2tts.server.settings import ServeSettings

    assert ServeSettings(workers=1, threads=3).threads_per_worker == 3
    assert ServeSettings(workers=2 * (os.cpu_count() or 1)).threads_per_worker == 1


def test_serve_with_a_missing_model_fails_before_listening(tmp_path):
    out = subprocess.run([sys.executable, "-c", "from sv2tts.cli import main; main()", "serve", "--port", "0",
                          "--vocoder", str(tmp_path / "missing.pt")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "missing.pt" in out.stderr and len(out.stderr.strip().splitlines()) == 1
