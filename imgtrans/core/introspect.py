"""What a registered component (or named dataset) is and what can be set on it.

``imgtrans info KIND NAME`` and :func:`imgtrans.describe` read the same dictionary, built from
the factory's signature, type annotations and docstring, so a plugin author documents arguments
once, in the code (read from the source, without importing, for a lazily registered component:
see :mod:`imgtrans.core.source_info`).  Per-argument help is taken from a Google-style ``Args:`` section
(``name (type): help``) or reST ``:param name: help`` lines, of the class or its ``__init__``.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .registry import normalize_kind
from .source_info import docstring_arguments, jsonable, type_name


def describe(kind: str, name: str) -> dict[str, Any]:
    """Description, origin (plugin, distribution, version) and settable arguments of ``name``.

    ``kind`` is a component kind (plurals such as ``generators`` are accepted) or ``dataset``.
    Metrics add ``shape`` (paired or set) and ``better`` (higher or lower).  Recipes add their
    ``slots`` (component kind, default, role when declared), ``owned_networks`` (the trainable
    networks it builds itself: name and description), command-line ``options`` of
    ``imgtrans train RECIPE``, ``directions`` (generator slot per direction) and defaults for the
    ``[data]`` and ``[optim]`` sections; their ``arguments`` are the hyper-parameters.
    """
    from .plugin_host import get_host

    kind = normalize_kind(kind, extra=("dataset",))
    host = get_host()
    if kind == "dataset":
        return _describe_dataset(host, name)
    component = host.registry.get(kind, name)
    info = host.plugins.get(component.plugin)
    out: dict[str, Any] = {
        "kind": kind, "name": name, "description": component.description, "plugin": component.plugin,
        "distribution": info.distribution if info else None, "version": info.version if info else None,
        "arguments": [a for a in _arguments(component) if not (kind == "recipe" and a["name"] == "components")],
    }
    if kind == "metric":
        from .interfaces import PairedMetric, SetMetric

        factory = component.factory
        out["shape"] = ("paired" if isinstance(factory, type) and issubclass(factory, PairedMetric)
                        else "set" if isinstance(factory, type) and issubclass(factory, SetMetric) else None)
        out["better"] = getattr(factory, "better", None)
    if kind == "recipe":
        factory = component.factory
        out["slots"] = [{"name": slot, "kind": getattr(spec, "kind", None), "default": getattr(spec, "default", None),
                         "role": getattr(spec, "role", None), "args": jsonable(dict(getattr(spec, "args", None) or {}))}
                        for slot, spec in (getattr(factory, "slots", None) or {}).items()]
        out["options"] = [{"flag": o.flag, "keys": list(o.keys), "help": o.help, "type": _option_type(o.type)}
                          for o in getattr(factory, "options", ()) or ()]
        out["owned_networks"] = [{"name": n, "description": d}
                                 for n, d in (getattr(factory, "owned_networks", None) or {}).items()]
        out["directions"] = dict(getattr(factory, "directions", None) or {})
        out["paired"] = getattr(factory, "paired", None)
        out["data_defaults"] = jsonable(dict(getattr(factory, "data_defaults", {}) or {}))
        out["optim_defaults"] = jsonable(dict(getattr(factory, "optim_defaults", {}) or {}))
    return out


def _arguments(component: Any) -> list[dict[str, Any]]:
    """From the source for a lazily registered component not imported yet (no torch import just to
    show a table), else, and whenever the source does not settle it, from the imported factory."""
    if component.target is not None and not component.loaded and component.kind != "recipe":
        from .source_info import source_arguments

        found = source_arguments(component.target)
        if found is not None:
            return found
    return arguments(component.factory)


def arguments(factory: Callable[..., Any]) -> list[dict[str, Any]]:
    """Each keyword argument of ``factory``: name, type, default (``required`` when there is none), help."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    params = list(inspect.signature(target).parameters.values())
    if inspect.isclass(factory):
        params = params[1:]
    helps = class_helps(factory) if inspect.isclass(factory) else docstring_arguments(factory.__doc__)
    out = []
    for p in params:
        if p.kind not in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            continue
        required = p.default is inspect.Parameter.empty
        # the annotation as written (text under PEP 563), never typing.get_type_hints: that differs
        # between Pythons (3.10 turns `int | None = None` into Optional[int]); source_info reads the same
        out.append({"name": p.name, "type": type_name(p.annotation),
                    "default": None if required else jsonable(p.default), "required": required,
                    "help": helps.get(p.name, "")})
    return out


def class_helps(cls: type) -> dict[str, str]:
    """Argument help from the docstrings of each class of the MRO and its own ``__init__``, the
    class's own over its bases' (a subclass that only changes defaults inherits its base's help)."""
    helps: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):  # not object
        init = vars(klass).get("__init__")
        for doc in (vars(klass).get("__doc__"), getattr(init, "__doc__", None) if init is not None else None):
            helps.update({k: v for k, v in docstring_arguments(doc).items() if v})
    return helps


def _describe_dataset(host: Any, name: str) -> dict[str, Any]:
    entry = host.catalog.get(name)
    info = host.plugins.get(entry.plugin)
    return {"kind": "dataset", "name": name, "description": entry.description, "plugin": entry.plugin,
            "distribution": info.distribution if info else None, "version": info.version if info else None,
            "paired": entry.paired, "domains": list(entry.domains), "layout": entry.layout, "how": entry.how,
            "url": entry.url, "splits": dict(entry.splits), "licence": entry.licence, "notes": entry.notes,
            "size_mb": entry.size_mb}


def _option_type(kind: Any) -> str:
    """``int``, ``flag`` for bool, ``a|b`` for a tuple of choices."""
    if kind is bool:
        return "flag"
    if isinstance(kind, tuple):
        return "|".join(map(str, kind))
    return type_name(kind)
