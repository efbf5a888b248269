"""Shared fixtures: an isolated IMGTRANS_HOME, the basemap dataset built once, tiny datasets."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import write_aligned
from loopback import serve

from imgtrans.util.download import OFFLINE_ENV

TESTS = Path(__file__).parent
REPO = TESTS.parent


def pytest_configure(config: pytest.Config) -> None:
    # Every test run gets its own cache unless one is given, so nothing leaks between runs.
    if "IMGTRANS_HOME" not in os.environ:
        import tempfile

        os.environ["IMGTRANS_HOME"] = tempfile.mkdtemp(prefix="imgtrans-test-home-")
    # Commands run in this process (CliRunner) and their subprocesses keep torch's thread count
    # instead of choosing by the load (--threads): bit-exact comparisons run under varying load.
    # tests/test_threads.py removes it where the choice itself is tested.
    if not os.environ.get("OMP_NUM_THREADS"):
        import torch

        os.environ["OMP_NUM_THREADS"] = str(torch.get_num_threads())


@pytest.fixture(scope="session")
def registry():
    import imgtrans

    return imgtrans.get_registry()


@pytest.fixture(scope="session")
def basemap_root() -> Path:
    """The real offline dataset, built once per session into IMGTRANS_HOME."""
    from imgtrans.core.plugin_host import get_host
    from imgtrans.data.catalog import resolve_dataset

    return resolve_dataset("basemap", get_host().catalog)


@pytest.fixture
def aligned_dir(tmp_path: Path) -> Path:
    root = write_aligned(tmp_path / "aligned", "train")
    write_aligned(root, "test", count=2, seed=1)
    return root


@pytest.fixture
def http_server():
    """A loopback HTTP server (127.0.0.1) serving ``server.files``; see tests/loopback.py."""
    with serve() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _no_proxy_no_offline(monkeypatch):
    """Downloads in tests only ever reach the loopback server, and never run offline by accident."""
    # A proxy from the environment must never see (or swallow) our loopback requests.
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    monkeypatch.delenv(OFFLINE_ENV, raising=False)


