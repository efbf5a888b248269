"""``imgtrans.translate``: files or tensors in, translated files or tensors out.

Files go through a three-stage pipeline so that the CPU never waits on I/O:

    reader threads            main thread                        writer threads
    decode batch k+1    ->    forward of batch k (torch),  ->    encode + atomic write of
    (bounded prefetch)        images sorted by size so           batch k-1 (bounded queue
                              same-size batches fill             of pending writes)

Decoding (Pillow / torchvision) and encoding (Pillow) release the GIL, so they overlap the
forward pass.  Memory stays bounded by pixels, not by image count (:func:`in_flight_limits`): the
images decoded ahead and the outputs waiting for the writers each hold at most about two
``auto`` batches' worth of pixels, whatever ``--batch-size`` says.  Images with a side larger
than ``tile`` go through :func:`imgtrans.inference.tiling.translate_tiled`, one at a time.

Which output each input becomes, and every refusal that must come before any work, is
:mod:`imgtrans.inference.plan`.
"""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import math
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data.images import FORMATS, batch_from_pixels, load_image, save_image, to_pixels
from ..util.devices import resolve_device
from ..util.errors import DataError, ImgtransError
from .engine import check_padded_work
from .model import NORM_STATS, TranslationModel, load_model
from .plan import Job, Plan, collect_inputs, output_path, plan  # noqa: F401  (collect_inputs, output_path: public here too)
from .precision_probe import AutoPrecision

#: ``batch_size="auto"``: padded pixels per forward pass (8 images of 256x256 on CPU, 32 on CUDA) ...
PIXEL_BUDGET = {"cpu": 8 * 256 * 256, "cuda": 32 * 256 * 256}
#: ... and never more than this many images in one batch
MAX_AUTO_BATCH = 64
#: threads decoding inputs, and threads encoding and writing outputs
READERS = WRITERS = 2


@dataclass
class TranslateReport:
    written: list[Path] = field(default_factory=list)               # outputs written
    failed: list[tuple[Path, str]] = field(default_factory=list)    # (input, reason)
    skipped: list[Path] = field(default_factory=list)               # inputs whose output existed (skip_existing)
    precision: str = "fp32"                                         # what the forward passes ran in
    precision_note: str = ""                                        # why, when ``auto`` weighed bf16/fp16


def image_seed(seed: int, key: str) -> int:
    """The dropout seed of one image: a hash of the run's seed and the image's key (its path relative to
    the input folder, or its index for tensors), so it does not depend on batching or on other files."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "little") >> 1


def auto_batch_size(height: int, width: int, stride: int = 1, device: str | torch.device = "cpu") -> int:
    """``batch_size="auto"``: as many images as fit ``PIXEL_BUDGET`` padded pixels (8 of 256x256 on
    CPU), at least 1 (so huge images go one at a time), at most ``MAX_AUTO_BATCH``."""
    padded = math.ceil(height / stride) * stride * math.ceil(width / stride) * stride
    budget = PIXEL_BUDGET.get(torch.device(device).type, PIXEL_BUDGET["cpu"])
    return max(1, min(MAX_AUTO_BATCH, budget // max(padded, 1)))


# ----------------------------------------------------------------------------- the API

def translate(model: TranslationModel | str | Path, inputs: str | Path | Sequence[Path] | torch.Tensor,
              output: str | Path | None = None, *, batch_size: int | str = "auto", norm_stats: str | None = None,
              precision: str | None = None, channels_last: bool | None = None, compile: bool = False,
              tile: int = 1024, tile_overlap: int = 128, dropout: bool = False, seed: int = 0,
              recursive: bool = False, format: str | None = None, overwrite: bool = False,
              skip_existing: bool = False, device: str = "cpu",
              on_progress: Callable[[int], None] | None = None,
              planned: Plan | None = None) -> TranslateReport | torch.Tensor:
    """Translate images with ``model`` (a :class:`TranslationModel` or checkpoint path).

    * a tensor ``(N, C, H, W)`` in [-1, 1] returns a float32 tensor of the same size (fp32 unless
      ``precision`` says otherwise; never tiled);
    * a file, a folder or a list of files writes one image per input into ``output`` (a folder, or
      an image path for a single input) and returns a :class:`TranslateReport`.  Unreadable inputs
      are reported and skipped; existing outputs are kept unless ``overwrite`` (or skipped, and
      counted as such, with ``skip_existing``).  An input is never replaced: colliding output names,
      an output that is an input, a folder without supported images or an unwritable ``output``
      raise :class:`ImgtransError` before the model is loaded or anything is written.

    Options (docs/translate.md has the details): ``batch_size`` (int or ``"auto"``), ``norm_stats``
    (``running``/``instance``; default: the checkpoint's), ``precision`` (``auto``/``fp32``/``bf16``/
    ``fp16``; ``auto`` uses bf16/fp16 only where the first batch shows they keep the outputs within 2
    grey levels of fp32, see :mod:`imgtrans.inference.precision_probe`; the report says why),
    ``channels_last`` (default: where it helps), ``compile``, ``tile``/``tile_overlap`` (images with
    a side above ``tile`` are translated in overlapping tiles; 0 = never),
    ``dropout``/``seed`` (dropout kept on, seeded per image), ``recursive``, ``format``
    (``png``/``jpg``/``webp``/``tif``), ``on_progress(n)`` (called as inputs are done),
    ``planned`` (the :func:`~imgtrans.inference.plan.plan` of these inputs and options, when the
    caller made it already: INPUTS is then scanned once).
    """
    if norm_stats is not None and norm_stats not in NORM_STATS:
        raise ImgtransError(f"--norm-stats must be one of {', '.join(NORM_STATS)}, not {norm_stats!r}")
    if batch_size != "auto" and (not isinstance(batch_size, int) or batch_size < 1):
        raise ImgtransError(f"--batch-size must be 'auto' or at least 1, not {batch_size!r}")
    if overwrite and skip_existing:
        raise ImgtransError("--overwrite and --skip-existing contradict each other: pass one of them")
    if tile < 0 or tile_overlap < 0 or (tile and tile_overlap >= tile):
        raise ImgtransError(f"--tile must be >= 0 (0 = never tile) and --tile-overlap >= 0 and smaller than "
                            f"the tile, not {tile} / {tile_overlap}")
    if format is not None and format not in FORMATS:
        raise ImgtransError(f"--format must be one of {', '.join(FORMATS)}, not {format!r}")
    if isinstance(inputs, torch.Tensor):
        model = _loaded(model, device)
        channels_last = _fixed_by_export(model, precision, channels_last, norm_stats, compile, dropout)
        norm_stats = norm_stats or model.recommended_norm_stats
        # tensors are a numeric API: the plain fp32 forward unless asked otherwise ("auto" is verified)
        auto = AutoPrecision(model, precision or "fp32", norm_stats=norm_stats)
        seeds = [image_seed(seed, str(i)) for i in range(inputs.shape[0])] if dropout else None

        def forward(p: str) -> torch.Tensor:  # a numeric API: fp32 is the plain contiguous forward
            cl = (False if p == "fp32" else None) if channels_last is None else channels_last
            return model.run(inputs, p, norm_stats=norm_stats, channels_last=cl, compile=compile, dropout_seeds=seeds)

        return auto.run(forward)

    if output is None:
        raise ImgtransError("an output folder is needed when translating files")
    # every refusal (no images, colliding names, an input as output, unwritable OUTPUT) comes before the
    # model; a caller that planned already (the CLI, to refuse before loading) passes its plan
    if planned is None:
        planned = plan(inputs if isinstance(inputs, (str, Path)) else list(inputs), output, recursive=recursive,
                       format=format, overwrite=overwrite, skip_existing=skip_existing)
    model = _loaded(model, device)
    channels_last = _fixed_by_export(model, precision, channels_last, norm_stats, compile, dropout)
    norm_stats = norm_stats or model.recommended_norm_stats
    auto = AutoPrecision(model, precision, norm_stats=norm_stats)  # "auto": verified on the first batch
    runner = _Runner(model, batch_size=batch_size, norm_stats=norm_stats, auto=auto, channels_last=channels_last,
                     compile=compile, tile=tile, tile_overlap=tile_overlap, dropout=dropout, seed=seed,
                     fmt=planned.fmt)
    report = TranslateReport(failed=list(planned.failed), skipped=list(planned.skipped), precision=auto.precision)
    if on_progress and (report.failed or report.skipped):
        on_progress(len(report.failed) + len(report.skipped))
    try:
        runner.run(planned.jobs, report, on_progress)
    finally:
        report.precision = auto.precision
        report.precision_note = auto.decision.reason if auto.decision is not None and auto.decision.worth_saying else ""
    order = {src: i for i, src in enumerate(planned.inputs)}  # the report lists inputs in their order
    by_dst = {job.dst: job.index for job in planned.jobs}
    report.written.sort(key=lambda p: by_dst[p])
    report.failed.sort(key=lambda f: order.get(f[0], -1))
    return report


def _loaded(model: TranslationModel | str | Path, device: str) -> TranslationModel:
    if isinstance(model, TranslationModel):
        return model
    return load_model(model, device=resolve_device(device))


def _fixed_by_export(model: TranslationModel, precision: str | None, channels_last: bool | None,
                     norm_stats: str | None, compile: bool, dropout: bool) -> bool | None:
    """The memory layout to run ``model`` in; for an exported model (:mod:`imgtrans.inference.exported`)
    its own, and options it cannot honour refused before any work (``auto`` precision means fp32)."""
    if model.generator.fixed_precision is None:  # a network built from its weights: every option applies
        return channels_last
    from ..util.precision_names import inference_precision

    requested = "auto" if precision is None else inference_precision(precision)
    model.generator.check_options(norm_stats=norm_stats or model.recommended_norm_stats, precision="fp32" if requested == "auto" else requested,
          compile=compile, dropout=dropout)
    return False


# ----------------------------------------------------------------------------- the pipeline

@contextlib.contextmanager
def _threads(count: int, name: str) -> Iterator[ThreadPoolExecutor]:
    """A thread pool that, when left (normally or by an exception such as Ctrl-C), drops the work not
    yet started and waits for what is running: a write under way always completes or cleans up."""
    pool = ThreadPoolExecutor(count, thread_name_prefix=f"imgtrans-{name}")
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _peek_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header (no decoding); (0, 0) where it cannot be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                return img.size
    except Exception:
        return (0, 0)


@dataclass
class _Runner:
    model: TranslationModel
    batch_size: int | str
    norm_stats: str
    auto: AutoPrecision          # the precision, decided (``auto``) on the first batch
    channels_last: bool | None   # None: where it helps for the precision that runs
    compile: bool
    tile: int
    tile_overlap: int
    dropout: bool
    seed: int
    fmt: str

    def forward(self, x: torch.Tensor, seeds: list[int] | None) -> torch.Tensor:
        def run(precision: str) -> torch.Tensor:
            return self.model.run(x, precision, norm_stats=self.norm_stats, channels_last=self.channels_last,
                                  compile=self.compile, dropout_seeds=seeds if self.dropout else None)

        return self.auto.run(run)

    def batch_limit(self, height: int, width: int) -> int:
        if self.batch_size == "auto":
            return auto_batch_size(height, width, self.model.stride, self.model.device)
        return int(self.batch_size)

    def run(self, jobs: list[Job], report: TranslateReport, on_progress: Callable[[int], None] | None) -> None:
        def done(job: Job, error: str | None) -> None:
            if error is None:
                report.written.append(job.dst)
            else:
                report.failed.append((job.src, error))
            if on_progress:
                on_progress(1)

        with _threads(READERS, "read") as readers, _threads(WRITERS, "write") as writers:
            for job, size in zip(jobs, readers.map(_peek_size, [j.src for j in jobs])):
                job.size = size
            jobs = sorted(jobs, key=lambda j: (j.size[1], j.size[0], j.index))  # same sizes side by side
            items, pixels_limit = in_flight_limits(self.batch_size, self.model.device, self.model.stride)
            writer = _Writer(writers, self.fmt, items, pixels_limit, done=done)
            batch: list[tuple[Job, np.ndarray]] = []
            for job, decoded in _prefetch(readers, jobs, self.model.in_channels, items, pixels_limit):
                try:
                    pixels = decoded.result()
                except DataError as exc:
                    done(job, str(exc))
                    continue
                h, w = pixels.shape[:2]
                try:
                    check_padded_work(h, w, self.model.stride)
                except DataError as exc:
                    done(job, f"{job.src}: {exc}")
                    continue
                if self.tile and max(h, w) > self.tile:
                    writer.submit(job, self.tiled(job, pixels))
                    continue
                if batch and batch[0][1].shape != pixels.shape:
                    self.flush(batch, writer)
                batch.append((job, pixels))
                if len(batch) >= self.batch_limit(h, w):
                    self.flush(batch, writer)
            self.flush(batch, writer)
            writer.finish()

    def flush(self, batch: list[tuple[Job, np.ndarray]], writer: _Writer) -> None:
        """Translate one batch of same-size images and hand the results to the writer."""
        if not batch:
            return
        x = torch.from_numpy(np.stack([p for _, p in batch])).to(self.model.device)
        x = batch_from_pixels(x)  # NHWC uint8 -> NCHW [-1, 1] (channels-last storage)
        seeds = [image_seed(self.seed, job.rel.as_posix()) for job, _ in batch]
        pixels = to_pixels(self.forward(x, seeds))
        for (job, _), p in zip(batch, pixels):
            writer.submit(job, p)
        batch.clear()

    def tiled(self, job: Job, pixels: np.ndarray) -> np.ndarray:
        from .tiling import translate_tiled

        base, counter = image_seed(self.seed, job.rel.as_posix()), itertools.count()

        def run(x: torch.Tensor) -> torch.Tensor:  # tiles are numbered in the order they come
            seeds = [image_seed(base, str(next(counter))) for _ in range(x.shape[0])]
            return self.forward(x.to(self.model.device), seeds).cpu()

        return translate_tiled(run, pixels, tile=self.tile, overlap=self.tile_overlap,
                               out_channels=self.model.out_channels,
                               batch_size=self.batch_limit(self.tile, self.tile))



def in_flight_limits(batch_size: int | str, device: str | torch.device = "cpu", stride: int = 1) -> tuple[int, int]:
    """(images, pixels) allowed to wait decoded ahead of the network, and, separately, translated
    outputs waiting for the writers: two batches' worth of images, and at most twice the ``auto``
    pixel budget (or two batches of 256x256 images for a larger explicit ``batch_size``).  The pixel
    bound does not grow with the images' size, so 8000x8000 inputs wait one at a time whatever
    ``--batch-size`` says (one image is always let through, however large)."""
    most = auto_batch_size(256, 256, stride, device) if batch_size == "auto" else int(batch_size)
    budget = PIXEL_BUDGET.get(torch.device(device).type, PIXEL_BUDGET["cpu"])
    return 2 * most, 2 * max(budget, most * 256 * 256)


def _prefetch(pool: ThreadPoolExecutor, jobs: list[Job], channels: int, max_items: int,
              max_pixels: int) -> Iterator[tuple[Job, Future]]:
    """Decode ahead in ``pool``, in order: at most ``max_items`` images and ``max_pixels`` pixels (by
    their headers) in flight, but always the next one, however large."""
    pending: deque[tuple[Job, Future]] = deque()
    queued_pixels = 0
    upcoming = iter(jobs)
    nxt = next(upcoming, None)
    while pending or nxt is not None:
        while nxt is not None and (not pending or (
                len(pending) < max_items and queued_pixels + nxt.size[0] * nxt.size[1] <= max_pixels)):
            pending.append((nxt, pool.submit(load_image, nxt.src, channels)))
            queued_pixels += nxt.size[0] * nxt.size[1]
            nxt = next(upcoming, None)
        job, future = pending.popleft()
        queued_pixels -= job.size[0] * job.size[1]
        yield job, future


class _Writer:
    """Encodes and writes outputs in ``pool``; at most ``max_items`` writes and ``max_pixels`` pixels
    pending (the caller waits; one output is always accepted, however large)."""

    def __init__(self, pool: ThreadPoolExecutor, fmt: str, max_items: int, max_pixels: int,
                 done: Callable[[Job, str | None], None]):
        self.pool, self.fmt, self.done = pool, fmt, done
        self.max_items, self.max_pixels = max(max_items, 1), max_pixels
        self.pending: deque[tuple[Job, Future, int]] = deque()
        self.pending_pixels = 0

    def submit(self, job: Job, pixels: np.ndarray) -> None:
        size = pixels.shape[0] * pixels.shape[1]
        self.pending.append((job, self.pool.submit(save_image, pixels, job.dst, self.fmt), size))
        self.pending_pixels += size
        self._collect(self.max_items, self.max_pixels)

    def finish(self) -> None:
        self._collect(0, 0)

    def _collect(self, keep: int, keep_pixels: int) -> None:
        """Record finished writes, in order; wait while more than ``keep`` writes, or more than one
        write and more than ``keep_pixels`` pixels, are pending."""
        while self.pending and (len(self.pending) > keep or self.pending[0][1].done() or (
                len(self.pending) > 1 and self.pending_pixels > keep_pixels)):
            job, future, size = self.pending.popleft()
            self.pending_pixels -= size
            try:
                future.result()  # a KeyboardInterrupt raised in a writer thread comes out here
            except Exception as exc:
                self.done(job, f"cannot write {job.dst}: {exc}")
            else:
                self.done(job, None)
