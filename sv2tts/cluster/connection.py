"""Ray, an optional dependency: imported only here, on demand, and connected to a cluster."""
from __future__ import annotations

import logging
import re

from ..core.errors import InputError

log = logging.getLogger(__name__)

LOCAL = "local"  # the address that starts a Ray instance on this machine for the run
_ADDRESS = re.compile(r"^(auto|local|ray://[^\s/]+:\d+|[^\s/:]+:\d+)$")


def import_ray():
    """The ``ray`` module, or InputError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError('Ray is not installed: pip install "sv2tts[ray]"') from None
    return ray


def check_address(address: str | None) -> str | None:
    """``address`` when it is one Ray takes: None or "local" (a Ray started on this machine),
    "auto" (the cluster this machine belongs to), "ray://HOST:PORT" (Ray Client) or
    "HOST:PORT" (the head node's GCS); else InputError."""
    if address is not None and not _ADDRESS.match(address):
        raise InputError(f"Ray address {address!r}: expected auto, local, ray://HOST:PORT or HOST:PORT")
    return address


def connect(address: str | None = None) -> bool:
    """Connect to a Ray cluster (``address``, see ``check_address``), unless this process is
    connected already (then that connection is used whatever ``address`` says). True when
    this call connected (the caller shuts Ray down when done); InputError when it cannot."""
    ray = import_ray()
    check_address(address)
    if ray.is_initialized():
        log.info("using the Ray connection of this process")
        return False
    options = {"logging_level": logging.WARNING, "log_to_driver": False}  # workers' records come with results
    if address in (None, LOCAL):
        options.update(address=None, include_dashboard=False)
    else:
        options["address"] = address
    try:
        ray.init(**options)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"cannot connect to the Ray cluster at {address}: {detail}") from None
    return True


def worker_slots(cpus_per_worker: int) -> int:
    """How many workers of ``cpus_per_worker`` CPUs the cluster's nodes hold in all."""
    ray = import_ray()
    return sum(int(node.get("Resources", {}).get("CPU", 0) // cpus_per_worker)
               for node in ray.nodes() if node.get("Alive"))
