"""One synthesis request: checks, a job on the runner, and the answer (whole, streamed or SSE).

Every answer is ``Pipeline.stream``'s chunks in order, so a streamed answer and a whole one
hold the same audio for the same seed.
"""
from __future__ import annotations

import base64
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator

import numpy as np
from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

import sv2tts

from .encoding import MEDIA_TYPES, encode, open_wav_header
from .errors import ApiError, from_library
from .jobs import ClientGone
from .uploads import Uploads

log = logging.getLogger(__name__)


class Synthesis:
    """A started request: its job, seed, timings, and the output rate of its bytes."""

    def __init__(self, request: Request, reference, text: str, seed: int | None, *,
                 uploads: Uploads | None = None, sample_rate: int = sv2tts.SAMPLE_RATE):
        state = request.app.state
        check_text(text, state.settings.max_text_chars)
        self.seed = secrets.randbelow(2 ** 32) if seed is None else seed
        self.sample_rate = sample_rate
        self.timings: dict[str, float] = {}
        self.names = uploads.names if uploads else {}
        self.samples = 0
        self._metrics = state.metrics
        self._start = time.perf_counter()
        pipeline, precision = state.pipeline, state.settings.precision

        def produce():  # runs in a worker thread, resampling included
            chunks = pipeline.stream(reference, text, seed=self.seed, precision=precision, timings=self.timings)
            if sample_rate == sv2tts.SAMPLE_RATE:
                return chunks
            return (sv2tts.resample(c, sv2tts.SAMPLE_RATE, sample_rate) for c in chunks)

        self.job = state.runner.submit(produce, time.monotonic() + state.settings.timeout_s,
                                       uploads.remove if uploads else None)
        self.job.watch(request.is_disconnected)

    async def chunks(self) -> AsyncIterator[np.ndarray]:
        """(n,) float32 chunks at ``sample_rate``, as the worker makes them; library errors
        become ApiErrors."""
        try:
            async for chunk in self.job.items():
                self.samples += len(chunk)
                yield chunk
        except (ApiError, ClientGone):
            raise
        except Exception as e:
            raise from_library(e, self.names) from None
        self._metrics.synthesis(self.timings, self.duration_s)

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate

    def headers(self, whole: bool) -> dict[str, str]:
        headers = {"X-Sample-Rate": str(self.sample_rate), "X-Seed": str(self.seed)}
        if whole:
            total = time.perf_counter() - self._start
            headers["Server-Timing"] = ", ".join(f"{k};dur={1000 * v:.1f}" for k, v in
                                                 [*self.timings.items(), ("total", total)])
        return headers

    def report(self) -> dict:
        return {"sample_rate": self.sample_rate, "duration_s": round(self.duration_s, 3), "seed": self.seed,
                "timings": {k: round(v, 3) for k, v in self.timings.items()}
                | {"total": round(time.perf_counter() - self._start, 3)}}

    # -- answers ------------------------------------------------------------------------

    async def whole(self, fmt: str) -> Response:
        """The whole audio as wav / flac / pcm bytes, or ``json`` with it in base64."""
        chunks = [c async for c in self.chunks()]
        wav = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        if fmt == "json":
            return JSONResponse({"audio_base64": sv2tts.to_base64(wav, self.sample_rate), "format": "wav",
                                 **self.report()}, headers=self.headers(whole=True))
        return Response(encode(wav, fmt, self.sample_rate), media_type=MEDIA_TYPES[fmt],
                        headers=self.headers(whole=True))

    async def streamed(self, fmt: str, sse: bool = False) -> Response:
        """Audio sent chunk by chunk as each sentence group is ready: a WAV with an open-ended
        header (``wav``) or raw PCM (``pcm``), or those same bytes base64 in SSE events.
        Errors before the first chunk are answered normally; later ones end the stream (an
        SSE ``error`` event says why)."""
        if fmt not in ("wav", "pcm"):
            raise ApiError(400, f"response_format {fmt!r} cannot be streamed: use wav or pcm", "invalid_format")
        chunks = self.chunks()
        first = await anext(chunks, None)  # errors here are still a normal JSON answer
        failure: list[ApiError] = []

        async def audio_bytes():
            if fmt == "wav":
                yield open_wav_header(self.sample_rate)
            if first is not None:
                yield encode(first, "pcm", self.sample_rate)
            try:
                async for chunk in chunks:
                    yield encode(chunk, "pcm", self.sample_rate)
            except ApiError as e:
                log.warning("stream ended early: %s", e.message)
                failure.append(e)
            except ClientGone:
                pass

        if not sse:
            return StreamingResponse(audio_bytes(), media_type=MEDIA_TYPES[fmt], headers=self.headers(whole=False))

        async def events():
            async for data in audio_bytes():
                yield _event({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode("ascii")})
            yield _event({"type": "error", **failure[0].body()} if failure else
                         {"type": "speech.audio.done", **self.report()})

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={**self.headers(whole=False), "Cache-Control": "no-cache"})


def _event(data: dict) -> str:
    return f"data: {json.dumps(data)}\n\n"


def check_text(text: str, max_chars: int) -> None:
    """400 for an empty text, 413 for one over the limit (before any work is queued)."""
    if not text or not text.strip():
        raise ApiError(400, "the text is empty", "invalid_text")
    if len(text) > max_chars:
        raise ApiError(413, f"the text has {len(text):,} characters; the server's limit is {max_chars:,} "
                            f"(sv2tts serve --max-text-chars): split it into several requests", "text_too_long")

