"""A lazily registered component's docstring and arguments, read from its source without importing it.

``imgtrans list`` and ``imgtrans info`` must not import torch (seconds and hundreds of MB) to
print a name, a description and a table of arguments.  For a component registered as
``"package.module:attribute"`` this module finds the module's file without running any of its
package's code (:func:`module_file`), parses it
with :mod:`ast` and reads the definition: the docstring, and the ``__init__`` (or function)
signature with annotations as written and defaults that are literals.

Why source and not a cache of an earlier import: the source *is* what an import would run, so
there is nothing to go stale (an editable install, a plugin upgrade, a base class changed in
another file), and the first ``info`` is as quick as later ones.  Whenever the source does not
settle the answer for certain (a decorated class, a base class whose module is not already imported,
a default that is not a literal, a name bound twice, a star import, no ``.py`` file) the functions return
``None`` and the caller imports the component, so the fallback is the exact answer, only slower.
``tests/test_lazy_registry.py`` checks that both ways give the same result for every bundled component.
"""
from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import inspect
import json
import re
import sys
import typing
from functools import lru_cache
from pathlib import Path
from typing import Any

_SECTION = re.compile(r"^(Args|Arguments|Parameters|Keyword Args|Keyword Arguments|Attributes):\s*$")
_ENTRY = re.compile(r"^\**(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_PARAM = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+):\s*(.*)$")
_DEPTH = 8  # re-exports and base classes followed at most this deep


def source_docstring(target: str) -> str | None:
    """The docstring of ``"module:attribute"`` as written in its source, or None if not found."""
    found = _definition(*_split(target))
    return ast.get_docstring(found[1]) if found else None


def source_arguments(target: str) -> list[dict[str, Any]] | None:
    """What :func:`imgtrans.core.introspect.arguments` returns for the factory, read from source;
    None when the source does not settle it (the caller then imports the factory)."""
    found = _definition(*_split(target))
    if found is None:
        return None
    module, node = found
    if isinstance(node, ast.ClassDef):
        init = _init_of(module, node)
        if init is None:
            return None
        return _parameters(init, _class_helps(module, node), drop_first=True)
    if node.decorator_list:
        return None
    return _parameters(node, docstring_arguments(ast.get_docstring(node)), drop_first=False)


def _split(target: str) -> tuple[str, str]:
    module, _, attr = target.partition(":")
    return module, attr


def _definition(module: str, attr: str, depth: int = 0) -> tuple[str, ast.ClassDef | ast.FunctionDef] | None:
    """``(module, node)`` of the class or function ``attr`` defined or re-exported by ``module``."""
    if depth > _DEPTH or "." in attr:
        return None
    tree = _tree(module)
    if tree is None:
        return None
    statements = _top_level(tree)
    bindings = [stmt for stmt in statements if attr in _bound_names(stmt)]
    if len(bindings) != 1 or any("*" in _bound_names(stmt) for stmt in statements):
        return None  # unbound, bound twice (a redefinition, a conditional fallback), or maybe by a star import
    stmt = bindings[0]
    if isinstance(stmt, (ast.ClassDef, ast.FunctionDef)):
        return module, stmt
    if isinstance(stmt, ast.ImportFrom):
        alias = next(a for a in stmt.names if (a.asname or a.name) == attr)
        source = _absolute(module, stmt)
        return _definition(source, alias.name, depth + 1) if source else None
    return None


def _top_level(tree: ast.Module) -> list[ast.stmt]:
    """Module-level statements, including those inside ``if``/``try``/``with`` blocks."""
    out: list[ast.stmt] = []
    pending = list(tree.body)
    while pending:
        stmt = pending.pop(0)
        out.append(stmt)
        if not isinstance(stmt, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            for block in ("body", "orelse", "finalbody", "handlers"):
                pending.extend(getattr(stmt, block, []) or [])
    return out


def _bound_names(stmt: ast.AST) -> set[str]:
    if isinstance(stmt, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        return {stmt.name}
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in stmt.names}
    if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.For, ast.With)):
        return {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return set()


def _absolute(module: str, stmt: ast.ImportFrom) -> str | None:
    if not stmt.level:
        return stmt.module
    package = module if _is_package(module) else module.rpartition(".")[0]
    try:
        return importlib.util.resolve_name("." * stmt.level + (stmt.module or ""), package)
    except ImportError:
        return None


def _is_package(module: str) -> bool:
    path = _path(module)
    return path is not None and path.name == "__init__.py"


def module_file(module: str) -> Path | None:
    """The file ``module`` would be loaded from, found without running any code: not even its
    parent packages' ``__init__`` (``importlib.util.find_spec("a.b")`` imports ``a``, and
    ``imgtrans.metrics`` imports torch).  The top-level package is looked up with ``find_spec``
    (which imports nothing for a top-level name, and honours editable installs' finders), then
    each part in the package's folders.  None when it cannot be found this way (a namespace
    package, a zip import): callers then fall back to importing."""
    loaded = sys.modules.get(module)
    if loaded is not None:
        origin = getattr(loaded, "__file__", None)
        return Path(origin) if origin else None
    top, _, rest = module.partition(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
        return None
    if not rest:
        return Path(spec.origin)
    folders = [Path(p) for p in (spec.submodule_search_locations or [])]
    *packages, last = rest.split(".")
    for part in packages:
        folders = [f / part for f in folders if (f / part / "__init__.py").is_file()][:1]
    for folder in folders:
        if (folder / last / "__init__.py").is_file():
            return folder / last / "__init__.py"
        for suffix in importlib.machinery.all_suffixes():
            if (folder / f"{last}{suffix}").is_file():
                return folder / f"{last}{suffix}"
    return None


def _path(module: str) -> Path | None:
    """The module's ``.py`` file, for a top-level module or one of a package already imported (a
    plugin's, the core's): the sources of a package not imported yet (torch) are not worth reading."""
    top, dot, _ = module.partition(".")
    if dot and top not in sys.modules:
        return None
    path = module_file(module)
    return path if path is not None and path.suffix == ".py" else None


def _tree(module: str) -> ast.Module | None:
    path = _path(module)
    if path is None:
        return None
    try:
        stat = path.stat()
        return _parse(str(path), stat.st_mtime_ns, stat.st_size)
    except (OSError, SyntaxError, ValueError):
        return None


@lru_cache(maxsize=64)
def _parse(path: str, mtime_ns: int, size: int) -> ast.Module:
    return ast.parse(Path(path).read_text(encoding="utf-8"), filename=path)


def _init_of(module: str, cls: ast.ClassDef, depth: int = 0) -> ast.FunctionDef | None:
    """The ``__init__`` the class uses: its own, else its single base class's (followed through
    imports); None for anything the source cannot settle (decorators, metaclasses, ``__new__``,
    several bases, a base from a module not imported yet)."""
    if depth > _DEPTH or cls.decorator_list or cls.keywords:
        return None
    members = {n.name: n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    if "__new__" in members or "__signature__" in {t.id for n in cls.body if isinstance(n, ast.Assign)
                                                   for t in n.targets if isinstance(t, ast.Name)}:
        return None
    init = members.get("__init__")
    if init is not None:
        return init if isinstance(init, ast.FunctionDef) and not init.decorator_list else None
    if len(cls.bases) != 1:
        return None
    base = _resolve_base(module, cls.bases[0])
    if base is None or not isinstance(base[1], ast.ClassDef):
        return None
    return _init_of(base[0], base[1], depth + 1)


def _class_helps(module: str, cls: ast.ClassDef, depth: int = 0) -> dict[str, str]:
    """Argument help from the docstrings of ``cls`` and its ``__init__``, over that of its base classes
    (followed through imports where their source can be read; the first base over the later ones),
    as :func:`imgtrans.core.introspect.class_helps` finds along the MRO: a subclass that only
    changes defaults need not repeat its base's ``Args:`` section, and an interface can document
    the keywords every implementation takes."""
    helps: dict[str, str] = {}
    for expr in reversed(cls.bases) if depth <= _DEPTH else ():
        base = _resolve_base(module, expr)
        if base is not None and isinstance(base[1], ast.ClassDef):
            helps.update(_class_helps(base[0], base[1], depth + 1))
    init = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    for doc in (ast.get_docstring(cls), ast.get_docstring(init) if init is not None else None):
        helps.update({k: v for k, v in docstring_arguments(doc).items() if v})
    return helps


def _resolve_base(module: str, expr: ast.expr) -> tuple[str, ast.ClassDef | ast.FunctionDef] | None:
    if isinstance(expr, ast.Name):
        return _definition(module, expr.id)
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):  # pkg.Base after `import pkg`
        tree = _tree(module)
        imports = [s for s in _top_level(tree) if isinstance(s, ast.Import)] if tree else []
        for stmt in imports:
            for alias in stmt.names:
                if (alias.asname or alias.name) == expr.value.id:
                    return _definition(alias.name, expr.attr)
    return None


def _parameters(func: ast.FunctionDef, helps: dict[str, str], drop_first: bool) -> list[dict[str, Any]] | None:
    args = func.args
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    params = [(a, d, i < len(args.posonlyargs)) for i, (a, d) in enumerate(zip(positional, defaults))]
    params += [(a, d, False) for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    if drop_first:
        if not params:
            return None
        params = params[1:]
    out = []
    for arg, default, positional_only in params:
        if positional_only:
            continue
        try:
            value = None if default is None else ast.literal_eval(default)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return None  # a computed default: only the import knows its value
        annotation = ast.unparse(arg.annotation) if arg.annotation is not None else ""
        out.append({"name": arg.arg, "type": type_name(annotation) if annotation else "",
                    "default": None if default is None else jsonable(value), "required": default is None,
                    "help": helps.get(arg.arg, "")})
    return out


def type_name(annotation: Any) -> str:
    """A short, readable type: ``int``, ``str | None``, ``Module | None`` (module paths dropped)."""
    if annotation is inspect.Parameter.empty:
        return ""
    if isinstance(annotation, str):
        text = annotation
    elif isinstance(annotation, type) and not typing.get_args(annotation):
        text = annotation.__qualname__
    else:
        text = str(annotation)
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", text.replace("typing.", ""))


def docstring_arguments(doc: str | None) -> dict[str, str]:
    """``{argument: help}`` from a docstring's ``Args:`` section or ``:param x:`` lines."""
    out: dict[str, str] = {}
    current: str | None = None
    in_section, indent = False, 0
    for line in inspect.cleandoc(doc or "").splitlines():
        stripped, lead = line.strip(), len(line) - len(line.lstrip())
        if not stripped:
            continue
        param = _PARAM.match(stripped)
        if param:
            current, in_section = param[1], False
            out[current] = param[2].strip()
        elif _SECTION.match(stripped):
            in_section, indent, current = True, 0, None
        elif lead == 0:  # unindented prose ends a section and any help being continued
            in_section, current = False, None
        elif in_section and (indent == 0 or lead == indent) and _ENTRY.match(stripped):
            entry = _ENTRY.match(stripped)
            indent, current = lead, entry[1]
            out[current] = entry[2].strip()
        elif current is not None:
            out[current] = f"{out[current]} {stripped}".strip()
    return out


def jsonable(value: Any) -> Any:
    """``value`` if JSON can carry it, else its ``repr`` (a default that is an object, say)."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)
