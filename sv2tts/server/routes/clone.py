"""``POST /v1/clone``: reference clips (or a saved voice) + text -> speech in that voice."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response

from ..dependencies import Voices
from ..errors import ApiError
from ..synthesis import Synthesis
from ..uploads import Uploads

router = APIRouter(prefix="/v1", tags=["clone"])

AUDIO = {"content": {"audio/wav": {}, "audio/flac": {}, "audio/pcm": {}, "text/event-stream": {}},
         "description": "16 kHz mono audio (16-bit PCM); `json`: base64 WAV and a report"}


@router.post("/clone", response_class=Response, responses={200: AUDIO})
async def clone(request: Request, voices: Voices,
                text: Annotated[str, Form(description="What to say.")] = "",
                reference: Annotated[list[UploadFile], File(description="Clip(s) of the voice to clone: audio "
                                                                        "files, or a .npy voice.")] = [],
                voice: Annotated[str | None, Form(description="A saved voice's id instead of clips.")] = None,
                seed: Annotated[int | None, Form(ge=0, lt=2 ** 32, description="Same seed, same audio.")] = None,
                response_format: Annotated[Literal["wav", "flac", "pcm", "json"], Form()] = "wav",
                stream: Annotated[bool, Form(description="Send audio as each sentence is ready (wav, pcm; "
                                                         "json: server-sent events).")] = False) -> Response:
    """Clone the voice of ``reference`` (or ``voice``) speaking ``text``.

    Audio is 16 kHz mono. ``json`` gives ``{"audio_base64", "format", "sample_rate",
    "duration_s", "seed", "timings"}``. Headers: ``X-Seed``, ``X-Sample-Rate``, ``Server-Timing``.
    """
    if bool(reference) == bool(voice):
        raise ApiError(400, "send either reference files or a voice id (not both, not neither)", "invalid_reference")
    uploads = Uploads()
    try:
        if reference:
            paths = await uploads.save(reference, "reference")
            references = paths[0] if len(paths) == 1 else paths  # one path may be a .npy voice
        else:
            references = voices.path(voice)
        synthesis = Synthesis(request, references, text, seed, uploads=uploads)
    except BaseException:
        uploads.remove()
        raise
    if not stream:
        return await synthesis.whole(response_format)
    if response_format == "json":
        return await synthesis.streamed("pcm", sse=True)
    return await synthesis.streamed(response_format)
