"""Resolving ``zoo:NAME``: download once, verify, convert, cache.

Cache layout under ``$IMGTRANS_HOME/zoo``::

    downloads/<file>                   raw files as published (.pth or .safetensors)
    models/<name>.safetensors          self-describing imgtrans checkpoints, ready for translate
    models/<name>.safetensors.sha256   the converted file's sha256, checked on every use
    hashes.json                        sha256 of downloads whose entries publish none, recorded
                                       only once the file has loaded as the declared weights
    <file>.lock                        held while <file> is made (see imgtrans.util.cachelock)

Shipped models (``source`` is a file next to the manifest) are used in place: no copy, no network.
torch is imported only to load or convert a model, so ``imgtrans zoo list`` stays quick.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ..core.zoo_manifest import ZooEntry, load_zoo
from ..util.cachelock import cache_lock
from ..util.download import ChecksumMismatch, DownloadError, fetch, mirrored, sha256_file
from ..util.download_limits import approx_limit
from ..util.errors import CheckpointError, ConfigError, UnknownNameError
from ..util.fileio import atomic_path
from ..util.paths import home
from ..util.terminal import warn_stderr

MIRROR_ENV = "IMGTRANS_ZOO_MIRROR"
PREFIX = "zoo:"


def zoo_dir() -> Path:
    return home() / "zoo"


def entries() -> dict[str, ZooEntry]:
    from ..core.plugin_host import get_host

    return load_zoo(get_host().zoo_manifests)


def get_entry(name: str) -> ZooEntry:
    zoo = entries()
    if name not in zoo:
        raise UnknownNameError("zoo model", name, zoo)
    return zoo[name]


def converted_path(entry: ZooEntry) -> Path:
    local = entry.local_source()
    if local is not None and entry.format == "safetensors":
        return local
    return zoo_dir() / "models" / f"{entry.name}.safetensors"


def download_path(entry: ZooEntry) -> Path:
    return zoo_dir() / "downloads" / (Path(urlparse(entry.source).path).name or f"{entry.name}.bin")


def is_cached(entry: ZooEntry) -> bool:
    """Whether a converted (or shipped) model is there; cheap: ``pull`` and ``verify`` re-hash it."""
    if entry.local_source() is not None and entry.format == "safetensors":
        return converted_path(entry).is_file()
    target = converted_path(entry)
    return target.is_file() and _model_hash_path(target).is_file()


# trust on first use ---------------------------------------------------------------------------
_HEX64 = re.compile(r"[0-9a-f]{64}")


def hashes_file() -> Path:
    """Where the sha256 of downloads whose entries publish none are recorded."""
    return zoo_dir() / "hashes.json"


def recorded_hashes() -> dict[str, str]:
    """``{source URL: sha256}`` recorded so far.  A damaged record is an error, never "no record":
    reading it as empty would silently switch verification off."""
    path = hashes_file()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the zoo's recorded checksums {path}: {exc}; fix or delete it") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        data, why = None, f"not valid JSON ({exc.msg} at line {exc.lineno})"
    else:
        why = "not a mapping of source URLs to sha256 hex digests"
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) and _HEX64.fullmatch(v)
                                             for k, v in data.items()):
        raise ConfigError(f"the zoo's recorded checksums {path} are corrupt: {why}; delete the file (each "
                          "unchecksummed model is then verified and recorded again on its next pull)")
    return data


def _record_hash(url: str, digest: str) -> None:
    path = hashes_file()
    with cache_lock(path):  # two pulls of different models must not lose each other's record
        hashes = recorded_hashes()
        hashes[url] = digest
        try:
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(hashes, indent=1, sort_keys=True), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot record the sha256 of {url} in {path}: {exc.strerror or exc}") from None


def expected_hash(entry: ZooEntry) -> str | None:
    return entry.sha256 or recorded_hashes().get(entry.source)


# the converted model's own hash ----------------------------------------------------------------
def _model_hash_path(target: Path) -> Path:
    return target.parent / (target.name + ".sha256")


def _write_model_hash(target: Path) -> None:
    with atomic_path(_model_hash_path(target)) as tmp:
        tmp.write_text(sha256_file(target) + "\n", encoding="ascii")


def converted_status(entry: ZooEntry) -> str:
    """``ok`` (hash matches what conversion recorded), ``mismatch``, ``unrecorded`` or ``missing``."""
    target = converted_path(entry)
    if not target.is_file():
        return "missing"
    try:
        recorded = _model_hash_path(target).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return "unrecorded"
    return "ok" if sha256_file(target) == recorded else "mismatch"


# pulling -------------------------------------------------------------------------------------
@dataclass
class PullResult:
    entry: ZooEntry
    path: Path
    downloaded: bool


def pull(name: str, *, mirror: str | None = None, force: bool = False, progress: bool = True) -> PullResult:
    """Make ``name`` available as a local imgtrans checkpoint; returns its path.

    The converted model is re-hashed on every use; one that no longer matches (or whose hash
    was never recorded) is converted again.  One process at a time per model (a lock file next to
    it): a second pull waits, then finds the model cached.  ``force`` downloads again and, for
    entries that publish no checksum, learns the new file's sha256."""
    entry = get_entry(name)
    local = entry.local_source()
    if local is not None and entry.format == "safetensors":
        _verify_shipped(entry, local)
        return PullResult(entry, local, False)
    target = converted_path(entry)
    if not force and converted_status(entry) == "ok":
        return PullResult(entry, target, False)
    with cache_lock(target):
        status = converted_status(entry)
        if not force and status == "ok":  # another process made it while we waited
            return PullResult(entry, target, False)
        url = mirrored(entry.source, mirror or os.environ.get(MIRROR_ENV)) if local is None else str(local)
        if status in ("mismatch", "unrecorded") and not force:
            why = "does not match the sha256 recorded when it was made" if status == "mismatch" else \
                "has no recorded sha256"
            warn_stderr(f"cached zoo model {target} {why}; converting it again")
        _obtain(entry, url, local, target, force, progress)
    return PullResult(entry, target, True)


def _obtain(entry: ZooEntry, url: str, local: Path | None, target: Path, force: bool, progress: bool) -> None:
    """Download (or read) the published file, prove it is the declared weights by converting it,
    and only then record its sha256 (for entries that publish none) and the converted file's."""
    raw = download_path(entry) if local is None else local
    recorded = None if entry.sha256 or local is not None else recorded_hashes().get(entry.source)
    known = entry.sha256 or (None if force else recorded)
    if force and local is None:
        _discard(raw)
    try:
        digest = fetch(url, raw, sha256=known, size=entry.size, max_bytes=approx_limit(entry.size_mb),
                       progress=progress, description=entry.name, advice=_offline_advice(entry))
    except ChecksumMismatch as exc:
        if known is not None and known == recorded:
            raise ChecksumMismatch(
                f"{exc}; the expected sha256 was recorded on the first download of {entry.source} in "
                f"{hashes_file()}; if the file changed on purpose, run `imgtrans zoo pull {entry.name} --force` "
                "to verify and record the new one") from None
        raise
    try:
        _convert(entry, raw, target)
    except CheckpointError as exc:
        if local is None:
            _discard(raw)
        what = "was deleted and its sha256 not recorded" if known is None else "was deleted"
        raise CheckpointError(f"zoo model {entry.name!r}: {url} is not the declared weights ({exc}); "
                              f"the download {what}") from None
    if known is None and local is None:
        _record_hash(entry.source, digest)
        if recorded and recorded != digest:
            warn_stderr(f"zoo model {entry.name!r}: replaced the recorded sha256 {recorded} by {digest} "
                        f"(--force) in {hashes_file()}")
        elif not recorded:
            warn_stderr(f"zoo model {entry.name!r} publishes no checksum; recorded sha256 {digest} of this "
                        f"verified download in {hashes_file()} and later downloads must match it")
    try:
        _write_model_hash(target)
    except OSError as exc:
        raise CheckpointError(f"cannot write {_model_hash_path(target)}: {exc.strerror or exc}") from None


def _offline_advice(entry: ZooEntry) -> str:
    """What a user without internet can do instead of downloading ``entry``."""
    shipped = sorted(name for name, e in entries().items() if e.local_source() is not None)
    alternative = f"; models that ship with imgtrans need no download: {', '.join(f'zoo:{n}' for n in shipped)}" \
        if shipped else ""
    return (f"or set {MIRROR_ENV} to a mirror (a URL or folder holding {Path(urlparse(entry.source).path).name or 'it'})"
            f"{alternative}")


def _discard(raw: Path) -> None:
    for path in (raw, raw.parent / (raw.name + ".part")):
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise CheckpointError(f"cannot delete {path}: {exc.strerror or exc}; delete it by hand") from None


def _verify_shipped(entry: ZooEntry, path: Path) -> None:
    if not path.is_file():
        raise CheckpointError(f"zoo model {entry.name!r}: shipped file {path} is missing from this installation")
    if entry.sha256 and sha256_file(path) != entry.sha256:
        raise CheckpointError(f"zoo model {entry.name!r}: shipped file {path} does not match its sha256 in the manifest")


def _convert(entry: ZooEntry, raw: Path, target: Path) -> None:
    """Turn the downloaded file into a self-describing checkpoint that carries the entry's metadata.

    Raises :class:`CheckpointError` when ``raw`` is not the weights of the entry's generator
    (an HTML page, a truncated body, another model); a failure to write is a different error."""
    if entry.format == "reference-pth":
        from .importer import reference_checkpoint

        args = {k: v for k, v in entry.generator.items() if k != "name"}
        net, meta = reference_checkpoint(raw, generator=entry.generator["name"], generator_args=args,
                                         metadata=entry.metadata())
        _save(target, {"generator": net}, meta)
        return
    from ..core.checkpoint import load_checkpoint

    ckpt = load_checkpoint(raw)
    available = _check_networks(raw, ckpt.metadata)
    info = available.get(entry.direction) if len(available) > 1 else next(iter(available.values()))
    if not isinstance(info, dict):
        raise CheckpointError(f"{raw} translates {', '.join(available)}, not {entry.direction}")
    declared = info.get("generator")
    differing = [k for k, v in entry.generator.items() if not isinstance(declared, dict) or declared.get(k) != v]
    if differing:
        raise CheckpointError(f"{raw} holds generator {declared!r}, but the manifest declares {entry.generator!r} "
                              f"(differing: {', '.join(differing)})")
    _save(target, ckpt.tensors, {**ckpt.metadata, **entry.metadata()})


def _check_networks(path: Path, metadata: dict) -> dict[str, dict]:
    """Every network the metadata describes (one per direction) must be exactly what the file's
    tensors hold; returns the directions."""
    from ..core.checkpoint_fit import check_generator_fits
    from ..core.model_file import model_directions

    available = model_directions(metadata)
    for each in available.values():
        if not isinstance(each, dict):
            raise CheckpointError(f"{path}: metadata field 'directions' is malformed")
        check_generator_fits(path, each, each.get("network", "generator"))
    return available


def _save(target: Path, networks: dict, metadata: dict) -> None:
    try:
        from ..core.checkpoint import save_checkpoint

        save_checkpoint(target, networks, metadata)
    except OSError as exc:
        raise DownloadError(f"cannot write the converted model {target}: {exc.strerror or exc}; "
                            "free some space or set IMGTRANS_HOME to a writable folder") from None


def check_model_source(source: str | Path) -> None:
    """Refuse, before torch is imported or anything downloaded, a model that is neither a file nor
    a zoo entry (an unknown ``zoo:NAME`` with a suggestion): the same one-line errors as
    :func:`resolve_model`, in milliseconds rather than after seconds of start-up."""
    text = str(source)
    if text.startswith(PREFIX):
        get_entry(text[len(PREFIX):])
    elif Path(text).expanduser().is_dir():
        run_model_file(Path(text).expanduser())
    elif not Path(text).expanduser().exists() and text not in entries():
        raise CheckpointError(f"model not found: {text} is neither a file nor a zoo model (see `imgtrans zoo list`)")


#: the model file a finished ``imgtrans train`` run leaves in its directory
RUN_MODEL_FILE = "model.safetensors"


def run_model_file(folder: Path) -> Path:
    """The model of a run directory given where a model is expected (``--model runs/demo``):
    ``folder/model.safetensors``, or one line naming what was looked for."""
    path = folder / RUN_MODEL_FILE
    if path.is_file():
        return path
    stopped = " (a stopped run finishes with `imgtrans train --resume RUN`)" if (folder / "checkpoints").is_dir() else ""
    raise CheckpointError(f"{folder} is a directory without a model: looked for {path}{stopped}; pass a model "
                          "file (.safetensors, .onnx), a run directory or zoo:NAME")


def resolve_model(source: str | Path) -> Path:
    """``zoo:NAME`` -> cached checkpoint (pulled on first use); a run directory -> its
    ``model.safetensors``; a path -> itself; else a bare zoo name."""
    text = str(source)
    if text.startswith(PREFIX):
        return pull(text[len(PREFIX):]).path
    path = Path(text).expanduser()
    if path.is_dir():
        return run_model_file(path)
    if path.exists():
        return path
    if text in entries():
        return pull(text).path
    raise CheckpointError(f"model not found: {text} is neither a file nor a zoo model (see `imgtrans zoo list`)")


def zoo_default_direction(source: str | Path) -> str | None:
    """The direction a ``zoo:NAME`` entry serves (None for files): entries may share a two-way file."""
    text = str(source)
    name = text[len(PREFIX):] if text.startswith(PREFIX) else text
    if not text.startswith(PREFIX) and Path(text).expanduser().exists():
        return None
    entry = entries().get(name)
    return entry.direction if entry is not None else None


# verification --------------------------------------------------------------------------------
@dataclass
class VerifyRow:
    name: str
    path: Path
    status: str  # ok | mismatch | unverified | missing | corrupt


def verify_cache() -> list[VerifyRow]:
    """Re-hash every cached download, converted model and shipped model against the manifest or
    the recorded hash (a converted model made before hashes were recorded gets a load check)."""
    recorded_hashes()  # a damaged record is reported even when nothing is cached
    rows = []
    for entry in entries().values():
        local = entry.local_source()
        if not (local is not None and entry.format == "safetensors"):
            rows += _verify_converted(entry)
        path = local if local is not None else download_path(entry)
        if not path.is_file():
            if local is not None:
                rows.append(VerifyRow(entry.name, path, "missing"))
            continue
        known = entry.sha256 if local is not None else expected_hash(entry)
        if known is None:
            rows.append(VerifyRow(entry.name, path, "unverified"))
        else:
            rows.append(VerifyRow(entry.name, path, "ok" if sha256_file(path) == known else "mismatch"))
    return rows


def _verify_converted(entry: ZooEntry) -> list[VerifyRow]:
    target = converted_path(entry)
    status = converted_status(entry)
    if status == "missing":
        return []
    if status == "unrecorded":
        from ..core.checkpoint import load_checkpoint, read_metadata

        try:
            _check_networks(target, read_metadata(target))
            load_checkpoint(target)
            status = "unverified"
        except CheckpointError:
            status = "corrupt"
    return [VerifyRow(entry.name, target, status)]
