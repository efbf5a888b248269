"""The Python snippets of docs/plugins.md and docs/recipes.md run as they stand, so the docs cannot
drift from the code; every hook and every kind of component has a snippet that runs.

A block preceded by ``<!-- no-test -->`` is only compiled (it cannot run standalone)."""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from imgtrans.core import hookspecs
from imgtrans.core.registry import KINDS

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = ("plugins.md", "recipes.md")
FENCE = re.compile(r"^(?P<indent>[ \t]*)```python[ \t]*\n(?P<code>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
SKIP = "<!-- no-test -->"


def snippets(page: str) -> list[tuple[str, str, bool]]:
    """(id, code, runnable) of every ```python block of ``page``."""
    text = (DOCS / page).read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[:match.start()].rstrip().splitlines()
        runnable = not (before and before[-1].strip() == SKIP)
        found.append((f"{page}:{line}", textwrap.dedent(match.group("code")), runnable))
    return found


ALL = [s for page in PAGES for s in snippets(page)]


@pytest.mark.parametrize("where,code,runnable", ALL, ids=[s[0] for s in ALL])
def test_snippet_runs(where: str, code: str, runnable: bool, capsys) -> None:
    compiled = compile(code, where, "exec")
    if runnable:
        exec(compiled, {"__name__": f"snippet_{where}"})


def test_every_extension_point_has_a_snippet_that_runs() -> None:
    runnable = "\n".join(code for page in PAGES for _, code, ok in snippets(page) if ok)
    hooks = [name for name, f in vars(hookspecs).items() if hasattr(f, "imgtrans_spec")]
    assert len(hooks) == 4
    for hook in hooks:
        assert f"def {hook}(" in runnable, hook
    for kind in KINDS:
        assert f"registry.{kind}(" in runnable, kind
    skipped = [where for page in PAGES for where, _, ok in snippets(page) if not ok]
    assert len(skipped) <= 1, f"keep blocks that cannot run rare: {skipped}"
