"""The core's pair makers: how ``imgtrans data make TASK`` derives the input A from a photo B.

Each is a small class whose constructor arguments are the task's parameters (``--set
edges.sigma=2``); the work is done by well-kept libraries (OpenCV's Canny detector and filters,
Pillow's resampling and JPEG codec, numpy's random generator), never by hand.  All randomness
comes from the ``rng`` each call receives, so a dataset depends only on the seed and the names.
"""
from __future__ import annotations

import io
from typing import Any, ClassVar, Literal

import numpy as np
from PIL import Image, ImageFilter

from ..core.interfaces import PairMaker
from ..util.errors import ConfigError

RESAMPLING = {"nearest": Image.Resampling.NEAREST, "box": Image.Resampling.BOX,
              "bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
              "lanczos": Image.Resampling.LANCZOS}
#: the value a hole is filled with (``noise``: uniform random pixels)
FILLS = {"grey": 128, "black": 0, "white": 255, "noise": None}


def _rgb(grey: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))


class Edges(PairMaker):
    """Canny edges (OpenCV), dark lines on white as in edges2shoes: edges -> photo.

    The photo's luma is smoothed by a Gaussian of ``sigma`` pixels; the hysteresis thresholds
    are the ``low`` and ``high`` quantiles of that image's gradient magnitude, so one setting
    suits dark and bright, busy and plain photos alike.  ``thickness`` > 1 widens the lines.

    Args:
        sigma: Gaussian smoothing before Canny, in pixels (more: fewer, smoother lines).
        low: lower hysteresis threshold, as a quantile of the gradient magnitude.
        high: upper hysteresis threshold, as a quantile of the gradient magnitude.
        thickness: line width in pixels.
    """

    arg_constraints: ClassVar[dict[str, dict[str, Any]]] = {
        "sigma": {"min": 0}, "low": {"min": 0, "max": 1}, "high": {"min": 0, "max": 1}, "thickness": {"min": 1}}

    def __init__(self, sigma: float = 2.0, low: float = 0.7, high: float = 0.85, thickness: int = 1):
        if low > high:
            raise ConfigError(f"edges.low ({low}) must not exceed edges.high ({high})")
        self.sigma, self.low, self.high, self.thickness = sigma, low, high, thickness

    def __call__(self, photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        import cv2  # here, not at import: registering the makers must not slow every command down

        grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
        if self.sigma > 0:
            grey = cv2.GaussianBlur(grey, (0, 0), sigmaX=self.sigma, borderType=cv2.BORDER_REFLECT)
        # the magnitude Canny thresholds (3x3 Sobel, L2 norm), to place the thresholds by quantile
        magnitude = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3))
        low, high = (float(q) for q in np.quantile(magnitude, [self.low, self.high]))
        edges = cv2.Canny(grey, low, high, L2gradient=True)
        if self.thickness > 1:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (self.thickness, self.thickness))
            edges = cv2.dilate(edges, kernel)
        return _rgb(255 - edges)


class Colorize(PairMaker):
    """Greyscale copy (ITU-R 601 luma, Pillow's conversion), stored as RGB: grey -> colour."""

    def __call__(self, photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return _rgb(np.asarray(Image.fromarray(photo).convert("L")))


class SuperRes(PairMaker):
    """Downscaled and scaled back up (Pillow): low -> high resolution.

    The photo is shrunk by ``scale`` and enlarged again with the ``resample`` filter.

    A keeps B's size, as pix2pix needs, so the network learns to restore detail in place.

    Args:
        scale: downscaling factor.
        resample: Pillow filter used to shrink and enlarge.
    """

    arg_constraints: ClassVar[dict[str, dict[str, Any]]] = {"scale": {"min": 2}}

    def __init__(self, scale: int = 4,
                 resample: Literal["nearest", "box", "bilinear", "bicubic", "lanczos"] = "bicubic"):
        self.scale, self.resample = scale, resample

    def __call__(self, photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = photo.shape[:2]
        method = RESAMPLING[self.resample]
        small = Image.fromarray(photo).resize((max(1, w // self.scale), max(1, h // self.scale)), method)
        return np.asarray(small.resize((w, h), method))


class Denoise(PairMaker):
    """Additive Gaussian noise: noisy -> clean.

    The noise has a standard deviation of ``sigma`` grey levels (of 0-255).  With ``sigma_min``
    set, each photo's noise level is drawn uniformly from [sigma_min, sigma], so one model learns
    to remove noise of any strength in that range (blind denoising).

    Args:
        sigma: noise standard deviation in grey levels (0-255).
        sigma_min: if set, each photo's sigma is drawn from [sigma_min, sigma].
    """

    arg_constraints: ClassVar[dict[str, dict[str, Any]]] = {"sigma": {"min": 0}, "sigma_min": {"min": 0}}

    def __init__(self, sigma: float = 25.0, sigma_min: float | None = None):
        if sigma_min is not None and sigma_min > sigma:
            raise ConfigError(f"denoise.sigma_min ({sigma_min}) must not exceed denoise.sigma ({sigma})")
        self.sigma, self.sigma_min = sigma, sigma_min

    def __call__(self, photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        sigma = self.sigma if self.sigma_min is None else rng.uniform(self.sigma_min, self.sigma)
        noisy = photo.astype(np.float32) + rng.normal(0.0, sigma, photo.shape).astype(np.float32)
        return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


class Inpaint(PairMaker):
    """Random rectangular holes filled with grey, black, white or noise: holes -> photo.

    ``holes`` rectangles are filled with ``fill``; each side of a hole is drawn between
    ``min_size`` and ``max_size`` times the image's side.

    Args:
        holes: rectangles per photo.
        min_size: smallest side of a hole, as a fraction of the image side.
        max_size: largest side of a hole, as a fraction of the image side.
        fill: what fills a hole.
    """

    arg_constraints: ClassVar[dict[str, dict[str, Any]]] = {
        "holes": {"min": 1}, "min_size": {"gt": 0, "max": 1}, "max_size": {"gt": 0, "max": 1}}

    def __init__(self, holes: int = 1, min_size: float = 0.15, max_size: float = 0.4,
                 fill: Literal["grey", "black", "white", "noise"] = "grey"):
        if min_size > max_size:
            raise ConfigError(f"inpaint.min_size ({min_size}) must not exceed inpaint.max_size ({max_size})")
        self.holes, self.min_size, self.max_size, self.fill = holes, min_size, max_size, fill

    def __call__(self, photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = photo.copy()
        h, w = photo.shape[:2]
        for _ in range(self.holes):
            hh = max(1, round(h * rng.uniform(self.min_size, self.max_size)))
            hw = max(1, round(w * rng.uniform(self.min_size, self.max_size)))
            y, x = int(rng.integers(0, h - hh + 1)), int(rng.integers(0, w - hw + 1))
            value = FILLS[self.fill]
            out[y:y + hh, x:x + hw] = (rng.integers(0, 256, (hh, hw, 3), dtype=np.uint8) if value is None else value)
        return out


class Jpeg(PairMaker):
    """JPEG compression at a low quality (Pillow's libjpeg, 4:2:0 chroma): artefacts -> clean.

    Args:
        quality: JPEG quality (lower: stronger artefacts).
    """

    arg_constraints: ClassVar[dict[str, dict[str, Any]]] = {"quality": {"min": 1, "max": 95}}

    def __init__(self, quality: int = 10):
        self.quality = quality

    def __call__(self, photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        buffer = io.BytesIO()
        Image.fromarray(photo).save(buffer, "JPEG", quality=self.quality)
        buffer.seek(0)
        with Image.open(buffer) as img:
            return np.asarray(img.convert("RGB"))


class Blur(PairMaker):
    """Gaussian blur, optionally with motion blur at a random angle: blurred -> sharp.

    The Gaussian has a standard deviation of ``sigma`` pixels (Pillow); ``motion`` > 1 adds a
    straight motion blur that many pixels long (OpenCV).

    Args:
        sigma: Gaussian blur standard deviation in pixels.
        motion: length in pixels of an added motion blur (0: none).
    """

    arg_constraints: ClassVar[dict[str, dict[str, Any]]] = {"sigma": {"min": 0}, "motion": {"min": 0}}

    def __init__(self, sigma: float = 2.0, motion: int = 0):
        self.sigma, self.motion = sigma, motion

    def __call__(self, photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = photo
        if self.sigma > 0:
            out = np.asarray(Image.fromarray(photo).filter(ImageFilter.GaussianBlur(radius=self.sigma)))
        if self.motion > 1:
            import cv2

            angle = rng.uniform(0.0, np.pi)
            size = self.motion + 1 - self.motion % 2  # odd, so the line is centred
            c, r = size // 2, (self.motion - 1) / 2
            dx, dy = r * np.cos(angle), r * np.sin(angle)
            kernel = np.zeros((size, size), np.float32)
            cv2.line(kernel, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1, cv2.LINE_AA)
            out = cv2.filter2D(np.ascontiguousarray(out), -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)
        return np.ascontiguousarray(out)


#: the core's pair makers, registered like its dataset formats (``core/builtin_plugin.py``)
PAIR_MAKERS: dict[str, type[PairMaker]] = {"edges": Edges, "colorize": Colorize, "superres": SuperRes,
                                           "denoise": Denoise, "inpaint": Inpaint, "jpeg": Jpeg, "blur": Blur}
