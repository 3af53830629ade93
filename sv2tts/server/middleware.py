"""ASGI middleware, outermost first: request ids and metrics, the API key, the body size limit.

Plain ASGI (not BaseHTTPMiddleware), so streamed responses pass through untouched and a
request can be refused before its body is read.
"""
from __future__ import annotations

import hmac
import json
import time
import uuid

from .errors import ApiError
from .metrics import Metrics


async def send_error(send, error: ApiError) -> None:
    """Answer ``error`` as JSON (the one error shape)."""
    body = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestContext:
    """Gives each request an ``X-Request-ID`` (the client's, if sane) and counts it in the metrics
    by route and status."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if 0 < len(given) <= 64 and given.isprintable() else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status, start = 500, time.perf_counter()

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            self.metrics.request(getattr(route, "path", "unmatched"), status, time.perf_counter() - start)


class ApiKeyGate:
    """With a key set, /v1 requests (except /v1/config) need ``Authorization: Bearer <key>``:
    checked before the body is read, so a wrong key costs no upload and no work."""

    OPEN = ("/v1/config",)

    def __init__(self, app, api_key: str | None):
        self.app, self.key = app, api_key.encode() if api_key else None

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if (self.key is None or scope["type"] != "http" or not path.startswith("/v1/") or path in self.OPEN
                or scope.get("method") == "OPTIONS"):
            return await self.app(scope, receive, send)
        scheme, _, token = dict(scope["headers"]).get(b"authorization", b"").partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.key):
            await send_error(send, ApiError(401, "missing or wrong API key: send the header "
                                                 "'Authorization: Bearer <key>'", "invalid_api_key",
                                            headers={"WWW-Authenticate": "Bearer"}))
            return
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse a body over ``max_bytes`` with 413: at once when Content-Length says so, else as
    soon as that many bytes have arrived (the application's own answer is then replaced)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        error = ApiError(413, f"the upload is larger than the server's limit of "
                              f"{self.max_bytes / 2 ** 20:g} MB (sv2tts serve --max-upload-mb)", "upload_too_large")
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await send_error(send, error)
        received, over, started = 0, False, False

        async def limited_receive():
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    over = True
                    raise error
            return message

        async def guarded_send(message):
            nonlocal started
            if over:
                return  # the app's answer to a body cut short is replaced by the 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except ApiError:
            if not over:
                raise
        if over and not started:
            await send_error(send, error)
