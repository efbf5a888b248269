"""Reading and writing images, and converting between pixels and network tensors.

Networks see float tensors in [-1, 1], channels first; files hold 8-bit pixels.

**The channel rule** (one rule, whatever the file stores):

* EXIF orientation is applied first (the image is turned upright), then:
* 16-bit images (PNG, TIFF; Pillow modes ``I;16``, ``I;16B``, ``I``) are reduced to 8 bits by range:
  ``v8 = round(v16 / 257)``, so 0 -> 0 and 65535 -> 255.  32-bit integer images (``I``) must hold
  values in 0..65535 and 32-bit float images (``F``) values in [0, 1] (scaled by 255); any other
  range is refused rather than guessed.  (A 16-bit *colour* TIFF that Pillow itself reads as 8-bit
  keeps Pillow's high byte, within 1 level of this rule.)
* **Alpha is dropped; the colour channels are kept as stored** (no compositing onto a background).
  This holds for RGBA, LA, and palette images with transparency (the palette colours are used).
* Palette images become their palette colours; CMYK becomes RGB by Pillow's conversion.
* A 3-channel model gets RGB: a greyscale source is replicated into R, G and B.
* A 1-channel model gets greyscale: a colour source is reduced to ITU-R 601 luma, exactly as
  Pillow's ``convert("L")`` does (``L = (19595 R + 38470 G + 7471 B + 32768) >> 16``).
* Multi-page files (TIFF) give their first page.

**Decoding.**  Ordinary JPEG files (greyscale / RGB, upright; not colour files for a 1-channel
model) are decoded by torchvision (libjpeg-turbo), which is faster; everything else (PNG
included: see :data:`FAST_DECODE`), and anything torchvision refuses, by Pillow.  Both give the same
pixels for the same file (within 1 grey level).  Set ``FAST_DECODE = False`` to use Pillow for
everything.  (torchvision 0.29 deprecates its image decoders in favour of TorchCodec; when they
are gone, or torchvision is missing, Pillow decodes everything, with the same results.)

**Failures.**  Every failure is a :class:`DataError` whose message names the file and the
reason (not an image, truncated, unsupported mode, too many pixels).  Truncated files are never
padded: Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` is held False while we decode.

**Decompression bombs.**  An image with more than :func:`max_pixels` pixels (width x height) is
refused before it is decoded (by either decoder).  The limit is what :func:`set_max_pixels` set in
this process, else the environment variable ``IMGTRANS_MAX_IMAGE_PIXELS`` (``0`` = no limit), else
``MAX_PIXELS`` (178,956,970: twice Pillow's warning threshold, about 13,000 x 13,000).  Pillow's own
``Image.MAX_IMAGE_PIXELS`` check is switched off while we decode, so raising ours above it works.
"""
from __future__ import annotations

import io
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ..util.errors import ConfigError, DataError, PixelLimitError
from ..util.fileio import atomic_path
from ..util.outputmarks import PNG_KEY
from .image_files import FORMATS, IMAGE_EXTENSIONS, SUFFIX_FORMATS, is_image, list_images  # noqa: F401 - public here too


#: default pixel limit: twice Pillow's DecompressionBombWarning threshold (about 13k x 13k)
MAX_PIXELS = 178_956_970
MAX_PIXELS_ENV = "IMGTRANS_MAX_IMAGE_PIXELS"
#: decode ordinary JPEG files with torchvision (libjpeg-turbo); False: Pillow only.  Never PNG: a PNG
#: whose compressed data fails its check ("IDAT: incorrect data check") crashed the process inside
#: torchvision 0.29's libpng decoder (SIGSEGV), which a served request could trigger; Pillow reports
#: it as an error (tests/test_images.py)
FAST_DECODE = True

_FAST_SUFFIXES = frozenset({".jpg", ".jpeg"})
#: Pillow format -> the modes (as Pillow reports them from the header) torchvision decodes identically
_FAST_MODES = {
    "JPEG": frozenset({"L", "RGB"}),
    "MPO": frozenset({"L", "RGB"}),  # camera JPEGs with an appended preview: the first image is plain JPEG
}
_SIXTEEN_BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_ORIENTATION = 0x0112

_max_pixels_override: int | None = None



# ----------------------------------------------------------------------------- pixel limit

def set_max_pixels(n: int | None) -> int | None:
    """Set this process's pixel limit (``0`` = no limit; ``None`` = back to the environment / default).

    Returns the previous setting, so callers can restore it.  (DataLoader workers started with
    ``spawn`` do not inherit it; the environment variable reaches them all.)
    """
    global _max_pixels_override
    if n is not None and (not isinstance(n, int) or n < 0):
        raise ConfigError(f"the pixel limit must be a whole number >= 0 (0 = no limit), not {n!r}")
    previous, _max_pixels_override = _max_pixels_override, n
    return previous


def max_pixels() -> int:
    """The pixel limit in force: :func:`set_max_pixels`, else ``$IMGTRANS_MAX_IMAGE_PIXELS``, else ``MAX_PIXELS``."""
    if _max_pixels_override is not None:
        return _max_pixels_override
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return MAX_PIXELS
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigError(f"{MAX_PIXELS_ENV} must be a whole number of pixels (0 = no limit), not {text!r}")
    return value


def _check_pixels(path: Path | str, size: tuple[int, int], limit: int | None = None) -> None:
    """Refuse more than ``limit`` pixels (default: :func:`max_pixels`, whose message says how to raise it)."""
    hint = "" if limit is not None else f"; raise it with {MAX_PIXELS_ENV} (0 = no limit)"
    limit = max_pixels() if limit is None else limit
    w, h = size
    if limit and w * h > limit:
        raise PixelLimitError(f"{path}: {w}x{h} pixels exceeds the limit of {limit} (a decompression bomb?){hint}")


_pil_lock = threading.Lock()
_pil_users = 0
_pil_saved: tuple[Any, bool] = (None, False)


@contextmanager
def _pil_settings() -> Iterator[None]:
    """While we decode: Pillow's own bomb check off (ours, on the header, replaces it, so that raising
    our limit above Pillow's works) and truncated files refused, whatever another library set.
    Reference-counted, so calls from several threads can overlap; restored by the last one out."""
    global _pil_users, _pil_saved
    with _pil_lock:
        if _pil_users == 0:
            _pil_saved = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
            Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = None, False
        _pil_users += 1
    try:
        yield
    finally:
        with _pil_lock:
            _pil_users -= 1
            if _pil_users == 0:
                Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = _pil_saved


# ----------------------------------------------------------------------------- decoding

def load_image(path: Path, channels: int = 3) -> np.ndarray:
    """Decode ``path`` to an ``H x W x channels`` uint8 array by the channel rule (module docstring).

    Raises :class:`DataError` naming the file and the reason when it cannot be used.
    """
    path = Path(path)
    fast = FAST_DECODE and path.suffix.lower() in _FAST_SUFFIXES
    return _decode(path, None if fast else path, channels, path)


def decode_image(data: bytes, channels: int = 3, name: str = "<bytes>", limit: int | None = None) -> np.ndarray:
    """:func:`load_image` for an image held in memory (an upload): the same decoders, channel rule
    and refusals, so a file and its bytes give the same pixels.  ``limit`` replaces the process's
    pixel limit (:func:`max_pixels`) for this image; too many pixels raise :class:`PixelLimitError`
    before anything is decoded.  ``name`` stands for the file in messages."""
    return _decode(data, None, channels, name, limit)


def _decode(data: Path | bytes, pil_path: Path | None, channels: int, label: Path | str,
            limit: int | None = None) -> np.ndarray:
    """Decode the bytes of ``data`` (a file read here, or bytes); ``pil_path``: let Pillow read that
    file itself (no fast path)."""
    if channels not in (1, 3):
        raise DataError(f"{label}: only 1- or 3-channel images are supported, not {channels}")
    try:
        raw = None if pil_path is not None else (data.read_bytes() if isinstance(data, Path) else data)
        with _pil_settings(), Image.open(pil_path if raw is None else io.BytesIO(raw)) as img:
            _check_pixels(label, img.size, limit)
            pixels = _decode_torchvision(raw, img, channels) if raw is not None and FAST_DECODE else None
            if pixels is None:
                pixels = _decode_pil(img, channels, label)
    except DataError:
        raise
    except UnidentifiedImageError:
        raise DataError(f"cannot read image {label}: not an image file, or a format Pillow cannot read") from None
    except Exception as exc:  # decoders raise OSError, SyntaxError, ValueError, EOFError, struct.error, ...
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason:
            reason = f"the file is truncated or incomplete ({reason})"
        elif not isinstance(exc, OSError):
            reason = f"corrupt or unsupported data ({type(exc).__name__}: {reason})"
        raise DataError(f"cannot read image {label}: {reason}") from exc
    return pixels


@lru_cache(maxsize=1)
def _torchvision_decoder() -> Any:
    try:
        from torchvision.io import ImageReadMode, decode_image
    except Exception:  # pragma: no cover - torchvision missing or broken: Pillow does everything
        return None
    return decode_image, ImageReadMode


def _orientation(img: Image.Image, loaded: bool) -> int:
    """The EXIF (or XMP) orientation, as ``ImageOps.exif_transpose`` reads it.  Before the pixels are
    loaded, a PNG without EXIF / XMP in its header counts as upright (reading on would decode it)."""
    if img.format == "PNG" and not loaded and not any(k in img.info for k in ("exif", "xmp", "XML:com.adobe.xmp")):
        return 1
    try:
        return int(img.getexif().get(_ORIENTATION, 1))
    except Exception:
        return 1


def _decode_torchvision(data: bytes, img: Image.Image, channels: int) -> np.ndarray | None:
    """The fast path, or None where it does not apply (or torchvision refuses the file)."""
    decoder = _torchvision_decoder()
    if decoder is None or img.mode not in _FAST_MODES.get(img.format or "", ()) or _orientation(img, False) != 1:
        return None
    grey_source = img.mode in ("L", "LA") or img.mode in _SIXTEEN_BIT
    if channels == 1 and not grey_source:
        return None  # luma of a colour image: Pillow's decode + convert("L") is as fast, and exact
    decode_image, mode = decoder
    try:
        with warnings.catch_warnings():  # torchvision 0.29 deprecates its decoders in favour of TorchCodec
            warnings.simplefilter("ignore", DeprecationWarning)
            t = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8),
                             mode=mode.GRAY if grey_source else mode.RGB, apply_exif_orientation=True)
    except Exception:
        return None  # Pillow decides: it decodes the file, or says what is wrong with it
    if t.dtype == torch.uint16:
        t = t.to(torch.int32).add_(128).div_(257, rounding_mode="floor").to(torch.uint8)
    elif t.dtype != torch.uint8:
        return None
    pixels = t.permute(1, 2, 0).numpy()
    return _to_channels(pixels, channels)


def _decode_pil(img: Image.Image, channels: int, path: Path | str) -> np.ndarray:
    img.load()  # decodes the pixels (raises on truncated data); a PNG's EXIF may follow them
    if _orientation(img, True) != 1:
        img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode in _SIXTEEN_BIT or mode == "F":
        return _to_channels(_reduce_depth(np.asarray(img), mode, path)[:, :, None], channels)
    try:
        if mode in ("P", "PA"):
            img = img.convert("RGBA")  # the palette colours; alpha is dropped just below
        if img.mode not in ("L", "RGB"):  # LA -> L, RGBA -> RGB (alpha dropped), CMYK / YCbCr / ... -> RGB
            img = img.convert("L" if img.mode in ("1", "LA", "La") else "RGB")
    except ValueError:
        raise DataError(f"cannot read image {path}: unsupported image mode {mode}") from None
    if channels == 1 and img.mode == "RGB":
        img = img.convert("L")
    arr = np.asarray(img)
    return _to_channels(arr[:, :, None] if arr.ndim == 2 else arr, channels)


def _reduce_depth(arr: np.ndarray, mode: str, path: Path | str) -> np.ndarray:
    """16-bit (or 32-bit int within 0..65535) -> round(v / 257); float in [0, 1] -> round(v * 255)."""
    if mode == "F":
        finite = np.isfinite(arr).all()
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if not finite or lo < 0 or hi > 1:
            raise DataError(f"cannot read image {path}: a 32-bit float image must hold values in [0, 1] "
                            f"(found {lo:g}..{hi:g}); convert it to 8 or 16 bits")
        return np.rint(arr.astype(np.float64) * 255).astype(np.uint8)
    values = arr.astype(np.int64)
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise DataError(f"cannot read image {path}: a {mode} image must hold 16-bit values 0..65535 "
                        f"(found {values.min()}..{values.max()}); convert it to 8 or 16 bits")
    return ((values + 128) // 257).astype(np.uint8)


def _to_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """``H x W x {1,3}`` uint8 -> ``channels``: grey replicated to RGB, RGB to ITU-R 601 luma (as Pillow)."""
    have = pixels.shape[2]
    if have == channels:
        return np.ascontiguousarray(pixels)
    if channels == 3:
        return np.ascontiguousarray(np.repeat(pixels[:, :, :1], 3, axis=2))
    luma = Image.fromarray(np.ascontiguousarray(pixels[:, :, :3]), "RGB").convert("L")  # Pillow's own formula
    return np.asarray(luma)[:, :, None]


# ----------------------------------------------------------------------------- tensors and files

def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """``H x W x C`` uint8 -> ``C x H x W`` float in [-1, 1]."""
    return torch.from_numpy(np.require(pixels, requirements=["C", "W"])).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def to_pixels(tensor: torch.Tensor) -> np.ndarray:
    """``[N x] C x H x W`` float in [-1, 1] -> ``[N x] H x W x C`` uint8 (rounded, clipped)."""
    return eight_bit_levels(tensor.detach().cpu()).to(torch.uint8).movedim(-3, -1).numpy()


def batch_from_pixels(pixels: torch.Tensor) -> torch.Tensor:
    """``N x H x W x C`` uint8 -> ``N x C x H x W`` float in [-1, 1], as :func:`to_tensor` maps each
    image (the storage stays channels-last: a view, no copy)."""
    return pixels.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def eight_bit_levels(images: torch.Tensor) -> torch.Tensor:
    """Values in [-1, 1] as the 0..255 levels (float, rounded, clipped) an 8-bit file holds: what
    :func:`to_pixels` writes, what scores and precision checks compare."""
    return images.float().clamp(-1, 1).add(1).mul(127.5).round()


def quantise(images: torch.Tensor) -> torch.Tensor:
    """Round values in [-1, 1] to the 256 levels an 8-bit image holds (still in [-1, 1]): scores
    describe the files users get."""
    return eight_bit_levels(images).div(127.5).sub(1)


def image_grid(columns: list[torch.Tensor]) -> torch.Tensor:
    """Panels side by side, for previews, contact sheets and reports: one row per batch item, one panel per column (values in [-1, 1]); greyscale is shown as RGB."""
    rows = []
    for panels in zip(*columns):
        row = [t.expand(3, -1, -1) if t.shape[0] == 1 else t[:3] for t in panels]
        rows.append(torch.cat(row, dim=2))
    return torch.cat(rows, dim=1)


def encode_image(pixels: np.ndarray, fmt: str = "png", *, mark: str | None = None) -> bytes:
    """``H x W x C`` uint8 pixels encoded as ``fmt`` (a key of :data:`FORMATS`): the one encoder,
    so that translate, eval, previews and serve give byte-identical files for the same pixels.
    ``mark`` (PNG only) records in a text chunk which imgtrans job wrote the file, so that
    ``--overwrite`` may later replace it (:mod:`imgtrans.util.outputmarks`)."""
    options = dict(FORMATS[fmt][1])
    if mark is not None and fmt == "png":
        from PIL.PngImagePlugin import PngInfo

        options["pnginfo"] = info = PngInfo()
        info.add_text(PNG_KEY, mark)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)).save(buffer, **options)
    return buffer.getvalue()


def save_image(pixels: np.ndarray, path: Path, fmt: str | None = None, *, mark: str | None = None) -> None:
    """Encode (:func:`encode_image`; ``fmt`` defaults to the one ``path``'s suffix names, else PNG)
    and write atomically: a reader (or a Ctrl-C) never sees half a file."""
    path = Path(path)
    data = encode_image(pixels, fmt or SUFFIX_FORMATS.get(path.suffix.lower(), "png"), mark=mark)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
