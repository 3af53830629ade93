"""The web page in a real headless browser: Debian's Chromium driven by Playwright (sync API).

Upload a clip and generate; record from Chromium's fake microphone and generate; an error
shown in words. Without Chromium or Playwright the tests skip, except under CI=true where
they fail: the page must be tested there.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = os.environ.get("SV2TTS_CHROMIUM", "/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "reference.flac"
TIMEOUT_MS = 60_000


def unavailable(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def voiced_like(*args, **kwargs) -> np.ndarray:
    """tests/conftest.py's speech-like audio (tests/ is no package, so load it by path)."""
    spec = importlib.util.spec_from_file_location("_sv2tts_tests_conftest", REPO / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.voiced_like(*args, **kwargs)


@pytest.fixture(scope="module")
def fake_microphone(tmp_path_factory) -> Path:
    """3 s of speech-like audio, 16 kHz 16-bit mono WAV, for --use-file-for-fake-audio-capture."""
    import soundfile as sf

    path = tmp_path_factory.mktemp("microphone") / "microphone.wav"
    sf.write(path, voiced_like(16000, seconds=3.0, seed=3), 16000, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def browser(fake_microphone):
    if not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)):
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set SV2TTS_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright for Python is not installed (pip install playwright)")
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required",
                "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                f"--use-file-for-fake-audio-capture={fake_microphone}"])
        except Exception as e:  # a broken install: same rule as a missing one
            unavailable(f"Chromium did not start: {e}")
        yield browser
        browser.close()


@contextmanager
def open_page(browser, url: str):
    """A fresh browser context (microphone allowed) on the page at ``url``, its settings loaded;
    the console's errors are printed at the end."""
    context = browser.new_context(permissions=["microphone"], base_url=url)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    messages = []
    page.on("console", lambda m: messages.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: messages.append(f"page error: {e}"))
    try:
        page.goto("/")
        page.wait_for_function("document.getElementById('footer').textContent !== 'sv2tts'")  # /v1/config read
        yield page
    finally:
        if messages:
            print("\n".join(messages))
        context.close()


@pytest.fixture
def page(browser, server):
    with open_page(browser, server.url) as page:
        yield page


def generate_and_wait(page) -> dict:
    """Click Generate; wait until the request is over (audio in #result or an error); return
    what #result holds after load(): {src, readyState, duration}, and #error's text."""
    page.click("#generate")
    page.wait_for_function("""() => {
        const error = document.getElementById('error').textContent.trim();
        const src = document.getElementById('result').getAttribute('src');
        return !document.getElementById('generate').disabled && (error || src);
    }""", timeout=TIMEOUT_MS)
    return page.evaluate("""async () => {
        const a = document.getElementById('result');
        const out = {src: a.getAttribute('src') || '', error: document.getElementById('error').textContent.trim()};
        if (out.src) {
            await new Promise((resolve) => {
                const done = () => resolve();
                a.addEventListener('loadedmetadata', done, {once: true});
                a.addEventListener('error', done, {once: true});
                setTimeout(done, 10000);
                a.load();
            });
        }
        return {...out, readyState: a.readyState, duration: a.duration,
                mediaError: a.error ? a.error.code : null};
    }""")


def assert_playable(page, result: dict) -> None:
    assert result["error"] == "", f"the page shows an error: {result['error']!r}"
    assert result["src"].startswith("blob:"), result
    assert result["mediaError"] is None and result["readyState"] >= 1, result
    assert result["duration"] > 0, result
    assert page.get_attribute("#download", "href").startswith("blob:")
    assert page.is_visible("#download")
    assert "First audio after" in page.text_content("#timings")


def test_upload_clip_and_generate(page, tmp_path):
    page.evaluate("""() => {  // count the buffers scheduled while the stream arrives
        window.scheduled = 0;
        const start = AudioBufferSourceNode.prototype.start;
        AudioBufferSourceNode.prototype.start = function (...args) { window.scheduled++; return start.apply(this, args); };
    }""")
    page.set_input_files("#reference", str(EXAMPLE))
    page.fill("#text", "Hello there. This is a test.")
    result = generate_and_wait(page)
    assert_playable(page, result)
    assert page.evaluate("window.scheduled") >= 1, "nothing was played while the audio arrived"
    status, timings = page.text_content("#status"), page.text_content("#timings")
    assert "Done" in status and "seed" in timings, (status, timings)

    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot), full_page=True)
    visible = page.evaluate("""() => [...document.querySelectorAll(
            'h1, h2, label, .label, button, audio, a, #status, #timings, #source, #error')]
        .filter((e) => e.offsetParent !== null && (e.textContent.trim() || e.tagName === 'AUDIO'))
        .map((e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + ': '
                    + (e.tagName === 'AUDIO' ? (e.getAttribute('src') ? 'player with audio' : 'empty player')
                                             : e.textContent.trim().replace(/\\s+/g, ' ')))""")
    print(f"\nscreenshot {shot} ({page.viewport_size}): result audio {result['duration']:.2f} s; visible:")
    print("\n".join("  " + line for line in visible))


def test_record_with_fake_microphone_and_generate(page):
    page.click("#record")
    page.wait_for_function("document.getElementById('record').textContent.trim() === 'Stop'")
    page.wait_for_timeout(2000)
    page.click("#record")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Recorded')")
    assert page.text_content("#error").strip() == ""
    assert "recording.wav" in page.text_content("#source")
    page.fill("#text", "Hello there. This is a test.")
    assert_playable(page, generate_and_wait(page))


def test_error_is_shown_in_words_and_the_page_recovers(page, tmp_path):
    not_audio = tmp_path / "notes.txt"
    not_audio.write_text("this is not audio\n" * 20)
    page.set_input_files("#reference", str(not_audio))
    page.fill("#text", "Hello there.")
    result = generate_and_wait(page)
    message = result["error"]
    assert message and "undefined" not in message and "[object" not in message, message
    assert result["src"] == ""
    assert page.is_enabled("#generate")

    page.set_input_files("#reference", str(EXAMPLE))  # a new choice clears the error
    assert page.text_content("#error").strip() == ""
    assert_playable(page, generate_and_wait(page))


def test_save_a_voice_and_generate_from_it(page):
    page.set_input_files("#reference", str(EXAMPLE))
    page.fill("#voice-name", "Browser test voice")
    page.click("#save-voice")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Saved the voice')")
    assert page.text_content("#error").strip() == ""
    chosen = page.evaluate("(() => { const s = document.getElementById('voice'); "
                           "return [s.value, s.selectedOptions[0].textContent]; })()")
    assert chosen[0].startswith("v_") and chosen[1].startswith("Browser test voice"), chosen
    assert "saved voice" in page.text_content("#source")
    page.fill("#text", "Hello there.")
    assert_playable(page, generate_and_wait(page))


def test_api_key_asked_for_and_sent(browser, start_server):
    keyed = start_server("--api-key", "browser-test-key")
    with open_page(browser, keyed.url) as page:
        assert page.is_visible("#api-key")
        page.set_input_files("#reference", str(EXAMPLE))
        page.fill("#text", "Hello there.")
        result = generate_and_wait(page)
        assert "API key" in result["error"], result
        assert page.evaluate("document.activeElement.id") == "api-key"
        page.fill("#api-key", "browser-test-key")
        page.press("#api-key", "Enter")
        page.wait_for_function("document.getElementById('error').textContent === ''")
        assert page.evaluate("sessionStorage.getItem('sv2tts-api-key')") == "browser-test-key"
        assert_playable(page, generate_and_wait(page))
