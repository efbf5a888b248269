"""The architecture is checked, not hoped for: the import-linter contract can fail, there is no
import cycle (imports inside functions and under TYPE_CHECKING count), and the old import paths
that plugins and scripts use keep naming the moved modules."""
from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")
pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is in the dev extra")


def _lint(tree: Path) -> subprocess.CompletedProcess:
    """lint-imports over ``tree``'s copy of imgtrans, with the project's layers contract only."""
    text = (ROOT / ".importlinter").read_text()
    layers = text[text.index("[importlinter:contract:layers]"):text.index("[importlinter:contract:faces]")]
    (tree / ".importlinter").write_text("[importlinter]\nroot_package = imgtrans\n\n" + layers)
    return subprocess.run([str(LINT), "--no-cache"], cwd=tree, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"})


def test_the_layers_contract_holds_and_an_upward_import_breaks_it(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "imgtrans", tmp_path / "imgtrans", ignore=shutil.ignore_patterns("__pycache__"))
    kept = _lint(tmp_path)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    errors = tmp_path / "imgtrans" / "util" / "errors.py"
    errors.write_text(errors.read_text() + "\n\ndef _upward():\n    from ..training import loop  # noqa\n")
    broken = _lint(tmp_path)
    assert broken.returncode == 1, broken.stdout
    assert "imgtrans.util is not allowed to import imgtrans.training" in broken.stdout
    assert "imgtrans.util.errors -> imgtrans.training" in broken.stdout


def _import_graph() -> dict[str, set[str]]:
    import grimp

    graph = grimp.build_graph("imgtrans", cache_dir=None)
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def test_no_import_cycles_counting_imports_inside_functions() -> None:
    edges = _import_graph()
    # the package face imports the library lazily and is never imported from inside it (the
    # contract above forbids it); every other module is in the graph
    edges.pop("imgtrans", None)
    assert not any("imgtrans" in targets for targets in edges.values())
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = path[path.index(module):] + [module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for target in sorted(edges.get(module, ())):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(edges):
        visit(module, [])
    assert len(done) > 100  # the whole package was walked


OLD_PATHS = {  # shown by docs/plugins.md, docs/recipes.md and README.md before the layers moved
    "imgtrans.interfaces": "imgtrans.core.interfaces",
    "imgtrans.errors": "imgtrans.util.errors",
    "imgtrans.checkpoint": "imgtrans.core.checkpoint",
    "imgtrans.config": "imgtrans.core.config",
    "imgtrans.plugins": "imgtrans.core.plugin_host",
    "imgtrans.paths": "imgtrans.util.paths",
    "imgtrans.download": "imgtrans.util.download",
    "imgtrans.hookspecs": "imgtrans.core.hookspecs",
    "imgtrans.registry": "imgtrans.core.registry",
}


@pytest.mark.parametrize("old", sorted(OLD_PATHS))
def test_an_old_import_path_names_the_moved_module_and_says_where_it_went(old: str) -> None:
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert module is importlib.import_module(OLD_PATHS[old])  # a monkeypatch through it hits the real one
    assert any(issubclass(w.category, DeprecationWarning) and f"{old} has moved" in str(w.message)
               for w in caught)
    sys.modules[old] = module


def test_documented_plugin_imports_still_work() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from imgtrans.checkpoint import load_checkpoint, save_checkpoint  # noqa: F401
        from imgtrans.config import ComponentSpec, resolve  # noqa: F401
        from imgtrans.errors import ConfigError, DataError  # noqa: F401
        from imgtrans.interfaces import Generator, PairedDataset, Recipe, RecipeOption, Slot  # noqa: F401
        from imgtrans.plugins import provenance  # noqa: F401
    from imgtrans.api import Generator as ApiGenerator
    from imgtrans.core.interfaces import Generator as CoreGenerator

    assert ApiGenerator is CoreGenerator is Generator
