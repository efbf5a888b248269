"""Typed registries of components, filled by plugins through the ``register_components`` hook.

One :class:`Registry` holds seven kinds of component (generators, discriminators, losses,
dataset formats, recipes, metrics, and pair makers: the tasks of ``imgtrans data make``).  A
component is a name bound to a factory (usually a class); ``create`` calls the factory with
keyword arguments after checking them against the factory's signature, and records the name and
arguments on the result so checkpoints can rebuild it.
"""
from __future__ import annotations

import fnmatch
import inspect
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..util.errors import ConfigError, DuplicateComponentError, ImgtransError, PluginCodeError, UnknownNameError

#: what a plugin registers: the factory, or where to import it from (``"package.module:attribute"``)
Factory = Callable[..., Any] | str

KINDS: tuple[str, ...] = ("generator", "discriminator", "loss", "dataset_format", "recipe", "metric", "pair_maker")


def normalize_kind(text: str, extra: tuple[str, ...] = ()) -> str:
    """``generators``, ``dataset-format`` and ``losses`` name the same kinds as their canonical forms,
    because users type what they read in plural headings; anything else is an error listing the kinds."""
    valid = KINDS + extra
    base = text.strip().lower().replace("-", "_")
    for candidate in (base, base[:-1] if base.endswith("s") else "", base[:-2] if base.endswith("es") else ""):
        if candidate in valid:
            return candidate
    raise UnknownNameError("component kind", text, valid)


@contextmanager
def plugin_code(plugin: str, what: str) -> Iterator[None]:
    """Run plugin code so that its failures read as one line naming the plugin and ``what`` failed.

    Errors that are already the project's own (a plugin validating its arguments with
    :class:`ConfigError`) pass through unchanged: their message is meant for the user as is.
    """
    try:
        yield
    except ImgtransError:
        raise
    except Exception as exc:  # noqa: BLE001 - anything a plugin raises is attributed to it
        raise PluginCodeError(plugin, what, exc) from exc


def first_sentence(doc: str | None) -> str:
    """The first sentence of a docstring's summary paragraph (colons and dotted names stay inside it)."""
    summary = " ".join(re.split(r"\n\s*\n", inspect.cleandoc(doc or ""))[0].split()).replace("``", "")
    match = re.search(r"[.!?](?=\s+[^a-z]|$)", summary)  # "e.g. maps" does not end a sentence
    return (summary[:match.start()] if match else summary).strip()


#: ``"package.module:attribute"``: where a lazily registered factory is imported from
_TARGET = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class Component:
    """A registered factory and where it came from.

    ``factory`` is the callable itself, or a ``"module:attribute"`` string (lazy registration):
    then the module is imported only when the factory is first needed (to build the component or
    to check arguments), so listing and describing components never imports torch.
    """

    __slots__ = ("kind", "name", "plugin", "target", "_factory", "_description")

    def __init__(self, kind: str, name: str, factory: Callable[..., Any] | str, plugin: str,
                 description: str = "") -> None:
        self.kind, self.name, self.plugin = kind, name, plugin
        if isinstance(factory, str):
            if not _TARGET.match(factory):
                raise ConfigError(f"{kind} {name!r}: {factory!r} is neither a callable nor 'package.module:attribute'")
            self.target: str | None = factory
            self._factory: Callable[..., Any] | None = None
        else:
            self.target, self._factory = None, factory
        self._description = description or None

    def __repr__(self) -> str:
        return f"Component({self.kind!r}, {self.name!r}, {self.target or self._factory!r}, {self.plugin!r})"

    @property
    def loaded(self) -> bool:
        return self._factory is not None

    @property
    def factory(self) -> Callable[..., Any]:
        """The callable, imported on first use; a module that fails to import is a one-line
        :class:`PluginCodeError` naming the component, its plugin and the import error."""
        if self._factory is None:
            import importlib

            module, _, attr = (self.target or "").partition(":")
            with plugin_code(self.plugin, f"loading {self.kind.replace('_', ' ')} {self.name!r} from {self.target}"):
                value: Any = importlib.import_module(module)
                for part in attr.split("."):
                    value = getattr(value, part)
                if not callable(value):
                    raise TypeError(f"{self.target} is a {type(value).__name__}, not a class or function")
            self._factory = value
        return self._factory

    @property
    def description(self) -> str:
        """As registered, else the first sentence of the factory's docstring (read from the source
        for a lazy registration, so listing imports nothing)."""
        if self._description is None:
            if self._factory is not None:
                doc = getattr(self._factory, "__doc__", None)
            else:
                from .source_info import source_docstring

                doc = source_docstring(self.target or "")
            self._description = first_sentence(doc)
        return self._description

    def arguments(self) -> dict[str, Any]:
        """Keyword arguments the factory accepts, with their defaults (``inspect.Parameter.empty`` if none)."""
        return factory_arguments(self.factory)


def factory_arguments(factory: Callable[..., Any]) -> dict[str, Any]:
    target = factory.__init__ if inspect.isclass(factory) else factory
    params = list(inspect.signature(target).parameters.values())
    if inspect.isclass(factory):
        params = params[1:]  # drop self
    return {
        p.name: p.default
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }


def _accepts_any_kwargs(factory: Callable[..., Any]) -> bool:
    target = factory.__init__ if inspect.isclass(factory) else factory
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(target).parameters.values())


@dataclass
class Registry:
    """All registered components, by kind and name."""

    _items: dict[str, dict[str, Component]] = field(default_factory=lambda: {k: {} for k in KINDS})

    def add(self, component: Component) -> None:
        self._check_kind(component.kind)
        taken = self._items[component.kind].get(component.name)
        if taken is not None:
            raise DuplicateComponentError(
                f"{component.kind} {component.name!r} is registered by plugin {taken.plugin!r} "
                f"and again by plugin {component.plugin!r}"
            )
        self._items[component.kind][component.name] = component

    def get(self, kind: str, name: str) -> Component:
        self._check_kind(kind)
        try:
            return self._items[kind][name]
        except KeyError:
            raise UnknownNameError(kind.replace("_", " "), name, self._items[kind]) from None

    def names(self, kind: str, pattern: str = "*") -> list[str]:
        """Registered names of ``kind`` matching a shell-style wildcard ``pattern``, sorted."""
        self._check_kind(kind)
        return sorted(n for n in self._items[kind] if fnmatch.fnmatchcase(n, pattern))

    def components(self, kind: str, pattern: str = "*") -> list[Component]:
        return [self._items[kind][n] for n in self.names(kind, pattern)]

    def create(self, kind: str, name: str, **kwargs: Any) -> Any:
        """Build component ``name`` of ``kind``; unknown keyword arguments are an error listing the valid ones."""
        component = self.get(kind, name)
        check_arguments(component, kwargs)
        with plugin_code(component.plugin, f"{kind.replace('_', ' ')} {name!r}"):
            obj = component.factory(**kwargs)
        try:
            obj.imgtrans_spec = {"name": name, "args": dict(kwargs)}
        except AttributeError:  # objects with __slots__ cannot carry their spec; that is fine
            pass
        return obj

    def _check_kind(self, kind: str) -> None:
        if kind not in self._items:
            raise UnknownNameError("component kind", kind, KINDS)


def check_arguments(component: Component, kwargs: dict[str, Any]) -> None:
    if _accepts_any_kwargs(component.factory):
        return
    valid = component.arguments()
    for key in kwargs:
        if key not in valid:
            raise UnknownNameError(f"argument of {component.kind} {component.name!r}", key, valid)
    missing = [k for k, v in valid.items() if v is inspect.Parameter.empty and k not in kwargs]
    if missing:
        raise ConfigError(f"{component.kind} {component.name!r} needs argument(s): {', '.join(missing)}")


class PluginRegistrar:
    """What a plugin's ``register_components`` hook receives.

    Registrations are staged and committed together after the hook returns, so a plugin that
    fails half-way (or collides with another plugin's name) leaves nothing behind.
    """

    def __init__(self, plugin: str):
        self.plugin = plugin
        self.staged: list[Component] = []

    def add(self, kind: str, name: str, factory: Factory, description: str = "") -> None:
        """Register ``factory`` (a callable, or ``"package.module:attribute"`` to import it only
        when it is first used); ``description`` defaults to its docstring's first sentence."""
        if kind not in KINDS:
            raise UnknownNameError("component kind", kind, KINDS)
        self.staged.append(Component(kind, name, factory, self.plugin, description))

    def generator(self, name: str, factory: Factory, description: str = "") -> None:
        self.add("generator", name, factory, description)

    def discriminator(self, name: str, factory: Factory, description: str = "") -> None:
        self.add("discriminator", name, factory, description)

    def loss(self, name: str, factory: Factory, description: str = "") -> None:
        self.add("loss", name, factory, description)

    def dataset_format(self, name: str, factory: Factory, description: str = "") -> None:
        self.add("dataset_format", name, factory, description)

    def recipe(self, name: str, factory: Factory, description: str = "") -> None:
        self.add("recipe", name, factory, description)

    def metric(self, name: str, factory: Factory, description: str = "") -> None:
        """A :class:`~imgtrans.core.interfaces.PairedMetric` or :class:`~imgtrans.core.interfaces.SetMetric`."""
        self.add("metric", name, factory, description)

    def pair_maker(self, name: str, factory: Factory, description: str = "") -> None:
        self.add("pair_maker", name, factory, description)

    def validate(self, registry: Registry) -> None:
        """Raise if committing would fail, leaving ``registry`` untouched."""
        names = [(c.kind, c.name) for c in self.staged]
        dup = {x for x in names if names.count(x) > 1}
        if dup:
            kind, name = sorted(dup)[0]
            raise DuplicateComponentError(f"plugin {self.plugin!r} registers {kind} {name!r} twice")
        for c in self.staged:
            if c.target is not None:
                _check_module_exists(c)
            taken = registry._items[c.kind].get(c.name)
            if taken is not None:
                registry.add(c)  # raises, naming both plugins

    def commit(self, registry: Registry) -> None:
        self.validate(registry)
        for c in self.staged:
            registry.add(c)


def _check_module_exists(component: Component) -> None:
    """A misspelt module in a lazy registration rejects the plugin when it loads, as a malformed
    registration does, rather than when the component is first used.  Only the module's file is
    looked up: no code runs, not even its parent packages' (see :func:`source_info.module_file`)."""
    import importlib.util
    import sys

    from .source_info import module_file

    module = (component.target or "").partition(":")[0]
    found = module_file(module) is not None
    parent = module.rpartition(".")[0]
    if not found and (not parent or parent in sys.modules):  # a zip import, a namespace package
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
    if not found:
        raise ConfigError(f"{component.kind} {component.name!r}: module {module!r} of {component.target!r} not found")
