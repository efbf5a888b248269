"""The timm plugin: a U-Net generator on any timm backbone (``unet_timm``) and a perceptual loss
(``perceptual``).  Both need the optional ``timm`` package (``pip install "imgtrans[backbones]"``).

Without timm installed the plugin registers nothing, rather than components that cannot be
built: the rest of imgtrans works as before, and ``imgtrans list`` shows only what runs.  Finding
timm does not import it (that happens when a component is built), so start-up stays cheap.
"""
from __future__ import annotations

import importlib.util

from imgtrans import hookimpl


def timm_installed() -> bool:
    return importlib.util.find_spec("timm") is not None


@hookimpl
def register_components(registry) -> None:
    if not timm_installed():
        return
    # by import path: timm and torch are imported when a component is first built
    registry.generator("unet_timm", "imgtrans_timm.unet_timm:UnetTimm")
    registry.loss("perceptual", "imgtrans_timm.perceptual:PerceptualLoss")
