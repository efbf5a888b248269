"""Which file each input becomes, decided and checked before any image is computed.

Nothing is lost and nothing is half done, so the whole job is refused up front, in one line,
before the model is even loaded, when:

* INPUTS is a folder with no supported image (the message lists the extensions and how many
  files were ignored);
* two inputs would write the same output (``x.jpg`` and ``x.png`` both give ``x.png``);
* an output would be one of the inputs (OUTPUT is INPUTS, or overlaps it): an input is never
  replaced, not even with ``overwrite``;
* OUTPUT cannot be written (a file where a folder is needed, no permission).

Outputs that already exist are the one per-file case: skipped with ``skip_existing``, replaced
with ``overwrite``, otherwise reported as failed (the others are still written).
"""
from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..data.image_files import FORMATS, IMAGE_EXTENSIONS, SUFFIX_FORMATS, is_image, list_images
from ..util.destinations import check_writable_file, check_writable_folder
from ..util.errors import DataError, ImgtransError


@dataclass
class Job:
    index: int      # position in the input list: the report's order
    src: Path
    rel: Path       # relative to the input folder: names the output, keys the dropout seed
    dst: Path
    size: tuple[int, int] = (0, 0)  # (width, height) from the file header: sort key and memory bound


@dataclass
class Plan:
    inputs: list[Path]                                            # every input, in order
    jobs: list[Job]                                               # the inputs to translate
    fmt: str                                                      # output format
    skipped: list[Path] = field(default_factory=list)             # output exists and skip_existing
    failed: list[tuple[Path, str]] = field(default_factory=list)  # output exists, neither flag given


# ----------------------------------------------------------------------------- inputs

def collect_inputs(source: str | Path, recursive: bool = False, exclude: Path | None = None) -> list[Path]:
    """The images of ``source``: the file itself, or a folder's images (sorted; with ``recursive``,
    those of every sub-folder too, skipping hidden folders and ``exclude``)."""
    return [src for src, _ in input_items(source, recursive, exclude)[0]]


def input_items(source: str | Path, recursive: bool = False,
                exclude: Path | None = None) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """(path, path relative to the input folder) for each input, and the files that were passed over
    for an unsupported extension (so an empty result can say why)."""
    path = Path(source)
    if path.is_file():
        return [(path, Path(path.name))], []
    if not path.is_dir():
        raise DataError(f"input not found: {path}")
    if not recursive:
        ignored = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".") and not is_image(p)]
        return [(p, p.relative_to(path)) for p in list_images(path)], ignored
    skip = exclude.resolve() if exclude is not None else None
    items, ignored = [], []
    for folder, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (Path(folder, d).resolve() != skip))
        for name in sorted(files):
            p = Path(folder, name)
            if not p.is_file() or name.startswith("."):
                continue
            if is_image(p):
                items.append((p, p.relative_to(path)))
            else:
                ignored.append(p)
    return items, ignored


def no_images_error(source: Path, recursive: bool, ignored: list[Path]) -> DataError:
    """The one-line refusal of a folder with no supported images, naming what was passed over."""
    where = f"{source} (or its sub-folders)" if recursive else str(source)
    supported = ", ".join(sorted(IMAGE_EXTENSIONS))
    if not ignored:
        return DataError(f"no images in {where}: it holds no files; supported extensions: {supported}")
    kinds = ", ".join(sorted({p.suffix.lower() or "(no extension)" for p in ignored}))
    return DataError(f"no supported images in {where}: {len(ignored)} file(s) ignored ({kinds}); "
                     f"supported extensions: {supported}")


# ----------------------------------------------------------------------------- outputs

def is_single_file_output(out: Path) -> bool:
    """For a single input: OUTPUT is the output file itself when it has an image extension (and is not
    an existing folder); otherwise it is a folder."""
    return out.suffix.lower() in IMAGE_EXTENSIONS and not out.is_dir()


def output_path(src: Path, out: Path, single: bool, fmt: str = "png", rel: Path | None = None) -> Path:
    """Where ``src``'s translation goes: ``out`` itself for a single input and a file name with an
    image suffix, else ``out/<relative folder>/<stem>.<format>``."""
    if single and is_single_file_output(out):
        return out
    rel = rel if rel is not None else Path(src.name)
    return out / rel.parent / f"{rel.stem}{FORMATS[fmt][0]}"


def single_output_format(out: Path, format: str | None) -> str | None:
    """The format a single output file's suffix implies (checked against ``format``)."""
    suffix = out.suffix.lower()
    implied = SUFFIX_FORMATS.get(suffix)
    if implied is None:
        writable = ", ".join(SUFFIX_FORMATS)
        raise ImgtransError(f"cannot write {out}: {suffix} is not an output format; name the output file "
                            f"with one of {writable}, or give a folder")
    if format is not None and format != implied:
        raise ImgtransError(f"--format {format} does not match the output file {out.name}")
    return implied


def _key(path: Path) -> Path:
    """The directory entry ``path`` names (its folder resolved, the name itself not followed): what a
    write to ``path`` would replace."""
    return path.parent.resolve() / path.name


def _refuse_clashes(jobs: list[Job], inputs: list[Path]) -> None:
    by_dst: dict[Path, list[Job]] = defaultdict(list)
    for job in jobs:
        by_dst[_key(job.dst)].append(job)
    clashes = [group for group in by_dst.values() if len(group) > 1]
    if clashes:
        first = clashes[0]
        names = " and ".join(str(j.src) for j in first[:3]) + (f" and {len(first) - 3} more" if len(first) > 3 else "")
        more = f" ({len(clashes) - 1} more output name(s) collide)" if len(clashes) > 1 else ""
        raise ImgtransError(f"{names} would {'both' if len(first) == 2 else 'all'} be written to {first[0].dst}{more}; nothing was written: "
                            f"rename one of them, or translate them into different OUTPUT folders")
    sources = {_key(p) for p in inputs}
    hits = [job for job in jobs if _key(job.dst) in sources]
    if hits:
        job = hits[0]
        itself = "itself" if _key(job.dst) == _key(job.src) else f"the input {job.dst}"
        more = f" ({len(hits) - 1} more output(s) would replace inputs)" if len(hits) > 1 else ""
        raise ImgtransError(f"the output of {job.src} would replace {itself}{more}; inputs are never overwritten "
                            f"and nothing was written: choose an OUTPUT outside the inputs, or a --format "
                            f"that no input has")


def plan(inputs: str | Path | list[Path], output: str | Path, *, recursive: bool = False,
         format: str | None = None, overwrite: bool = False, skip_existing: bool = False) -> Plan:
    """Decide every output and refuse the whole job (see the module docstring) before any work."""
    out = Path(output)
    single = isinstance(inputs, (str, Path)) and Path(inputs).is_file()
    if single and is_single_file_output(out):
        format = single_output_format(out, format)
    fmt = format or "png"
    if isinstance(inputs, (str, Path)):
        items, ignored = input_items(inputs, recursive, exclude=out)
        if not items:
            raise no_images_error(Path(inputs), recursive, ignored)
    else:
        items = [(Path(p), Path(Path(p).name)) for p in inputs]
    jobs = [Job(i, src, rel, output_path(src, out, single, fmt, rel)) for i, (src, rel) in enumerate(items)]
    _refuse_clashes(jobs, [src for src, _ in items])
    if single and is_single_file_output(out):
        check_writable_file(out, "OUTPUT")
    else:
        check_writable_folder(out, "OUTPUT")
    result = Plan([src for src, _ in items], [], fmt)
    for job in jobs:
        if job.dst.exists() or job.dst.is_symlink():
            if skip_existing:
                result.skipped.append(job.src)
                continue
            if not overwrite:
                result.failed.append((job.src, f"{job.dst} exists (pass --overwrite to replace it, or --skip-existing)"))
                continue
        result.jobs.append(job)
    return result
