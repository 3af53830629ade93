"""Saved voices: upload clips once, clone from the voice's id afterwards."""
from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile

import sv2tts

from ..dependencies import Settings, Voices
from ..errors import ApiError, from_library
from ..jobs import ClientGone
from ..uploads import Uploads
from ..voices import check_name

router = APIRouter(prefix="/v1/voices", tags=["voices"])


@router.post("", status_code=201)
async def create_voice(request: Request, settings: Settings, voices: Voices,
                       name: Annotated[str, Form(description="A name to show for the voice.")],
                       files: Annotated[list[UploadFile], File(description="Clips of one speaker, or one "
                                                                          ".npy voice from `sv2tts embed`.")]) -> dict:
    """Embed the clips once and store the voice: ``{"id", "name", "speech_seconds", "created"}``."""
    name = check_name(name)  # before any work
    pipeline = request.app.state.pipeline
    uploads = Uploads()
    try:
        paths = await uploads.save(files, "files")

        def embed():
            if len(paths) == 1 and paths[0].suffix == ".npy":
                return sv2tts.load_voice(paths[0]), None
            wavs = [pipeline.encoder.load_reference(p) for p in paths]
            return pipeline.encoder.embed_speaker(wavs), sum(len(w) for w in wavs) / sv2tts.SAMPLE_RATE

        job = request.app.state.runner.submit(lambda: [embed()], time.monotonic() + settings.timeout_s,
                                              uploads.remove)
    except BaseException:
        uploads.remove()
        raise
    job.watch(request.is_disconnected)
    try:
        [(embedding, speech_seconds)] = [item async for item in job.items()]
    except (ApiError, ClientGone):
        raise
    except Exception as e:
        raise from_library(e, uploads.names) from None
    return await asyncio.to_thread(voices.create, name, embedding, speech_seconds)


@router.get("")
def list_voices(voices: Voices) -> dict:
    return {"voices": voices.list()}


@router.get("/{voice_id}")
def get_voice(voice_id: str, voices: Voices) -> dict:
    return voices.get(voice_id)


@router.delete("/{voice_id}", status_code=204)
def delete_voice(voice_id: str, voices: Voices) -> None:
    voices.delete(voice_id)
