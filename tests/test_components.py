"""Every registered component passes the conformance kit; the pix2pix networks match the reference exactly."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import imgtrans
from imgtrans.testing import CASE_KINDS, check_case, conformance

DATA = Path(__file__).parent / "data"

# Parameter counts of the reference implementation at its defaults (../shared/REFERENCE.md).
KNOWN_PARAMS = {("generator", "unet_256"): 54_413_955, ("generator", "unet_128"): 41_828_995,
                ("generator", "resnet_9blocks"): 11_378_179, ("generator", "resnet_6blocks"): 7_837_699,
                ("discriminator", "patchgan_70"): 2_768_705}


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# Recipes are checked by tests/test_recipes.py (they train); everything else every plugin registers is here.
@conformance(kinds=[kind for kind in CASE_KINDS if kind != "recipe"])
def test_registered_component_passes_the_conformance_kit(kind: str, name: str, tmp_path: Path) -> None:
    """The rules of docs/plugins.md ("Conformance rules"), checked by imgtrans.testing exactly as a
    third-party plugin's own test suite checks its components."""
    known = KNOWN_PARAMS.get((kind, name))
    facts = check_case(kind, name, tmp_path, **({"parameters": known} if known else {}))
    if kind == "discriminator":  # the bundled discriminators are PatchGANs: one logit per patch
        shape = facts["output_shape"]
        assert shape[:2] == (2, 1) and len(shape) == 4
    elif kind == "dataset_format":  # the kit wrote a sample each bundled format recognises, and checked it whole
        assert facts["layout"] is not None and facts["length"] == 4 and facts["shapes"]["A"] == (3, 64, 64)


def _reference_keys(name: str) -> list[tuple[str, tuple[int, ...]]]:
    rows = []
    for line in (DATA / name).read_text().splitlines():
        key, shape, _ = line.split("\t")
        rows.append((key, tuple(int(d) for d in re.findall(r"\d+", shape))))
    return rows


@pytest.mark.parametrize("kind,name,keys", [
    ("generator", "unet_256", "unet256_keys.txt"),
    ("discriminator", "patchgan_70", "patchgan_keys.txt"),
    ("generator", "resnet_9blocks", "resnet9_keys.txt"),
])
def test_state_dict_layout_is_the_reference_layout(kind: str, name: str, keys: str, registry) -> None:
    state = registry.create(kind, name).state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == _reference_keys(keys)


def test_cyclegan_discriminator_is_the_reference_layout(registry) -> None:
    """CycleGAN's discriminator: the same PatchGAN on 3 channels with instance norm (biased convs, no stats)."""
    disc = registry.create("discriminator", "patchgan_70", in_channels=3, norm="instance")
    assert _count(disc) == 2_764_737
    state = disc.state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == _reference_keys("patchgan_cyclegan_instance_keys.txt")


def test_unet_options() -> None:
    for norm in ("batch", "instance", "none"):
        gen = imgtrans.create_generator("unet_256", ngf=8, norm=norm, dropout=False, in_channels=1, out_channels=4)
        assert not any(isinstance(m, torch.nn.Dropout) for m in gen.modules())
        assert gen.eval()(torch.zeros(1, 1, 256, 256)).shape == (1, 4, 256, 256)
    # The reference's bias rule: only instance norm gives the normalised convs a bias.
    def biased(norm: str) -> int:
        gen = imgtrans.create_generator("unet_256", ngf=8, norm=norm)
        return sum(m.bias is not None for m in gen.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)))
    assert (biased("batch"), biased("none"), biased("instance")) == (1, 1, 16)
    assert sum(isinstance(m, torch.nn.Dropout) for m in imgtrans.create_generator("unet_256").modules()) == 3
    assert imgtrans.create_generator("unet", num_downs=6, ngf=8).stride == 64


def test_patchgan_output_sizes() -> None:
    disc = imgtrans.create_discriminator("patchgan_70")
    assert disc(torch.zeros(1, 6, 256, 256)).shape == (1, 1, 30, 30)
    assert disc(torch.zeros(1, 6, 512, 256)).shape == (1, 1, 62, 30)
    assert imgtrans.create_discriminator("patchgan_70", n_layers=5, ndf=8)(torch.zeros(1, 6, 256, 256)).shape[1] == 1


def test_initialisation_is_normal_0_02() -> None:
    torch.manual_seed(0)
    gen = imgtrans.create_generator("unet_256")
    w = gen.model.model[1].model[1].weight  # the second down conv, 128x64x4x4
    w = w.detach()
    assert abs(float(w.mean())) < 1e-3 and abs(float(w.std()) - 0.02) < 1e-3
    bn = gen.model.model[1].model[2]
    assert abs(float(bn.weight.detach().mean()) - 1) < 0.01 and float(bn.bias.detach().abs().max()) == 0


def test_reference_skip_semantics() -> None:
    """The skip path carries LeakyReLU(x): the reference's in-place activation is kept on purpose."""
    gen = imgtrans.create_generator("unet_256", ngf=8).eval()
    block = gen.model.model[1]
    x = torch.randn(1, 8, 128, 128)
    out = block(x.clone())
    assert torch.equal(out[:, :8], torch.nn.functional.leaky_relu(x, 0.2))
