"""Dynamic batching: requests that arrive close together share one forward pass.

One worker thread owns the network (torch runs one forward at a time anyway, and a single owner
keeps memory predictable).  Requests are queued with a key (model, direction, image size); the
worker takes the oldest, then waits up to ``wait_s`` from that request's arrival for more with
the same key, up to the batch limit for that size (translate's ``auto`` batch), and runs them
together.  Requests queued while a forward pass runs are batched without further waiting.  Items
with other keys stay queued, in order, for the next round, so a lone odd-sized image is never
held back by more than one batch of another size.

The queue itself is not bounded here: the server admits at most ``--queue-size`` requests at a
time (:class:`imgtrans.serve.app.Admission`), which bounds it.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

#: runs one batch: (key, same-key images) -> one output per image
RunBatch = Callable[[Hashable, Sequence[np.ndarray]], Sequence[np.ndarray]]


@dataclass
class _Item:
    key: Hashable
    pixels: np.ndarray
    arrived: float
    future: Future = field(default_factory=Future)


class Batcher:
    """Collects requests into batches and runs them on one worker thread (see the module docstring).

    ``limit(key)`` is the most images of that key per batch; ``batches`` and ``images`` count what
    was run (tests and ``/healthz`` read them)."""

    def __init__(self, run: RunBatch, limit: Callable[[Hashable], int], wait_s: float = 0.005):
        self._run, self._limit, self.wait_s = run, limit, wait_s
        self._pending: list[_Item] = []
        self._cond = threading.Condition()
        self._closed = False
        self.batches = self.images = 0
        self._thread = threading.Thread(target=self._work, name="imgtrans-serve-batcher", daemon=True)
        self._thread.start()

    def submit(self, key: Hashable, pixels: np.ndarray) -> Future:
        """Queue one image; the future gets its output (or the exception its batch raised)."""
        item = _Item(key, pixels, time.monotonic())
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._pending.append(item)
            self._cond.notify_all()
        return item.future

    def pending(self) -> int:
        """Images queued and not yet taken into a batch."""
        with self._cond:
            return len(self._pending)

    def close(self, timeout: float | None = None) -> None:
        """Stop after the queued work is done."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _next_batch(self) -> list[_Item] | None:
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if not self._pending:
                return None
            first = self._pending[0]
            limit = max(1, self._limit(first.key))
            deadline = first.arrived + self.wait_s
            while True:
                same = [item for item in self._pending if item.key == first.key][:limit]
                left = deadline - time.monotonic()
                if len(same) >= limit or left <= 0 or self._closed:
                    break
                self._cond.wait(left)
            taken = {id(item) for item in same}
            self._pending = [item for item in self._pending if id(item) not in taken]
            return same

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            live = [item for item in batch if item.future.set_running_or_notify_cancel()]
            if not live:
                continue
            self.batches += 1
            self.images += len(live)
            try:
                outputs = self._run(live[0].key, [item.pixels for item in live])
            except BaseException as exc:  # the requests get the error; the worker keeps serving
                for item in live:
                    item.future.set_exception(exc)
                continue
            for item, out in zip(live, outputs):
                item.future.set_result(out)
