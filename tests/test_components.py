"""Every registered component builds and runs; the pix2pix networks match the reference exactly."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import imgtrans
from imgtrans.registry import KINDS

DATA = Path(__file__).parent / "data"

# Parameter counts of the reference implementation at its defaults (../shared/REFERENCE.md).
KNOWN_PARAMS = {("generator", "unet_256"): 54_413_955, ("generator", "unet_128"): 41_828_995,
                ("generator", "resnet_9blocks"): 11_378_179, ("generator", "resnet_6blocks"): 7_837_699,
                ("discriminator", "patchgan_70"): 2_768_705}


def _all_components():
    reg = imgtrans.get_registry()
    return [pytest.param(kind, name, id=f"{kind}:{name}") for kind in KINDS for name in reg.names(kind)]


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _size_for(stride: int) -> int:
    return max(stride, 32)


def _format_roots(aligned_dir: Path):
    """The aligned fixture, then the same 64x64 images as an unpaired layout and as a plain folder."""
    yield aligned_dir
    from PIL import Image

    pairs = sorted((aligned_dir / "train").glob("*.png"))
    unpaired, single = aligned_dir.parent / "unpaired", aligned_dir.parent / "single"
    for i, path in enumerate(pairs):
        with Image.open(path) as img:
            a, b = img.crop((0, 0, 64, 64)), img.crop((64, 0, 128, 64))
        for folder, tile in ((unpaired / "trainA", a), (unpaired / "trainB", b), (single, a)):
            if folder.name != "trainB" or i < 3:  # 4 A, 3 B: the length is the larger set
                folder.mkdir(parents=True, exist_ok=True)
                tile.save(folder / path.name)
    yield unpaired
    yield single


@pytest.mark.parametrize("kind,name", _all_components())
def test_registered_component_builds_and_runs(kind: str, name: str, registry, aligned_dir: Path) -> None:
    component = registry.get(kind, name)
    assert component.plugin and component.description, "every component says where it is from and what it is"
    if kind == "generator":
        gen = registry.create(kind, name)
        size = _size_for(gen.stride)
        x = torch.rand(1, gen.in_channels, size, size) * 2 - 1
        gen.eval()
        with torch.no_grad():
            y = gen(x)
        assert y.shape == (1, gen.out_channels, size, size)
        assert y.min() >= -1 and y.max() <= 1, "outputs are in the value range of the data"
    elif kind == "discriminator":
        disc = registry.create(kind, name)
        out = disc(torch.randn(2, disc.in_channels, 64, 64))
        assert out.shape[:2] == (2, 1) and out.ndim == 4
    elif kind == "loss":
        loss = registry.create(kind, name)
        a, b = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8)
        value = loss(a, True) if loss.role == "adversarial" else loss(a, b)
        assert value.ndim == 0 and torch.isfinite(value)
        if loss.role == "adversarial":  # scoring real as real is cheaper than as fake, for confident logits
            assert loss(torch.full((1, 1, 4, 4), 5.0), True) < loss(torch.full((1, 1, 4, 4), 5.0), False)
        else:
            assert loss(a, a) == 0
    elif kind == "dataset_format":
        root = next((r for r in _format_roots(aligned_dir) if component.factory.detect(r)), None)
        if root is not None:
            ds = registry.create(kind, name, root=root, split="train")
            assert len(ds) == 4 and ds[0]["A"].shape == (3, 64, 64)
    elif kind == "recipe":
        assert component.factory.slots, "a recipe declares its components"
    if (kind, name) in KNOWN_PARAMS:
        assert _count(registry.create(kind, name)) == KNOWN_PARAMS[(kind, name)]


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
