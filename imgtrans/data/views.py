"""Views that let one dataset serve a recipe of the other kind.

:class:`UnpairedView` turns aligned pairs into two unpaired sets (each item's ``B`` comes from an
independently drawn pair), so an unpaired recipe such as CycleGAN can train on a paired dataset
and be compared with a paired recipe on exactly the same images.
"""
from __future__ import annotations

import random
from typing import Any

from ..core.interfaces import PairedDataset, UnpairedDataset


class UnpairedView(UnpairedDataset):
    """Item ``i``: ``A`` of pair ``i`` and ``B`` of a pair drawn from ``(seed, epoch, i)`` (a pure
    function, so runs are reproducible and resumable, like :class:`~imgtrans.data.unpaired.UnpairedFolders`)."""

    draws_per_epoch = True

    def __init__(self, pairs: PairedDataset, seed: int = 0):
        self.pairs, self.seed, self.epoch = pairs, seed, 0

    def set_seed(self, seed: int) -> None:
        self.seed = int(seed)
        self.pairs.set_seed(seed)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.pairs.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.pairs)

    def partner(self, index: int) -> int:
        """The pair whose ``B`` item ``index`` uses in the current epoch."""
        return random.Random(f"{self.seed}/{self.epoch}/{index}/B").randrange(len(self.pairs))

    def __getitem__(self, index: int) -> dict[str, Any]:
        a = self.pairs[index]
        b = self.pairs[self.partner(index)]
        return {"A": a["A"], "B": b["B"], "path_A": a["path"], "path_B": b["path"]}
