"""A real `sv2tts serve` (uvicorn) on a free loopback port, with the random-weight models."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLI = "import sys; from sv2tts.cli import main; sys.argv[0] = 'sv2tts'; main()"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `sv2tts serve` child process; ``url`` is its base URL."""

    def __init__(self, model_files: dict[str, Path], voices_dir: Path, *options: str, env: dict | None = None):
        import httpx

        self.port = free_port()
        self.voices_dir = voices_dir
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = voices_dir.parent / f"server-{self.port}.log"
        self.tmp = voices_dir.parent / f"tmp-{self.port}"  # the server's TMPDIR: uploads land here
        self.tmp.mkdir()
        args = [sys.executable, "-c", CLI, "serve", "--port", str(self.port),
                "--synthesizer", str(model_files["synthesizer"]), "--vocoder", str(model_files["vocoder"]),
                "--voices-dir", str(voices_dir), *options]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env={**os.environ, "TMPDIR": str(self.tmp), **(env or {})})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sv2tts serve exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"sv2tts serve did not become ready: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def start_server(model_files, tmp_path_factory):
    """start_server(*options, voices_dir=None, env=None) -> Server; all are stopped at the end."""
    servers = []

    def start(*options: str, voices_dir: Path | None = None, env: dict | None = None) -> Server:
        folder = voices_dir or tmp_path_factory.mktemp("server") / "voices"
        servers.append(Server(model_files, folder, *options, env=env))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def server(start_server) -> Server:
    """The shared server: default options, no API key."""
    return start_server()
