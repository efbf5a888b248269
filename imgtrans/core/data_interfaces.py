"""What a dataset format and a pair maker are (the data side of the interfaces; re-exported by
:mod:`imgtrans.core.interfaces` and :mod:`imgtrans.api`)."""
from __future__ import annotations

import abc
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from torch.utils.data import Dataset

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


class _EpochAware:
    """What the trainer may tell any dataset at the start of each epoch."""

    #: True when items depend on the epoch (unpaired B draws): loader workers are then not kept
    #: across epochs, so each sees the new draws
    draws_per_epoch: ClassVar[bool] = False

    def set_epoch(self, epoch: int) -> None:
        """Called before each epoch (1, 2, ...); datasets whose items do not depend on it ignore it."""

    def set_seed(self, seed: int) -> None:
        """Called once with the run's seed; datasets that draw at random derive their draws from it,
        so a run is reproducible and resumable.  Others ignore it."""


class DatasetFormat:
    """What ``--format auto`` reads from a dataset format class (:func:`imgtrans.data.detect.detect_format`).

    ``detect(root)`` says whether a folder looks like this format.  When several formats recognise
    a folder, the highest ``specificity`` wins; a tie at the top stops with an error listing them,
    and the user chooses with ``--format``.  Bundled: ``paired_folders`` and ``unpaired`` 30
    (named subfolders), ``aligned`` 20 (images twice as wide as high), ``single`` 0 (any images).
    A format that recognises a special case of another's layout declares a higher specificity.

    Every format is built with these keywords (documented here once for all of them):

    Args:
        root: the dataset folder.
        split: which split to read (train, val, test; testA for one side of a CycleGAN set).
        transform: applied to each item's images (crops, flips), or None.
        direction: AtoB, or BtoA to swap the roles of A and B.
        in_channels: channels the network input is decoded with (1 or 3).
        out_channels: channels the target is decoded with (1 or 3).
        max_items: read at most this many items (per set for unpaired data); None: all.
    """

    specificity: ClassVar[int] = 0

    @staticmethod
    def detect(root: Path) -> bool:
        """Whether ``root`` looks like this format (default: never detected, only chosen by name)."""
        return False


class PairedDataset(_EpochAware, Dataset, DatasetFormat, abc.ABC):
    """Aligned pairs.  Items are dicts ``{"A": tensor, "B": tensor, "path": str}`` in [-1, 1],
    already in the training direction (``A`` is always the network input).  Recipes with
    ``paired = True`` train only on formats that subclass this."""

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def __getitem__(self, index: int) -> dict[str, Any]: ...


class UnpairedDataset(_EpochAware, Dataset, DatasetFormat, abc.ABC):
    """Two unaligned image sets.  Items are ``{"A", "B", "path_A", "path_B"}``; ``B`` is drawn
    independently of ``A`` (at random, or by index after :meth:`pair_by_index`), so the length is
    the larger of the two sets."""

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    def pair_by_index(self) -> None:
        """Pair item ``i``'s ``A`` with the ``i``-th ``B`` instead of a random one: what validation and
        evaluation ask for before checking :meth:`aligned`."""

    def aligned(self) -> bool:
        """True when item ``i``'s ``B`` is the ground truth of its ``A`` (test sets laid out that way,
        such as basemap_unpaired's test band), so the split can be scored with paired metrics."""
        return False


class PairMaker(abc.ABC):
    """Derives the input image A of a training pair from a photo, which is its target B
    (``imgtrans data make TASK PHOTOS OUT``): edges, a greyscale copy, a degraded copy.

    Constructor keyword arguments are the task's parameters (``--set TASK.ARG=VALUE``); each needs a
    JSON-serialisable default, and values are checked against the annotations and
    ``arg_constraints`` (as a generator's) before the maker is built.  ``__call__`` receives an
    ``H x W x 3`` uint8 RGB photo and a numpy ``Generator`` seeded from the run's seed and the
    photo's name, and returns A as ``H x W x 3`` uint8.  It must depend on nothing else (so a
    dataset is reproducible whatever the order or number of threads) and must not modify the photo.
    """

    #: optional constraints on constructor arguments (as :attr:`Generator.arg_constraints`)
    arg_constraints: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    @abc.abstractmethod
    def __call__(self, photo: "np.ndarray", rng: "np.random.Generator") -> "np.ndarray": ...
