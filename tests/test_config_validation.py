"""Values are checked against declared types and constraints, and loss slots against their role."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from torch import nn

import imgtrans
from imgtrans.cli import cli
from imgtrans.core.config import load_toml, parse_set_options, resolve
from imgtrans.core.interfaces import Loss
from imgtrans.core.registry import Component, Registry
from imgtrans.util.errors import ConfigError, UnknownNameError


@pytest.mark.parametrize("item,value,allowed", [
    ("data.batch_size=0", "0", "an integer >= 1"),
    ("run.log_every=0", "0", "an integer >= 1"),
    ("optim.lr=-1", "-1", "a number > 0"),
    ("generator.norm=banana", "'banana'", "one of batch, instance, none"),
    ("generator.ngf=0", "0", "an integer >= 1"),
    ('data.max_items="ten"', "'ten'", "an integer >= 1"),
    ("optim.max_steps=2.5", "2.5", "an integer >= 1"),
    ("optim.beta1=1", "1", "a number >= 0 and < 1"),
    ("data.direction=AtoC", "'AtoC'", "one of AtoB, BtoA"),
    ("discriminator.n_layers=0", "0", "an integer >= 1"),
    ("recipe.lambda_l1=-5", "-5", "a number >= 0"),
])
def test_bad_values_name_key_value_and_what_is_allowed(item: str, value: str, allowed: str, registry) -> None:
    with pytest.raises(ConfigError) as err:
        resolve("pix2pix", registry, [parse_set_options([item])])
    key = item.split("=")[0]
    assert str(err.value) == f"{key} must be {allowed}, got {value}"


def test_good_values_still_pass_and_ints_widen_to_floats(registry) -> None:
    cfg = resolve("pix2pix", registry, [parse_set_options(["optim.max_steps=3", "optim.lr=1", "generator.norm=instance",
                                                           "data.max_items=2", "generator.name=resnet_6blocks",
                                                           "generator.padding=zero"])])
    assert cfg.optim.max_steps == 3 and cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.components["generator"].args == {"norm": "instance", "padding": "zero"}


def test_crop_larger_than_load_size_is_one_line(registry, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data.crop_size 512 is larger than data.load_size 286"):
        resolve("pix2pix", registry, [{"data": {"crop_size": 512}}])
    result = CliRunner().invoke(cli, ["train", "pix2pix", "--data", str(tmp_path), "--crop-size", "512",
                                      "--out", str(tmp_path / "run"), "--quiet"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "crop_size must be <= load_size" in lines[0], result.output
    assert not (tmp_path / "run").exists()


def test_non_utf8_config_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.toml"
    bad.write_bytes('[run]\nout = "r\xe9sultats"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.toml is not UTF-8 text \(byte 14 is 0xe9\)"):
        load_toml(bad)
    result = CliRunner().invoke(cli, ["train", "pix2pix", "--data", str(tmp_path), "--config", str(bad)])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output


def test_unknown_data_format_lists_the_registered_ones(registry) -> None:
    with pytest.raises(UnknownNameError, match=r"unknown dataset format \(data.format\) 'algined'. Did you mean 'aligned'"):
        resolve("pix2pix", registry, [{"data": {"format": "algined"}}])


# --- loss roles ------------------------------------------------------------------------------------------

class TotalVariation(Loss):
    """A pixel-role loss from a plugin: wrong in the adversarial slot."""

    role = "pixel"

    def forward(self, prediction, target):
        return (prediction[..., 1:] - prediction[..., :-1]).abs().mean()


def _registry_with(*extra: Component) -> Registry:
    fresh = Registry()
    for kind in ("generator", "discriminator", "loss", "recipe", "dataset_format", "metric"):
        for component in imgtrans.get_registry().components(kind):
            if component.plugin in ("imgtrans", "pix2pix", "cyclegan"):  # not what other installed plugins add
                fresh.add(component)
    for component in extra:
        fresh.add(component)
    return fresh


@pytest.mark.parametrize("item,message", [
    ("gan_loss.name=tv", "gan_loss: loss 'tv' has role 'pixel', but slot 'gan_loss' needs role 'adversarial' "
                         "(for example: bce, lsgan)"),
    ("pixel_loss.name=bce", "pixel_loss: loss 'bce' has role 'adversarial', but slot 'pixel_loss' needs role "
                            "'pixel' (for example: l1, tv)"),
])
def test_a_loss_of_the_wrong_role_is_refused(item: str, message: str) -> None:
    registry = _registry_with(Component("loss", "tv", TotalVariation, "myplugin"))
    with pytest.raises(ConfigError) as err:
        resolve("pix2pix", registry, [parse_set_options([item])])
    assert str(err.value) == message
    assert resolve("pix2pix", registry, [parse_set_options(["pixel_loss.name=tv"])]).components["pixel_loss"].name == "tv"


# --- declarations of plugin components -------------------------------------------------------------------

class Unannotated(nn.Module):
    """No annotations: the type of the default applies; a declared constraint still does."""

    arg_constraints = {"width": {"max": 64}}

    def __init__(self, in_channels=3, out_channels=3, width=8):
        super().__init__()


class Misdeclared(Unannotated):
    arg_constraints = {"width": {"minimum": 1}}


def test_unannotated_arguments_and_bad_declarations() -> None:
    registry = _registry_with(Component("generator", "plain", Unannotated, "p"),
                              Component("generator", "typo", Misdeclared, "p"))
    with pytest.raises(ConfigError, match=r"^generator.width must be an integer <= 64, got 65$"):
        resolve("pix2pix", registry, [{"generator": {"name": "plain", "width": 65}}])
    with pytest.raises(ConfigError, match="^generator.width must be an integer <= 64, got 'wide'$"):
        resolve("pix2pix", registry, [{"generator": {"name": "plain", "width": "wide"}}])
    with pytest.raises(ConfigError, match="generator 'typo' declares an unknown constraint 'minimum' for 'width'"):
        resolve("pix2pix", registry, [{"generator": {"name": "typo", "width": 2}}])
