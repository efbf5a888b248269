"""When the network is simply unreachable (not only with IMGTRANS_OFFLINE=1), the one-line error
says what to do: where to put the file by hand and its sha256, the mirror variable, and the
offline alternatives (issue 24, item 2).  The "server" is a closed port on 127.0.0.1."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from imgtrans.cli import cli


def _closed_port() -> str:
    with socket.socket() as sock:  # bound, then released: nothing listens there
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/"


def _one_line(args: list[str], tmp_path: Path) -> str:
    result = CliRunner().invoke(cli, args)
    errors = [line for line in result.output.strip().splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


def test_a_zoo_model_names_the_path_the_mirror_and_the_shipped_models(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("IMGTRANS_ZOO_MIRROR", _closed_port())
    line = _one_line(["zoo", "pull", "maps_a2b"], tmp_path)
    assert "failed" in line and "without the network, put the file at" in line and "sat2map.pth" in line
    assert "IMGTRANS_ZOO_MIRROR" in line and "zoo:basemap_a2b" in line


def test_a_dataset_names_the_path_the_mirror_and_basemap(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("IMGTRANS_DATA_MIRROR", _closed_port())
    line = _one_line(["data", "download", "facades"], tmp_path)
    assert "without the network, put the file at" in line and "facades.tar.gz" in line
    assert "IMGTRANS_DATA_MIRROR" in line and "--data basemap" in line


def test_the_fid_weights_name_their_sha256_and_fid_weights(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("torch_fidelity", reason="FID needs the metrics extra (torch-fidelity)")
    from imgtrans.metrics.inception import INCEPTION, inception_weights
    from imgtrans.util.download import NetworkError

    monkeypatch.setenv("IMGTRANS_METRICS_MIRROR", _closed_port())
    with pytest.raises(NetworkError) as info:
        inception_weights(progress=False)
    message = str(info.value)
    assert f"sha256 {INCEPTION.sha256}" in message and str(INCEPTION.name) in message and "\n" not in message
    assert "--fid-weights FILE" in message and "IMGTRANS_METRICS_MIRROR" in message
