"""Nothing lost, nothing trusted too early: the zoo and dataset downloads under hostile and clumsy use.

Each test reproduces a finding of issue 10 against the loopback server (tests/loopback.py):
import overwriting its input (4), a bad first download poisoning the cache (5), downloads that
never end (6, with the download-level cases in test_download.py), checkpoint metadata that lies
about the architecture (7), two pulls at once (8), a malformed mirror (12), and refused archives
or corrupt converted models reused from the cache (13).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from loopback import endless, held, no_length
from PIL import Image

import imgtrans
from imgtrans.cli import cli
from imgtrans.core.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from imgtrans.core.checkpoint_fit import check_generator_fits
from imgtrans.core.zoo_manifest import make_entry
from imgtrans.data.catalog import DatasetCatalog, dataset_path, resolve_dataset
from imgtrans.util.errors import CheckpointError, DataError
from imgtrans.zoo import store

REPO = Path(__file__).resolve().parents[1]
TINY = {"name": "unet_256", "ngf": 4, "norm": "batch", "dropout": True}
HTML = b"<!DOCTYPE html><html><body>Please log in to the hotel Wi-Fi</body></html>\n" * 20


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory) -> dict[str, bytes]:
    """A tiny U-Net as reference .pth bytes and as an imgtrans checkpoint's bytes."""
    tmp = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    net = imgtrans.create_generator("unet_256", ngf=4)
    torch.save(net.state_dict(), tmp / "tiny.pth")
    save_checkpoint(tmp / "tiny.safetensors", {"generator": net},
                    {"generator": TINY, "in_channels": 3, "out_channels": 3, "stride": 256})
    return {"pth": (tmp / "tiny.pth").read_bytes(), "st": (tmp / "tiny.safetensors").read_bytes()}


def _raw_entry(server, name: str, fmt: str, **extra) -> dict:
    suffix = "pth" if fmt == "reference-pth" else "safetensors"
    return {"recipe": "pix2pix", "generator": TINY, "source": server.url(f"/models/{name}.{suffix}"),
            "format": fmt, "licence": "test", "dataset": "tiny", **extra}


@pytest.fixture
def zoo(http_server, tiny_files, tmp_path, monkeypatch):
    """Two unchecksummed entries (the public servers publish none): a .pth and a checkpoint."""
    monkeypatch.setenv("IMGTRANS_HOME", str(tmp_path / "home"))
    http_server.files["/models/tiny_pth.pth"] = tiny_files["pth"]
    http_server.files["/models/tiny_st.safetensors"] = tiny_files["st"]
    entries = {"tiny_pth": make_entry("tiny_pth", _raw_entry(http_server, "tiny_pth", "reference-pth"), "test"),
               "tiny_st": make_entry("tiny_st", _raw_entry(http_server, "tiny_st", "safetensors"), "test")}
    monkeypatch.setattr(store, "entries", lambda: entries)
    return http_server, entries


# --- 4 / 12: zoo import -o -------------------------------------------------------------------
def test_import_never_overwrites_without_consent_and_never_its_input(tiny_files, tmp_path) -> None:
    pth = tmp_path / "w.pth"
    pth.write_bytes(tiny_files["pth"])
    out = tmp_path / "w.safetensors"
    out.write_bytes(b"the user's own file")
    base = ["zoo", "import", str(pth), "--set", "ngf=4", "-o"]
    line = _one_line_error(CliRunner().invoke(cli, base + [str(out)]))
    assert str(out) in line and "--overwrite" in line
    assert out.read_bytes() == b"the user's own file"

    for args in ([str(pth)], [str(pth), "--overwrite"], [str(tmp_path / "." / "w.pth"), "--overwrite"]):
        line = _one_line_error(CliRunner().invoke(cli, base + args))
        assert "input" in line
        assert pth.read_bytes() == tiny_files["pth"]

    result = CliRunner().invoke(cli, base + [str(out), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert read_metadata(out)["generator"]["ngf"] == 4


@pytest.mark.parametrize("where", ["under_a_file", "proc"])
def test_import_to_an_unwritable_place_is_one_line(tiny_files, tmp_path, where) -> None:
    pth = tmp_path / "w.pth"
    pth.write_bytes(tiny_files["pth"])
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    out = blocker / "w.safetensors" if where == "under_a_file" else Path("/proc/imgtrans-test/w.safetensors")
    line = _one_line_error(CliRunner().invoke(cli, ["zoo", "import", str(pth), "--set", "ngf=4", "-o", str(out)]))
    assert str(out) in line


# --- 5: a bad first download never becomes the trusted hash -------------------------------------
@pytest.mark.parametrize("name,bad", [("tiny_pth", "html"), ("tiny_pth", "truncated"), ("tiny_pth", "garbage_part"),
                                      ("tiny_st", "html"), ("tiny_st", "truncated")])
def test_a_bad_first_download_is_not_trusted(zoo, tiny_files, name, bad) -> None:
    server, entries = zoo
    path = "/models/tiny_pth.pth" if name == "tiny_pth" else "/models/tiny_st.safetensors"
    good = server.files[path]
    raw = store.download_path(entries[name])
    if bad == "html":  # a captive portal answering 200 with a web page
        server.responders[path] = no_length(HTML, "text/html")
    elif bad == "truncated":  # a body cut short, with no Content-Length to tell
        server.responders[path] = no_length(good[: len(good) // 2])
    else:  # a garbage .part from an earlier attempt, resumed with a Range request
        raw.parent.mkdir(parents=True)
        (raw.parent / (raw.name + ".part")).write_bytes(b"\x00garbage" * 100)

    line = _one_line_error(CliRunner().invoke(cli, ["zoo", "pull", name]))
    assert "not the declared weights" in line and "not recorded" in line
    assert store.recorded_hashes() == {}, "nothing is trusted before it loads as the declared weights"
    assert not raw.exists() and not (raw.parent / (raw.name + ".part")).exists(), "the bad download is discarded"
    assert not store.converted_path(entries[name]).exists()

    server.responders.clear()
    result = CliRunner().invoke(cli, ["zoo", "pull", name])
    assert result.exit_code == 0 and "downloaded" in result.output, result.output
    assert store.recorded_hashes() == {entries[name].source: hashlib.sha256(good).hexdigest()}


def test_a_checkpoint_of_another_generator_is_not_trusted(zoo, tmp_path) -> None:
    server, entries = zoo
    other = save_checkpoint(tmp_path / "o.safetensors", {"generator": imgtrans.create_generator("unet_128", ngf=4)},
                            {"generator": {**TINY, "name": "unet_128"}, "in_channels": 3, "out_channels": 3})
    server.files["/models/tiny_st.safetensors"] = other.read_bytes()
    with pytest.raises(CheckpointError, match="manifest declares"):
        store.pull("tiny_st")
    assert store.recorded_hashes() == {}


@pytest.mark.parametrize("content", ["{not json", "[]", '{"http://x/a.pth": "zz"}', "\xff"])
def test_a_corrupt_hash_record_is_an_error_not_verification_off(zoo, content) -> None:
    hashes = store.hashes_file()
    hashes.parent.mkdir(parents=True)
    hashes.write_bytes(content.encode("latin-1"))
    for args in (["zoo", "pull", "tiny_pth"], ["zoo", "verify"]):
        line = _one_line_error(CliRunner().invoke(cli, args))
        assert str(hashes) in line and "delete" in line
    assert hashes.read_bytes() == content.encode("latin-1"), "the record is left for the user to inspect"


# --- 6: the manifest's size bounds a zoo download --------------------------------------------
def test_a_zoo_download_is_bounded_by_the_declared_size(zoo, monkeypatch) -> None:
    server, entries = zoo
    entries["tiny_st"] = make_entry("tiny_st", _raw_entry(server, "tiny_st", "safetensors", size_mb=0.5), "test")
    server.responders["/models/tiny_st.safetensors"] = endless()
    line = _one_line_error(CliRunner().invoke(cli, ["zoo", "pull", "tiny_st"]))
    assert "1.8 MB" in line  # 0.5 MB x 1.5 + 1 MB
    assert not list(store.download_path(entries["tiny_st"]).parent.iterdir())


# --- 7: checkpoint metadata is checked against the tensors before anything is built ---------------
@pytest.fixture
def lying(tmp_path):
    """Write a small real checkpoint whose metadata says ``**lies``."""
    torch.manual_seed(0)
    net = imgtrans.create_generator("unet", num_downs=5, ngf=4)
    honest = {"generator": {"name": "unet", "num_downs": 5, "ngf": 4}, "in_channels": 3, "out_channels": 3,
              "stride": 32}

    def write(generator: dict | None = None, **meta) -> Path:
        path = tmp_path / "lying.safetensors"
        spec = {**honest["generator"], **(generator or {})}
        save_checkpoint(path, {"generator": net}, {**honest, **meta, "generator": spec})
        return path
    return write


@pytest.mark.parametrize("lie,expect", [
    ({"stride": 65536}, "stride=65536"),
    ({"stride": 64}, "stride=64 does not match"),
    ({"in_channels": 10**6}, "in_channels=1000000"),
    ({"out_channels": 4}, "out_channels=4 does not match"),
    ({"generator": {"ngf": 400}}, "shape mismatch"),
    ({"generator": {"num_downs": 100000}}, "more than"),
    ({"generator": {"num_downs": 6}}, "missing"),
    ({"generator": {"name": "no_such_net"}}, "no_such_net"),
    ({"generator": {"banana": 1}}, "banana"),
])
def test_lying_metadata_is_refused_before_building(lying, lie, expect) -> None:
    path = lying(**lie)
    with pytest.raises(CheckpointError) as info:
        imgtrans.load_model(path)
    assert expect in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)


def test_lying_metadata_through_translate_is_one_line(lying, tmp_path) -> None:
    path = lying(stride=65536)
    Image.new("RGB", (8, 8)).save(tmp_path / "in.png")
    line = _one_line_error(CliRunner().invoke(cli, ["translate", "--model", str(path), str(tmp_path / "in.png"),
                                                    str(tmp_path / "out.png")]))
    assert "stride=65536" in line and not (tmp_path / "out.png").exists()


def test_an_honest_checkpoint_fits_without_reading_tensors(lying, monkeypatch) -> None:
    path = lying()
    check_generator_fits(path, read_metadata(path), "generator")
    assert imgtrans.load_model(path).stride == 32


# --- 8: two pulls of one model at once --------------------------------------------------------
_CHILD = """
import json, sys
from imgtrans.zoo import store
from imgtrans.core.zoo_manifest import make_entry
spec = json.loads(sys.argv[1])
entries = {spec["name"]: make_entry(spec["name"], spec["raw"], "test")}
store.entries = lambda: entries
from imgtrans.cli import cli
cli(["zoo", "pull", spec["name"]], prog_name="imgtrans")
"""


def _wait_for(condition, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_concurrent_pulls_of_one_model_both_succeed(http_server, tiny_files, tmp_path) -> None:
    path = "/models/tiny_pth.pth"
    gate = threading.Event()
    http_server.responders[path] = held(tiny_files["pth"], gate)
    spec = json.dumps({"name": "tiny_pth", "raw": _raw_entry(http_server, "tiny_pth", "reference-pth")})
    env = {**os.environ, "IMGTRANS_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins"), os.environ.get("PYTHONPATH", "")])}
    logs = [tmp_path / "a.err", tmp_path / "b.err"]
    procs = []
    for log in logs:
        with open(log, "w") as err:
            procs.append(subprocess.Popen([sys.executable, "-c", _CHILD, spec], env=env, stderr=err,
                                          stdout=subprocess.PIPE, text=True))

    def both_in_flight() -> bool:  # one download is held; the other pull waits on the lock or downloads too
        waiting = any("waiting for another" in log.read_text() for log in logs)
        return len(http_server.requests) > 1 or (len(http_server.requests) == 1 and waiting)
    try:
        _wait_for(both_in_flight, "both pulls to be under way")
    finally:
        gate.set()
    outs = [p.communicate(timeout=300)[0] for p in procs]
    errs = [log.read_text() for log in logs]
    assert [p.returncode for p in procs] == [0, 0], errs
    assert "Traceback" not in "".join(errs)
    assert sorted(o.split(":")[1].split()[0] for o in outs) == ["cached", "downloaded"], outs
    assert len(http_server.requests) == 1, "the second pull found the model cached instead of downloading it"
    assert not list((tmp_path / "home").rglob("*.lock")) and not list((tmp_path / "home").rglob("*.part"))


# --- 12: a malformed mirror --------------------------------------------------------------------
def test_a_malformed_mirror_is_one_line(zoo, monkeypatch) -> None:
    monkeypatch.setenv("IMGTRANS_ZOO_MIRROR", "http://[::1")
    line = _one_line_error(CliRunner().invoke(cli, ["zoo", "pull", "tiny_st"]))
    assert "http://[::1" in line and "not a valid URL" in line


# --- 13: nothing refused or corrupt is reused from the cache -------------------------------------
def _tar_gz(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 4), (10, 20, 30)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("bad", ["hostile", "wrong_structure", "not_an_archive"])
def test_a_refused_archive_is_not_reused_with_a_good_mirror(http_server, tmp_path, monkeypatch, bad) -> None:
    monkeypatch.setenv("IMGTRANS_HOME", str(tmp_path / "home"))
    good = {f"tiny/train/{i}.png": _png() for i in range(3)}
    http_server.files["/good/tiny.tar.gz"] = _tar_gz(good)
    http_server.files["/bad/tiny.tar.gz"] = {
        "hostile": _tar_gz(good, links={"tiny/train/evil.png": "/etc/passwd"}),
        "wrong_structure": _tar_gz({"tiny/other/0.png": _png()}),
        "not_an_archive": HTML,
    }[bad]
    catalog = DatasetCatalog()
    view = catalog.for_plugin("test")
    view.add("tiny", "three images", url="http://example.invalid/datasets/tiny.tar.gz", splits={"train": 3})
    view.commit()
    with pytest.raises(DataError) as info:
        resolve_dataset("tiny", catalog, mirror=http_server.url("/bad"))
    assert "deleted" in str(info.value) and "\n" not in str(info.value)
    assert not list((tmp_path / "home" / "downloads").iterdir())
    root = resolve_dataset("tiny", catalog, mirror=http_server.url("/good"))
    assert root == dataset_path("tiny") and len(list((root / "train").iterdir())) == 3
    assert [path for path, _ in http_server.requests] == ["/bad/tiny.tar.gz", "/good/tiny.tar.gz"]


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_corrupt_converted_model_is_neither_ok_nor_cached(zoo) -> None:
    server, entries = zoo
    assert "downloaded" in CliRunner().invoke(cli, ["zoo", "pull", "tiny_pth"]).output
    target = store.converted_path(entries["tiny_pth"])
    good = {k: v.clone() for k, v in load_checkpoint(target).tensors["generator"].items()}
    _flip_last_byte(target)  # a bit flip in the weights: the header still parses

    verify = CliRunner().invoke(cli, ["zoo", "verify"])
    assert verify.exit_code == 1 and f"mismatch   tiny_pth" in verify.output, verify.output
    requests = len(server.requests)
    result = CliRunner().invoke(cli, ["zoo", "pull", "tiny_pth"])
    assert result.exit_code == 0 and "downloaded" in result.output, result.output
    assert len(server.requests) == requests, "re-converted from the verified download, not downloaded again"
    again = load_checkpoint(target).tensors["generator"]
    assert again.keys() == good.keys() and all(torch.equal(again[k], good[k]) for k in good)
    verify = CliRunner().invoke(cli, ["zoo", "verify"])
    assert verify.exit_code == 0 and "mismatch" not in verify.output


def test_a_truncated_converted_model_without_a_record_is_corrupt(zoo) -> None:
    """A model converted before hashes were recorded still gets a load check from `zoo verify`."""
    server, entries = zoo
    store.pull("tiny_st")
    target = store.converted_path(entries["tiny_st"])
    (target.parent / (target.name + ".sha256")).unlink()
    verify = CliRunner().invoke(cli, ["zoo", "verify"])
    assert verify.exit_code == 0 and "unverified tiny_st" in verify.output, verify.output
    target.write_bytes(target.read_bytes()[:-100])
    verify = CliRunner().invoke(cli, ["zoo", "verify"])
    assert verify.exit_code == 1 and "corrupt    tiny_st" in verify.output, verify.output
    assert store.pull("tiny_st").downloaded and load_checkpoint(target).metadata["zoo_name"] == "tiny_st"


def test_each_direction_of_a_two_way_file_is_checked(tmp_path) -> None:
    nets = {"generator_a": imgtrans.create_generator("unet", num_downs=5, ngf=4),
            "generator_b": imgtrans.create_generator("unet", num_downs=5, ngf=8)}

    def write(b_ngf: int) -> Path:
        spec = {"name": "unet", "num_downs": 5}
        directions = {"AtoB": {"network": "generator_a", "generator": {**spec, "ngf": 4}, "stride": 32},
                      "BtoA": {"network": "generator_b", "generator": {**spec, "ngf": b_ngf}, "stride": 32}}
        return save_checkpoint(tmp_path / "two_way.safetensors", nets, {"directions": directions})

    path = write(8)
    assert imgtrans.load_model(path, direction="BtoA").direction == "BtoA"
    path = write(16)
    assert imgtrans.load_model(path, direction="AtoB").stride == 32  # the honest direction still loads
    with pytest.raises(CheckpointError, match="generator_b|shape mismatch"):
        imgtrans.load_model(path, direction="BtoA")
