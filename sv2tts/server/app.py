"""The FastAPI application: settings and models in, routers, middleware and error handlers.

``create_app(settings)`` builds it: torch's threads set so the workers together use the cores
and no more, the models loaded in a worker thread (see ``Runner.call``), routers, middleware
and error handlers; the lifespan stops the workers.
"""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException

import sv2tts

from .errors import ApiError
from .jobs import ClientGone, Runner
from .metrics import Metrics
from .middleware import ApiKeyGate, BodyLimit, RequestContext
from .routes import clone, health, speech, voices
from .settings import ServeSettings
from .voices import VoiceStore

log = logging.getLogger(__name__)

EXPOSED_HEADERS = ["X-Request-ID", "X-Seed", "X-Sample-Rate", "Server-Timing", "Retry-After"]


def load_pipeline(settings: ServeSettings) -> "sv2tts.Pipeline":
    """The models named by the settings, all loaded now (downloaded if missing, as `clone` does)."""
    return sv2tts.Pipeline(settings.encoder, settings.synthesizer, settings.vocoder, device=settings.device,
                           max_text_chars=settings.max_text_chars).load_all()


def create_app(settings: ServeSettings = ServeSettings()) -> FastAPI:
    """The service, its models loaded (a bad model path raises here, before anything listens)."""
    import torch

    torch.set_num_threads(settings.threads_per_worker)  # workers x threads = the cores
    runner = Runner(settings.workers, settings.max_queue)
    try:
        pipeline = runner.call(load_pipeline, settings)
    except BaseException:
        runner.shutdown()
        raise

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        log.info("serving with %d workers x %d threads, queue %d", settings.workers,
                 settings.threads_per_worker, settings.max_queue)
        try:
            yield
        finally:
            runner.shutdown()

    app = FastAPI(title="sv2tts", version=sv2tts.__version__, lifespan=lifespan,
                  description="Voice cloning (SV2TTS): 16 kHz speech in the voice of a reference clip.")
    app.state.settings = settings
    app.state.runner = runner
    app.state.pipeline = pipeline
    app.state.metrics = Metrics()
    app.state.voices = VoiceStore(settings.voices_dir or sv2tts.model_cache_dir() / "voices")
    for router in (health.router, clone.router, voices.router, speech.router):
        app.include_router(router)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return resources.files(__package__).joinpath("static/index.html").read_text(encoding="utf-8")

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'] if p not in ('body', 'query'))}: {e['msg']}"
                             for e in error.errors())
        return await api_error(request, ApiError(400, problems or "invalid request", "invalid_request"))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return await api_error(request, ApiError(error.status_code, str(error.detail), code,
                                                 headers=dict(error.headers or {})))

    @app.exception_handler(ClientGone)
    async def client_gone(request: Request, error: ClientGone) -> Response:
        return Response(status_code=499)  # nginx's "client closed request": nobody reads it

    # added last = outermost: request ids and metrics see everything, the key is checked
    # before the body limit reads anything
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes)
    app.add_middleware(ApiKeyGate, api_key=settings.api_key)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["Authorization", "Content-Type"],
                           expose_headers=EXPOSED_HEADERS)
    app.add_middleware(RequestContext, metrics=app.state.metrics)
    return app
