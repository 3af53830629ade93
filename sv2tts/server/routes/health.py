"""Probes, metrics, and the settings the page needs: none of them needs the API key."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

import sv2tts

from ..dependencies import MetricsDep, Settings

router = APIRouter(tags=["service"])


@router.get("/healthz")
def healthz() -> dict:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request):
    """Requests are taken (the models were loaded before the server listened); 503 while stopping."""
    if request.app.state.runner.closed:
        return JSONResponse({"status": "stopping"}, status_code=503)
    return {"status": "ready"}


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request, metrics: MetricsDep) -> str:
    """Prometheus text: requests by route and status, queue depth, seconds per stage, audio seconds."""
    runner = request.app.state.runner
    return metrics.render(runner.queue_depth, runner.running)


@router.get("/v1/config")
def config(settings: Settings) -> dict:
    """What a client (the page) needs to know before its first request."""
    return {"auth_required": settings.api_key is not None, "sample_rate": sv2tts.SAMPLE_RATE,
            "max_text_chars": settings.max_text_chars, "max_upload_mb": settings.max_upload_mb,
            "version": sv2tts.__version__}
