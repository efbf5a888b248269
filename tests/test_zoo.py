"""The model zoo end to end against a loopback server: resolve, download, verify, convert, translate."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import imgtrans
from imgtrans.cli import cli
from imgtrans.core.checkpoint import read_metadata, save_checkpoint
from imgtrans.core.zoo_manifest import ZooEntry, bundled_manifest, load_zoo, make_entry, parse_manifest
from imgtrans.util.download import ChecksumMismatch
from imgtrans.util.errors import ConfigError, UnknownNameError
from imgtrans.zoo import store

TINY_UNET = {"name": "unet_256", "ngf": 4, "norm": "batch", "dropout": True}


def test_bundled_manifest_lists_the_public_models(registry) -> None:
    zoo = load_zoo()
    for name in ["maps_a2b", "maps_b2a", "facades_label2photo", "edges2shoes", "day2night", "basemap_a2b",
                 "cyclegan_horse2zebra", "cyclegan_zebra2horse"]:
        assert name in zoo, name
    assert zoo["maps_a2b"].source.endswith("/sat2map.pth") and zoo["maps_b2a"].direction == "BtoA"
    assert zoo["facades_label2photo"].direction == "BtoA" and zoo["maps_a2b"].format == "reference-pth"
    for entry in zoo.values():  # every architecture a manifest names must exist
        registry.get("generator", entry.generator["name"])
        assert entry.licence and entry.dataset and entry.domains


def test_manifest_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match="lacks source, format"):
        parse_manifest('[models.x]\nrecipe = "pix2pix"\ngenerator = "unet_256"\n', "m.toml")
    with pytest.raises(UnknownNameError, match="field of zoo entry 'x'"):
        make_entry("x", {"recipe": "p", "generator": "g", "source": "s", "format": "safetensors", "sha": "1"}, "m")
    with pytest.raises(ConfigError, match="format must be one of"):
        make_entry("x", {"recipe": "p", "generator": "g", "source": "s", "format": "pickle"}, "m")


@pytest.fixture
def tiny_zoo(http_server, tmp_path, monkeypatch):
    """A zoo of two small models served from loopback: a reference .pth and an imgtrans checkpoint."""
    monkeypatch.setenv("IMGTRANS_HOME", str(tmp_path / "home"))
    torch.manual_seed(0)
    net = imgtrans.create_generator("unet_256", ngf=4)
    net.train()(torch.randn(2, 3, 256, 256))
    pth = tmp_path / "tiny.pth"
    torch.save(net.state_dict(), pth)
    http_server.files["/models/tiny.pth"] = pth.read_bytes()
    st = save_checkpoint(tmp_path / "st.safetensors", {"generator": net},
                         {"generator": TINY_UNET, "in_channels": 3, "out_channels": 3, "stride": 256})
    http_server.files["/models/tiny_st.safetensors"] = st.read_bytes()
    entries = {
        "tiny_pth": make_entry("tiny_pth", {
            "recipe": "pix2pix", "generator": TINY_UNET, "source": http_server.url("/models/tiny.pth"),
            "format": "reference-pth", "direction": "BtoA", "domains": {"A": "a", "B": "b"},
            "norm_stats": "instance", "dataset": "tiny", "licence": "test"}, "test"),
        "tiny_st": make_entry("tiny_st", {
            "recipe": "pix2pix", "generator": TINY_UNET, "source": http_server.url("/models/tiny_st.safetensors"),
            "format": "safetensors", "sha256": hashlib.sha256(st.read_bytes()).hexdigest(),
            "size": st.stat().st_size, "licence": "test", "dataset": "tiny"}, "test"),
    }
    monkeypatch.setattr(store, "entries", lambda: entries)
    return net.eval(), http_server, entries


def test_zoo_name_translates_after_one_download(tiny_zoo, tmp_path, capsys) -> None:
    net, server, _ = tiny_zoo
    img = tmp_path / "in.png"
    Image.new("RGB", (70, 40), (50, 100, 150)).save(img)
    result = CliRunner().invoke(cli, ["translate", "--model", "zoo:tiny_pth", str(img), str(tmp_path / "o1.png")])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "o1.png").size == (70, 40)
    path = store.converted_path(store.get_entry("tiny_pth"))
    meta = read_metadata(path)
    assert meta["zoo_name"] == "tiny_pth" and meta["direction"] == "BtoA" and meta["norm_stats"] == "instance"
    # no published checksum: the first download's hash is recorded, with a warning
    assert "publishes no checksum" in result.output or "publishes no checksum" in capsys.readouterr().err
    assert list(store.recorded_hashes().values()) == [hashlib.sha256(server.files["/models/tiny.pth"]).hexdigest()]
    # second use: straight from the cache, bare name accepted too
    requests = len(server.requests)
    model = imgtrans.load_model("tiny_pth")
    assert len(server.requests) == requests
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        assert torch.allclose(imgtrans.translate(model, x, norm_stats="running"), net(x), atol=1e-6)


def test_safetensors_entry_is_verified_and_listed(tiny_zoo) -> None:
    _, server, entries = tiny_zoo
    result = CliRunner().invoke(cli, ["zoo", "pull", "tiny_st"])
    assert result.exit_code == 0 and "downloaded" in result.output
    assert "cached" in CliRunner().invoke(cli, ["zoo", "pull", "tiny_st"]).output
    listed = {e["name"]: e for e in json.loads(CliRunner().invoke(cli, ["zoo", "list", "--json"]).output)}
    assert listed["tiny_st"]["cached"] and not listed["tiny_pth"]["cached"]
    info = CliRunner().invoke(cli, ["zoo", "info", "tiny_st"]).output
    assert "sha256" in info and "cache_path" in info
    verify = CliRunner().invoke(cli, ["zoo", "verify"])
    assert verify.exit_code == 0 and "ok" in verify.output


def test_tampered_download_is_refused(tiny_zoo) -> None:
    _, server, entries = tiny_zoo
    server.files["/models/tiny_st.safetensors"] = b"X" + server.files["/models/tiny_st.safetensors"][1:]
    with pytest.raises(ChecksumMismatch, match="expected"):
        store.pull("tiny_st")
    assert not store.converted_path(entries["tiny_st"]).exists()
    # trust on first use: a changed file behind an unchecksummed URL is refused too, and the
    # message says where the record lives; --force verifies the new file and learns its hash
    store.pull("tiny_pth")
    server.files["/models/tiny.pth"] = server.files["/models/tiny.pth"] + b"\0"
    store.converted_path(entries["tiny_pth"]).unlink()
    store.download_path(entries["tiny_pth"]).unlink()
    with pytest.raises(ChecksumMismatch) as info:
        store.pull("tiny_pth")
    assert str(store.hashes_file()) in str(info.value) and "--force" in str(info.value)
    assert store.pull("tiny_pth", force=True).downloaded
    assert store.recorded_hashes()[entries["tiny_pth"].source] == hashlib.sha256(server.files["/models/tiny.pth"]).hexdigest()


def test_offline_and_mirror(tiny_zoo, monkeypatch, tmp_path) -> None:
    _, server, entries = tiny_zoo
    monkeypatch.setenv("IMGTRANS_OFFLINE", "1")
    result = CliRunner().invoke(cli, ["zoo", "pull", "tiny_st"])
    assert result.exit_code == 2 and "IMGTRANS_OFFLINE" in result.output and "/models/tiny_st.safetensors" in result.output
    assert len(result.output.strip().splitlines()) == 1
    monkeypatch.delenv("IMGTRANS_OFFLINE")
    # an entry whose host is dead works through a mirror
    dead = ZooEntry(**{**entries["tiny_st"].__dict__, "source": "http://127.0.0.1:9/gone/tiny_st.safetensors"})
    entries["tiny_st"] = dead
    monkeypatch.setenv("IMGTRANS_ZOO_MIRROR", server.url("/models"))
    assert store.pull("tiny_st").downloaded
    monkeypatch.setenv("IMGTRANS_OFFLINE", "1")  # cached now: offline is fine
    assert imgtrans.load_model("zoo:tiny_st").stride == 256


def test_unknown_zoo_name_lists_choices(tiny_zoo) -> None:
    result = CliRunner().invoke(cli, ["zoo", "info", "tiny_ptj"])
    assert result.exit_code == 2 and "Did you mean 'tiny_pth'?" in result.output


def test_zoo_import_command(tmp_path) -> None:
    net = imgtrans.create_generator("unet_256", ngf=4)
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, tmp_path / "w.pth")
    out = tmp_path / "w.safetensors"
    result = CliRunner().invoke(cli, ["zoo", "import", str(tmp_path / "w.pth"), "--generator", "unet_256",
                                      "--set", "ngf=4", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert read_metadata(out)["generator"]["ngf"] == 4
    bad = CliRunner().invoke(cli, ["zoo", "import", str(tmp_path / "w.pth"), "--generator", "unet_128",
                                   "--set", "ngf=4", "-o", str(tmp_path / "x.safetensors")])
    assert bad.exit_code == 2 and "unexpected" in bad.output and not (tmp_path / "x.safetensors").exists()


def test_bundled_manifest_is_package_data() -> None:
    assert bundled_manifest().is_file()
