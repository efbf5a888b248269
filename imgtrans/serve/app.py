"""The HTTP application: ``create_app(models)`` returns a FastAPI app (serve it with any ASGI server).

Every request that cannot be served is answered with a 4xx/5xx status and a JSON body
``{"detail": "one line naming the problem"}``; the server keeps serving.  Memory is bounded: at
most ``4 x queue_size`` bodies are being received at once, each of at most ``max_body`` bytes and
within ``body_timeout`` seconds (else 408), and at most ``queue_size`` received requests are inside
the server (decoding, waiting, translating, encoding), each with an image of at most ``max_pixels``
pixels; a request beyond either bound is answered 503 with ``Retry-After`` straight away.  A body is
received before its request takes a queue slot, so clients that drip their uploads cannot starve
the others.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import threading
from collections.abc import Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from ..data.images import decode_image, encode_image
from ..inference.engine import check_padded_work
from ..util.errors import DataError, ImgtransError, PixelLimitError
from ..util.version import __version__
from .batcher import Batcher
from .models import ServedModel

PAGE = Path(__file__).with_name("page.html")
LOG = logging.getLogger("imgtrans.serve")
RETRY_AFTER_S = 1


@dataclass(frozen=True)
class ServeSettings:
    """Limits and batching of a server (the ``imgtrans serve`` options of the same names)."""

    queue_size: int = 32                 # translate requests inside the server at once; more get 503
    max_body: int = 32 * 1024 * 1024     # bytes of one request body; more get 413
    max_pixels: int = 1 << 24            # pixels of one image (16.7 M, e.g. 4096 x 4096); more get 413
    batch_wait_ms: float = 5.0           # how long the first request of a batch waits for company
    max_batch: int | None = None         # images per forward pass; None: translate's auto batch size
    tile: int = 1024                     # images with a larger side are translated in tiles, as translate
    tile_overlap: int = 128
    body_timeout: float = 30.0           # seconds to receive a whole body (before it takes a queue slot); else 408


class Admission:
    """A counter of requests inside the server, refusing the one above ``capacity``."""

    def __init__(self, capacity: int):
        self.capacity, self.inside, self._lock = capacity, 0, threading.Lock()

    def enter(self) -> bool:
        with self._lock:
            if self.inside >= self.capacity:
                return False
            self.inside += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.inside -= 1


def create_app(models: Mapping[str, ServedModel], *, token: str | None = None,
               settings: ServeSettings = ServeSettings()) -> FastAPI:
    """An app serving ``models`` (from :func:`imgtrans.serve.models.load_served`).  With ``token``,
    every ``/v1`` call needs ``Authorization: Bearer TOKEN``; the page, ``/healthz`` and the API
    description (``/docs``, ``/openapi.json``) do not (they reveal no model and run nothing)."""
    if not models:
        raise ImgtransError("no model to serve")
    if settings.queue_size < 1:
        raise ImgtransError(f"--queue-size must be at least 1, not {settings.queue_size}")
    if settings.max_batch is not None and settings.max_batch < 1:
        raise ImgtransError(f"--max-batch must be at least 1, not {settings.max_batch}")

    def run_batch(key, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        name, direction, (h, w, _) = key
        runner = models[name].directions[direction]
        if settings.tile and max(h, w) > settings.tile:
            return [runner.translate_tiled(images[0], settings.tile, settings.tile_overlap)]
        return runner.translate(images)

    def batch_limit(key) -> int:
        name, direction, (h, w, _) = key
        if settings.tile and max(h, w) > settings.tile:
            return 1
        auto = models[name].directions[direction].batch_limit(h, w)
        return auto if settings.max_batch is None else min(auto, settings.max_batch)

    batcher = Batcher(run_batch, batch_limit, settings.batch_wait_ms / 1000)
    admission = Admission(settings.queue_size)
    uploads = Admission(4 * settings.queue_size)  # bodies being received, each under body_timeout

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        batcher.close(timeout=30)

    app = FastAPI(title="imgtrans", version=__version__, lifespan=lifespan,
                  description="Image-to-image translation over HTTP: POST an image, get its translation as PNG.")
    app.state.models, app.state.batcher, app.state.admission, app.state.settings = models, batcher, admission, settings

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    @app.get("/healthz", summary="200 once the models are loaded (they are loaded before the server starts)")
    def healthz() -> dict:
        return {"status": "ok"}

    api = APIRouter(prefix="/v1", dependencies=[Depends(_bearer(token))])

    @api.get("/models", summary="The models served, their directions and channels")
    def list_models() -> dict:
        return {"models": [m.describe() for m in models.values()]}

    @api.post("/translate", summary="Translate one image (the raw file bytes as the body); answers image/png",
              response_class=Response,
              responses={200: {"content": {"image/png": {}}, "description": "the translation, at the input's size"}},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
    async def translate(request: Request,
                        model: str | None = Query(None, description="a name from /v1/models (optional when one model is served)"),
                        direction: str | None = Query(None, description="AtoB or BtoA [the model's default]")) -> Response:
        served = _find(models, model)
        try:
            runner = served.direction(direction)
        except ImgtransError as exc:
            raise HTTPException(400, str(exc)) from None
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/"):  # curl -F: a form around the file (any other type is ignored)
            raise HTTPException(415, f"send the image file itself as the body, not a form ({content_type.split(';')[0]}): "
                                     "curl --data-binary @photo.jpg")
        # the body first, under a deadline: a client dripping its upload holds no queue slot
        if not uploads.enter():
            raise HTTPException(503, f"busy: {uploads.capacity} uploads are arriving; retry in {RETRY_AFTER_S} s",
                                headers={"Retry-After": str(RETRY_AFTER_S)})
        try:
            body = await _read_body(request, settings.max_body, settings.body_timeout)
        finally:
            uploads.leave()
        if not admission.enter():
            raise HTTPException(503, f"busy: {admission.capacity} requests are queued; retry in {RETRY_AFTER_S} s",
                                headers={"Retry-After": str(RETRY_AFTER_S)})
        try:
            pixels = await run_in_threadpool(_decode, body, runner.model.in_channels, settings.max_pixels,
                                             runner.model.stride)
            out = await _wrap(batcher.submit((served.name, runner.model.direction, pixels.shape), pixels))
            png = await run_in_threadpool(encode_image, out, "png")
        finally:
            admission.leave()
        return Response(png, media_type="image/png",
                        headers={"X-Imgtrans-Model": served.name, "X-Imgtrans-Direction": runner.model.direction})

    app.include_router(api)
    return app


def _bearer(token: str | None):
    expected = None if token is None else token.encode()

    async def check(request: Request) -> None:
        if expected is None:
            return
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), expected):
            raise HTTPException(401, "this server needs a token: send the header 'Authorization: Bearer TOKEN'",
                                headers={"WWW-Authenticate": "Bearer"})

    return check


def _find(models: Mapping[str, ServedModel], name: str | None) -> ServedModel:
    if name is None:
        if len(models) == 1:
            return next(iter(models.values()))
        raise HTTPException(400, f"say which model: ?model=NAME, one of {', '.join(models)}")
    if name not in models:
        raise HTTPException(404, f"unknown model {name!r}; served: {', '.join(models)}")
    return models[name]


async def _read_body(request: Request, limit: int, timeout: float = 30.0) -> bytes:
    """The body, refused (413) as soon as it is known or seen to exceed ``limit`` bytes, and (408)
    when it has not all arrived within ``timeout`` seconds.  A client that goes away while sending
    is one log line, not a traceback."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise HTTPException(413, f"the body is {int(length)} bytes; the limit is {limit}")
    chunks: list[bytes] = []

    async def receive() -> int:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"the body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
        return size

    try:
        size = await asyncio.wait_for(receive(), timeout)
    except asyncio.TimeoutError:
        raise HTTPException(408, f"the body did not arrive within {timeout:g} s; send it at once "
                                 "(curl --data-binary @photo.jpg)") from None
    except ClientDisconnect:
        client = request.client.host if request.client else "a client"
        LOG.warning("%s went away while sending its request body", client)
        raise HTTPException(400, "the client went away while sending the body") from None
    if not size:
        raise HTTPException(400, "the body is empty: send the image file's bytes (curl --data-binary @photo.jpg)")
    return b"".join(chunks)


def _decode(body: bytes, channels: int, max_pixels: int, stride: int) -> np.ndarray:
    try:
        pixels = decode_image(body, channels, name="request body", limit=max_pixels)
        check_padded_work(pixels.shape[0], pixels.shape[1], stride)  # the work is the padded size
        return pixels
    except PixelLimitError as exc:
        raise HTTPException(413, str(exc)) from None
    except DataError as exc:
        raise HTTPException(400, str(exc)) from None


async def _wrap(future):
    try:
        return await asyncio.wrap_future(future)
    except ImgtransError as exc:
        raise HTTPException(400, str(exc)) from None
    except Exception as exc:  # a failing forward pass: this request fails, the server goes on
        raise HTTPException(500, f"translation failed: {type(exc).__name__}: {exc}") from None
