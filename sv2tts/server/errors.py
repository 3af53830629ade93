"""One error shape for every endpoint: ``{"error": {"message", "type", "code"}}``."""
from __future__ import annotations

import logging

import sv2tts

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered to the client: HTTP ``status``, a sentence, a type and a short code."""

    def __init__(self, status: int, message: str, code: str, type: str = "invalid_request_error",
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.type = status, message, code, type
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "code": self.code}}


def from_library(error: Exception, names: dict[str, str] | None = None) -> ApiError:
    """The ApiError for an exception raised by sv2tts; ``names`` maps server-side temporary
    paths to the names the client sent, so a message never shows a server path."""
    message = str(error)
    for path, name in (names or {}).items():
        message = message.replace(path, name)
    if isinstance(error, sv2tts.ModelNotFoundError):
        return ApiError(503, message, "model_unavailable", "server_error")
    if isinstance(error, sv2tts.CheckpointError):
        return ApiError(500, message, "model_error", "server_error")
    if isinstance(error, sv2tts.TextError):
        return ApiError(400, message, "invalid_text")
    if isinstance(error, sv2tts.AudioError):
        return ApiError(400, message, "invalid_audio")
    if isinstance(error, sv2tts.Sv2ttsError):
        return ApiError(400, message, "invalid_input")
    log.error("request failed", exc_info=error)
    return ApiError(500, "internal error: the server's log has the details", "internal_error", "server_error")
