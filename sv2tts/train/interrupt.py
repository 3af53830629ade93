"""Ctrl-C during training: the first SIGINT asks the loop to stop after the current step (it
saves a checkpoint first); a second one interrupts at once (KeyboardInterrupt)."""
from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

log = logging.getLogger(__name__)


class StopRequest:
    """Set by the first SIGINT while `stop_on_interrupt` is active (or by `request`)."""

    def __init__(self) -> None:
        self.requested = False

    def request(self) -> None:
        self.requested = True


@contextlib.contextmanager
def stop_on_interrupt() -> Iterator[StopRequest]:
    """Within the block the first SIGINT sets ``requested`` instead of raising; the second
    raises KeyboardInterrupt. Outside the main thread (no signal handlers there) SIGINT keeps
    its usual behaviour. The previous handler is restored on exit."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if stop.requested:
            raise KeyboardInterrupt
        log.warning("interrupt: stopping after this step (a checkpoint is saved first; "
                    "press Ctrl-C again to stop at once)")
        stop.request()

    signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
