"""`sv2tts serve`: the HTTP service (FastAPI) and its web page. Needs ``pip install "sv2tts[serve]"``."""
from .app import create_app
from .settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]
