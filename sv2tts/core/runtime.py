"""Seeds, precisions, devices, threads and progress bars: one function for each, used by every stage.

torch and tqdm are imported inside the functions, so importing this module stays cheap.
"""
from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from .errors import InputError


MAX_SEED = 2 ** 32 - 1  # one range for every stage (numpy's RandomState takes no more)


def check_seed(seed) -> int | None:
    """None, or an int in [0, 2^32) (numpy ints too); anything else is an InputError."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise InputError(f"seed: expected None or an int from 0 to {MAX_SEED}, got {seed!r}")
    return int(seed)


# "float32": RTVC's numbers; "bfloat16" / "int8": the large weights in that precision (faster,
# approximate); "reference": RTVC's own loop op for op where a stage has one (else float32).
PRECISIONS = ("float32", "bfloat16", "int8", "reference")


def check_precision(precision) -> str:
    """One of PRECISIONS, else an InputError."""
    if precision not in PRECISIONS:
        raise InputError(f"precision={precision!r}: expected one of {', '.join(PRECISIONS)}")
    return precision


def make_generator(seed, device="cpu"):
    """A private torch.Generator on ``device``: seeded with ``seed``, or from fresh entropy."""
    import torch

    seed = check_seed(seed)
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def resolve_device(device="auto"):
    """'cpu', 'cuda', 'cuda:N', a torch.device, or 'auto'/None (CUDA when available) -> torch.device.

    InputError for anything else, or for CUDA on a machine without it.
    """
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"device: {device!r} is not a device (use cpu, cuda or auto)") from None
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"device: {device!r} is not supported (use cpu, cuda or auto)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device: {device!r} requested but CUDA is not available")
    return dev


def show_progress(progress: bool | None) -> bool:
    """progress=None means: only when stderr is a terminal."""
    return sys.stderr.isatty() if progress is None else bool(progress)


def progress_bar(progress: bool | None, total: int | None, desc: str, unit: str = "it", **options):
    """A tqdm bar on stderr, or None when ``show_progress(progress)`` is False."""
    if not show_progress(progress):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False, **options)


def derive_seed(seed: int | None, index: int) -> int | None:
    """A seed for part ``index`` of a job seeded with ``seed`` (None stays None: fresh entropy)."""
    if seed is None:
        return None
    return int(np.random.SeedSequence([check_seed(seed), index]).generate_state(1)[0])


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch threads, then restore the count. torch.set_num_threads
    sets the calling thread's OpenMP team size, so other threads are not affected."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class ThreadChoice:
    """How many threads the next piece of a long loop gets: ``most`` while they pay, else one.

    The loop records each piece's seconds per unit of work (not the first piece's, which starts
    the threads); piece 3 and every ``probe``-th piece try the other choice, and the faster is
    kept. On an idle machine ``most`` threads win (1.6x for the vocoder
    on 2 cores); when another process holds a core, a team's per-step barriers wait for time
    slices (3-4x slower, measured) and one thread, which has no barrier, wins.
    """

    def __init__(self, most: int, probe: int = 16) -> None:
        self.most, self.probe = max(1, int(most)), probe
        self.cost: dict[int, float] = {}  # threads -> latest seconds per unit
        self.choice = self.most
        self.pieces = 0

    def next(self) -> int:
        """Threads for the next piece."""
        self.pieces += 1
        if self.most > 1 and (self.pieces == 3 or self.pieces % self.probe == 0):
            return 1 if self.choice == self.most else self.most
        return self.choice

    def record(self, threads: int, seconds: float, units: int) -> None:
        """The piece just run with ``threads`` took ``seconds`` for ``units`` of work."""
        if self.pieces > 1:
            self.cost[threads] = seconds / max(units, 1)
            self.choice = min(self.cost, key=self.cost.get)
