"""The data a run trains on: the order in which it sees it, and the record of which data it was.

**The order**, a pure function of the seed, so that a resumed run needs no saved data state and
sees exactly what the uninterrupted one would have.  :class:`EpochSampler` derives each epoch's
permutation from ``(seed, epoch)`` and :class:`SeededItems` re-seeds the augmentation pipeline
from ``(seed, epoch, index)`` before each item, in fresh and resumed runs alike (and whatever the
number of loader workers), so a resumed epoch skips the consumed batches and goes on identically.
Each process of a distributed run takes its own shard of that order.

**The record** of which data a run trained on, so that ``--resume`` never continues on other data
unnoticed.  ``data.source`` may be a relative folder (``--data pairs``): resumed from another
working directory it names another folder, and a folder whose files were replaced keeps its
name, and a file replaced by another of the same byte size keeps its size.  So every checkpoint
records the folder it resolved to and a fingerprint of what the training split holds: file names
and sizes, and a digest of every file's content (the split is read once when a run starts, about
as much as one epoch's loading), and a resume compares (:func:`data_record`,
:func:`check_same_data`): other content is refused unless ``allow_change``.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..data.robust import SkipBadItems, collate_skipping
from ..util.errors import RunError
from ..util.terminal import warn_stderr


def _mix(*parts: int) -> int:
    """A stable 63-bit seed from integers (independent of PYTHONHASHSEED and of the platform)."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class EpochSampler(Sampler):
    """Each epoch's order is a pure function of ``(seed, epoch)``; it can start part-way through.

    Yields ``(index, item_seed)`` pairs for :class:`SeededItems`.  In a run of ``world_size``
    processes, process ``rank`` takes every ``world_size``-th item of the permutation from position
    ``rank`` (the permutation is first padded with its own beginning to a multiple of
    ``world_size``, so every process takes the same number of steps).  Step ``k`` of all processes
    together therefore covers exactly the items of step ``k`` of one process with the combined batch.
    """

    def __init__(self, size: int, seed: int, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside a world of {world_size} processes")
        self.size, self.seed, self.rank, self.world_size = size, seed, rank, world_size
        self.epoch, self.start = 1, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Use ``epoch``'s permutation, leaving out the first ``start`` items of this process's share."""
        self.epoch, self.start = epoch, start

    def permutation(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed((self.seed * 1000003 + epoch) % 2**63)
        return torch.randperm(self.size, generator=g).tolist()

    def shard(self, epoch: int) -> list[int]:
        order = self.permutation(epoch)
        if self.world_size > 1 and order:
            padded = order * (-(-len(self) * self.world_size // len(order)))
            order = padded[:len(self) * self.world_size][self.rank::self.world_size]
        return order

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in self.shard(self.epoch)[self.start:]:
            yield index, _mix(self.seed, self.epoch, index)

    def __len__(self) -> int:
        return -(-self.size // self.world_size)


class SeededItems(Dataset):
    """Re-seeds the dataset's augmentation pipeline (``dataset.transform.pipeline``) before each item.

    Takes ``(index, item_seed)`` keys from :class:`EpochSampler`; works the same in loader workers.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        inner = getattr(dataset, "dataset", dataset)
        self.pipeline = getattr(getattr(inner, "transform", None), "pipeline", None)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        if self.pipeline is not None and hasattr(self.pipeline, "set_random_seed"):
            self.pipeline.set_random_seed(seed % 2**32)
        return self.dataset[index]


def process_seed(seed: int, rank: int) -> int:
    """The seed of process ``rank``'s own random stream (dropout) in a distributed run."""
    return _mix(seed, rank, -2) % 2**32


def loader_seed(seed: int, epoch: int) -> int:
    """The DataLoader generator's seed for ``epoch`` (it only draws the workers' base seed)."""
    return _mix(seed, epoch, -1)


class EpochLoader:
    """The training batches of this process, epoch by epoch, in the order of :class:`EpochSampler`.

    ``dataset`` skips unreadable items (:class:`~imgtrans.data.robust.SkipBadItems`); its batches
    go through ``dataset.receive`` before use.
    """

    def __init__(self, dataset: SkipBadItems, *, seed: int, batch_size: int, num_workers: int, rank: int,
                 world_size: int, pin_memory: bool):
        self.dataset, self.seed, self.batch_size = dataset, seed, batch_size
        self.sampler = EpochSampler(len(dataset), seed, rank, world_size)
        self.generator = torch.Generator()
        self.loader = DataLoader(
            SeededItems(dataset), batch_size=batch_size, sampler=self.sampler,
            num_workers=num_workers, pin_memory=pin_memory,
            # workers live across epochs unless the dataset redraws per epoch in the main process
            persistent_workers=num_workers > 0 and not dataset.dataset.draws_per_epoch,
            generator=self.generator, drop_last=False, collate_fn=collate_skipping)

    def __len__(self) -> int:
        """Batches per epoch (of this process)."""
        return len(self.loader)

    def epoch(self, epoch: int, start_batch: int = 0) -> DataLoader:
        """The loader set to ``epoch``, leaving out its first ``start_batch`` batches (consumed
        before the checkpoint a run resumed from)."""
        self.dataset.dataset.set_epoch(epoch)  # unpaired data draws new pairs each epoch
        self.sampler.set_epoch(epoch, start=start_batch * self.batch_size)
        self.generator.manual_seed(loader_seed(self.seed, epoch))
        return self.loader


# -- which data a run trains on --------------------------------------------------------------------

RECORD_KEY = "data"


def _content_digest(path: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    except OSError:  # unreadable now: the loader skips and counts it; its name and size still count
        return "unreadable"
    return h.hexdigest()


def fingerprint(folder: Path, exclude: Path | None = None) -> dict[str, Any]:
    """Count, total size, a digest of the relative names and sizes of the files under ``folder``
    (hidden entries and ``exclude``, e.g. a run directory inside it, left out) and one of their
    contents (``content``)."""
    h = hashlib.blake2b(digest_size=8)
    content = hashlib.blake2b(digest_size=8)
    files = size = 0
    skip = os.path.realpath(exclude) if exclude is not None else None
    entries: list[tuple[str, int]] = []
    for top, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and os.path.realpath(os.path.join(top, d)) != skip)
        for name in names:
            if name.startswith("."):
                continue
            path = os.path.join(top, name)
            try:
                st = os.stat(path)
            except OSError:  # a dangling link: not data
                continue
            entries.append((os.path.relpath(path, folder).replace(os.sep, "/"), st.st_size))
    for rel, n in sorted(entries):
        h.update(f"{rel}\0{n}\n".encode())
        content.update(f"{rel}\0{_content_digest(os.path.join(folder, rel))}\n".encode())
        files += 1
        size += n
    return {"files": files, "bytes": size, "digest": h.hexdigest(), "content": content.hexdigest()}


def data_record(root: Path, split: str, run_dir: Path | None = None) -> dict[str, Any]:
    """What to store in each checkpoint: the absolute data folder and its training split's fingerprint."""
    root = Path(root).expanduser().resolve()
    folder = root / split if (root / split).is_dir() else root
    return {"root": str(root), "split": split, **fingerprint(folder, exclude=run_dir)}


def _describe(record: dict[str, Any]) -> str:
    return f"{record['root']} ({record['files']} files, {record['bytes']} bytes, digest {record['digest']})"


def check_same_data(saved: dict[str, Any] | None, now: dict[str, Any], run_dir: Path, *,
                    allow_change: bool = False) -> None:
    """Refuse to resume ``run_dir`` on data whose fingerprint (names, sizes, contents) differs from
    the one its checkpoint recorded, unless ``allow_change`` (then one warning line); the same files
    in another place (a moved or copied folder) are only warned about.  Checkpoints of older
    versions recorded no content digest (their names and sizes are compared) or nothing at all."""
    if not isinstance(saved, dict) or not {"root", "files", "bytes", "digest"} <= set(saved):
        return
    keys = ("files", "bytes", "digest", *(("content",) if "content" in saved else ()))
    changed = [k for k in keys if saved[k] != now.get(k)]
    if changed:
        what = "file contents" if changed == ["content"] else "files"
        message = (f"{run_dir} was trained on {_describe(saved)}, but its data.source now gives {_describe(now)} "
                   f"(other {what})")
        if not allow_change:
            raise RunError(f"cannot resume: {message}; resume from the directory the run was started in, restore "
                           "the data, or pass --allow-data-change to continue on this data")
        warn_stderr(f"{message}; continuing on it (--allow-data-change)")
        return
    if saved["root"] != now["root"]:
        warn_stderr(f"{run_dir} was trained on {saved['root']}; resuming on {now['root']}, which holds the same "
                    f"file names and sizes{' and contents' if 'content' in saved else ''} ({now['files']} files)")
