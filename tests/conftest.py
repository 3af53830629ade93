"""Shared fixtures: where the golden data lives (RTVC's own outputs, ../shared/golden)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]


def _golden_dir() -> Path | None:
    env = os.environ.get("SV2TTS_GOLDEN")
    candidates = [Path(env)] if env else []
    candidates += [_REPO.parent / "shared" / "golden", _REPO / ".." / "shared" / "golden"]
    for c in candidates:
        if (c / "README.md").exists():
            return c.resolve()
    return None


@pytest.fixture(scope="session")
def golden() -> Path:
    """Path of the golden folder; a failure under CI=true when it is missing, else a skip."""
    path = _golden_dir()
    if path is None:
        msg = "golden data not found: set SV2TTS_GOLDEN or place it at ../shared/golden"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path
