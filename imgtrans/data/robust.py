"""Training on folders as they come: skip unreadable items with one warning each, or stop (strict).

Usage (what the trainer does: ``training/data_order.py``, ``training/trainer.py``)::

    data = SkipBadItems(dataset, strict=False)
    loader = DataLoader(data, batch_size=..., num_workers=..., collate_fn=collate_skipping)
    for batch in loader:
        batch = data.receive(batch)        # records what was skipped; None when nothing is left
        if batch is None:
            continue
        ...
    print(f"skipped {len(data.skipped)} unreadable file(s)")

Why ``receive``: with ``num_workers > 0`` the dataset *and* the collate function run in worker
processes, whose state never comes back to the main process (and non-persistent workers are
new copies every epoch).  So an item that fails inside a worker comes back as a :class:`Skipped`
marker carried in the batch (under :data:`SKIPPED_KEY`), and ``receive`` records it in the main
process: one warning per bad item for the whole run, and ``skipped`` holds the right count
whatever the number of workers.  In the main process (``num_workers=0``, previews) an item is
recorded at once and ``__getitem__`` returns None.

Strict mode stops at the first bad item with its :class:`DataError` (raised in the main
process, so the message stays the one-line ``DataError`` even when a worker read the file).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from torch.utils.data import Dataset, get_worker_info
from torch.utils.data._utils.collate import default_collate

from ..util.errors import DataError
from ..util.terminal import warn_stderr

#: batch key under which ``collate_skipping`` passes items that failed in a worker
SKIPPED_KEY = "_skipped"


class Skipped(NamedTuple):
    """An item that could not be loaded in a DataLoader worker, on its way to the main process."""

    index: int
    reason: str
    strict: bool = False


class SkipBadItems(Dataset):
    """Wraps a dataset; an item whose loading raises :class:`DataError` is skipped (or, strict, raised).

    ``skipped`` maps the index of each bad item to the reason (the DataError's message, which
    names the file); ``len(skipped)`` is the number of distinct bad items seen so far.
    ``warn`` receives one message per bad item ("skipping <reason>"); the default prints
    ``imgtrans: warning: skipping ...`` on stderr.
    """

    def __init__(self, dataset: Dataset, strict: bool = False, warn: Callable[[str], None] | None = None):
        self.dataset, self.strict = dataset, strict
        self.warn = warn or warn_stderr
        self.skipped: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        try:
            return self.dataset[index]
        except DataError as exc:
            if get_worker_info() is not None:  # a worker: what we record here would be lost
                return Skipped(int(index), str(exc), self.strict)
            self.record(int(index), str(exc))  # raises when strict
            return None

    def record(self, index: int, reason: str, strict: bool | None = None) -> None:
        """Note a bad item in this (the main) process: raise when strict, else warn once per item."""
        if self.strict if strict is None else strict:
            raise DataError(reason)
        if index not in self.skipped:
            self.skipped[index] = reason
            self.warn(f"skipping {reason}")

    def receive(self, batch: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """Record the items a batch from ``collate_skipping`` left out; the batch, or None when empty."""
        if batch is None:
            return None
        batch = dict(batch)
        for item in batch.pop(SKIPPED_KEY, ()):
            self.record(*item)
        return batch or None

    def __getstate__(self) -> dict[str, Any]:  # workers never warn; a lambda need not be picklable
        state = self.__dict__.copy()
        state["warn"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.warn = self.warn or warn_stderr


def collate_skipping(batch: list[Any]) -> dict[str, Any] | None:
    """``default_collate`` of the good items; bad ones are dropped.

    ``None`` items (already recorded in the main process) are simply dropped; :class:`Skipped`
    markers (items that failed in a worker) travel on in the batch under :data:`SKIPPED_KEY` for
    :meth:`SkipBadItems.receive`.  Returns None when nothing at all is left.
    """
    good = [item for item in batch if item is not None and not isinstance(item, Skipped)]
    bad = [item for item in batch if isinstance(item, Skipped)]
    out: dict[str, Any] = dict(default_collate(good)) if good else {}
    if bad:
        out[SKIPPED_KEY] = bad
    return out or None
