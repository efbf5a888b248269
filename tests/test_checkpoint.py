"""Checkpoints are self-describing safetensors files that round-trip bit for bit."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import imgtrans
from imgtrans.core.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from imgtrans.util.errors import CheckpointError

META = {"generator": {"name": "unet_256", "ngf": 8}, "in_channels": 3, "out_channels": 3, "stride": 256,
        "direction": "AtoB", "norm_stats": "running", "recipe": "pix2pix"}


def test_round_trip_is_bit_exact(tmp_path) -> None:
    torch.manual_seed(0)
    gen = imgtrans.create_generator("unet_256", ngf=8)
    gen.train()(torch.randn(2, 3, 256, 256))  # move the running statistics away from their init
    path = save_checkpoint(tmp_path / "m.safetensors", {"generator": gen}, META)
    ckpt = load_checkpoint(path)
    state = gen.state_dict()
    assert set(ckpt.state_dict("generator")) == set(state)
    for key, value in state.items():
        loaded = ckpt.state_dict("generator")[key]
        assert loaded.dtype == value.dtype and torch.equal(loaded, value), key
    assert ckpt.metadata["generator"] == META["generator"] and ckpt.metadata["stride"] == 256
    model = imgtrans.load_model(path)
    x = torch.randn(1, 3, 256, 256)
    assert torch.equal(model.generator(x), gen.eval()(x))


def test_load_model_needs_no_architecture_flags(tmp_path) -> None:
    gen = imgtrans.create_generator("unet_128", ngf=4, in_channels=1, norm="instance", dropout=False)
    meta = {**META, "generator": {"name": "unet_128", **gen.imgtrans_spec["args"]}, "in_channels": 1, "stride": 128}
    path = save_checkpoint(tmp_path / "m.safetensors", {"generator": gen}, meta)
    model = imgtrans.load_model(path)
    assert model.in_channels == 1 and model.stride == 128
    assert read_metadata(path)["format"] == "imgtrans-checkpoint/1"


def test_corrupt_and_foreign_files_are_clear_errors(tmp_path) -> None:
    gen = imgtrans.create_generator("unet_256", ngf=4)
    path = save_checkpoint(tmp_path / "m.safetensors", {"generator": gen}, META)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        imgtrans.load_model(truncated)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not an imgtrans checkpoint"):
        imgtrans.load_model(foreign)
    with pytest.raises(CheckpointError, match="not found"):
        imgtrans.load_model(tmp_path / "nope.safetensors")
    wrong = save_checkpoint(tmp_path / "wrong.safetensors", {"generator": gen},
                            {**META, "generator": {"name": "unet_128", "ngf": 4}})
    with pytest.raises(CheckpointError, match="do not fit generator 'unet_128'"):
        imgtrans.load_model(wrong)


def test_write_is_atomic(tmp_path, monkeypatch) -> None:
    import imgtrans.core.checkpoint as ck

    gen = imgtrans.create_generator("unet_256", ngf=4)
    target = save_checkpoint(tmp_path / "m.safetensors", {"generator": gen}, META)
    before = target.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ck, "save_file", fail)
    with pytest.raises(OSError):
        save_checkpoint(target, {"generator": gen}, META)
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_written_files_get_ordinary_permissions(tmp_path) -> None:
    import os
    import stat

    from imgtrans.util.fileio import UMASK

    path = save_checkpoint(tmp_path / "m.safetensors", {"generator": imgtrans.create_generator("unet_256", ngf=4)}, META)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~UMASK  # not mkstemp's 0600


_GOOD = {"format": "imgtrans-checkpoint/1", "generator": '{"name": "unet", "num_downs": 5, "ngf": 4}',
         "in_channels": "3", "out_channels": "3", "stride": "32"}
_HOSTILE = {  # the second sweep's tracebacks (RecursionError, ValueError, ...), each now one line
    "deep JSON": ({"config": "[" * 100000 + "]" * 100000}, "metadata field 'config' is corrupt"),
    "norm_stats": ({"norm_stats": "bogus"}, "norm_stats='bogus' is not one of running, instance"),
    "direction": ({"direction": "sideways"}, "direction='sideways' is not one of AtoB, BtoA"),
    "generator type": ({"generator": '"unet"'}, "generator='unet' is not an object naming a generator"),
    "generator name": ({"generator": '{"name": 7}'}, "is not an object naming a generator"),
    "stride float": ({"stride": "32.5"}, "stride=32.5 is not an integer from 1 to 4096"),
    "stride bool": ({"stride": "true"}, "stride=True is not an integer"),
    "channels": ({"in_channels": "-3"}, "in_channels=-3 is not an integer from 1 to 1024"),
    "step": ({"step": '"ten"'}, "step='ten' is not a whole number >= 0"),
    "config": ({"config": "[1, 2]"}, "config=[1, 2] is not an object"),
    "networks": ({"networks": '{"a": 1}'}, "is not a list of network names"),
    "directions type": ({"directions": "[]"}, "directions=[] is not an object with an entry per direction"),
    "directions key": ({"directions": '{"up": {}}'}, "directions='up' is not keyed by AtoB or BtoA"),
    "directions entry": ({"directions": '{"AtoB": {"generator": {"name": "unet"}, "norm_stats": 3}}'},
                         "directions.AtoB.norm_stats=3 is not one of running, instance"),
}


@pytest.mark.parametrize("case", sorted(_HOSTILE))
def test_hostile_metadata_is_one_line_naming_the_field(case: str, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    fields, message = _HOSTILE[case]
    path = tmp_path / "hostile.safetensors"
    save_file({"generator.w": torch.zeros(1)}, str(path), metadata={**_GOOD, **fields})
    with pytest.raises(CheckpointError) as caught:
        read_metadata(path)
    assert message in str(caught.value) and "\n" not in str(caught.value)
