"""The plugin contract: every hook a plugin (bundled or third-party) may implement.

Hooks receive something to register into rather than returning values, so a plugin can
register any number of things and the host can attribute each one to its plugin.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    import click

    from .dataset_catalog import DatasetCatalog
    from .registry import PluginRegistrar

hookspec = pluggy.HookspecMarker("imgtrans")
hookimpl = pluggy.HookimplMarker("imgtrans")


@hookspec
def register_components(registry: "PluginRegistrar") -> None:
    """Register generators, discriminators, losses, dataset formats, recipes, metrics and pair makers."""


@hookspec
def register_datasets(catalog: "DatasetCatalog") -> None:
    """Register named datasets (public downloads or datasets built locally)."""


@hookspec
def register_zoo(manifests: list[Any]) -> None:
    """Append zoo manifest files (paths) or entries to ``manifests``."""


@hookspec
def register_commands(cli: "click.Group") -> None:
    """Add commands to the ``imgtrans`` command-line interface."""
