"""The core's metrics, registered by the core's own ``register_components`` (:mod:`imgtrans.builtin`)."""
from __future__ import annotations

from typing import Any

from .distribution import FID, KID
from .paired import L1, PSNR, SSIM

#: the core's metrics by name; ``imgtrans eval`` scores the paired ones unless told otherwise
BUILTIN_METRICS: dict[str, type] = {"l1": L1, "psnr": PSNR, "ssim": SSIM, "fid": FID, "kid": KID}


def register(registry: Any) -> None:
    for name, cls in BUILTIN_METRICS.items():
        registry.metric(name, cls)
