"""imgtrans: plugin-based image-to-image translation (pix2pix, CycleGAN) with a model zoo.

Public API.  Plugins are discovered on first use of the registry, not at import time.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .core.hookspecs import hookimpl
from .util.version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from .inference.model import TranslationModel

__all__ = [
    "__version__", "hookimpl", "get_registry", "list_components",
    "create_generator", "create_discriminator", "create_loss", "create_dataset_format", "create_recipe",
    "load_model", "translate", "export", "train", "evaluate", "score_folders", "describe", "make_dataset",
]


def get_registry():
    """The component registry, with every plugin loaded."""
    from .core.plugin_host import get_host

    return get_host().registry


def list_components(kind: str, pattern: str = "*") -> list[str]:
    """Names of registered components of ``kind`` (generator, discriminator, loss, dataset_format,
    recipe, metric, pair_maker) matching the shell-style wildcard ``pattern``, e.g.
    ``list_components("generator", "unet*")``."""
    return get_registry().names(kind, pattern)


def create_generator(name: str, **kwargs: Any):
    """Build a registered generator, e.g. ``create_generator("unet_256", ngf=32)``."""
    return get_registry().create("generator", name, **kwargs)


def create_discriminator(name: str, **kwargs: Any):
    return get_registry().create("discriminator", name, **kwargs)


def create_loss(name: str, **kwargs: Any):
    return get_registry().create("loss", name, **kwargs)


def create_dataset_format(name: str, **kwargs: Any):
    return get_registry().create("dataset_format", name, **kwargs)


def create_recipe(name: str, **kwargs: Any):
    return get_registry().create("recipe", name, **kwargs)


def describe(kind: str, name: str) -> dict[str, Any]:
    """What ``imgtrans info KIND NAME`` shows, as a dict: description, plugin, distribution, version,
    ``arguments`` (name, type, default, required, help) and, for a recipe, ``slots`` and section
    defaults.  ``kind`` accepts plurals (``generators``) and ``dataset``."""
    from .core.introspect import describe as _describe

    return _describe(kind, name)


def load_model(source: str, device: str = "cpu", direction: str | None = None) -> "TranslationModel":
    """Load a model file or ``zoo:NAME`` into a ready-to-run :class:`TranslationModel` for
    ``direction`` (``AtoB``/``BtoA``; default: the model's only direction, else AtoB)."""
    from .inference.model import load_model as _load

    return _load(source, device=device, direction=direction)


def translate(*args: Any, **kwargs: Any):
    """See :func:`imgtrans.inference.translate.translate`."""
    from .inference.translate import translate as _translate

    return _translate(*args, **kwargs)


def export(*args: Any, **kwargs: Any):
    """See :func:`imgtrans.inference.export.export`: a model as one verified ONNX, TorchScript or pt2 file."""
    from .inference.export import export as _export

    return _export(*args, **kwargs)


def train(*args: Any, **kwargs: Any):
    """See :func:`imgtrans.training.trainer.train`."""
    from .training.trainer import train as _train

    return _train(*args, **kwargs)


def evaluate(*args: Any, **kwargs: Any):
    """See :func:`imgtrans.metrics.evaluate.evaluate`."""
    from .metrics.evaluate import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


def score_folders(*args: Any, **kwargs: Any):
    """See :func:`imgtrans.metrics.folders.score_folders`: a folder of generated images scored against a
    folder of real ones, no model (paired when the names match one to one, else FID/KID only)."""
    from .metrics.folders import score_folders as _score

    return _score(*args, **kwargs)


def make_dataset(*args: Any, **kwargs: Any):
    """See :func:`imgtrans.data.make.make_dataset` (``imgtrans data make``)."""
    from .data.make import make_dataset as _make

    return _make(*args, **kwargs)
