"""The zoo manifest: named models, where their weights come from, and what they do.

Entries come from the bundled ``zoo/manifest.toml`` (package ``imgtrans_zoo``) and from plugins
(``register_zoo`` hook: append a manifest path or a ``{name: entry}`` mapping).  A manifest is
data only: nothing in it is ever executed.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from ..util.errors import ConfigError, DuplicateComponentError, UnknownNameError
from .directions import DIRECTIONS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FORMATS = ("safetensors", "reference-pth")
REQUIRED = ("recipe", "generator", "source", "format")
# Field types a manifest must respect; a wrong type would otherwise fail much later, in a pull.
_TYPES: dict[str, tuple[type, ...]] = {
    "description": (str,), "recipe": (str,), "generator": (str, dict), "source": (str,), "format": (str,),
    "in_channels": (int,), "out_channels": (int,), "direction": (str,), "domains": (dict,),
    "sha256": (str,), "size": (int,), "size_mb": (int, float), "licence": (str,), "dataset": (str,),
    "norm_stats": (str,), "trained_with": (str,), "budget": (dict,), "eval": (dict,),
}


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
    #: what training it cost (steps, epochs, hours, machine): what a retrain of it will take
    budget: dict[str, Any] = field(default_factory=dict)
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
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise ConfigError(f"zoo manifest {origin}: [models] must be a table of entries")
    return {name: make_entry(name, raw, origin) for name, raw in models.items()}


def make_entry(name: str, raw: dict[str, Any], origin: str) -> ZooEntry:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"zoo entry {name!r} ({origin}) must be a table of fields, not {type(raw).__name__}")
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise ConfigError(f"zoo entry {name!r} ({origin}) lacks {', '.join(missing)}")
    if raw["format"] not in FORMATS:
        raise ConfigError(f"zoo entry {name!r}: format must be one of {', '.join(FORMATS)}, not {raw['format']!r}")
    known = set(ZooEntry.__dataclass_fields__) - {"name", "origin"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise UnknownNameError(f"field of zoo entry {name!r}", unknown[0], known)
    for key, value in raw.items():
        types = _TYPES.get(key)
        if types and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
            raise ConfigError(f"zoo entry {name!r} ({origin}): {key} must be "
                              f"{' or '.join(t.__name__ for t in types)}, not {value!r}")
    if raw.get("direction", "AtoB") not in DIRECTIONS:
        raise ConfigError(f"zoo entry {name!r} ({origin}): direction must be AtoB or BtoA, not {raw['direction']!r}")
    generator = raw["generator"]
    if isinstance(generator, str):
        generator = {"name": generator}
    if not isinstance(generator.get("name"), str):
        raise ConfigError(f"zoo entry {name!r} ({origin}): generator needs a name")
    return ZooEntry(name=name, origin=origin, **{**raw, "generator": generator,
                                                  "description": raw.get("description", "")})


def bundled_manifest() -> Path:
    return Path(str(resources.files("imgtrans_zoo") / "manifest.toml"))


def plugin_entries(items: list[Any], plugin: str, anchor: Path | None) -> dict[str, ZooEntry]:
    """Validate what one plugin's ``register_zoo`` appended, so a bad entry rejects that plugin only.

    Relative manifest paths, and relative ``source`` files of entries given as mappings, are
    resolved against ``anchor`` (the plugin's module file), never the working directory, which
    differs from run to run.  A manifest's own relative sources resolve against the manifest.
    """
    batch: dict[str, ZooEntry] = {}

    def take(entries: dict[str, ZooEntry]) -> None:
        for name, entry in entries.items():
            if name in batch:
                where = (f"twice in {entry.origin}" if batch[name].origin == entry.origin
                         else f"in {batch[name].origin} and again in {entry.origin}")
                raise DuplicateComponentError(f"zoo model {name!r} is declared {where} (plugin {plugin!r})")
            local = entry.local_source()
            if local is not None and not local.is_file():
                raise ConfigError(f"zoo entry {name!r} ({entry.origin}): source file {local} does not exist")
            batch[name] = entry

    for item in items:
        if isinstance(item, (str, os.PathLike)):
            path = Path(item).expanduser()
            if not path.is_absolute():
                if anchor is None:
                    raise ConfigError(f"zoo manifest path {str(item)!r} is relative and plugin {plugin!r} has "
                                      "no file to resolve it against: register an absolute path")
                path = anchor.parent / path
            if not path.is_file():
                raise ConfigError(f"zoo manifest {path} does not exist")
            take(parse_manifest(path.read_text(encoding="utf-8"), str(path)))
        elif isinstance(item, Mapping):
            origin = str(anchor) if anchor is not None else f"plugin {plugin!r}"
            entries = {}
            for name, raw in item.items():
                if isinstance(raw, ZooEntry):
                    entry = replace(raw, name=name, origin=raw.origin or origin)
                else:
                    entry = make_entry(name, raw, origin)
                if not entry.is_url and anchor is None and not Path(entry.source).is_absolute():
                    raise ConfigError(f"zoo entry {name!r} of plugin {plugin!r}: relative source "
                                      f"{entry.source!r} cannot be resolved (the plugin has no file)")
                entries[name] = entry
            take(entries)
        else:
            raise ConfigError(f"register_zoo of plugin {plugin!r} appended {item!r}: "
                              "expected a manifest path or a {name: entry} mapping")
    return batch


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
