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
