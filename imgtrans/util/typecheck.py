"""Settings checked against what their owner declares: a type and, optionally, a constraint.

A configuration value used to be checked against the type of its default, so ``max_steps = 2.5``
passed (the default is None) and ``batch_size = 0`` reached the data loader.  Here the rules are
declared where the setting is defined:

* **types** are the annotations (``int``, ``float``, ``bool``, ``str``, ``X | None``,
  ``Literal[...]``), read with :func:`typing.get_type_hints` so ``from __future__ import
  annotations`` works; an unannotated argument takes the type of its default, and a type this
  module does not understand is not checked;
* **constraints** are small mappings: ``{"min": 1}`` (inclusive), ``{"gt": 0}`` (exclusive),
  ``{"max": ...}``, ``{"lt": ...}``, ``{"choices": ("a", "b")}`` (a ``"help"`` text may sit beside them).  Dataclass fields carry them in
  their ``metadata`` (:mod:`imgtrans.core.config`); components in an ``arg_constraints`` class
  attribute (:mod:`imgtrans.core.interfaces`).

A value that breaks a rule is a one-line :class:`ConfigError` naming the key, the value and what
is allowed (``data.batch_size must be an integer >= 1, got 0``).
"""
from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple, Union

from .errors import ConfigError

CONSTRAINT_KEYS = ("min", "gt", "max", "lt", "choices")
_NOUNS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
_NO_HINT = object()


class Rule(NamedTuple):
    """What one setting may hold: a type annotation (or ``_NO_HINT``) and a constraint mapping."""

    hint: Any
    constraint: Mapping[str, Any]


def field_rules(cls: type) -> dict[str, Rule]:
    """The rules of a dataclass's fields: annotations, plus ``metadata`` constraints."""
    hints = _hints(cls)
    return {f.name: Rule(hints.get(f.name, _NO_HINT), _constraint_of(f.metadata, cls.__name__, f.name))
            for f in dataclasses.fields(cls)}


def argument_rules(factory: Callable[..., Any], arguments: Mapping[str, Any], what: str) -> dict[str, Rule]:
    """The rules of a component's keyword ``arguments`` (name -> default): the factory's annotations
    (or the type of the default when unannotated), plus its ``arg_constraints`` declaration."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    hints = _hints(target)
    declared = getattr(factory, "arg_constraints", None) or {}
    if not isinstance(declared, Mapping):
        raise ConfigError(f"{what} declares arg_constraints as {type(declared).__name__}; it must be a mapping")
    rules = {}
    for name, default in arguments.items():
        hint = hints.get(name, _NO_HINT)
        if hint is _NO_HINT and type(default) in _NOUNS:
            hint = type(default)
        # constraints for arguments a subclass does not take (inherited declarations) are ignored
        rules[name] = Rule(hint, _constraint_of(declared.get(name) or {}, what, name))
    return rules


def check_values(values: Mapping[str, Any], rules: Mapping[str, Rule], where: str) -> dict[str, Any]:
    """``values`` checked against ``rules`` (keys without a rule pass as they are); ints given for
    floats become floats, so a resolved config round-trips through TOML unchanged."""
    out = {}
    for key, value in values.items():
        rule = rules.get(key)
        out[key] = value if rule is None else check_value(f"{where}.{key}", value, rule)
    return out


def check_value(key: str, value: Any, rule: Rule) -> Any:
    """``value`` if it obeys ``rule`` (an int widened to float where a float is declared)."""
    hint, constraint = rule
    if typing.get_origin(hint) is Literal and "choices" not in constraint:
        constraint = {**constraint, "choices": typing.get_args(hint)}
    allowed, optional = _allowed_types(hint)
    if value is None and (optional or allowed is None):
        return value
    given = value
    if allowed is not None:
        if float in allowed and int not in allowed and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise ConfigError(f"{key} must be {_describe(allowed, constraint)}, got {given!r}")
    if not _satisfies(value, constraint):
        raise ConfigError(f"{key} must be {_describe(allowed or (type(value),), constraint)}, got {given!r}")
    return value


def _hints(target: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(target)
    except Exception:  # a name only imported for type checkers, a forward reference: not checked
        return {}


def _constraint_of(raw: Mapping[str, Any], what: str, name: str) -> Mapping[str, Any]:
    constraint = {k: v for k, v in raw.items() if k != "help"}  # "help" documents, it does not constrain
    unknown = sorted(set(constraint) - set(CONSTRAINT_KEYS))
    if unknown:
        raise ConfigError(f"{what} declares an unknown constraint {unknown[0]!r} for {name!r} "
                          f"(known: {', '.join(CONSTRAINT_KEYS)})")
    return constraint


def _allowed_types(hint: Any) -> tuple[tuple[type, ...] | None, bool]:
    """(types a value may have, or None when the hint is not checked; whether None is allowed)."""
    if hint is _NO_HINT or hint is Any:
        return None, True
    origin = typing.get_origin(hint)
    if origin is Literal:
        return tuple({type(a) for a in typing.get_args(hint)}), False
    if origin is Union or isinstance(hint, types.UnionType):
        members = typing.get_args(hint)
        optional = type(None) in members
        rest = [m for m in members if m is not type(None)]
        if all(m in _NOUNS for m in rest):
            return tuple(rest), optional
        return None, optional
    if hint in _NOUNS:
        return (hint,), False
    return None, False


def _satisfies(value: Any, constraint: Mapping[str, Any]) -> bool:
    try:
        if "choices" in constraint and value not in tuple(constraint["choices"]):
            return False
        if "min" in constraint and not value >= constraint["min"]:
            return False
        if "gt" in constraint and not value > constraint["gt"]:
            return False
        if "max" in constraint and not value <= constraint["max"]:
            return False
        if "lt" in constraint and not value < constraint["lt"]:
            return False
    except TypeError:  # e.g. a string compared with a number bound: the type check reports it
        return False
    return True


def _describe(allowed: tuple[type, ...], constraint: Mapping[str, Any]) -> str:
    if "choices" in constraint:
        return "one of " + ", ".join(str(c) for c in constraint["choices"])
    noun = " or ".join(dict.fromkeys(_NOUNS.get(t, t.__name__) for t in allowed))
    if int in allowed and float in allowed:
        noun = "a number"
    bounds = [f"{op} {constraint[k]}" for k, op in (("min", ">="), ("gt", ">"), ("max", "<="), ("lt", "<"))
              if k in constraint]
    return f"{noun} {' and '.join(bounds)}" if bounds else noun
