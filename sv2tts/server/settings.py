"""The service's settings: one frozen dataclass, filled by `sv2tts serve`'s options."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def default_workers() -> int:
    """Jobs run at once: one per two cores (each job's matrix products use two threads)."""
    return max(1, (os.cpu_count() or 1) // 2)


@dataclass(frozen=True)
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    encoder: str | None = None  # checkpoint paths; None: the defaults, as for `sv2tts clone`
    synthesizer: str | None = None
    vocoder: str | None = None
    precision: str | None = None  # synthesizer and vocoder: float32, bfloat16, int8; None: the models' own
    device: str = "cpu"
    max_upload_mb: float = 20.0  # one request's body
    max_text_chars: int = 4096  # one request's text (OpenAI's `input` limit)
    max_queue: int = 8  # requests waiting beyond those running; more get 429
    workers: int = default_workers()  # requests computed at once
    threads: int | None = None  # torch threads per worker; None: the cores / workers
    timeout_s: float = 300.0  # a request's whole time, waiting included; then 504
    api_key: str | None = None  # Bearer token required on /v1 (not on the page or the probes)
    voices_dir: Path | None = None  # None: $SV2TTS_HOME/voices
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to call the API

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2 ** 20)

    @property
    def threads_per_worker(self) -> int:
        return self.threads or max(1, (os.cpu_count() or 1) // self.workers)
