"""Shared fixtures: an isolated IMGTRANS_HOME, the basemap dataset built once, tiny datasets."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import write_aligned

TESTS = Path(__file__).parent
REPO = TESTS.parent


def pytest_configure(config: pytest.Config) -> None:
    # Every test run gets its own cache unless one is given, so nothing leaks between runs.
    if "IMGTRANS_HOME" not in os.environ:
        import tempfile

        os.environ["IMGTRANS_HOME"] = tempfile.mkdtemp(prefix="imgtrans-test-home-")


@pytest.fixture(scope="session")
def registry():
    import imgtrans

    return imgtrans.get_registry()


@pytest.fixture(scope="session")
def basemap_root() -> Path:
    """The real offline dataset, built once per session into IMGTRANS_HOME."""
    from imgtrans.data.catalog import resolve_dataset
    from imgtrans.plugins import get_host

    return resolve_dataset("basemap", get_host().catalog)


@pytest.fixture
def aligned_dir(tmp_path: Path) -> Path:
    root = write_aligned(tmp_path / "aligned", "train")
    write_aligned(root, "test", count=2, seed=1)
    return root
