"""An example third-party imgtrans plugin: copy this package to start your own.

It registers one of each kind of thing a plugin can add, through the four hooks:

* ``register_components``: a generator with encoder features (``example_tiny``), a discriminator
  (``example_patch``), a pixel loss (``example_charbonnier``), a feature loss
  (``example_feature_l1``), a dataset format (``a_above_b``: A on top of B in one image), a recipe
  (``example_l1``: a generator trained with a pixel loss and a feature loss over its own encoder's
  features, no discriminator), a metric
  (``example_max_error``: the worst pixel of each image) and a pair maker (``example_posterize``,
  for ``imgtrans data make``);
* ``register_datasets``: a named dataset built locally (``example_stripes``, in ``a_above_b``);
* ``register_zoo``: a model shipped with the package (``example_invert``, in ``zoo.toml``);
* ``register_commands``: a command (``imgtrans example-stripes OUT``).

Components are registered by import path (``"imgtrans_example.networks:TinyGenerator"``): this
module imports nothing heavy, so ``imgtrans list`` and ``imgtrans info`` stay quick, and a
component's module (and torch) is imported when the component is first built.

imgtrans finds the plugin through the ``[project.entry-points.imgtrans]`` table of
``pyproject.toml``; nothing in imgtrans itself has to change.  After ``pip install``::

    imgtrans list generator 'example*'
    imgtrans train example_l1 --data example_stripes --lambda 2 --load-size 32 --crop-size 32
    imgtrans translate --model zoo:example_invert photo.png out.png

``tests/test_conformance.py`` checks all of it with imgtrans's conformance kit.
"""
from __future__ import annotations

from pathlib import Path

import click

from imgtrans import hookimpl


def build_stripes(dest: Path, progress=None) -> None:
    """Builds ``example_stripes``; its module (numpy, Pillow) is imported only when it runs."""
    from .data import build_stripes as build

    build(dest, progress=progress)


@hookimpl
def register_components(registry) -> None:
    """Called once by imgtrans; each name must be unique across all installed plugins."""
    registry.generator("example_tiny", "imgtrans_example.networks:TinyGenerator")
    registry.discriminator("example_patch", "imgtrans_example.networks:TinyDiscriminator")
    registry.loss("example_charbonnier", "imgtrans_example.networks:CharbonnierLoss")
    registry.loss("example_feature_l1", "imgtrans_example.networks:FeatureL1Loss")
    registry.dataset_format("a_above_b", "imgtrans_example.data:AAboveB")
    registry.recipe("example_l1", "imgtrans_example.recipe:L1Recipe")
    registry.metric("example_max_error", "imgtrans_example.metric:MaxError")
    registry.pair_maker("example_posterize", "imgtrans_example.data:Posterize")


@hookimpl
def register_datasets(catalog) -> None:
    catalog.add("example_stripes", "Vertical colour stripes (A) -> their colour inversion (B), 32x32, built locally",
                layout="a_above_b",  # decides the format of this dataset's folder outright
                build=build_stripes, domains=("stripes", "inverted stripes"), splits={"train": 8, "test": 2},
                licence="generated: no restrictions")


@hookimpl
def register_zoo(manifests) -> None:
    # a relative path is resolved against this file; the manifest's `source` against the manifest
    manifests.append("zoo.toml")


@hookimpl
def register_commands(cli) -> None:
    @cli.command("example-stripes")
    @click.argument("out", type=click.Path(file_okay=False, path_type=Path))
    def example_stripes(out: Path) -> None:
        """Write the example_stripes dataset into the new folder OUT."""
        if out.exists():
            raise click.UsageError(f"{out} exists; choose a new folder")
        build_stripes(out)
        click.echo(f"wrote {out}")
