"""Inference off the event loop: a fixed number of worker threads, a bounded queue, a deadline
per request, and cancellation when the client goes away.

A job runs a producer (an iterator of audio chunks, e.g. ``Pipeline.stream``) in a worker
thread and hands each item to the event loop as soon as it exists. The producer is stopped
between items when the job is cancelled or past its deadline, which frees the worker slot.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from .errors import ApiError

log = logging.getLogger(__name__)

_END, _ITEM, _ERROR, _GONE = "end", "item", "error", "gone"


class ClientGone(Exception):
    """The client disconnected: there is nobody to answer."""


class Runner:
    """``workers`` jobs at once, at most ``max_queue`` more waiting; beyond that 429."""

    def __init__(self, workers: int, max_queue: int):
        self.workers = workers
        self.capacity = workers + max_queue
        self.accepted = 0  # jobs accepted and not finished (changed on the event loop only)
        self._seconds = 5.0  # moving average of a job's duration, for Retry-After
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="sv2tts-job")
        self.closed = False

    @property
    def queue_depth(self) -> int:
        return max(0, self.accepted - self.workers)

    @property
    def running(self) -> int:
        return min(self.accepted, self.workers)

    def submit(self, produce: Callable[[], Iterable], deadline: float,
               cleanup: Callable[[], None] | None = None) -> "Job":
        """Start ``produce()`` in a worker when one is free; 429 when the queue is full
        (``cleanup`` then runs at once). ``deadline`` is a ``time.monotonic()`` time."""
        if self.accepted >= self.capacity:
            if cleanup:
                cleanup()
            retry = max(1, round(self._seconds * (self.queue_depth + 1) / self.workers))
            raise ApiError(429, f"the server is busy ({self.accepted} requests in progress or waiting); "
                                f"retry in about {retry} s", "queue_full", "server_error",
                           headers={"Retry-After": str(retry)})
        job = Job(asyncio.get_running_loop(), deadline, cleanup, self._finished)
        self.accepted += 1
        self._executor.submit(job.run, produce)
        return job

    def call(self, fn: Callable, *args):
        """``fn(*args)`` in a worker thread, waited for (for loading the models: torch's OpenMP
        thread team is then the worker's own, and libgomp spins at the vocoder's per-step
        barriers only while the threads of all teams fit the cores; a second team on the main
        thread made every request 1.5x slower)."""
        return self._executor.submit(fn, *args).result()

    def _finished(self, seconds: float) -> None:
        self.accepted -= 1
        self._seconds = 0.8 * self._seconds + 0.2 * seconds

    def shutdown(self) -> None:
        self.closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)


class Job:
    """One request's work. ``items()`` yields what the producer makes, on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, deadline: float, cleanup, on_done):
        self.deadline = deadline
        self._loop = loop
        self._queue: asyncio.Queue = asyncio.Queue()
        self._stop = threading.Event()
        self._cleanup, self._on_done = cleanup, on_done
        self._watcher: asyncio.Task | None = None

    # -- worker thread --------------------------------------------------------------------

    def run(self, produce: Callable[[], Iterable]) -> None:
        start = time.monotonic()
        try:
            if not self._stop.is_set():
                if start >= self.deadline:
                    raise timeout_error()
                for item in produce():
                    self._post(_ITEM, item)
                    if self._stop.is_set():
                        break
                    if time.monotonic() > self.deadline:
                        raise timeout_error()  # stops the producer: the slot frees now
        except BaseException as e:  # reported to the request that asked for it
            self._post(_ERROR, e)
        finally:
            try:
                if self._cleanup:
                    self._cleanup()
            finally:
                self._post(_END, None)
                self._call(self._on_done, time.monotonic() - start)

    def _post(self, kind: str, value) -> None:
        self._call(self._queue.put_nowait, (kind, value))

    def _call(self, fn, *args) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the event loop is closed: the server is shutting down
            pass

    # -- event loop -----------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop the producer at its next item (or before it starts)."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.cancel()

    def watch(self, is_disconnected: Callable) -> None:
        """Cancel this job when ``await is_disconnected()`` turns true (polled every 0.25 s)."""
        async def poll():
            while not await is_disconnected():
                await asyncio.sleep(0.25)
            self._stop.set()
            self._queue.put_nowait((_GONE, None))

        self._watcher = asyncio.ensure_future(poll())

    async def items(self) -> AsyncIterator:
        """The producer's items in order. Raises its exception, ApiError 504 past the deadline,
        ClientGone when the client left; the job is cancelled when iteration stops early."""
        try:
            while True:
                try:
                    kind, value = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    try:
                        kind, value = await asyncio.wait_for(self._queue.get(), self.deadline - time.monotonic())
                    except TimeoutError:
                        raise timeout_error() from None
                if kind == _END:
                    return
                if kind == _ERROR:
                    raise value
                if kind == _GONE:
                    raise ClientGone()
                yield value
        finally:
            self.cancel()


def timeout_error() -> ApiError:
    return ApiError(504, "the request took longer than the server's time limit (sv2tts serve --timeout); "
                         "try a shorter text", "timeout", "server_error")
