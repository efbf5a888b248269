"""pyproject.toml against the tree: a wheel built from it holds every package and data file.

Building a wheel needs the network (build isolation), so these check the configuration setuptools
reads instead: the package list and its folders, and the package-data globs.
"""
from __future__ import annotations

import fnmatch
import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS = PROJECT["tool"]["setuptools"]


def _folder(package: str) -> Path:
    """The folder setuptools reads ``package`` from (through ``package-dir``)."""
    parts = package.split(".")
    for n in range(len(parts), 0, -1):
        mapped = SETUPTOOLS["package-dir"].get(".".join(parts[:n]))
        if mapped is not None:
            return ROOT / mapped / Path(*parts[n:])
    return ROOT / Path(*parts)


def test_every_package_folder_is_listed():
    listed = {_folder(p).resolve() for p in SETUPTOOLS["packages"]}
    for top in SETUPTOOLS["package-dir"].values():
        for folder in [ROOT / top, *(p for p in (ROOT / top).rglob("*") if p.is_dir())]:
            if folder.name == "__pycache__":
                continue
            holds_files = any(f.is_file() and f.suffix != ".pyc" for f in folder.iterdir())
            if holds_files:
                assert folder.resolve() in listed, f"{folder.relative_to(ROOT)} is not in [tool.setuptools] packages"


def test_every_listed_package_exists():
    for package in SETUPTOOLS["packages"]:
        assert _folder(package).is_dir(), package


def test_every_non_python_file_is_package_data():
    globs = SETUPTOOLS["package-data"]
    for package in SETUPTOOLS["packages"]:
        folder = _folder(package)
        for f in folder.iterdir():
            if f.is_file() and f.suffix not in (".py", ".pyc"):
                assert any(fnmatch.fnmatch(f.name, g) for g in globs.get(package, [])), \
                    f"{f.relative_to(ROOT)} would be left out of the wheel"


def test_plugins_are_entry_points():
    entry = PROJECT["project"]["entry-points"]["imgtrans"]
    for name in ("pix2pix", "cyclegan", "basemap"):
        assert entry[name] == f"imgtrans_{name}" and f"imgtrans_{name}" in SETUPTOOLS["packages"]


def _declared() -> dict[str, str]:
    out = {}
    for req in PROJECT["project"]["dependencies"]:
        name = re.match(r"[A-Za-z0-9_.-]+", req).group(0).lower()
        out[name] = req
    return out


def test_directly_imported_libraries_are_declared():
    """cv2 and tomli are imported by the code itself, not only through another package."""
    deps = _declared()
    assert "opencv-python-headless" in deps
    assert deps["tomli"].replace(" ", "").endswith('python_version<"3.11"')
    assert re.search(r">=1\.4\.21", deps["albumentations"]) and "<2.1" in deps["albumentations"]


def _build_editable(backend: str, tmp_path: Path) -> "subprocess.CompletedProcess[str]":
    """Run ``backend``'s PEP 517 ``build_editable`` hook in a fresh process, as pip does.

    The build happens in a copy of the configuration files, so the checkout is left untouched."""
    import shutil
    import subprocess

    project = tmp_path / "project"
    shutil.copytree(ROOT, project, ignore=shutil.ignore_patterns(
        ".venv", ".git", "runs", "*.egg-info", "build", "__pycache__", "tests", "docs", "benchmarks"))
    code = (f"import sys; sys.path.insert(0, 'build_backend'); import {backend} as b; "
            f"print(b.build_editable({str(tmp_path / 'wheel')!r}))")
    return subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=300)


def test_editable_install_prints_no_setuptools_notice(tmp_path: Path) -> None:
    """`pip install -e .` shows the backend's warnings; ours must have none ("be careful with folders")."""
    backend = PROJECT["build-system"]["build-backend"]
    quiet = _build_editable(backend, tmp_path / "ours")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.strip().endswith(".whl")
    assert "be careful" not in quiet.stderr and "Editable installation" not in quiet.stderr, quiet.stderr
    plain = _build_editable("setuptools.build_meta", tmp_path / "plain")  # the notice this filters out
    assert plain.returncode == 0 and "be careful" in plain.stderr
