"""A batch on a Ray cluster: the driver hands groups of items to long-lived worker actors.

Everything a user sees is the local batch's (``sv2tts.batch``: the same item checks, skips,
report, progress bar, Ctrl-C and full-disk stops): only where ``clone_many`` runs changes.
Each worker (:class:`~sv2tts.cluster.worker.CloneWorker`) loads the models once and gets
``PREFETCH`` groups at a time, so the next group is there when one ends. The driver reads
each reference once and ships its bytes (unless every worker sees the driver's files, a
shared filesystem detected or stated: then workers read them by path), and writes each
output from the encoded audio a worker returns, atomically: the driver is the only writer,
so the report says exactly what is on disk.
A worker whose process dies is restarted by Ray; the items it held are retried one by one
(so an item that kills its worker costs only itself) up to ``max_retries`` times, then failed.
"""
from __future__ import annotations

import collections
import functools
import logging
import os
import time
from collections.abc import Callable

from ..batch import GROUP, BatchRun, Item, check_group
from ..core.audio import write_bytes_atomic
from ..core.errors import InputError
from ..pipeline import GRIFFIN_LIM, MAX_TEXT_CHARS
from .connection import check_address, connect, import_ray, worker_slots
from .references import References, shared_probes
from .worker import CloneWorker, GroupResult, Job, Outcome

log = logging.getLogger(__name__)

PREFETCH = 2  # groups in flight per worker
MAX_RETRIES = 2  # times an item is retried after its worker was lost
RESTARTS = 3  # times Ray restarts a worker whose process died
POLL_S = 0.5  # longest wait of the driver's loop (Ctrl-C is seen within it)
WAIT_LOG_S = 30.0  # how often a start-up that waits for CPUs says so


def run_batch_ray(items: list[Item], *, address: str | None = None, workers: int | None = None,
                  cpus_per_worker: int = 1, encoder=None, synthesizer=None, vocoder=None, device: str = "cpu",
                  max_text_chars: int | None = MAX_TEXT_CHARS, overwrite: bool = False, seed: int | None = None,
                  max_frames: int = 2000, precision: str = "float32", group: int = GROUP,
                  shared_path: bool | None = None, max_retries: int = MAX_RETRIES, progress: bool | None = None,
                  on_failure: Callable[[Item, str], None] | None = None) -> dict:
    """``run_batch`` on a Ray cluster: the same items, skips, outputs, audio and report.

    address: None or "local" (a Ray started on this machine for the run), "auto",
    "ray://HOST:PORT" or "HOST:PORT"; a process already connected to Ray uses its connection.
    workers: actors of ``cpus_per_worker`` CPUs each (default: as many as the cluster holds).
    shared_path: True when the references are on a filesystem every node sees (workers read
    them there), False to ship their bytes, None to detect it.
    Ray is started (and the models loaded) only when some item is to be cloned.
    """
    check_group(group)
    check_address(address)
    _check_counts(workers=workers, cpus_per_worker=cpus_per_worker, max_retries=max_retries)
    run = BatchRun(items, overwrite=overwrite, progress=progress, on_failure=on_failure)

    def clone(pending: list[int]) -> None:
        ray = import_ray()
        started = connect(address)
        try:
            with CloneWorkers(workers, cpus_per_worker=cpus_per_worker, encoder=encoder, synthesizer=synthesizer,
                              vocoder=vocoder, device=device, max_text_chars=max_text_chars) as pool:
                pool._clone(run, pending, seed=seed, max_frames=max_frames, precision=precision, group=group,
                           shared_path=shared_path, max_retries=max_retries)
        finally:
            if started:
                ray.shutdown()

    return run.execute(clone)


class CloneWorkers:
    """Long-lived Ray actors, each a ``CloneWorker`` with the models loaded once and torch
    set to ``cpus_per_worker`` threads. Needs a Ray connection (``ray.init``). A context
    manager: leaving it (or ``close()``) ends the actors.

    Model paths are made absolute here; each node must have the files there (or in its model
    cache when a model is None). InputError when the workers do not fit in the cluster or
    cannot load the models.
    """

    def __init__(self, workers: int | None = None, *, cpus_per_worker: int = 1, encoder=None, synthesizer=None,
                 vocoder=None, device: str = "cpu", max_text_chars: int | None = MAX_TEXT_CHARS,
                 restarts: int = RESTARTS) -> None:
        _check_counts(workers=workers, cpus_per_worker=cpus_per_worker)
        self._ray = ray = import_ray()
        if not ray.is_initialized():
            raise InputError("not connected to Ray: call ray.init() (or use run_batch_ray) first")
        slots = worker_slots(cpus_per_worker)
        if slots == 0 or (workers or 0) > slots:
            raise InputError(f"{workers or 1} Ray worker(s) of {cpus_per_worker} CPU(s) do not fit in the cluster "
                             f"(room for {slots}): ask for fewer workers or CPUs per worker")
        self.workers = workers or slots
        self.cpus_per_worker = cpus_per_worker
        actor = ray.remote(CloneWorker).options(num_cpus=cpus_per_worker, num_gpus=1 if device == "cuda" else 0,
                                                max_restarts=restarts)
        models = {"encoder": _absolute(encoder), "synthesizer": _absolute(synthesizer), "vocoder": _absolute(vocoder)}
        level = logging.getLogger("sv2tts").getEffectiveLevel()  # the workers log what the driver would
        self.actors = [actor.remote(**models, device=device, max_text_chars=max_text_chars, threads=cpus_per_worker,
                                    log_level=level, forward_logs=True) for _ in range(self.workers)]
        try:
            self.info = self._ready()
        except BaseException:
            self.close()
            raise

    def _ready(self) -> list[dict]:
        """Wait for every worker's models; InputError naming the first that cannot load them."""
        ray, refs = self._ray, [a.ready.remote() for a in self.actors]
        start = last = time.perf_counter()
        while True:
            done, waiting = ray.wait(refs, num_returns=len(refs), timeout=POLL_S)
            if not waiting:
                break
            if time.perf_counter() - last > WAIT_LOG_S:
                last = time.perf_counter()
                log.warning("%d of %d Ray workers started after %.0f s (waiting for free CPUs)",
                            len(done), len(refs), last - start)
        try:
            info = ray.get(refs)
        except ray.exceptions.RayError as e:  # its constructor failed: not sv2tts's error (not installed there?)
            raise InputError(f"a Ray worker could not start ({_first_line(e)}): is sv2tts installed on every "
                             f"node?") from None
        for worker in info:
            if worker["error"]:
                raise InputError(f"a Ray worker on {worker['host']} cannot load the models: {worker['error']}")
        log.info("%d Ray workers (%d CPUs each) ready in %.1f s on %s", len(info), self.cpus_per_worker,
                 time.perf_counter() - start, ", ".join(sorted({w["host"] for w in info})))
        return info

    def pids(self) -> list[int]:
        """The process id of each worker (now: a restarted worker has a new one, given once
        its models are loaded again)."""
        return [w["pid"] for w in self._ray.get([a.ready.options(max_task_retries=-1).remote() for a in self.actors])]

    def run(self, items: list[Item], *, overwrite: bool = False, seed: int | None = None, max_frames: int = 2000,
            precision: str = "float32", group: int = GROUP, shared_path: bool | None = None,
            max_retries: int = MAX_RETRIES, progress: bool | None = None,
            on_failure: Callable[[Item, str], None] | None = None,
            on_item: Callable[[Item, dict], None] | None = None) -> dict:
        """``run_batch`` on these workers (see ``run_batch_ray``); ``on_item(item, entry)`` is
        called on the driver as each item's report entry is made."""
        check_group(group)
        _check_counts(max_retries=max_retries)
        run = BatchRun(items, overwrite=overwrite, progress=progress, on_failure=on_failure, on_item=on_item)
        return run.execute(functools.partial(self._clone, run, seed=seed, max_frames=max_frames, precision=precision,
                                             group=group, shared_path=shared_path, max_retries=max_retries))

    def _clone(self, run: BatchRun, pending: list[int], *, seed: int | None, max_frames: int, precision: str,
               group: int, shared_path: bool | None, max_retries: int) -> None:
        """Clone the ``pending`` items of ``run`` (recording each in it)."""
        if shared_path is None:
            shared_path = self.shares_files([run.items[i] for i in pending])
        log.info("references %s", "on a shared path: workers read them there" if shared_path
                 else "shipped: the driver reads them and sends their bytes")
        references = References([run.items[i].reference for i in pending], shared=shared_path, put=self._ray.put)
        _Schedule(self, run, references, seed=seed, max_frames=max_frames, precision=precision,
                  max_retries=max_retries).run([pending[k:k + group] for k in range(0, len(pending), group)])

    def shares_files(self, items: list[Item]) -> bool:
        """Whether every worker sees these items' references as the driver does (a filesystem
        shared by every node, or a cluster on this machine)."""
        probes = shared_probes([i.reference for i in items])
        return bool(probes) and all(self._ray.get([a.sees.remote(probes) for a in self.actors]))

    def close(self) -> None:
        """End the workers (their in-flight work stops)."""
        for a in self.actors:
            self._ray.kill(a)
        self.actors = []

    def __enter__(self) -> "CloneWorkers":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Schedule:
    """One run's dispatch loop: groups to workers, outcomes recorded, lost items retried."""

    def __init__(self, pool: CloneWorkers, run: BatchRun, references: References, *, seed, max_frames, precision,
                 max_retries: int) -> None:
        self.ray, self.pool, self.batch, self.references = pool._ray, pool, run, references
        self.options = {"precision": precision, "max_frames": max_frames}
        self.seed, self.max_retries = seed, max_retries
        self.queue: collections.deque[list[int]] = collections.deque()
        self.in_flight: dict[object, tuple[int, list[int]]] = {}  # result ref -> (worker, items)
        self.load = [0] * len(pool.actors)
        self.state = ["ready"] * len(pool.actors)  # ready, restarting, dead
        self.probes: dict[object, int] = {}  # ready() ref of a restarting worker -> worker
        self.probe_at: dict[int, float] = {}  # restarting worker -> when to ask it again
        self.attempts: collections.Counter[int] = collections.Counter()

    def run(self, groups: list[list[int]]) -> None:
        self.queue.extend(groups)
        try:
            while (self.queue or self.in_flight) and not self.batch.stopped:
                self._probe()
                self._dispatch()
                waiting = [*self.in_flight, *self.probes]
                if not waiting:
                    if self.probe_at:  # only restarting workers: ask again soon
                        time.sleep(POLL_S / 5)
                        continue
                    if self.queue:
                        self.batch.stop("every Ray worker died")
                    break
                done, _ = self.ray.wait(waiting, num_returns=1, timeout=POLL_S)
                for ref in done:
                    self._finish(ref)
        finally:
            for ref in self.in_flight:  # a stopped run: groups not started are dropped
                self.ray.cancel(ref)

    def _dispatch(self) -> None:
        """Top up every ready worker to PREFETCH groups, one group per worker per round."""
        while self.queue:
            ready = [w for w, s in enumerate(self.state) if s == "ready" and self.load[w] < PREFETCH]
            if not ready:
                return
            for w in sorted(ready, key=lambda w: self.load[w]):
                jobs, refs = self._payload(self.queue.popleft()) if self.queue else ([], {})
                if jobs:
                    ref = self.pool.actors[w].clone.remote(jobs, refs, **self.options)
                    self.in_flight[ref] = (w, [j.index for j in jobs])
                    self.load[w] += 1

    def _payload(self, indices: list[int]) -> tuple[list[Job], dict]:
        """The jobs of a group and their references; items whose output cannot be written fail."""
        jobs, refs = [], {}
        for i in indices:
            item = self.batch.items[i]
            if not self.batch.check_output(i):
                self._finished(i)
                continue
            ref = self.references.get(item.reference)
            refs[ref.key] = ref
            jobs.append(Job(i, ref.key, item.text, self.seed, item.output.name))
        return jobs, refs

    def _probe(self) -> None:
        """Ask the restarting workers whose time has come whether they are back."""
        now = time.monotonic()
        for worker, at in list(self.probe_at.items()):
            if now >= at:
                del self.probe_at[worker]
                self.probes[self.pool.actors[worker].ready.remote()] = worker

    def _finish(self, ref) -> None:
        ray = self.ray
        if ref in self.probes:
            worker = self.probes.pop(ref)
            try:
                self.state[worker] = "dead" if ray.get(ref)["error"] else "ready"
            except ray.exceptions.ActorUnavailableError:  # still restarting (loading the models)
                self.probe_at[worker] = time.monotonic() + POLL_S
            except ray.exceptions.RayError:
                self.state[worker] = "dead"
            if self.state[worker] == "dead":
                log.warning("Ray worker %d is gone for good", worker)
            return
        worker, indices = self.in_flight.pop(ref)
        self.load[worker] -= 1
        try:
            result: GroupResult = ray.get(ref)
        except ray.exceptions.RayTaskError as e:  # not an item's error: a bug; the group's items fail
            for i in indices:
                self.batch.fail(i, _first_line(e))
                self._finished(i)
            return
        except ray.exceptions.RayError as e:  # the worker (or its node) was lost
            self._lost(worker, indices, e)
            return
        for level, name, message in result.logs:
            logging.getLogger(name).log(level, "%s (Ray worker %d)", message, worker)
        for outcome in result.outcomes:
            if not self.batch.stopped:
                self._record(outcome)

    def _record(self, o: Outcome) -> None:
        if o.error is not None:
            self.batch.fail(o.index, o.error)
        else:
            self.batch.save(o.index, functools.partial(write_bytes_atomic, self.batch.items[o.index].output, o.audio),
                            o.seconds)
        self._finished(o.index)

    def _lost(self, worker: int, indices: list[int], error: Exception) -> None:
        """A worker died with these items: each retried alone, or failed past ``max_retries``."""
        if self.state[worker] == "ready":
            log.warning("Ray worker %d was lost (%s); its items are retried", worker, _first_line(error))
            self.state[worker] = "restarting"
            self.probe_at[worker] = 0.0
        for i in reversed(indices):
            self.attempts[i] += 1
            if self.attempts[i] > self.max_retries:
                self.batch.fail(i, f"its Ray worker was lost {self.attempts[i]} times while cloning it "
                                 f"({_first_line(error)})")
                self._finished(i)
            else:
                self.queue.appendleft([i])

    def _finished(self, i: int) -> None:
        self.references.release(self.batch.items[i].reference)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _absolute(spec):
    """A model path made absolute (workers run in other folders); loaded models, None and
    "griffinlim" as they are."""
    if isinstance(spec, (str, os.PathLike)) and str(spec).lower() not in (GRIFFIN_LIM, "griffin-lim"):
        return os.path.abspath(spec)
    return spec


def _check_counts(**counts) -> None:
    """InputError unless each count is an int >= 1 (``max_retries`` >= 0; ``workers`` may be None)."""
    for name, value in counts.items():
        least = 0 if name == "max_retries" else 1
        if value is None and name == "workers":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise InputError(f"{name}={value!r}: expected an int >= {least}")
