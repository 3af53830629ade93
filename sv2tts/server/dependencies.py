"""What the routes need from the application, as FastAPI dependencies."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from .metrics import Metrics
from .settings import ServeSettings
from .voices import VoiceStore


def get_settings(request: Request) -> ServeSettings:
    return request.app.state.settings


def get_voices(request: Request) -> VoiceStore:
    return request.app.state.voices


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


Settings = Annotated[ServeSettings, Depends(get_settings)]
Voices = Annotated[VoiceStore, Depends(get_voices)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
