"""The two ways a model can translate, and which of a model's directions is its primary one.

Written once here (torch-free, so the CLI's option choices and the config can use it) instead of
in every module that reads a direction: dataset domain ``A`` to ``B`` is ``AtoB``, and back.
"""
from __future__ import annotations

from collections.abc import Iterable

#: the two directions a model can translate: dataset domain A to B, and back
DIRECTIONS: tuple[str, ...] = ("AtoB", "BtoA")


def opposite(direction: str) -> str:
    """``BtoA`` for ``AtoB`` and the reverse."""
    return "BtoA" if direction == "AtoB" else "AtoB"


def primary_direction(directions: Iterable[str]) -> str:
    """The direction a model runs when none is asked for: ``AtoB`` when it has one, else its first
    (a recipe's ``directions``, a model file's entries and the trainer's choices all follow this)."""
    names = list(directions)
    if not names:
        raise ValueError("no directions")
    return "AtoB" if "AtoB" in names else names[0]
