"""The silent wrong results and unclear messages of issue 23, each now one line naming the component
and the fix: a generator whose declared stride is wrong, an optimizer holding parameters of a
network the recipe does not declare, a declared network that never trains, a loss without a role,
a loss of the wrong role in the kit, a step returning floats, a direction naming a missing slot,
a generator that changes the size in a recipe's step; and the owned-network contract itself."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import TinyGen
from imgtrans import hookimpl
from imgtrans.core.config import resolve
from imgtrans.core.interfaces import Loss, Recipe, Slot, declared_role
from imgtrans.testing import (
    ConformanceError,
    check_case,
    check_recipe,
    recipe_data,
    tiny_layers,
    use_plugin,
)
from imgtrans.training.trainer import build_recipe, train
from imgtrans.util.errors import ConfigError


Gen = TinyGen  # a conforming tiny generator; the subclasses below each break one rule


class FourfoldGen(Gen):
    """Down-samples by 4 and back, but declares stride 1: fine at 32 px, 92x64 out of 93x67."""

    def forward(self, x):
        return F.interpolate(F.avg_pool2d(super().forward(x), 4), scale_factor=4.0)


class FourfoldDeclared(FourfoldGen):
    """The same network with its stride declared: conforms."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3):
        super().__init__(in_channels, out_channels)
        self.stride = 4


class Shrinking(Gen):
    """Loses a border at every size."""

    def forward(self, x):
        return super().forward(x)[:, :, 1:-1, 1:-1]


class OneNet(Recipe):
    """One generator trained with L1, plus whatever a subclass adds."""

    slots: ClassVar[dict[str, Slot]] = {"generator": Slot("generator", "sound")}
    tiny_config: ClassVar[dict] = {"data": {"load_size": 32, "crop_size": 32}}

    def configure_optimizers(self, lr, betas):
        return {"generator": torch.optim.Adam(self.components["generator"].parameters(), lr=lr, betas=betas)}

    def train_step(self, batch, optimizers):
        opt = optimizers["generator"]
        opt.zero_grad()
        loss = (self.components["generator"](batch["A"]) - batch["B"]).abs().mean()
        self.backward(loss)
        self.step(opt)
        return {"L1": loss.detach()}


class UndeclaredHead(OneNet):
    """Trains a head of its own that it never declares: checkpoints would not hold it."""

    def __init__(self, components):
        super().__init__(components)
        self.head = nn.Conv2d(3, 3, 1)

    def configure_optimizers(self, lr, betas):
        return {**super().configure_optimizers(lr, betas),
                "head": torch.optim.Adam(self.head.parameters(), lr=lr, betas=betas)}

    def train_step(self, batch, optimizers):
        losses = super().train_step(batch, optimizers)
        optimizers["head"].zero_grad()
        loss = self.head(batch["A"]).abs().mean()
        self.backward(loss)
        self.step(optimizers["head"])
        return {**losses, "head": loss.detach()}


class DeclaredHead(UndeclaredHead):
    """The same head, declared as an owned network: checkpointed, resumed, placed like a slot."""

    owned_networks: ClassVar[dict[str, str]] = {"head": "a 1x1 convolution trained on the side"}

    def __init__(self, components):
        super().__init__(components)
        self.add_network("head", self.head)


class ForgetsToDeclare(OneNet):
    """Declares an owned network but never hands it over."""

    owned_networks: ClassVar[dict[str, str]] = {"head": "never built"}


class NeverStepped(OneNet):
    """Declares a discriminator whose optimizer it never steps: it never trains."""

    slots: ClassVar[dict[str, Slot]] = {"generator": Slot("generator", "sound"),
                                        "discriminator": Slot("discriminator", "critic")}

    def configure_optimizers(self, lr, betas):
        return {**super().configure_optimizers(lr, betas),
                "discriminator": torch.optim.Adam(self.components["discriminator"].parameters(), lr=lr)}


class Floats(OneNet):
    """Returns Python floats."""

    def train_step(self, batch, optimizers):
        return {k: float(v) for k, v in super().train_step(batch, optimizers).items()}


class Misdirected(OneNet):
    """A direction naming a slot it does not have."""

    directions: ClassVar[dict[str, str]] = {"AtoB": "generatr"}


class UsesShrinking(OneNet):
    """pix2pix-like: its generator changes the size."""

    slots: ClassVar[dict[str, Slot]] = {"generator": Slot("generator", "shrinking")}


def _critic():
    from imgtrans.core.interfaces import Discriminator

    class Critic(Discriminator):
        """A one-layer critic."""

        def __init__(self, in_channels: int = 3):
            super().__init__()
            self.in_channels, self.conv = in_channels, nn.Conv2d(in_channels, 1, 4, stride=2)

        def forward(self, x):
            return self.conv(x)

    return Critic


@hookimpl
def register_components(registry):
    registry.generator("sound", Gen)
    registry.generator("fourfold", FourfoldGen)
    registry.generator("fourfold_declared", FourfoldDeclared)
    registry.generator("shrinking", Shrinking)
    registry.discriminator("critic", _critic())
    for name, cls in [("one", OneNet), ("undeclared_head", UndeclaredHead), ("declared_head", DeclaredHead),
                      ("forgets", ForgetsToDeclare), ("never_stepped", NeverStepped), ("floats", Floats),
                      ("misdirected", Misdirected), ("uses_shrinking", UsesShrinking)]:
        registry.recipe(name, cls)
    registry.loss("no_role_adversarial", NoRoleAdversarial)
    registry.loss("pixel_but_adversarial", PixelButAdversarial)
    registry.loss("adversarial_but_pixel", AdversarialButPixel)


class NoRoleAdversarial(Loss):
    """Written for logits and a bool, but declares no role (so it counts as pixel)."""

    def forward(self, logits, target_is_real):
        return F.mse_loss(logits, torch.full_like(logits, float(target_is_real)))


class PixelButAdversarial(NoRoleAdversarial):
    """Declares pixel, takes (logits, bool)."""

    role = "pixel"


class AdversarialButPixel(Loss):
    """Declares adversarial, takes (prediction, target)."""

    role = "adversarial"

    def forward(self, prediction, target):
        return (prediction - target).abs().mean()


@pytest.fixture(scope="module")
def host():
    with use_plugin("checks", register_components) as h:
        yield h


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message, message
    return message


# -- the three silent wrong results ----------------------------------------------------------------------

def test_a_generator_with_a_wrong_stride_is_caught_by_the_kit(host, tmp_path: Path) -> None:
    check_case("generator", "fourfold_declared", tmp_path)
    with pytest.raises(ConformanceError) as err:
        check_case("generator", "fourfold", tmp_path)
    assert _one_line(err) == (
        "generator 'fourfold' (plugin 'checks') breaks rule 'sizes': a 93x67 image padded to its stride 1 (93x67) "
        "comes out (1, 3, 92, 64), not (1, 3, 93, 67): declare stride = the multiple its input sides must be "
        "(2 ** its down-samplings)")


def test_an_optimizer_over_an_undeclared_network_is_refused_at_start_up(host, tmp_path: Path) -> None:
    with pytest.raises(ConformanceError) as err:
        check_recipe(host.registry, "undeclared_head", tmp_path / "bad")
    assert _one_line(err) == (
        "recipe 'undeclared_head' (plugin 'checks') breaks rule 'trains': ConfigError: recipe 'undeclared_head': "
        "optimizer 'head' updates 2 parameter tensor(s) (12 values) of no declared network, so checkpoints would "
        "not save them and --resume could not continue the run exactly; declare such a network in the recipe's "
        "owned_networks and hand it over with self.add_network(NAME, module) in __init__")
    assert not (tmp_path / "bad" / "straight").exists()  # refused before the run directory was made
    # declared, the same recipe passes the kit: the head is checkpointed and resumes bit-exactly
    run = check_recipe(host.registry, "declared_head", tmp_path / "good")["run_dir"]
    from imgtrans.core.checkpoint import load_checkpoint

    assert "head" in load_checkpoint(run / "checkpoints" / "last.safetensors").tensors


def test_a_declared_network_that_never_trains_is_caught_by_the_kit(host, tmp_path: Path) -> None:
    with pytest.raises(ConformanceError) as err:
        check_recipe(host.registry, "never_stepped", tmp_path)
    assert _one_line(err) == (
        "recipe 'never_stepped' (plugin 'checks') breaks rule 'trains': network 'discriminator' did not change in "
        "4 steps: no optimizer steps it, or no gradient reaches it (give it an optimizer in configure_optimizers "
        "and call self.step(optimizer) in train_step)")


# -- the unclear messages ----------------------------------------------------------------------------------

def test_an_owned_network_declared_but_not_handed_over(host) -> None:
    config = resolve("forgets", host.registry, [{"data": {"source": "x"}}])
    with pytest.raises(ConfigError) as err:
        build_recipe(config, host.registry)
    assert _one_line(err) == ("recipe 'forgets' (plugin 'checks') declares owned network 'head' but its __init__ "
                              "never hands it over: call self.add_network('head', module) there")
    recipe = build_recipe(resolve("one", host.registry, [{"data": {"source": "x"}}]), host.registry)
    with pytest.raises(ConfigError, match=r"network 'extra' is not declared in owned_networks \(declared: none\)"):
        recipe.add_network("extra", nn.Linear(1, 1))


def test_a_loss_without_a_role_in_an_adversarial_slot(host) -> None:
    assert declared_role(NoRoleAdversarial) is None and declared_role(PixelButAdversarial) == "pixel"
    with pytest.raises(ConfigError) as err:
        resolve("pix2pix", host.registry, [{"gan_loss": {"name": "no_role_adversarial"}}])
    assert _one_line(err) == (
        "gan_loss: loss 'no_role_adversarial' declares no role, so it counts as 'pixel' (the default of "
        "imgtrans.api.Loss), but slot 'gan_loss' needs role 'adversarial' (for example: adversarial_but_pixel, bce, "
        "lsgan); if it is "
        "called as 'adversarial' losses are, declare role = 'adversarial' on its class")


@pytest.mark.parametrize("name,needle", [
    ("pixel_but_adversarial", ("; as a 'pixel' loss it is called loss(prediction, target) on images; if it takes "
                               "other arguments, declare the role that matches")),
    ("no_role_adversarial", ("as a 'pixel' loss it is called loss(prediction, target) on images (the default role: "
                             "it declares none)")),
    ("adversarial_but_pixel", ("as a 'adversarial' loss it is called loss(logits, target_is_real: bool) on a "
                               "discriminator's logits")),
])
def test_a_loss_of_the_wrong_role_is_named_in_the_kit(host, tmp_path: Path, name: str, needle: str) -> None:
    with pytest.raises(ConformanceError) as err:
        check_case("loss", name, tmp_path)
    message = _one_line(err)
    assert message.startswith(f"loss '{name}' (plugin 'checks') breaks rule 'forward': ") and needle in message


def test_a_step_returning_floats(host, tmp_path: Path) -> None:
    data = recipe_data(host.registry, "floats", tmp_path / "data")
    config = resolve("floats", host.registry, tiny_layers(host.registry, "floats", data, tmp_path / "run"))
    with pytest.raises(ConfigError) as err:
        train(config, registry=host.registry)
    assert _one_line(err) == ("recipe 'floats' (plugin 'checks'): train_step must return a dict of name -> scalar "
                              "tensor, got 'L1': a float; return loss.detach() (not loss.item(), a float)")


def test_a_direction_naming_a_missing_slot(host) -> None:
    with pytest.raises(ConfigError) as err:
        resolve("misdirected", host.registry, [{"data": {"source": "x"}}])
    assert _one_line(err) == ("recipe 'misdirected' of plugin 'checks': directions['AtoB'] names 'generatr', a slot "
                              "it does not declare; name one of its generator slots (generator)")


def test_a_generator_that_changes_the_size_is_named_at_start_up(host, tmp_path: Path) -> None:
    data = recipe_data(host.registry, "uses_shrinking", tmp_path / "data")
    config = resolve("uses_shrinking", host.registry, tiny_layers(host.registry, "uses_shrinking", data,
                                                                  tmp_path / "run"))
    with pytest.raises(ConfigError) as err:
        train(config, registry=host.registry)
    assert _one_line(err) == (
        "generator 'shrinking' maps a 32x32 crop (1, 3, 32, 32) to (1, 3, 30, 30), not (1, 3, 32, 32): a generator "
        "must give back its input's size (if it needs sides that are multiples of N, declare stride = N; its "
        "declared stride is 1)")
    assert not (tmp_path / "run").exists()
