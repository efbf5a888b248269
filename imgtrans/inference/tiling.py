"""Translating images larger than a tile: overlapping tiles, blended with a smooth window.

An image is covered by square tiles of ``tile`` pixels that overlap by at least ``overlap``
pixels (:func:`tile_starts`; the last tile ends exactly at the image edge, the starts are spread
evenly).  Each tile is translated on its own and the results are averaged with weights from a
smooth window (:func:`blend_window`): across the ``overlap`` pixels at each tile edge the weight
is 0 over the outer quarter (where the tile's own border effects - padding, missing context -
live), rises along a raised cosine over the middle half, and is 1 over the inner quarter and the
rest of the tile.  The ramps of two neighbours are complementary (they sum to exactly 1 when the
tiles overlap by exactly ``overlap``), so the blend is smooth and no seam shows.  Sides of a tile
that lie on the image border are not ramped (nothing is blended there), and the weights never go
below :data:`WEIGHT_FLOOR` so every pixel is well defined.  The weighted sum is divided by the sum
of the weights, so the weights always normalise to 1: wherever the network is
translation-equivariant (for a strided network: tile offsets that are multiples of its stride) and
its receptive-field radius is at most ``overlap // 4``, the result equals the untiled translation
up to float rounding (at most :data:`WEIGHT_FLOOR` x 255 grey levels per wrong tile).

**Memory is bounded by the tile, not the image.**  Tiles are converted to float only when they
are processed, in raster order, ``batch_size`` at a time.  The float accumulators (a weighted sum,
channels x rows x W, and a weight map, rows x W) only hold the row-band of tiles in flight: as soon
as every tile covering a row has been added, the row is finalised into the uint8 output and its
float storage is reused.  For an 8192x8192 RGB image with 1024-pixel tiles the accumulators take
about 130 MB (plus the 200 MB uint8 input and 200 MB output the caller holds, and the network's
activations for one batch of tiles).

**Defaults.**  :data:`DEFAULT_TILE` = 1024 and :data:`DEFAULT_OVERLAP` = 128 (what the CLI's
``--tile`` / ``--tile-overlap`` should default to): 1024 is a multiple of U-Net-256's stride of
256 (no padding inside a tile) and keeps one tile's activations of the full-size U-Net-256 well
under 1 GB; 128 pixels of overlap (1/8 of the tile, ~28% extra work at 8192 px) hides the seams.
No overlap can make a U-Net-256's output equal to the untiled one (its receptive field is the
whole 256-pixel block and more), only seamless.  Tiles need not start at multiples of the
network's stride: the caller's ``run`` pads each tile as it would a whole image.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from ..data.images import batch_from_pixels, eight_bit_levels
from ..util.errors import ConfigError

#: default tile size (pixels) for large images
DEFAULT_TILE = 1024
#: default overlap (pixels) between neighbouring tiles
DEFAULT_OVERLAP = 128
#: smallest blend weight, so that every pixel has a positive total weight
WEIGHT_FLOOR = 1e-4


def _whole(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check(tile: int, overlap: int) -> None:
    if not _whole(tile) or tile < 1:
        raise ConfigError(f"the tile size must be a whole number of pixels >= 1, not {tile!r}")
    if not _whole(overlap) or not 0 <= overlap < tile:
        raise ConfigError(f"the tile overlap must be a whole number of pixels from 0 to tile - 1 "
                          f"({tile - 1}), not {overlap!r}")


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``[0, length)``, neighbours overlapping by at
    least ``overlap``; the first starts at 0, the last ends exactly at ``length``, the others are
    spread evenly between.  ``length <= tile`` gives ``[0]`` (one tile, clipped to the image)."""
    _check(tile, overlap)
    if length <= tile:
        return [0]
    n = math.ceil((length - overlap) / (tile - overlap))  # fewest tiles with step <= tile - overlap
    span = length - tile
    # consecutive differences of round(i * span / (n - 1)) are at most ceil(span / (n - 1)) <= tile - overlap
    return [(i * span * 2 + (n - 1)) // (2 * (n - 1)) for i in range(n)]


def ramp(overlap: int) -> np.ndarray:
    """The rising edge of the window: ``overlap`` float64 weights from 0 to 1.

    0 over the outer quarter (``overlap // 4`` pixels, where a tile's own border effects live),
    a raised cosine over the middle, 1 over the inner quarter.  ``r[i] + r[overlap - 1 - i] == 1``,
    so two tiles overlapping by exactly ``overlap`` pixels have weights summing to 1 there, and in
    general every pixel's weights sum to at least 1."""
    margin = overlap // 4
    width = overlap - 2 * margin
    r = np.zeros(overlap, dtype=np.float64)
    i = np.arange(width, dtype=np.float64)
    r[margin:margin + width] = 0.5 - 0.5 * np.cos(np.pi * (i + 0.5) / width)
    r[margin + width:] = 1.0
    return r


def _window_1d(length: int, overlap: int, ramp_start: bool = True, ramp_end: bool = True) -> np.ndarray:
    w = np.ones(length, dtype=np.float64)
    ov = min(overlap, length)
    if ov:
        r = ramp(ov)
        if ramp_start:
            w[:ov] = np.minimum(w[:ov], r)
        if ramp_end:
            w[length - ov:] = np.minimum(w[length - ov:], r[::-1])
    return w


def _window_2d(wy: np.ndarray, wx: np.ndarray) -> torch.Tensor:
    w = torch.outer(torch.from_numpy(wy.astype(np.float32)), torch.from_numpy(wx.astype(np.float32)))
    return w.clamp_(min=WEIGHT_FLOOR)


def blend_window(tile: int, overlap: int) -> torch.Tensor:
    """``(tile, tile)`` float32 blend weights: 1 inside, rising from 0 to 1 across the ``overlap``
    pixels at each edge (:func:`ramp`: raised cosine over the middle half), never below
    :data:`WEIGHT_FLOOR`.  Symmetric; two tiles overlapping by exactly ``overlap`` sum to 1."""
    _check(tile, overlap)
    w = _window_1d(tile, overlap)
    return _window_2d(w, w)


class _Bands:
    """Float accumulators for the rows in flight, finalised to the uint8 output band by band."""

    def __init__(self, out: np.ndarray):
        self.out = out
        self.base = 0  # first row not yet finalised
        _, width, channels = out.shape
        self.acc = torch.zeros(channels, 0, width)
        self.wsum = torch.zeros(0, width)
        self.peak_bytes = 0

    def add(self, y: int, x: int, values: torch.Tensor, weights: torch.Tensor) -> None:
        """Add ``values`` (C, h, w) with ``weights`` (h, w) at rows ``y..``, columns ``x..``."""
        h, w = weights.shape
        top, bottom = y - self.base, y - self.base + h
        if bottom > self.wsum.shape[0]:  # grow (only until the largest band in flight fits)
            acc = torch.zeros(self.acc.shape[0], bottom, self.acc.shape[2])
            wsum = torch.zeros(bottom, self.wsum.shape[1])
            acc[:, :self.acc.shape[1]] = self.acc
            wsum[:self.wsum.shape[0]] = self.wsum
            self.acc, self.wsum = acc, wsum
            self.peak_bytes = max(self.peak_bytes, (acc.numel() + wsum.numel()) * 4)
        self.acc[:, top:bottom, x:x + w].addcmul_(values, weights)
        self.wsum[top:bottom, x:x + w] += weights

    def finalise(self, upto: int) -> None:
        """Rows ``base..upto`` are complete: write them to the output and drop them."""
        n = upto - self.base
        if n <= 0:
            return
        band = self.acc[:, :n] / self.wsum[:n]
        pixels = eight_bit_levels(band).to(torch.uint8)
        self.out[self.base:upto] = pixels.permute(1, 2, 0).numpy()
        keep = self.wsum.shape[0] - n
        self.acc[:, :keep] = self.acc[:, n:].clone()
        self.wsum[:keep] = self.wsum[n:].clone()
        self.acc[:, keep:].zero_()
        self.wsum[keep:].zero_()
        self.base = upto


def translate_tiled(run: Callable[[torch.Tensor], torch.Tensor], pixels: np.ndarray, *, tile: int = DEFAULT_TILE,
                    overlap: int = DEFAULT_OVERLAP, out_channels: int, batch_size: int = 1,
                    stats: dict | None = None) -> np.ndarray:
    """Translate ``pixels`` (``H x W x C`` uint8, the whole image) tile by tile; returns
    ``H x W x out_channels`` uint8.

    ``run`` maps a float batch ``(N, C, h, w)`` in [-1, 1] to ``(N, out_channels, h, w)`` in [-1, 1];
    it handles padding to the network's stride, precision and normalisation mode.  Tiles are
    ``tile x tile`` (clipped to the image where it is smaller than a tile in one dimension, so all
    tiles of one image share a size) and are passed ``batch_size`` at a time, in raster order.

    ``stats``, if given, is filled with ``tiles``, ``batches``, ``tile_shape`` and ``peak_buffer_bytes``
    (the largest size of the float accumulators, which is bounded by the tile, not the image).
    """
    _check(tile, overlap)
    if not _whole(batch_size) or batch_size < 1:
        raise ConfigError(f"the batch size must be a whole number >= 1, not {batch_size!r}")
    if not _whole(out_channels) or out_channels < 1:
        raise ValueError(f"out_channels must be a whole number >= 1, not {out_channels!r}")
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"pixels must be an H x W x C uint8 array, not {pixels.dtype} {pixels.shape}")
    height, width, _ = pixels.shape
    ys, xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    th, tw = min(tile, height), min(tile, width)
    # one weight row/column per position: ramps only on sides facing a neighbouring tile
    wy = [_window_1d(th, overlap, i > 0, i < len(ys) - 1) for i in range(len(ys))]
    wx = [_window_1d(tw, overlap, j > 0, j < len(xs) - 1) for j in range(len(xs))]

    out = np.empty((height, width, out_channels), dtype=np.uint8)
    bands = _Bands(out)
    positions = [(i, j) for i in range(len(ys)) for j in range(len(xs))]
    batches = 0
    with torch.inference_mode():
        for start in range(0, len(positions), batch_size):
            chunk = positions[start:start + batch_size]
            batch = torch.from_numpy(np.stack([pixels[ys[i]:ys[i] + th, xs[j]:xs[j] + tw] for i, j in chunk]))
            batch = batch_from_pixels(batch)
            result = run(batch)
            expected = (len(chunk), out_channels, th, tw)
            if tuple(result.shape) != expected:
                raise ValueError(f"run() returned shape {tuple(result.shape)} for a batch of {tuple(batch.shape)}; "
                                 f"expected {expected}")
            result = result.detach().to("cpu", torch.float32)
            del batch
            batches += 1
            for (i, j), values in zip(chunk, result):
                bands.add(ys[i], xs[j], values, _window_2d(wy[i], wx[j]))
                if j == len(xs) - 1:  # a row of tiles is complete: rows above the next row's start are final
                    bands.finalise(ys[i + 1] if i + 1 < len(ys) else height)
            del result
    if stats is not None:
        stats.update(tiles=len(positions), batches=batches, tile_shape=(th, tw), peak_buffer_bytes=bands.peak_bytes)
    return out
