"""Shared by the serve tests: tiny model files, images as bytes, and an HTTP client that shows every
status (urllib raises on 4xx/5xx) without adding headers of its own."""
from __future__ import annotations

import http.client
import io
import json
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import imgtrans
from imgtrans.core.checkpoint import save_checkpoint
from imgtrans.util.outputmarks import write_mark

#: a 5-level U-Net (stride 32), 4 filters: a forward pass of a 64x64 image takes milliseconds
NET = {"name": "unet", "num_downs": 5, "ngf": 4}


def _generator(seed: int, out_channels: int = 3) -> torch.nn.Module:
    torch.manual_seed(seed)
    gen = imgtrans.create_generator("unet", num_downs=5, ngf=4, out_channels=out_channels)
    gen.train()(torch.randn(2, 3, 64, 64))  # non-trivial running statistics
    return gen


def write_one_way(path: Path, **metadata: object) -> Path:
    meta = {"recipe": "pix2pix", "generator": NET, "in_channels": 3, "out_channels": 3, "stride": 32,
            "direction": "AtoB", "norm_stats": "running", **metadata}
    return save_checkpoint(path, {"generator": _generator(0)}, meta)


def write_run(run_dir: Path) -> Path:
    """A training run's folder as `imgtrans train` leaves it (its mark, its model file trained on the
    catalog's ``basemap`` at step 7); returns the model file."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_mark(run_dir, "train-run")
    return write_one_way(run_dir / "model.safetensors", dataset="basemap", step=7, epoch=1)


def write_two_way(path: Path) -> Path:
    """AtoB: RGB -> RGB; BtoA: RGB -> grey (so the two directions cannot be confused)."""
    entry = {"in_channels": 3, "stride": 32, "norm_stats": "running"}
    meta = {"recipe": "cyclegan", "directions": {
        "AtoB": {"network": "generator_a", "generator": NET, "out_channels": 3, **entry},
        "BtoA": {"network": "generator_b", "generator": {**NET, "out_channels": 1}, "out_channels": 1, **entry}}}
    return save_checkpoint(path, {"generator_a": _generator(1), "generator_b": _generator(2, 1)}, meta)


def image_bytes(w: int, h: int, fmt: str = "PNG", seed: int = 0) -> bytes:
    pixels = (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt)
    return buf.getvalue()


def pixels_of(data: bytes | Path) -> np.ndarray:
    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as img:
        return np.asarray(img)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


def request(base: str, method: str, path: str, body: bytes | Iterable[bytes] | None = None,
            headers: dict[str, str] | None = None, timeout: float = 60) -> Reply:
    """One request on a fresh connection; an iterable body is sent chunked (no Content-Length)."""
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        chunked = body is not None and not isinstance(body, bytes)
        conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def post_image(base: str, data: bytes, query: str = "", headers: dict[str, str] | None = None) -> Reply:
    return request(base, "POST", f"/v1/translate{'?' + query if query else ''}", data, headers)
