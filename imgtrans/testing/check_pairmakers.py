"""Conformance check of pair makers: they build with their defaults, return pixels of the photo's
shape, depend only on the photo and the generator they are given, and make a dataset that the
``aligned`` format reads."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ..core.interfaces import PairMaker
from .samples import _blocks
from .subject import check_defaults, component_subject

if TYPE_CHECKING:  # pragma: no cover
    from ..core.registry import Registry

#: the photo the check feeds a maker: not square, so a maker that swaps height and width is caught
PHOTO_SHAPE = (48, 40, 3)
#: photos in the check's dataset, and the side they are made at
DATASET_PHOTOS, DATASET_SIDE = 4, 32


def _photo(seed: int, shape: tuple[int, int, int] = PHOTO_SHAPE) -> np.ndarray:
    """Coloured blocks plus a gradient: edges, flat areas and colour for every kind of maker."""
    rng = np.random.default_rng(seed)
    side = max(shape[:2])
    pixels = _blocks(rng, side)[:shape[0], :shape[1]].astype(np.int32)
    ramp = np.linspace(0, 60, shape[1], dtype=np.int32)[None, :, None]
    return np.clip(pixels + ramp, 0, 255).astype(np.uint8)


def check_pair_maker(registry: "Registry", name: str, workdir: str | Path | None = None) -> dict[str, Any]:
    """Check pair maker ``name``; with ``workdir``, also make a small dataset there and read it with
    the ``aligned`` format.  Returns the output's ``shape`` and, with a workdir, the ``counts``."""
    subject, component = component_subject(registry, "pair_maker", name)
    check_defaults(subject, component)
    with subject.rule("builds"):
        maker = registry.create("pair_maker", name)
    if not isinstance(maker, PairMaker):
        subject.fail("interface", "it must subclass imgtrans.core.interfaces.PairMaker")
    photo = _photo(0)
    kept = photo.copy()
    with subject.rule("output"):
        made = maker(photo, np.random.default_rng(7))
    if not isinstance(made, np.ndarray) or made.dtype != np.uint8 or made.shape != photo.shape:
        what = f"{made.dtype} {made.shape}" if isinstance(made, np.ndarray) else type(made).__name__
        subject.fail("output", f"it returned {what} for a uint8 {photo.shape} photo; it must return uint8 "
                               "pixels of the photo's shape (H x W x 3)")
    if not np.array_equal(photo, kept):
        subject.fail("output", "it modified the photo it was given")
    with subject.rule("deterministic"):
        again = maker(photo.copy(), np.random.default_rng(7))
    if not np.array_equal(np.asarray(again), made):
        subject.fail("deterministic", "two calls with the same photo and an equally seeded generator differ; "
                                      "draw randomness only from the rng argument")
    facts: dict[str, Any] = {"shape": tuple(made.shape)}
    if workdir is None:
        return facts
    from ..data.make import make_dataset

    workdir = Path(workdir)
    photos = workdir / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    for i in range(DATASET_PHOTOS):
        Image.fromarray(_photo(i + 1, (DATASET_SIDE + 8, DATASET_SIDE, 3))).save(photos / f"photo_{i}.png")
    out = workdir / "made"
    with subject.rule("makes-dataset"):
        report = make_dataset(name, photos, out, split=(0.5, 0.25, 0.25), size=DATASET_SIDE, workers=1,
                              registry=registry, progress=False)
        dataset = registry.create("dataset_format", "aligned", root=out, split="train")
        item = dataset[0]
    if sum(report.counts.values()) != DATASET_PHOTOS or tuple(item["A"].shape) != (3, DATASET_SIDE, DATASET_SIDE):
        subject.fail("makes-dataset", f"made {report.counts} from {DATASET_PHOTOS} photos, first item A "
                                      f"{tuple(item['A'].shape)}; expected every photo, and A of "
                                      f"(3, {DATASET_SIDE}, {DATASET_SIDE})")
    facts["counts"] = dict(report.counts)
    facts["root"] = out
    return facts
