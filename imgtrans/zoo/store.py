"""Resolving ``zoo:NAME``: download once, verify, convert, cache.

Cache layout under ``$IMGTRANS_HOME/zoo``::

    downloads/<file>            raw files as published (.pth or .safetensors)
    models/<name>.safetensors   self-describing imgtrans checkpoints, ready for translate
    hashes.json                 sha256 recorded on first download for entries that publish none

Shipped models (``source`` is a file next to the manifest) are used in place: no copy, no network.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ..checkpoint import load_checkpoint, save_checkpoint
from ..download import fetch, mirrored, sha256_file
from ..errors import CheckpointError, UnknownNameError
from ..paths import home
from ..terminal import warn_stderr
from .manifest import ZooEntry, load_zoo

MIRROR_ENV = "IMGTRANS_ZOO_MIRROR"
PREFIX = "zoo:"


def zoo_dir() -> Path:
    return home() / "zoo"


def entries() -> dict[str, ZooEntry]:
    from ..plugins import get_host

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
    return converted_path(entry).is_file()


# trust on first use ---------------------------------------------------------------------------
def _hashes_file() -> Path:
    return zoo_dir() / "hashes.json"


def recorded_hashes() -> dict[str, str]:
    try:
        return json.loads(_hashes_file().read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _record_hash(url: str, digest: str) -> None:
    hashes = recorded_hashes()
    hashes[url] = digest
    path = _hashes_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(hashes, indent=1, sort_keys=True))
    os.replace(tmp, path)


def expected_hash(entry: ZooEntry) -> str | None:
    return entry.sha256 or recorded_hashes().get(entry.source)


# pulling -------------------------------------------------------------------------------------
@dataclass
class PullResult:
    entry: ZooEntry
    path: Path
    downloaded: bool


def pull(name: str, *, mirror: str | None = None, force: bool = False, progress: bool = True) -> PullResult:
    """Make ``name`` available as a local imgtrans checkpoint; returns its path."""
    entry = get_entry(name)
    target = converted_path(entry)
    local = entry.local_source()
    if local is not None and entry.format == "safetensors":
        _verify_shipped(entry, local)
        return PullResult(entry, local, False)
    if target.is_file() and not force:
        return PullResult(entry, target, False)
    url = mirrored(entry.source, mirror or os.environ.get(MIRROR_ENV)) if local is None else str(local)
    raw = download_path(entry) if local is None else local
    if force and local is None:
        raw.unlink(missing_ok=True)
    known = expected_hash(entry)
    digest = fetch(url, raw, sha256=known, size=entry.size, progress=progress, description=entry.name)
    if known is None and local is None:
        _record_hash(entry.source, digest)
        warn_stderr(f"zoo model {entry.name!r} publishes no checksum; recorded sha256 {digest} "
                    f"of the first download in {_hashes_file()} and later downloads must match it")
    _convert(entry, raw, target)
    return PullResult(entry, target, True)


def _verify_shipped(entry: ZooEntry, path: Path) -> None:
    if not path.is_file():
        raise CheckpointError(f"zoo model {entry.name!r}: shipped file {path} is missing from this installation")
    if entry.sha256 and sha256_file(path) != entry.sha256:
        raise CheckpointError(f"zoo model {entry.name!r}: shipped file {path} does not match its sha256 in the manifest")


def _convert(entry: ZooEntry, raw: Path, target: Path) -> None:
    """Turn the downloaded file into a self-describing checkpoint that carries the entry's metadata."""
    if entry.format == "reference-pth":
        from .importer import import_reference

        args = {k: v for k, v in entry.generator.items() if k != "name"}
        import_reference(raw, target, generator=entry.generator["name"], generator_args=args,
                         metadata=entry.metadata())
        return
    ckpt = load_checkpoint(raw)
    save_checkpoint(target, ckpt.tensors, {**ckpt.metadata, **entry.metadata()})


def resolve_model(source: str | Path) -> Path:
    """``zoo:NAME`` -> cached checkpoint (pulled on first use); a path -> itself; else a bare zoo name."""
    text = str(source)
    if text.startswith(PREFIX):
        return pull(text[len(PREFIX):]).path
    path = Path(text).expanduser()
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
    status: str  # ok | mismatch | unverified | missing


def verify_cache() -> list[VerifyRow]:
    """Re-hash every cached download and shipped model against the manifest or the recorded hash."""
    rows = []
    for entry in entries().values():
        local = entry.local_source()
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
