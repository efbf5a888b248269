"""The one module a plugin imports: everything a generator, loss, dataset format, metric, pair
maker or recipe may rely on, in one place that stays put when the core's modules move.

Bundled plugins import nothing else from imgtrans (an import-linter contract checks it; their
``__init__`` modules take ``hookimpl`` from the package face, which imports no torch, so that
discovering plugins stays cheap).  Everything here is declared on the interfaces; see
docs/plugins.md and docs/recipes.md.
"""
from __future__ import annotations

from .core.config import ComponentSpec
from .core.hookspecs import hookimpl
from .core.interfaces import (
    DIRECTIONS,
    LOSS_ROLES,
    DatasetFormat,
    Discriminator,
    Generator,
    Loss,
    Metric,
    PairedDataset,
    PairedMetric,
    PairMaker,
    Recipe,
    RecipeOption,
    SetMetric,
    Slot,
    UnpairedDataset,
)
from .data.images import list_images, load_image, to_pixels, to_tensor
from .training.instance_norm import InstanceNorm2d
from .training.optim import fast_adam, linear_decay
from .util.download import DownloadError, fetch
from .util.errors import CheckpointError, ConfigError, DataError, ImgtransError
from .util.paths import home

__all__ = [
    "DIRECTIONS", "LOSS_ROLES", "ComponentSpec", "DatasetFormat", "Discriminator", "Generator", "Loss", "Metric",
    "PairMaker", "PairedDataset", "PairedMetric", "Recipe", "RecipeOption", "SetMetric", "Slot",
    "UnpairedDataset", "hookimpl", "list_images", "load_image", "to_pixels", "to_tensor", "fast_adam",
    "linear_decay", "InstanceNorm2d", "DownloadError", "fetch", "CheckpointError", "ConfigError", "DataError",
    "ImgtransError", "home",
]
