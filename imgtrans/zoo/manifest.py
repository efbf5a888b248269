"""The zoo manifest: named models, where their weights come from, and what they do.

Entries come from the bundled ``zoo/manifest.toml`` (package ``imgtrans_zoo``) and from plugins
(``register_zoo`` hook: append a manifest path or a ``{name: entry}`` mapping).  A manifest is
data only: nothing in it is ever executed.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DuplicateComponentError, UnknownNameError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FORMATS = ("safetensors", "reference-pth")
REQUIRED = ("recipe", "generator", "source", "format")


@dataclass(frozen=True)
class ZooEntry:
    """One model of the zoo.  ``source`` is a URL, or a file name relative to the manifest."""

    name: str
    description: str
    recipe: str
    generator: dict[str, Any]
    source: str
    format: str
    in_channels: int = 3
    out_channels: int = 3
    direction: str = "AtoB"
    domains: dict[str, str] = field(default_factory=dict)
    sha256: str | None = None
    size: int | None = None
    size_mb: float | None = None
    licence: str = ""
    dataset: str = ""
    norm_stats: str = "running"
    trained_with: str = ""
    eval: dict[str, Any] = field(default_factory=dict)
    origin: str = ""  # manifest file or plugin that declared the entry

    @property
    def is_url(self) -> bool:
        return "://" in self.source

    def local_source(self) -> Path | None:
        """The shipped file, for entries whose weights come with the project."""
        if self.is_url:
            return None
        return Path(self.origin).parent / self.source

    def metadata(self) -> dict[str, Any]:
        """Checkpoint metadata this entry contributes (what translate and eval read back)."""
        return {"zoo_name": self.name, "recipe": self.recipe, "direction": self.direction,
                "domains": self.domains, "dataset": self.dataset, "norm_stats": self.norm_stats,
                "licence": self.licence, "source": self.source}


def parse_manifest(text: str, origin: str) -> dict[str, ZooEntry]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"zoo manifest {origin} is not valid TOML: {exc}") from None
    return {name: make_entry(name, raw, origin) for name, raw in data.get("models", {}).items()}


def make_entry(name: str, raw: dict[str, Any], origin: str) -> ZooEntry:
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise ConfigError(f"zoo entry {name!r} ({origin}) lacks {', '.join(missing)}")
    if raw["format"] not in FORMATS:
        raise ConfigError(f"zoo entry {name!r}: format must be one of {', '.join(FORMATS)}, not {raw['format']!r}")
    known = set(ZooEntry.__dataclass_fields__) - {"name", "origin"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise UnknownNameError(f"field of zoo entry {name!r}", unknown[0], known)
    generator = raw["generator"]
    if isinstance(generator, str):
        generator = {"name": generator}
    return ZooEntry(name=name, origin=origin, **{**raw, "generator": generator,
                                                  "description": raw.get("description", "")})


def bundled_manifest() -> Path:
    return Path(str(resources.files("imgtrans_zoo") / "manifest.toml"))


def load_zoo(extra: list[Any] | None = None) -> dict[str, ZooEntry]:
    """All entries: the bundled manifest, then what plugins registered (paths or mappings)."""
    sources: list[Any] = [bundled_manifest(), *(extra or [])]
    entries: dict[str, ZooEntry] = {}
    for source in sources:
        if isinstance(source, dict):
            batch = {n: e if isinstance(e, ZooEntry) else make_entry(n, e, "plugin") for n, e in source.items()}
        else:
            path = Path(source)
            batch = parse_manifest(path.read_text(encoding="utf-8"), str(path))
        for name, entry in batch.items():
            if name in entries:
                raise DuplicateComponentError(f"zoo model {name!r} is declared in {entries[name].origin} "
                                              f"and again in {entry.origin}")
            entries[name] = entry
    return entries
