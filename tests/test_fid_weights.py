"""The FID Inception weights through the project's downloader, against a loopback server (no
internet): pinned sha256 checked before anything unpickles the file, cache under IMGTRANS_HOME,
mirror variable, one-line offline error, ``--fid-weights FILE``; and FID end to end through
torch-fidelity's real Inception network with a weights file the test makes."""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers import write_aligned

from imgtrans.cli import cli
from imgtrans.metrics import inception
from imgtrans.metrics.inception import MIRROR_ENV, WeightsFile, inception_weights, verified_bytes
from imgtrans.util.download import OFFLINE_ENV, ChecksumMismatch, OfflineError


def _state_bytes() -> bytes:
    buffer = io.BytesIO()
    torch.save({"w": torch.arange(6.0)}, buffer)
    return buffer.getvalue()


@pytest.fixture
def published(http_server, monkeypatch, tmp_path):
    """A weights file served on 127.0.0.1 and pinned as the published one."""
    data = _state_bytes()
    http_server.files["/releases/weights-test.pth"] = data
    spec = WeightsFile(http_server.url("/releases/weights-test.pth"), hashlib.sha256(data).hexdigest(), len(data))
    monkeypatch.setattr(inception, "INCEPTION", spec)
    monkeypatch.setenv("IMGTRANS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    return http_server, spec, data


def test_download_is_verified_and_cached_under_imgtrans_home(published, tmp_path) -> None:
    server, spec, data = published
    path = inception_weights(progress=False)
    assert path == tmp_path / "home" / "metrics" / "weights-test.pth" and path.read_bytes() == data
    assert inception_weights(progress=False) == path and len(server.requests) == 1  # the cache: no request
    assert verified_bytes(path) == data


def test_mirror_variable_replaces_the_published_url(published, monkeypatch) -> None:
    server, spec, data = published
    server.files["/mirror/weights-test.pth"] = data
    monkeypatch.setenv(MIRROR_ENV, server.url("/mirror/"))
    inception_weights(progress=False)
    assert [path for path, _ in server.requests] == ["/mirror/weights-test.pth"]


def test_offline_is_one_line_naming_the_file_and_where(published, monkeypatch, tmp_path) -> None:
    server, spec, _ = published
    monkeypatch.setenv(OFFLINE_ENV, "1")
    with pytest.raises(OfflineError) as caught:
        inception_weights(progress=False)
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path / "home" / "metrics" / "weights-test.pth") in message
    assert "--fid-weights FILE" in message and spec.sha256 in message and not server.requests


def test_a_wrong_file_is_refused_before_it_is_unpickled(published, tmp_path, monkeypatch) -> None:
    """Some libraries load these weights with pickle: a substituted file must never reach it."""
    pytest.importorskip("torch_fidelity", reason="the metrics extra (torch-fidelity) loads the weights")
    impostor = tmp_path / "impostor.pth"
    impostor.write_bytes(b"not the weights")
    loads = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a))
    with pytest.raises(ChecksumMismatch, match="impostor.pth is not weights-test.pth: its sha256 is"):
        inception.inception_extractor(impostor)
    assert loads == []
    with pytest.raises(Exception, match="no such file"):
        inception_weights(tmp_path / "missing.pth")


@pytest.fixture(scope="module")
def random_inception(tmp_path_factory) -> Path:
    """A file with the real architecture's keys and seeded random values (the published weights cannot
    be downloaded here).  The default initialisation gives pool features of about 1e-8, so every FID
    would be about 1e-15; He-initialised convolutions with batch norm at identity keep the signal's
    scale through the network (features about 0.2), so FIDs grow with how different the sets are."""
    fe = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3",
                             reason="FID and KID need the metrics extra (torch-fidelity)")
    from unittest import mock

    from torch import nn

    with mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: None), \
            mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None):
        net = fe.FeatureExtractorInceptionV3("random", ["2048"])
    seeded = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.copy_(torch.randn(module.weight.shape, generator=seeded)
                                    * (2 / module.weight[0].numel()) ** 0.5)
            elif isinstance(module, nn.BatchNorm2d):
                module.weight.fill_(1)
                module.bias.zero_()
                module.running_mean.zero_()
                module.running_var.fill_(1)
    path = tmp_path_factory.mktemp("inception") / "weights-inception-random.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture
def pinned_inception(random_inception, monkeypatch) -> Path:
    """The random weights file, pinned as the published one, with downloads off."""
    data = random_inception.read_bytes()
    spec = WeightsFile("https://example.invalid/weights-inception-random.pth", hashlib.sha256(data).hexdigest(),
                       len(data))
    monkeypatch.setattr(inception, "INCEPTION", spec)
    monkeypatch.setenv(OFFLINE_ENV, "1")
    return random_inception


def test_eval_fid_with_a_weights_file_placed_by_hand(pinned_inception, tmp_path) -> None:
    """``imgtrans eval --metric fid --metric kid --fid-weights FILE`` offline, through torch-fidelity."""
    import imgtrans
    from imgtrans.core.checkpoint import save_checkpoint

    pairs = write_aligned(tmp_path / "pairs", "test", count=2, size=32)
    gen = imgtrans.create_generator("unet", num_downs=5, ngf=4)
    meta = {"generator": {"name": "unet", "num_downs": 5, "ngf": 4}, "in_channels": 3, "out_channels": 3,
            "stride": 32}
    model = save_checkpoint(tmp_path / "m.safetensors", {"generator": gen}, meta)
    result = CliRunner().invoke(cli, ["eval", "--model", str(model), "--data", str(pairs), "--metric", "fid",
                                      "--metric", "kid", "--baseline", "identity", "--fid-weights",
                                      str(pinned_inception), "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    # realistic features: two sets of different images are clearly apart (default weights gave 1e-15)
    assert rows["model"]["fid"] > 1e-2 and rows["identity"]["fid"] > 1e-2
    # 2 images a side, within one KID subset: no spread to report, and the JSON says why
    assert rows["model"]["kid_std"] is None
    assert rows["model"]["notes"] == {"kid_std": "n/a (one subset: 2 images <= subset size 1000)"}
    (fid_line,) = [line for line in rows["model"]["protocol"] if line.startswith("FID:")]
    assert "299x299 by torch-fidelity's TF-1.x-style bilinear" in fid_line and "8 bits" in fid_line
    assert fid_line.endswith("; 2 generated against 2 reference images")
    # the same file under another name than the pin's still verifies; a different file does not
    other = tmp_path / "other.pth"
    other.write_bytes(_state_bytes())
    refused = CliRunner().invoke(cli, ["eval", "--model", str(model), "--data", str(pairs), "--metric", "fid",
                                       "--fid-weights", str(other)])
    assert refused.exit_code != 0 and "is not weights-inception-random.pth" in refused.output


def test_training_validates_with_fid_and_kid_from_a_weights_file_placed_by_hand(pinned_inception, tmp_path) -> None:
    """``train --val-metric fid --val-metric kid --keep-best fid --fid-weights FILE`` offline: the
    validation records and the best checkpoint come through torch-fidelity's real network."""
    from imgtrans.core.checkpoint import read_metadata

    pairs = write_aligned(tmp_path / "pairs", "train", count=1)
    write_aligned(pairs, "val", count=2, seed=3)
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "pix2pix", "--data", str(pairs), "--out", str(run), "--quiet",
                                      "--set", "generator.name=unet", "--set", "generator.num_downs=6",
                                      "--set", "generator.ngf=4", "--set", "discriminator.ndf=4",
                                      "--load-size", "64", "--crop-size", "64", "--max-steps", "1",
                                      "--validate-every", "1", "--val-metric", "fid", "--val-metric", "kid",
                                      "--keep-best", "fid", "--fid-weights", str(pinned_inception)])
    assert result.exit_code == 0, result.output
    (val,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if "val_fid" in line]
    assert val["val_fid"] > 0 and "val_kid" in val and "val_kid_std" in val and val["val_images"] == 2
    best = read_metadata(run / "model_best.safetensors")["best"]
    assert best["metric"] == "val_fid" and best["score"] == val["val_fid"] and best["better"] == "lower"
    # a wrong file is refused at start-up, before anything trains or a run directory is made
    other = tmp_path / "other.pth"
    other.write_bytes(_state_bytes())
    refused = CliRunner().invoke(cli, ["train", "pix2pix", "--data", str(pairs), "--out", str(tmp_path / "run2"),
                                       "--validate-every", "1", "--val-metric", "fid", "--fid-weights", str(other)])
    assert refused.exit_code != 0 and "is not weights-inception-random.pth" in refused.output
    assert not (tmp_path / "run2").exists()


def _photos(folder: Path, count: int, seed: int, noise: float = 0.0, base_seed: int = 0) -> Path:
    """Smooth 48x48 scenes (a gradient, a bright disc) drawn from ``base_seed``; ``noise``: the
    standard deviation, in 8-bit levels, of seeded Gaussian noise added to each."""
    from PIL import Image

    folder.mkdir(parents=True)
    scenes = np.random.default_rng(base_seed)
    noisy = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:48, 0:48]
    for i in range(count):
        colour, centre = scenes.uniform(40, 215, 3), scenes.uniform(12, 36, 2)
        disc = ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < 100)[..., None]
        image = colour * (0.5 + xx[..., None] / 96) + 60 * disc + noisy.normal(0, noise, (48, 48, 3)) * (noise > 0)
        Image.fromarray(np.clip(np.round(image), 0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


def test_fid_grows_with_the_difference_between_sets(pinned_inception, tmp_path) -> None:
    """Through torch-fidelity's real network with realistic feature scales: a set against itself
    gives FID about 0, a noisier copy clearly more, and more noise more again.
    (Features are taken once per set: each image costs seconds through Inception on a CPU.)"""
    from imgtrans.data.images import load_image, to_tensor
    from imgtrans.metrics.distribution import FID

    fid = FID(weights=str(pinned_inception))
    features = {}
    for name, noise in (("real", 0.0), ("mild", 6.0), ("strong", 30.0)):
        folder = _photos(tmp_path / name, 3, seed=1, noise=noise)
        images = torch.stack([to_tensor(load_image(p)) for p in sorted(folder.glob("*.png"))])
        features[name] = fid.features(images)
    assert 0.05 < float(features["real"].abs().mean()) < 5  # realistic scale, not 1e-8
    same, mild, strong = (fid.compute(features[name], features["real"])["fid"] for name in ("real", "mild", "strong"))
    assert abs(same) < 1e-3 * mild and mild > 1e-2 and strong > 3 * mild
