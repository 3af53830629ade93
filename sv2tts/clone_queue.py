"""A queue for services: clone requests from many threads, computed together.

Requests that arrive within ``window_s`` of each other (up to ``max_items``) go through one
``Pipeline.clone_many`` call, so concurrent requests share the vocoder's generation steps. Each
request's audio is what ``Pipeline.clone`` gives it alone (``clone_many`` is batch-independent).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future

import numpy as np

from .core.errors import Sv2ttsError

log = logging.getLogger(__name__)


class CloneQueue:
    """``submit(reference, text, seed)`` -> a Future of (n,) float32 16 kHz audio (or the
    request's Sv2ttsError); one worker thread gathers and computes. Use as a context manager,
    or call ``close()``."""

    def __init__(self, pipeline, *, window_s: float = 0.005, max_items: int = 8,
                 precision: str | None = None) -> None:
        if max_items < 1 or window_s < 0:
            raise ValueError("max_items must be >= 1 and window_s >= 0")
        self.pipeline, self.window_s, self.max_items, self.precision = pipeline, window_s, max_items, precision
        self._requests: queue.Queue = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="sv2tts-clone-queue", daemon=True)
        self._thread.start()

    def submit(self, reference, text: str, seed: int | None = None) -> Future:
        if self._closed:
            raise RuntimeError("the CloneQueue is closed")
        future: Future = Future()
        self._requests.put(((reference, text, seed), future))
        return future

    def close(self) -> None:
        """Finish what was submitted, then stop the worker thread."""
        if not self._closed:
            self._closed = True
            self._requests.put(None)
            self._thread.join()

    def __enter__(self) -> "CloneQueue":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _work(self) -> None:
        stop = False
        while not stop:
            first = self._requests.get()
            if first is None:
                return
            batch, deadline = [first], time.monotonic() + self.window_s
            while len(batch) < self.max_items:
                try:
                    item = self._requests.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._run([b for b in batch if b[1].set_running_or_notify_cancel()])

    def _run(self, batch: list) -> None:
        if not batch:
            return
        try:
            results = self.pipeline.clone_many([job for job, _ in batch], precision=self.precision, progress=False)
        except BaseException as e:  # the whole call failed (a model error): every request gets it
            log.debug("clone_many failed for %d requests: %s", len(batch), e)
            for _, future in batch:
                future.set_exception(e)
            return
        for (_, future), result in zip(batch, results):
            if isinstance(result, np.ndarray):
                future.set_result(result)
            else:
                future.set_exception(result.__cause__ if isinstance(result, Sv2ttsError) and result.__cause__
                                     else result)
