"""``--init SLOT=SOURCE``: a slot starts from existing weights, copied exactly (fine-tuning)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from helpers import write_aligned

from imgtrans.cli import cli
from imgtrans.core.checkpoint import load_checkpoint
from imgtrans.core.config import resolve
from imgtrans.training.building import apply_init, parse_init
from imgtrans.training.trainer import build_recipe
from imgtrans.util.errors import CheckpointError, ConfigError

TINY = {"generator": {"name": "unet", "num_downs": 5, "ngf": 4}, "discriminator": {"ndf": 4}}


def _recipe(registry, **layer):
    return build_recipe(resolve("pix2pix", registry, [TINY, {"data": {"source": "x"}}, layer]), registry)


def test_zoo_model_loads_bit_exactly(registry) -> None:
    recipe = _recipe(registry, generator={"name": "unet_256", "ngf": 24, "upsample": "bilinear"})
    apply_init(recipe, parse_init(["generator=zoo:basemap_a2b"]))
    shipped = load_checkpoint(Path(__file__).parents[1] / "zoo" / "basemap_a2b.safetensors").state_dict("generator")
    for key, value in recipe.components["generator"].state_dict().items():
        assert torch.equal(value, shipped[key].to(value.dtype)), key


def test_reference_pth_and_checkpoint_networks(registry, tmp_path: Path) -> None:
    source = _recipe(registry)
    pth = tmp_path / "latest_net_D.pth"
    torch.save({f"module.{k}": v for k, v in source.components["discriminator"].state_dict().items()}, pth)
    torch.manual_seed(1)
    target = _recipe(registry)
    apply_init(target, {"discriminator": str(pth)})
    for key, value in target.components["discriminator"].state_dict().items():
        assert torch.equal(value, source.components["discriminator"].state_dict()[key]), key
    assert not torch.equal(next(iter(target.components["generator"].state_dict().values())),
                           next(iter(source.components["generator"].state_dict().values())))


def test_mismatches_are_one_line(registry, tmp_path: Path) -> None:
    recipe = _recipe(registry)
    with pytest.raises(ConfigError, match="slot 'generatr'"):
        apply_init(recipe, {"generatr": "zoo:basemap_a2b"})
    with pytest.raises(CheckpointError, match="do not fit this generator"):
        apply_init(recipe, {"generator": "zoo:basemap_a2b"})  # unet_256 ngf 24 into a 5-level ngf 4 U-Net
    with pytest.raises(ConfigError, match="SLOT=SOURCE"):
        parse_init(["generator"])


def test_init_from_the_command_line(registry, tmp_path: Path) -> None:
    data = write_aligned(tmp_path / "data", count=2, size=32)
    common = ["--data", str(data), "--generator", "unet", "--set", "generator.num_downs=5", "--set", "generator.ngf=4",
              "--set", "discriminator.ndf=4", "--load-size", "32", "--crop-size", "32", "--quiet"]
    first = CliRunner().invoke(cli, ["train", "pix2pix", *common, "--max-steps", "1", "--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    model = tmp_path / "a" / "model.safetensors"
    second = CliRunner().invoke(cli, ["train", "pix2pix", *common, "--max-steps", "1", "--lr", "1e-30",
                                      "--init", f"generator={model}", "--out", str(tmp_path / "b")])
    assert second.exit_code == 0, second.output
    want = load_checkpoint(model).state_dict("generator")
    got = load_checkpoint(tmp_path / "b" / "model.safetensors").state_dict("generator")
    for key, value in want.items():  # one step at lr 1e-30 leaves the weights where --init put them
        if value.is_floating_point():
            torch.testing.assert_close(got[key], value, rtol=0, atol=1e-20 if "running" not in key else 1.0)
    refused = CliRunner().invoke(cli, ["train", "--resume", str(tmp_path / "b"), "--init", f"generator={model}"])
    assert refused.exit_code != 0 and "--init" in refused.output
