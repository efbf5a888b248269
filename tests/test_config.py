"""Configuration layering: recipe defaults -> TOML -> --set -> options, validated."""
from __future__ import annotations

import pytest

from imgtrans.core.config import load_toml, parse_set_options, parse_value, resolve
from imgtrans.util.errors import ConfigError, UnknownNameError


def test_defaults_are_the_paper_settings(registry) -> None:
    cfg = resolve("pix2pix", registry, [])
    assert cfg.components["generator"].name == "unet_256"
    assert cfg.components["discriminator"].name == "patchgan_70"
    assert cfg.components["discriminator"].args["in_channels"] == 6  # conditional on A
    assert cfg.components["gan_loss"].name == "bce"
    assert cfg.recipe.args == {"lambda_l1": 100.0}
    assert (cfg.optim.lr, cfg.optim.beta1, cfg.optim.beta2, cfg.optim.epochs, cfg.optim.epochs_decay) == (2e-4, 0.5, 0.999, 100, 100)
    assert (cfg.data.load_size, cfg.data.crop_size, cfg.data.batch_size, cfg.data.flip) == (286, 256, 1, True)


def test_layers_apply_in_order(tmp_path, registry) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('[generator]\nngf = 16\n[optim]\nlr = 1e-3\nepochs = 3\n[recipe]\nlambda_l1 = 10\n')
    sets = parse_set_options(["generator.ngf=32", "optim.beta1=0.9"])
    options = {"optim": {"epochs": 7}}
    cfg = resolve("pix2pix", registry, [load_toml(toml), sets, options])
    assert cfg.components["generator"].args == {"ngf": 32}
    assert (cfg.optim.lr, cfg.optim.beta1, cfg.optim.epochs) == (1e-3, 0.9, 7)
    assert cfg.recipe.args["lambda_l1"] == 10.0 and isinstance(cfg.recipe.args["lambda_l1"], float)


def test_changing_a_component_drops_the_old_arguments(registry) -> None:
    cfg = resolve("pix2pix", registry, [{"generator": {"ngf": 16}}, {"generator": {"name": "unet_128"}}])
    assert cfg.components["generator"].name == "unet_128" and cfg.components["generator"].args == {}


def test_resolved_config_round_trips_through_toml(tmp_path, registry) -> None:
    cfg = resolve("pix2pix", registry, [{"generator": {"ngf": 16, "in_channels": 1}}])
    path = tmp_path / "resolved.toml"
    path.write_text(cfg.to_toml())
    again = resolve("pix2pix", registry, [load_toml(path)])
    assert again.to_dict() == cfg.to_dict()
    assert again.components["discriminator"].args["in_channels"] == 4


@pytest.mark.parametrize("item,match", [
    ("generator.nfg=3", "Did you mean 'ngf'"),
    ("optim.learning_rate=3", "Valid choices: beta1, beta2, epochs"),
    ("genrator.ngf=3", "unknown config section 'genrator'"),
    ("recipe.lambda=3", "lambda_l1"),
])
def test_unknown_keys_list_the_valid_ones(item: str, match: str, registry) -> None:
    with pytest.raises(UnknownNameError, match=match):
        resolve("pix2pix", registry, [parse_set_options([item])])


@pytest.mark.parametrize("item", ["optim.epochs=1.5", "data.flip=1", "generator.ngf=wide"])
def test_wrong_types_are_rejected(item: str, registry) -> None:
    with pytest.raises(ConfigError, match="must be"):
        resolve("pix2pix", registry, [parse_set_options([item])])


def test_set_syntax() -> None:
    assert parse_value("32") == 32 and parse_value("1e-3") == 1e-3 and parse_value("true") is True
    assert parse_value("instance") == "instance" and parse_value('"x y"') == "x y"
    for bad in ["ngf=3", "generator.ngf", ".ngf=3"]:
        with pytest.raises(ConfigError, match="SECTION.KEY=VALUE"):
            parse_set_options([bad])


def test_bad_toml_is_a_clear_error(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[generator\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_toml(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_toml(tmp_path / "missing.toml")
