"""Counters for ``GET /metrics`` in the Prometheus text format."""
from __future__ import annotations

import threading
from collections import Counter, defaultdict


class Metrics:
    """Requests by route and status, seconds per pipeline stage, audio seconds produced."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter = Counter()  # (route, status) -> count
        self.request_seconds: defaultdict = defaultdict(float)  # route -> seconds
        self.stage_seconds: defaultdict = defaultdict(float)  # stage -> seconds
        self.stage_runs: Counter = Counter()
        self.audio_seconds = 0.0

    def request(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[route, status] += 1
            self.request_seconds[route] += seconds

    def synthesis(self, timings: dict[str, float], audio_seconds: float) -> None:
        with self._lock:
            for stage, seconds in timings.items():
                self.stage_seconds[stage] += seconds
                self.stage_runs[stage] += 1
            self.audio_seconds += audio_seconds

    def render(self, queue_depth: int, running: int) -> str:
        with self._lock:
            lines = ["# HELP sv2tts_requests_total HTTP requests by route and status.",
                     "# TYPE sv2tts_requests_total counter"]
            lines += [f'sv2tts_requests_total{{route="{r}",status="{s}"}} {n}'
                      for (r, s), n in sorted(self.requests.items())]
            lines += ["# HELP sv2tts_request_seconds_total Seconds spent answering, by route.",
                      "# TYPE sv2tts_request_seconds_total counter"]
            lines += [f'sv2tts_request_seconds_total{{route="{r}"}} {v:.6f}'
                      for r, v in sorted(self.request_seconds.items())]
            lines += ["# HELP sv2tts_stage_seconds_total Seconds spent in each pipeline stage.",
                      "# TYPE sv2tts_stage_seconds_total counter"]
            lines += [f'sv2tts_stage_seconds_total{{stage="{s}"}} {v:.6f}' for s, v in sorted(self.stage_seconds.items())]
            lines += ["# HELP sv2tts_stage_runs_total Requests that ran each pipeline stage.",
                      "# TYPE sv2tts_stage_runs_total counter"]
            lines += [f'sv2tts_stage_runs_total{{stage="{s}"}} {n}' for s, n in sorted(self.stage_runs.items())]
            lines += ["# HELP sv2tts_audio_seconds_total Seconds of audio produced.",
                      "# TYPE sv2tts_audio_seconds_total counter",
                      f"sv2tts_audio_seconds_total {self.audio_seconds:.3f}",
                      "# HELP sv2tts_queue_depth Requests waiting for a worker.",
                      "# TYPE sv2tts_queue_depth gauge", f"sv2tts_queue_depth {queue_depth}",
                      "# HELP sv2tts_running Requests being computed.",
                      "# TYPE sv2tts_running gauge", f"sv2tts_running {running}"]
        return "\n".join(lines) + "\n"
