"""The core never imports a plugin, and importing it stays cheap."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parent.parent


def _plugin_packages() -> set[str]:
    return {p.parent.name for p in (REPO / "plugins").glob("*/__init__.py")}


def test_core_source_imports_no_plugin() -> None:
    plugins = _plugin_packages()
    assert {"imgtrans_pix2pix", "imgtrans_basemap"} <= plugins
    offenders = []
    for path in (REPO / "imgtrans").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
                names = [a.value for a in node.args if isinstance(a, ast.Constant)]
            offenders += [f"{path.relative_to(REPO)}:{node.lineno} {n}" for n in names if n.split(".")[0] in plugins]
    assert not offenders, offenders


def test_import_loads_no_plugin_and_no_torch() -> None:
    code = ("import sys, imgtrans; "
            "bad = [m for m in sys.modules if m.startswith(('imgtrans_', 'torch'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def _docstring_nodes(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (prose may mention plugins as examples)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _plugin_vocabulary(registry) -> set[str]:
    """Names that belong to plugins: their components, recipes, slots, hyper-parameters, options."""
    from imgtrans.core.interfaces import DIRECTIONS
    from imgtrans.core.registry import KINDS
    from imgtrans.metrics import METRICS

    core = {*KINDS, *METRICS, *DIRECTIONS, "data", "optim", "run", "recipe", "name", "in_channels", "out_channels",
            *(f"--{kind}" for kind in KINDS)}
    names: set[str] = set()
    for kind in KINDS:
        for component in registry.components(kind):
            if component.plugin == "imgtrans":
                continue
            names.add(component.name)
            if kind == "recipe":
                cls = component.factory
                names |= set(cls.slots)
                names |= {k for k in component.arguments() if k != "components"}
                names |= {o.flag for o in cls.options}
    return names - core


def test_core_names_no_plugin_component_slot_or_setting(registry) -> None:
    """Not only imports: a string in the core naming a plugin's component (``"unet_256"``), slot
    (``"discriminator_a"``), hyper-parameter (``"lambda_l1"``) or option (``"--gan-loss"``) means
    the core assumes that plugin.  Docstrings may name them as examples."""
    vocabulary = _plugin_vocabulary(registry)
    assert {"unet_256", "lambda_l1", "generator_a", "--lambda-a"} <= vocabulary
    offenders = []
    for path in (REPO / "imgtrans").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        docs = _docstring_nodes(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                if node.value in vocabulary:
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {node.value!r}")
    assert not offenders, offenders
