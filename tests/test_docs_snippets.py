"""Every Python block of README.md and docs/*.md runs as it stands, so the docs cannot drift from
the code; every hook and every kind of component has a snippet that runs.

Each block runs in a fresh temporary folder holding what the docs assume a reader has: a
``photos/`` folder (with a subfolder), a small finished run in ``runs/demo`` and, with the onnx
extra, its export ``demo.onnx``; the ``basemap`` data is built offline and nothing may be
downloaded.  A block that trains shows ``max_steps`` so that it trains a few steps.

A block preceded by ``<!-- not run: REASON -->`` is only compiled; the test reports it as skipped
with its reason, and such blocks are kept rare.  A block whose optional extra is not installed
(onnxruntime, the serve extra) is skipped with the missing module named."""
from __future__ import annotations

import importlib.util
import re
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY, write_aligned
from PIL import Image

import imgtrans
from imgtrans.core import hookspecs
from imgtrans.core.config import resolve
from imgtrans.core.registry import KINDS
from imgtrans.util.download import OFFLINE_ENV

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent>[ \t]*)```python[ \t]*\n(?P<code>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
NOT_RUN = re.compile(r"^<!-- not run: (?P<reason>.+?) -->$")
#: modules of optional extras: a block that needs a missing one is skipped, naming it
EXTRAS = {"onnx", "onnxruntime", "onnxscript", "fastapi", "uvicorn", "starlette", "httpx", "timm", "torch_fidelity"}
MOST_NOT_RUN = 1


def snippets(page: Path) -> list[tuple[str, str, str | None]]:
    """(id, code, reason it is not run or None) of every ```python block of ``page``."""
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[:match.start()].rstrip().splitlines()
        marker = NOT_RUN.match(before[-1].strip()) if before else None
        where = f"{page.relative_to(REPO).as_posix()}:{line}"
        found.append((where, textwrap.dedent(match.group("code")), marker["reason"] if marker else None))
    return found


ALL = [s for page in PAGES for s in snippets(page)]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the docs' blocks assume: photos/ (and photos/more/), runs/demo (a tiny finished run)
    and demo.onnx (its export, when the onnx extra is installed)."""
    root = tmp_path_factory.mktemp("docs-sandbox")
    rng = np.random.default_rng(0)
    for name, (w, h) in {"photos/a.png": (64, 48), "photos/b.jpg": (40, 72), "photos/more/c.png": (50, 50)}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / name)
    data = write_aligned(root / "pairs", "train", count=2)
    run = root / "runs" / "demo"
    layers = [TINY, {"data": {"source": str(data), "load_size": 64, "crop_size": 64},
                     "optim": {"max_steps": 2}, "run": {"out": str(run), "progress": False}}]
    imgtrans.train(resolve("pix2pix", imgtrans.get_registry(), layers))
    shutil.rmtree(data.parent / data.name)
    if all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime")):
        from imgtrans.inference.export import export

        export(str(run / "model.safetensors"), root / "demo.onnx")
    # else (no onnx extra): the block that reads demo.onnx skips, naming onnxruntime
    return root


@pytest.mark.parametrize("where,code,not_run", ALL, ids=[s[0] for s in ALL])
def test_snippet_runs(where: str, code: str, not_run: str | None, request, sandbox: Path, tmp_path: Path,
                      monkeypatch) -> None:
    compiled = compile(code, where, "exec")
    if not_run:
        pytest.skip(f"not run: {not_run}")
    if '"basemap"' in code:
        request.getfixturevalue("basemap_root")  # built once per session, offline
    work = tmp_path / "work"
    shutil.copytree(sandbox, work)
    monkeypatch.chdir(work)
    monkeypatch.setenv(OFFLINE_ENV, "1")
    try:
        exec(compiled, {"__name__": f"snippet_{where}"})
    except ModuleNotFoundError as exc:
        if exc.name not in EXTRAS:
            raise
        pytest.skip(f"needs the optional module {exc.name}")


def test_blocks_that_do_not_run_are_rare_and_say_why() -> None:
    not_run = [f"{where}: {reason}" for where, _, reason in ALL if reason]
    assert len(not_run) <= MOST_NOT_RUN, "keep blocks that cannot run rare:\n" + "\n".join(not_run)
    markers = [line for page in PAGES for line in page.read_text(encoding="utf-8").splitlines()
               if line.startswith("<!-- no") or line.startswith("<!-- not run")]
    assert all(NOT_RUN.match(line) for line in markers), markers


def test_the_readme_block_says_what_it_trains() -> None:
    """`{"optim": {"epochs": 5}}` trained 5 + 100 decay epochs at full width: the block now sets
    the decay epochs, the widths and the step cap it runs with, and its comment says so."""
    (_, code, _), = [s for s in ALL if s[0].startswith("README.md")]
    for words in ('"epochs": 5, "epochs_decay": 0', '"max_steps": 4', '"ngf": 32', '"ndf": 32',
                  "stops it after 4 steps", "5 epochs in all"):
        assert words in code, words


def test_every_extension_point_has_a_snippet_that_runs() -> None:
    runnable = "\n".join(code for _, code, reason in ALL if not reason)
    hooks = [name for name, f in vars(hookspecs).items() if hasattr(f, "imgtrans_spec")]
    assert len(hooks) == 4
    for hook in hooks:
        assert f"def {hook}(" in runnable, hook
    for kind in KINDS:
        assert f"registry.{kind}(" in runnable, kind


def test_make_demo_names_the_run_page() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    demo = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert '@echo "report: $(DEMO_DIR)/index.html' in demo
