"""Model management: where RTVC's published checkpoints live, downloading them, listing them.

The three default checkpoints (checkpoints.md) are fetched from ``DEFAULT_BASE_URL``
(``$SV2TTS_MODEL_URL`` points at a mirror) into the cache folder (``model_cache_dir()``).

Download procedure (:func:`download_model`):

- bytes go to ``<file>.part`` next to the final file; an existing ``.part`` is resumed with
  ``Range: bytes=N-``. A server that ignores Range (answers 200) restarts the file from zero;
  416 on a part of exactly the expected size finalises it, on any other part restarts;
- the sha256 is computed while downloading (the resumed prefix is hashed first);
- size check. **Rule:** the expected size is ``MODELS[name].size`` (RTVC's published sizes),
  whatever the server: a mirror must serve the same bytes. When the server states the full
  length (Content-Length / Content-Range / X-Linked-Size) and it differs, the download stops
  before transferring anything. An entry whose ``size`` is None accepts the length the server
  states. Tests and callers with other files replace entries of ``MODELS`` (looked up at
  call time);
- sha256 check against every hash that is stated: ``MODELS[name].sha256`` (None for RTVC's
  files: RTVC publishes none), ``X-Checksum-Sha256`` (hex or base64), Hugging Face's
  ``X-Linked-ETag`` (sent on the redirect from ``/resolve/``), or a strong ``ETag`` of 64 hex
  digits sent by the host that was asked (not by hosts it redirects to, whose ETags are
  storage-specific);
- only after all checks pass, ``os.replace`` into place and a record ``<file>.json``
  (sha256, size, mtime, what it was checked against) is written so :func:`list_models` can
  report "verified" without rehashing. A failed check deletes the ``.part`` and raises
  DownloadError; a network failure or an interrupted transfer raises DownloadError and keeps
  the ``.part`` for the next call to resume.

Concurrent calls for the same file (threads, or processes where ``fcntl`` exists) are
serialised by a lock; the second caller finds the file in place and downloads nothing.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import glob
import hashlib
import http.client
import json
import logging
import os
import re
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .core.cache import model_cache_dir, sha256_file
from .core.errors import DownloadError, InputError, ModelNotFoundError
from .core.files import write_bytes_atomic
from .core.runtime import show_progress

log = logging.getLogger(__name__)

HF_REPO = "CorentinJ/SV2TTS"  # RTVC's checkpoints on the Hugging Face hub
DEFAULT_BASE_URL = f"https://huggingface.co/{HF_REPO}/resolve/main"
DOWNLOAD_COMMAND = "sv2tts models download"
_CHUNK = 1 << 20  # bytes read/hashed at a time (at most; a read returns what has arrived)
_SLOW_WINDOW = 60.0  # seconds: a transfer slower than _SLOW_RATE over this long is given up ...
_SLOW_RATE = 1024  # ... bytes per second (a trickling server); the part is kept for a resume


@dataclass(frozen=True)
class ModelFile:
    """One downloadable checkpoint: ``size`` in bytes (None: take the server's), ``sha256`` hex or None."""

    name: str
    filename: str
    size: int | None
    sha256: str | None = None


MODELS: dict[str, ModelFile] = {
    "encoder": ModelFile("encoder", "encoder.pt", 17_090_379),
    "synthesizer": ModelFile("synthesizer", "synthesizer.pt", 370_554_559),
    "vocoder": ModelFile("vocoder", "vocoder.pt", 53_845_290),
}


class ModelUnavailableError(ModelNotFoundError, DownloadError):
    """A model is missing from the cache and downloading it failed (both kinds of error)."""


@dataclass(frozen=True)
class ModelStatus:
    """What :func:`list_models` knows about one cached model.

    ``verified``: True when the file's sha256 matched a stated hash (server header or
    ``MODELS``) and the file is unchanged since; False when the size or content is wrong;
    None when it cannot be told (missing, placed by hand, or no hash was ever stated).
    """

    name: str
    filename: str
    path: Path
    url: str
    present: bool
    size: int | None
    expected_size: int | None
    verified: bool | None
    sha256: str | None
    partial_size: int | None
    detail: str


# --------------------------------------------------------------------------- locations


def get_model(name: str) -> ModelFile:
    """The ``MODELS`` entry for ``name``; ModelNotFoundError for an unknown name."""
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise ModelNotFoundError(
            f"unknown model {name!r}: choose from {', '.join(MODELS)}"
        ) from None


def model_path(name: str) -> Path:
    """Where the checkpoint of ``name`` lives in the cache, e.g. ``~/.cache/sv2tts/synthesizer.pt``."""
    return model_cache_dir() / get_model(name).filename


def _raw_base_url() -> str:
    """``$SV2TTS_MODEL_URL``, else the repository on ``$HF_ENDPOINT`` (a Hugging Face mirror, as
    huggingface_hub reads it), else ``DEFAULT_BASE_URL``."""
    url = os.environ.get("SV2TTS_MODEL_URL", "").strip()
    endpoint = os.environ.get("HF_ENDPOINT", "").strip().rstrip("/")
    if not url and endpoint:
        url = f"{endpoint}/{HF_REPO}/resolve/main"
    return (url or DEFAULT_BASE_URL).rstrip("/")


def _offline() -> bool:
    """``$SV2TTS_OFFLINE`` or ``$HF_HUB_OFFLINE`` set (1/true/yes/on): never use the network."""
    return _env_flag("SV2TTS_OFFLINE") or _env_flag("HF_HUB_OFFLINE")


def hf_cache_path(name: str) -> Path | None:
    """The checkpoint of ``name`` in an existing Hugging Face cache (downloaded there by
    huggingface_hub from ``CorentinJ/SV2TTS``), if present with the expected size: used instead
    of downloading it again. The cache is ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
    ``~/.cache/huggingface/hub``; ``refs/main``'s snapshot first, then any other."""
    model = get_model(name)
    hub = os.environ.get("HF_HUB_CACHE") or (os.path.join(os.environ["HF_HOME"], "hub") if os.environ.get("HF_HOME")
                                             else Path.home() / ".cache" / "huggingface" / "hub")
    repo = Path(hub).expanduser() / ("models--" + HF_REPO.replace("/", "--"))
    try:
        main = (repo / "refs" / "main").read_text(encoding="ascii").strip()
    except (OSError, ValueError):
        main = None
    candidates = [repo / "snapshots" / main / model.filename] if main and "/" not in main else []
    try:
        candidates += sorted(repo.glob(f"snapshots/*/{glob.escape(model.filename)}"))
    except OSError:
        pass
    return next((c for c in candidates if _size_ok(c, model)), None)


def base_url() -> str:
    """``$SV2TTS_MODEL_URL`` or ``DEFAULT_BASE_URL``, without a trailing slash.

    DownloadError when ``$SV2TTS_MODEL_URL`` is not an http(s):// or file:// URL."""
    url = _raw_base_url()
    source = "SV2TTS_MODEL_URL" if os.environ.get("SV2TTS_MODEL_URL", "").strip() else "HF_ENDPOINT"
    try:
        scheme = urllib.parse.urlsplit(url).scheme.lower()
    except ValueError as e:  # e.g. an unclosed IPv6 bracket
        raise DownloadError(f"{source}={url!r}: not a URL ({e})") from None
    if scheme not in ("http", "https", "file"):
        raise DownloadError(f"{source}={url!r}: not an http(s):// or file:// URL")
    return url


def model_url(name: str) -> str:
    """URL the checkpoint of ``name`` is downloaded from."""
    return f"{base_url()}/{urllib.parse.quote(get_model(name).filename)}"


def _display_url(model: ModelFile) -> str:
    return f"{_raw_base_url()}/{urllib.parse.quote(model.filename)}"


def _part_path(path: Path) -> Path:
    return path.with_name(path.name + ".part")


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _lock_path(path: Path) -> Path:
    return path.with_name("." + path.name + ".lock")


# --------------------------------------------------------------------------- public API


def download_model(
    name: str,
    *,
    progress: bool | None = None,
    timeout: float = 30.0,
    force: bool = False,
    retries: int = 0,
) -> Path:
    """Fetch the checkpoint of ``name`` into the cache and return its path.

    A file already in place with the expected size is kept (no network) unless ``force``.
    ``progress``: tqdm bar on stderr; None shows it only when stderr is a terminal.
    ``timeout``: seconds of network silence before giving up. ``retries``: how many times an
    interrupted transfer is resumed within this call (0: raise and keep the ``.part``).
    Raises DownloadError (one line: file, URL, expected vs got) on any failure.
    """
    model = get_model(name)
    path = model_cache_dir() / model.filename
    if not force and _size_ok(path, model):
        return path
    if not force and (shared := hf_cache_path(name)) is not None:
        log.info("%s: using the copy in the Hugging Face cache, %s", model.filename, shared)
        return shared
    if _offline():
        raise DownloadError(f"{model.filename}: downloads are disabled by SV2TTS_OFFLINE / HF_HUB_OFFLINE; unset "
                            f"it to download {_display_url(model)}")
    url = model_url(name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"{path.parent}: cannot create the model cache folder ({e.strerror or e})") from None
    with _locked(path):
        if not force and _size_ok(path, model):  # another thread/process finished it meanwhile
            return path
        show = show_progress(progress)
        for attempt in range(max(0, int(retries)) + 1):
            try:
                _fetch(model, url, path, show=show, timeout=timeout)
                return path
            except _Interrupted as e:
                if attempt >= retries:
                    raise DownloadError(str(e)) from None
                log.warning("%s; resuming", e)
    return path  # pragma: no cover - the loop always returns or raises


def ensure_model(
    name: str,
    *,
    download_missing: bool | None = None,
    progress: bool | None = None,
    timeout: float = 30.0,
) -> Path:
    """Path of the cached checkpoint of ``name``, downloading it first when missing.

    ``download_missing``: None means yes unless ``$SV2TTS_OFFLINE`` or ``$HF_HUB_OFFLINE`` is
    set (1/true/yes/on). A copy in a Hugging Face cache is used in place (``hf_cache_path``).
    A file in the cache with the wrong size counts as missing (as in RTVC).
    Raises ModelNotFoundError (ModelUnavailableError when the download failed) whose one-line
    message names the missing file, the folder and URL for a manual download, and the command.
    """
    return ensure_models([name], download_missing=download_missing, progress=progress, timeout=timeout)[name]


def ensure_models(
    names: Iterable[str] | None = None,
    *,
    download_missing: bool | None = None,
    progress: bool | None = None,
    timeout: float = 30.0,
) -> dict[str, Path]:
    """:func:`ensure_model` for several models (default: all of ``MODELS``): ``{name: path}``.

    Tries every missing model, then raises one error listing all that are still missing.
    """
    names = list(MODELS) if names is None else list(names)
    models = [get_model(n) for n in names]
    if download_missing is None:
        download_missing = not _offline()
    paths: dict[str, Path] = {}
    missing: list[ModelFile] = []
    causes: list[str] = []
    unreachable = False
    for model in models:
        path = model_cache_dir() / model.filename
        if _size_ok(path, model) or (path := hf_cache_path(model.name)) is not None:
            paths[model.name] = path
            continue
        if download_missing and not unreachable:  # one unreachable server is enough to know
            try:
                paths[model.name] = download_model(model.name, progress=progress, timeout=timeout)
                continue
            except DownloadError as e:
                causes.append(str(e))
                unreachable = isinstance(e, _Unreachable)
        missing.append(model)
    if missing:
        msg = _missing_message(missing, causes, download_missing)
        raise (ModelUnavailableError if causes else ModelNotFoundError)(msg)
    return paths


def list_models(*, rehash: bool = False) -> list[ModelStatus]:
    """Status of every model of ``MODELS`` in the cache (nothing is downloaded or written).

    ``rehash``: recompute each file's sha256 (~1 s per 370 MB) instead of trusting the record
    written at download time while the file's size and mtime are unchanged.
    """
    out = []
    for model in MODELS.values():
        path = model_cache_dir() / model.filename
        if not path.is_file():
            path = hf_cache_path(model.name) or path
        out.append(_status(model, path, _display_url(model), rehash))
    return out


# --------------------------------------------------------------------------- status


def _size_ok(path: Path, model: ModelFile) -> bool:
    try:
        if not path.is_file():
            return False
        return model.size is None or path.stat().st_size == model.size
    except OSError:
        return False


def _status(model: ModelFile, path: Path, url: str, rehash: bool) -> ModelStatus:
    part = _part_path(path)
    partial = part.stat().st_size if part.is_file() else None
    fields = dict(name=model.name, filename=model.filename, path=path, url=url,
                  expected_size=model.size, partial_size=partial)
    if not path.is_file():
        detail = "missing"
        if partial is not None:
            detail += f"; partial download {partial:,}" + (f" of {model.size:,}" if model.size else "") + " bytes"
        detail += f"; run `{DOWNLOAD_COMMAND}`"
        return ModelStatus(present=False, size=None, verified=None, sha256=None, detail=detail, **fields)
    st = path.stat()
    fields.update(present=True, size=st.st_size)
    if model.size is not None and st.st_size != model.size:
        return ModelStatus(verified=False, sha256=None, detail=f"wrong size: {st.st_size:,} bytes, "
                           f"expected {model.size:,}", **fields)
    record = _read_record(path) or {}
    recorded = record.get("sha256")
    checked = record.get("checked_against")
    fresh = bool(record) and record.get("size") == st.st_size and record.get("mtime_ns") == st.st_mtime_ns
    actual = sha256_file(path).hexdigest() if rehash else (recorded if fresh else None)

    def status(verified: bool | None, detail: str) -> ModelStatus:
        return ModelStatus(verified=verified, sha256=actual, detail=detail, **fields)

    if actual is None:
        if record:
            return status(None, "size ok; file changed since download, cannot tell (list with rehash to check)")
        return status(None, "size ok; no download record (placed by hand?)")
    if model.sha256:
        if actual == model.sha256.lower():
            return status(True, "sha256 matches the known hash")
        return status(False, f"wrong content: sha256 {actual[:12]}..., expected {model.sha256[:12]}...")
    if recorded and actual != recorded:
        if checked:
            return status(False, f"content changed since download: sha256 {actual[:12]}..., "
                                 f"verified {recorded[:12]}...")
        return status(None, "size ok; content differs from the download record")
    if recorded and checked:
        return status(True, f"sha256 verified against {checked}")
    if recorded:
        return status(None, "size ok; the server stated no sha256 to check against")
    return status(None, "size ok; no download record (placed by hand?)")


def _read_record(path: Path) -> dict | None:
    try:
        data = json.loads(_record_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_record(path: Path, record: dict) -> None:
    target = _record_path(path)
    try:
        write_bytes_atomic(target, (json.dumps(record, indent=1) + "\n").encode("utf-8"))
    except (OSError, InputError) as e:  # the model itself is in place; only "verified" is lost
        log.warning("%s: cannot write download record (%s)", target, e)


def _missing_message(missing: list[ModelFile], causes: list[str], tried: bool) -> str:
    folder = model_cache_dir()
    if len(missing) == 1:
        m = missing[0]
        path = folder / m.filename
        what = f"{m.name} model not found: {path} is missing"
        if path.is_file():  # the same words as `sv2tts models list`
            what = (f"{m.name} model unusable: {path} has the wrong size ({path.stat().st_size:,} bytes, "
                    f"expected {m.size:,})")
        where = (f"download {_display_url(m)}" + (f" ({m.size:,} bytes)" if m.size else "")
                 + f" and put it in {folder} as {m.filename}")
    else:
        what = f"models not found in {folder}: " + ", ".join(m.filename for m in missing)
        where = f"download them from {_raw_base_url()}/<file name> and put them in {folder}"
    why = f" and could not be downloaded ({'; '.join(causes)})" if causes else (
        " (downloads disabled)" if not tried else "")
    options = "/".join(f"--{m.name}" for m in missing)
    return (f"{what}{why}; {where}, or give the file's path ({options} PATH on the command line, "
            f"{missing[0].name}=PATH in Python), or run `{DOWNLOAD_COMMAND}` where the network is reachable")


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


# --------------------------------------------------------------------------- locking

_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an in-process lock and, where fcntl exists, an flock on ``.<file>.lock``."""
    key = str(path.resolve())
    with _thread_locks_guard:
        lock = _thread_locks.setdefault(key, threading.Lock())
    with lock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: threads only
            yield
            return
        try:
            fd = os.open(_lock_path(path), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise DownloadError(f"{path.parent}: cannot write to the model cache folder ({e.strerror or e})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock


# --------------------------------------------------------------------------- transfer


class _Interrupted(Exception):
    """Transfer cut before the end; the .part is kept for a resume."""


class _Unreachable(DownloadError):
    """The server could not be reached at all (refused, DNS, timeout): the network is down."""


class _RecordingRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects like urllib and keeps the headers of every redirect response
    (Hugging Face states the LFS sha256 and size on the redirect from /resolve/)."""

    def __init__(self) -> None:
        super().__init__()
        self.hops: list[tuple[str, http.client.HTTPMessage]] = []

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        self.hops.append((req.full_url, headers))
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def _stated_hashes(url: str, hops: list, final_url: str, final_headers) -> list[tuple[str, str]]:
    """``[(sha256 hex, where it was stated)]`` from the response headers (see module doc)."""
    host = urllib.parse.urlsplit(url).netloc
    found: list[tuple[str, str]] = []
    for hop_url, headers in [*hops, (final_url, final_headers)]:
        if headers is None:
            continue
        same_host = urllib.parse.urlsplit(hop_url).netloc == host
        value = headers.get("X-Checksum-Sha256")
        if value:
            digest = _parse_sha256(value)
            if digest:
                found.append((digest, "X-Checksum-Sha256"))
        value = headers.get("X-Linked-ETag")
        if value and _HEX64.match(value.strip().strip('"')):
            found.append((value.strip().strip('"').lower(), "X-Linked-ETag"))
        value = headers.get("ETag")
        if same_host and value and not value.startswith("W/") and _HEX64.match(value.strip().strip('"')):
            found.append((value.strip().strip('"').lower(), "ETag"))
    return found


def _parse_sha256(value: str) -> str | None:
    value = value.strip().strip('"')
    if value.lower().startswith("sha-256="):
        value = value[8:]
    if _HEX64.match(value):
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 32 else None


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """``bytes START-END/TOTAL`` or ``bytes */TOTAL`` -> (start, total); None where absent."""
    m = re.match(r"^\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*$", value or "")
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return start, total


def _int_header(headers, name: str) -> int | None:
    value = headers.get(name) if headers is not None else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _fail(part: Path, message: str) -> DownloadError:
    with contextlib.suppress(OSError):
        part.unlink()
    return DownloadError(message)


def _fetch(model: ModelFile, url: str, path: Path, *, show: bool, timeout: float) -> None:
    """One download attempt into ``<path>.part``, then checks and atomic rename."""
    part = _part_path(path)
    for _ in range(3):  # a restart from zero (bad part) costs one more request
        if part.is_symlink() or (part.exists() and not part.is_file()):
            part.unlink()  # never write through a planted link or into a special file
        offset = part.stat().st_size if part.is_file() else 0
        if model.size is not None and offset > model.size:
            part.unlink()
            offset = 0
        redirects = _RecordingRedirects()
        opener = urllib.request.build_opener(redirects)
        request = urllib.request.Request(url, headers={
            "User-Agent": "sv2tts (model download)", "Accept-Encoding": "identity"})
        if offset:
            request.add_header("Range", f"bytes={offset}-")
        log.debug("GET %s%s", url, f" (Range: bytes={offset}-)" if offset else "")
        try:
            response = opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as e:
            e.close()
            log.debug("%s: HTTP %d %s after redirects %s; headers %s", e.geturl() or url, e.code, e.reason,
                      [u for u, _ in redirects.hops], dict(e.headers or {}))
            if e.code == 416 and offset:
                _, total = _parse_content_range(e.headers.get("Content-Range"))
                if offset == (model.size if model.size is not None else total):
                    log.info("%s: the partial download is complete", part)
                    hashes = _stated_hashes(url, redirects.hops, e.geturl() or url, e.headers)
                    _finish(model, url, path, sha256_file(part), hashes)
                    return
                log.info("%s: the server refused the resume (416); restarting", part)
                part.unlink()
                continue
            reason = " ".join(str(e.reason).split())  # urllib's redirect-loop reason spans lines
            raise DownloadError(f"{url}: HTTP {e.code} {reason} while downloading {model.filename}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            log.debug("%s: no answer: %r", url, e)
            raise _Unreachable(f"cannot reach {url} ({reason})") from None
        with response:
            status = response.status or 200  # file:// answers None
            headers = response.headers
            hashes = _stated_hashes(url, redirects.hops, response.geturl() or url, headers)
            length = _int_header(headers, "Content-Length")
            log.debug("%s: HTTP %d, Content-Length %s, Content-Range %s, redirects %s", response.geturl() or url,
                      status, length, headers.get("Content-Range"), [u for u, _ in redirects.hops])
            if status == 206:
                start, total = _parse_content_range(headers.get("Content-Range"))
                if start != offset:
                    log.info("%s: the server resumed at %s, not %d; restarting", part, start, offset)
                    part.unlink()
                    continue
            else:
                if offset:
                    log.info("%s: the server ignored the Range request; restarting from zero", part)
                offset, total = 0, length
            if total is None:  # Hugging Face states the size on the redirect
                for _, hop in redirects.hops:
                    total = total or _int_header(hop, "X-Linked-Size")
            expected = model.size if model.size is not None else total
            if model.size is not None and total is not None and total != model.size:
                raise _fail(part, f"{model.filename} from {url}: the server has {total:,} bytes, "
                                  f"expected {model.size:,}")
            hasher = sha256_file(part, limit=offset) if offset else hashlib.sha256()
            _stream(response, part, offset, hasher, expected, length, url, model, show)
        _finish(model, url, path, hasher, hashes)
        return
    raise DownloadError(f"{url}: cannot resume or restart the download of {model.filename}")


def _stream(response, part: Path, offset: int, hasher, expected: int | None, length: int | None,
            url: str, model: ModelFile, show: bool) -> None:
    """Append the response body to ``part`` (truncated to ``offset``), hashing as it goes."""
    from tqdm import tqdm

    received, overflow, error = 0, False, None
    flags = (os.O_RDWR if offset else os.O_WRONLY | os.O_CREAT | os.O_TRUNC) | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(part, flags, 0o666), "r+b" if offset else "wb") as f, tqdm(
        total=expected, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
        desc=model.filename, disable=not show, file=sys.stderr,
    ) as bar:
        f.seek(offset)
        f.truncate()
        window_start, window_bytes = time.monotonic(), 0
        while True:
            try:
                block = response.read1(_CHUNK)  # what has arrived, up to _CHUNK: it reaches the disk
            except (OSError, http.client.HTTPException) as e:  # reset, timeout, bad chunk
                error = str(e) or type(e).__name__
                break
            if not block:
                break
            window_bytes += len(block)
            if time.monotonic() - window_start >= _SLOW_WINDOW:
                if window_bytes < _SLOW_RATE * _SLOW_WINDOW:
                    error = f"slower than {_SLOW_RATE:,} bytes/s for {_SLOW_WINDOW:g} s"
                    f.write(block)
                    hasher.update(block)
                    received += len(block)
                    break
                window_start, window_bytes = time.monotonic(), 0
            if expected is not None and offset + received + len(block) > expected:
                overflow = True
                break
            f.write(block)  # an OSError here (a full disk) is not the network's: it propagates
            hasher.update(block)
            received += len(block)
            bar.update(len(block))
        f.flush()
        os.fsync(f.fileno())
    if overflow:
        raise _fail(part, f"{model.filename} from {url}: the server sent more than the expected "
                          f"{expected:,} bytes")
    if error is not None or (length is not None and received < length):
        of = f" of {offset + length:,}" if length is not None else ""
        why = f" ({error})" if error else ""
        raise _Interrupted(f"download of {model.filename} from {url} interrupted at "
                           f"{offset + received:,}{of} bytes{why}; run again to resume")
    size = offset + received
    if expected is not None and size != expected:
        raise _fail(part, f"{model.filename} from {url}: got {size:,} bytes, expected {expected:,}")


def _finish(model: ModelFile, url: str, path: Path, hasher, hashes: list[tuple[str, str]]) -> None:
    """Check the sha256 against every stated hash, then move the part into place."""
    part = _part_path(path)
    digest = hasher.hexdigest()
    if model.sha256:
        hashes = [(model.sha256.lower(), "MODELS"), *hashes]
    for want, source in hashes:
        if digest != want:
            raise _fail(part, f"{model.filename} from {url}: sha256 {digest} does not match "
                              f"{want} stated by {source}")
    os.replace(part, path)
    st = path.stat()
    _write_record(path, {
        "file": model.filename, "url": url, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
        "sha256": digest, "checked_against": hashes[0][1] if hashes else None,
        "downloaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    log.info("%s: downloaded (%d bytes, sha256 %s%s)", path, st.st_size, digest,
             f", verified against {hashes[0][1]}" if hashes else "")


__all__ = [
    "DEFAULT_BASE_URL", "DOWNLOAD_COMMAND", "MODELS", "ModelFile", "ModelStatus", "ModelUnavailableError",
    "base_url", "download_model", "ensure_model", "ensure_models", "get_model", "list_models", "model_cache_dir",
    "model_path", "model_url",
]
