"""``POST /v1/audio/speech``: OpenAI's text-to-speech request, with a saved voice's id as ``voice``.

Existing OpenAI clients work by pointing their base URL at this server. Differences: only
saved voices exist (create them with ``POST /v1/voices``); ``wav`` and ``flac`` are 16 kHz;
``pcm`` is resampled to 24 kHz, the rate OpenAI clients assume for raw PCM.
"""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

import sv2tts

from ..dependencies import Voices
from ..errors import ApiError
from ..synthesis import Synthesis
from .clone import AUDIO

router = APIRouter(prefix="/v1/audio", tags=["openai"])

PCM_RATE = 24000  # OpenAI's raw PCM rate
FORMATS = ("wav", "flac", "pcm")


class VoiceId(BaseModel):
    id: str


class SpeechRequest(BaseModel):
    model: str = Field("sv2tts", description="Accepted and ignored: the server has one model.")
    input: str = Field(description="The text (at most the server's --max-text-chars, 4096 by default).")
    voice: str | VoiceId = Field(description="A saved voice's id, or {\"id\": ...}.")
    response_format: str = Field("wav", description="wav, flac or pcm (mp3, opus and aac are not supported).")
    speed: float = Field(1.0, description="Only 1.0.")
    stream_format: Literal["audio", "sse"] = "audio"
    instructions: str | None = Field(None, description="Not supported: must be absent.")


@router.post("/speech", response_class=Response, responses={200: AUDIO})
async def speech(body: SpeechRequest, request: Request, voices: Voices) -> Response:
    """OpenAI-compatible speech: the audio is streamed as each sentence is ready."""
    fmt = body.response_format
    if fmt not in FORMATS:
        raise ApiError(400, f"response_format {fmt!r} is not supported: use one of {', '.join(FORMATS)}",
                       "unsupported_format")
    if body.speed != 1.0:
        raise ApiError(400, f"speed {body.speed:g} is not supported: only 1.0", "unsupported_speed")
    if body.instructions:
        raise ApiError(400, "instructions are not supported by this model", "unsupported_instructions")
    voice = voices.path(body.voice.id if isinstance(body.voice, VoiceId) else body.voice)
    synthesis = Synthesis(request, voice, body.input, None, sample_rate=PCM_RATE if fmt == "pcm" else sv2tts.SAMPLE_RATE)
    if fmt == "flac" and body.stream_format == "audio":
        return await synthesis.whole(fmt)
    return await synthesis.streamed(fmt, sse=body.stream_format == "sse")
