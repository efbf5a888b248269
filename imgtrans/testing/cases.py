"""Everything one plugin registered, as cases to check: the entry points plugin authors call
from their own test suites (with or without pytest), and a way to try hooks before installing."""
from __future__ import annotations

import inspect
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import torch

from ..core.registry import KINDS
from ..util.errors import ConformanceError
from .check_components import MIN_SIDE, check_discriminator, check_generator, check_loss
from .check_datasets import check_dataset, check_dataset_format
from .check_metrics import check_metric
from .check_pairmakers import check_pair_maker
from .check_recipes import check_recipe
from .subject import Subject

if TYPE_CHECKING:  # pragma: no cover
    from ..core.plugin_host import PluginHost

#: every kind of case, in the order they are checked: components, then named datasets, zoo models, commands
CASE_KINDS: tuple[str, ...] = (*KINDS, "dataset", "zoo", "command")


def _host() -> "PluginHost":
    from ..core.plugin_host import get_host

    return get_host()


def conformance_cases(plugin: str | None = None, kinds: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """``(kind, name)`` of everything ``plugin`` registered (every plugin's when None), for
    ``pytest.mark.parametrize``; kinds are those of :data:`CASE_KINDS`.  A plugin that is not
    installed, was rejected or is disabled is a :class:`ConformanceError`, so a test suite that
    collects its cases fails loudly instead of checking nothing."""
    host = _host()
    wanted = set(CASE_KINDS if kinds is None else kinds)
    unknown = wanted - set(CASE_KINDS)
    if unknown:
        raise ValueError(f"unknown case kind(s) {sorted(unknown)}; kinds are {', '.join(CASE_KINDS)}")
    if plugin is not None:
        info = host.plugins.get(plugin)
        if info is None:
            installed = ", ".join(sorted(host.plugins))
            raise ConformanceError(f"plugin {plugin!r} is not installed (installed: {installed}); "
                                   "its entry point in the 'imgtrans' group names it")
        if info.disabled:
            raise ConformanceError(f"plugin {plugin!r} is disabled (IMGTRANS_DISABLE_PLUGINS)")
        if info.error:
            raise ConformanceError(f"plugin {plugin!r} was rejected: {info.error}")

    def mine(owner: str) -> bool:
        return plugin is None or owner == plugin

    cases = [(kind, c.name) for kind in KINDS if kind in wanted
             for c in host.registry.components(kind) if mine(c.plugin)]
    if "dataset" in wanted:
        cases += [("dataset", n) for n in host.catalog.names() if mine(host.catalog.get(n).plugin)]
    if "zoo" in wanted:
        cases += [("zoo", n) for n, owner in sorted(host.zoo_plugins.items()) if mine(owner)]
    if "command" in wanted:
        cases += [("command", n) for n, owner in sorted(host.command_plugins.items()) if mine(owner)]
    return cases


def conformance(plugin: str | None = None, kinds: Iterable[str] | None = None) -> Any:
    """``pytest.mark.parametrize("kind,name", ...)`` over :func:`conformance_cases`, with readable ids::

        @conformance("mynets")
        def test_conformance(kind, name, tmp_path):
            check_case(kind, name, tmp_path)
    """
    import pytest

    cases = conformance_cases(plugin, kinds)
    return pytest.mark.parametrize(("kind", "name"), cases, ids=[f"{k}:{n}" for k, n in cases])


def check_case(kind: str, name: str, workdir: str | Path, **options: Any) -> dict[str, Any]:
    """Run the checks of one case (``kind`` of :data:`CASE_KINDS`) in the process's plugin host;
    ``options`` go to the check (``root=`` for a dataset format, ``parameters=`` for a network).
    Returns what the check measured; raises :class:`ConformanceError` naming the rule broken."""
    host = _host()
    registry, workdir = host.registry, Path(workdir)
    if kind == "generator":
        return check_generator(registry, name, **options)
    if kind == "discriminator":
        return check_discriminator(registry, name, **options)
    if kind == "loss":
        return check_loss(registry, name, **options)
    if kind == "dataset_format":
        return check_dataset_format(registry, name, workdir=workdir, catalog=host.catalog, **options)
    if kind == "recipe":
        return check_recipe(registry, name, workdir, **options)
    if kind == "metric":
        return check_metric(registry, name, **options)
    if kind == "pair_maker":
        return check_pair_maker(registry, name, workdir, **options)
    if kind == "dataset":
        return check_dataset(host.catalog, registry, name, workdir)
    if kind == "zoo":
        return check_zoo_entry(name)
    if kind == "command":
        return check_command(name)
    raise ValueError(f"unknown case kind {kind!r}; kinds are {', '.join(CASE_KINDS)}")


def check_plugin(plugin: str, workdir: str | Path | None = None, *,
                 roots: dict[str, str | Path] | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """Check everything ``plugin`` registered; ``roots`` maps a dataset format's name to a folder
    in its layout (for formats the kit cannot find data for).  Every case is run; the failures are
    raised together as one :class:`ConformanceError`, one line each.  Returns each case's facts."""
    with tempfile.TemporaryDirectory(prefix="imgtrans-conformance-") as scratch:
        base = Path(workdir) if workdir is not None else Path(scratch)
        results, failures = {}, []
        for kind, name in conformance_cases(plugin):
            options = {"root": (roots or {})[name]} if kind == "dataset_format" and name in (roots or {}) else {}
            try:
                results[(kind, name)] = check_case(kind, name, base / f"{kind}-{name}", **options)
            except ConformanceError as exc:
                failures.append(str(exc))
        if failures:
            raise ConformanceError("\n".join(failures))
        return results


def check_zoo_entry(name: str) -> dict[str, Any]:
    """Check zoo model ``name``: it names a registered recipe, generator and (when given) dataset;
    a model shipped with its plugin (a ``source`` file) loads as the generator its entry declares,
    translates the declared direction and maps a test image as a generator must.  Entries
    downloaded on first use are not downloaded."""
    from ..core.zoo_manifest import load_zoo
    from ..inference.model import load_model

    host = _host()
    entry = load_zoo(host.zoo_manifests)[name] if name in host.zoo_plugins else None
    if entry is None:
        raise ConformanceError(f"zoo model {name!r} is not registered by any plugin")
    subject = Subject("zoo model", name, host.zoo_plugins[name])
    if not entry.description:
        subject.fail("described", "it has no description")
    for kind, wanted in (("recipe", entry.recipe), ("generator", entry.generator["name"])):
        with subject.rule("names"):
            host.registry.get(kind, wanted)
    if entry.dataset and entry.dataset not in host.catalog:
        subject.fail("names", f"dataset {entry.dataset!r} is not a registered dataset")
    if entry.local_source() is None:
        return {"shipped": False}
    with subject.rule("loads"):
        model = load_model(f"zoo:{name}")
    built = model.info.get("generator", {})
    differing = sorted(k for k, v in entry.generator.items() if built.get(k) != v)
    if differing:
        subject.fail("loads", f"the file holds generator {built!r}, but the entry declares {entry.generator!r}")
    if model.direction != entry.direction:
        subject.fail("loads", f"the file translates {model.direction}, but the entry declares {entry.direction}")
    side = model.stride * -(-MIN_SIDE // model.stride)
    x = torch.rand((1, model.in_channels, side, side), generator=torch.Generator().manual_seed(0)) * 2 - 1
    with subject.rule("forward"), torch.no_grad():
        y = model.generator(x)
    if tuple(y.shape) != (1, model.out_channels, side, side) or y.min() < -1 or y.max() > 1:
        subject.fail("forward", f"maps {tuple(x.shape)} to {tuple(y.shape)} in [{float(y.min()):.3g}, "
                                f"{float(y.max()):.3g}]; expected {(1, model.out_channels, side, side)} in [-1, 1]")
    return {"shipped": True, "path": model.source}


def check_command(name: str) -> dict[str, Any]:
    """Check command ``name``: it has help text and ``imgtrans NAME --help`` exits with status 0."""
    from click.testing import CliRunner

    host = _host()
    if name not in host.commands:
        raise ConformanceError(f"command {name!r} is not registered by any plugin")
    command = host.commands[name]
    subject = Subject("command", name, host.command_plugins[name])
    if not (command.help or command.short_help):
        subject.fail("described", "it has no help text (give its function a docstring)")
    result = CliRunner().invoke(command, ["--help"], prog_name=f"imgtrans {name}")
    if result.exit_code != 0:
        subject.fail("help", f"`imgtrans {name} --help` exits with status {result.exit_code}: "
                             f"{(result.output.strip().splitlines() or [''])[-1]}")
    return {"help": result.output}


@contextmanager
def use_plugin(name: str, *hooks: Callable[..., Any] | ModuleType) -> Iterator["PluginHost"]:
    """Load the installed plugins plus one more, from this process, for the duration of the block:
    ``hooks`` are ``@hookimpl`` functions (or one module holding them), registered as plugin
    ``name`` exactly as an installed plugin's entry point would be.  The plugin must be accepted
    (else :class:`ConformanceError` with its error); inside the block everything (the registry,
    ``imgtrans.train``, ``load_model``, the checks) sees it.  For trying hooks before packaging."""
    from ..core import plugin_host as plugins_module
    from ..core.plugin_host import PluginHost, PluginInfo

    if len(hooks) == 1 and isinstance(hooks[0], ModuleType):
        module = hooks[0]
    else:
        module = ModuleType(name)
        for hook in hooks:
            setattr(module, hook.__name__, hook)
        source = inspect.getsourcefile(hooks[0]) if hooks else None
        if source and Path(source).is_file():  # relative zoo paths resolve against it
            module.__file__ = source
    host = PluginHost()
    host.register_builtin()
    host.load_entry_points()
    if name in host.plugins:
        raise ConformanceError(f"plugin name {name!r} is taken by an installed plugin ({host.plugins[name].module}); "
                               "choose another")
    host.register_module(module, PluginInfo(name, module.__name__))
    host.collect()
    if host.plugins[name].error:
        raise ConformanceError(f"plugin {name!r} was rejected: {host.plugins[name].error}")
    previous = plugins_module._host
    plugins_module.reset_host(host)
    try:
        yield host
    finally:
        plugins_module.reset_host(previous)
