"""What every conformance check shares: the thing checked, and how a broken rule is reported."""
from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

from ..util.errors import ConformanceError

if TYPE_CHECKING:  # pragma: no cover
    from ..core.registry import Component, Registry


class Subject:
    """One registered thing under test: ``kind``, ``name`` and the plugin that registered it."""

    def __init__(self, kind: str, name: str, plugin: str):
        self.kind, self.name, self.plugin = kind, name, plugin

    def __str__(self) -> str:
        return f"{self.kind.replace('_', ' ')} {self.name!r} (plugin {self.plugin!r})"

    def fail(self, rule: str, detail: str) -> NoReturn:
        """Stop with the one line a plugin author needs: what, whose, which rule, and how."""
        raise ConformanceError(f"{self} breaks rule {rule!r}: {detail}")

    @contextmanager
    def rule(self, rule: str) -> Iterator[None]:
        """Plugin code raising inside a check breaks the rule being checked (the cause is kept)."""
        try:
            yield
        except ConformanceError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the plugin raised, it broke this rule
            detail = " ".join(str(exc).split())
            raise ConformanceError(f"{self} breaks rule {rule!r}: {type(exc).__name__}"
                                   + (f": {detail}" if detail else "")) from exc


def component_subject(registry: "Registry", kind: str, name: str) -> tuple[Subject, "Component"]:
    """The subject for a registered component; also checks the rules every component shares."""
    component = registry.get(kind, name)
    subject = Subject(kind, name, component.plugin)
    if not component.description:
        subject.fail("described", "it has no description: give its class a docstring (its first sentence is "
                                  "what `imgtrans list` shows) or pass description= when registering it")
    return subject, component


def check_defaults(subject: Subject, component: "Component", needed: tuple[str, ...] = ()) -> None:
    """Every constructor argument but ``needed`` ones has a JSON-serialisable default: configs are
    built from defaults, written into checkpoints and set with ``--set KIND.ARG=VALUE``."""
    for arg, default in component.arguments().items():
        if arg in needed:
            continue
        if default is inspect.Parameter.empty:
            subject.fail("defaults", f"argument {arg!r} has no default")
        try:
            json.dumps(default)
        except (TypeError, ValueError):
            subject.fail("defaults", f"the default of argument {arg!r} ({default!r}) is not JSON-serialisable")


def positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
