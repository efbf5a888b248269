"""The CUT plugin against the CUT reference's definitions (``models/cut_model.py``, ``patchnce.py``,
``networks.py`` of taesungp/contrastive-unpaired-translation; facts in ../shared/REFERENCE.md):
network sizes and layout, the encoder layers PatchNCE reads, one full optimisation step of CUT and
of FastCUT computed by hand from the reference's description, and the plugin end to end (kit,
bit-exact resume with the patch sampler, translate, ONNX, ``--init`` of the owned network).

Until the distribution is reinstalled, the ``cut`` entry point of pyproject.toml is not known to
an installed imgtrans: the tests then load the plugin with ``use_plugin`` (and tests/test_recipes.py
and tests/test_components.py, which go through the registry, pick it up once it is installed)."""
from __future__ import annotations

import copy
import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import imgtrans_cut
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

import imgtrans
from imgtrans.core.checkpoint import load_checkpoint, read_metadata
from imgtrans.core.config import resolve
from imgtrans.core.plugin_host import PluginHost, get_host
from imgtrans.testing import (
    check_case,
    check_recipe,
    conformance_cases,
    recipe_data,
    tiny_layers,
    use_plugin,
)
from imgtrans.training.trainer import build_recipe

HAVE_ONNX = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxscript", "onnxruntime"))
HAVE_SERVE = all(importlib.util.find_spec(m) is not None for m in ("fastapi", "uvicorn"))
TINY = {"generator": {"ngf": 4}, "discriminator": {"ndf": 4}, "recipe": {"num_patches": 32, "sampler_width": 8}}


@contextmanager
def _cut() -> Iterator[PluginHost]:
    """The process's host when the plugin is installed, else one with the plugin loaded as ``cut``."""
    if "cut" in get_host().registry.names("recipe"):
        yield get_host()
    else:
        with use_plugin("cut", imgtrans_cut) as host:
            yield host


@pytest.fixture
def cut():
    with _cut() as host:
        yield host


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_defaults_are_the_reference(cut) -> None:
    registry = cut.registry
    assert {"cut", "fastcut"} <= set(registry.names("recipe"))
    config = resolve("cut", registry, [{"data": {"source": "x"}}])
    recipe = build_recipe(config, registry)
    g, d = recipe.components["generator"], recipe.components["discriminator"]
    assert _count(g) == 11_378_179 and _count(d) == 2_764_737  # as CycleGAN's: blur layers have no weights
    assert config.recipe.args == {"lambda_gan": 1.0, "lambda_nce": 1.0, "nce_idt": True, "nce_layers": "",
                                  "num_patches": 256, "sampler_width": 256, "flip_equivariance": False}
    assert (config.components["gan_loss"].name, config.components["nce_loss"].name) == ("lsgan", "patchnce")
    assert config.components["nce_loss"].args == {} and recipe.nce_loss.temperature == 0.07
    assert (config.optim.epochs, config.optim.epochs_decay, config.optim.lr) == (200, 200, 2e-4)
    assert recipe.nce_layers == [0, 4, 8, 12, 16]
    # F is built from the encoder's widths: the padded RGB input, 128 and 256 channels, then the blocks'
    assert recipe.sampler.channels == [3, 128, 256, 256, 256]
    assert _count(recipe.sampler) == sum(c * 256 + 256 + 256 * 256 + 256 for c in (3, 128, 256, 256, 256))
    assert set(recipe.networks()) == {"generator", "discriminator", "patch_sampler"}
    fast = resolve("fastcut", registry, [{"data": {"source": "x"}}])
    assert (fast.recipe.args["lambda_nce"], fast.recipe.args["nce_idt"], fast.recipe.args["flip_equivariance"]) == \
        (10.0, False, True)
    assert (fast.optim.epochs, fast.optim.epochs_decay) == (150, 50)


def test_generator_is_the_reference_layout(cut) -> None:
    """Anti-aliased sampling where the reference has it: blur-pools after stride-1 convolutions (their
    filters saved as ``filt``), blur up-sampling before a 3x3 convolution; layer i is model[i]."""
    g = cut.registry.create("generator", "cut_resnet_9blocks", ngf=4)
    keys = g.state_dict()
    assert tuple(keys["model.7.filt"].shape) == (8, 1, 3, 3) and tuple(keys["model.11.filt"].shape) == (16, 1, 3, 3)
    assert tuple(keys["model.21.filt"].shape) == (16, 1, 4, 4) and "model.22.weight" in keys  # BlurUp, then conv
    assert torch.allclose(keys["model.7.filt"][0, 0], torch.tensor([[1., 2, 1], [2, 4, 2], [1, 2, 1]]) / 16)
    feats = g.encode(torch.rand(2, 3, 64, 64) * 2 - 1)
    assert [tuple(f.shape[1:]) for f in feats] == [(3, 70, 70), (8, 64, 64), (16, 32, 32), (16, 16, 16), (16, 16, 16)]
    x = torch.rand(1, 3, 36, 44) * 2 - 1
    manual, y = [], x
    for i, layer in enumerate(g.model[:17]):
        y = layer(y)
        if i in (0, 4, 8, 12, 16):
            manual.append(y)
    assert all(torch.equal(a, b) for a, b in zip(g.encode(x), manual))
    assert g(x).shape == x.shape
    plain = cut.registry.create("generator", "cut_resnet_9blocks", ngf=4, antialias=False, antialias_up=False)
    assert set(plain.state_dict()) == set(cut.registry.create("generator", "resnet_9blocks", ngf=4).state_dict())
    d = cut.registry.create("discriminator", "cut_patchgan_70", ndf=4)
    assert d(torch.rand(2, 3, 256, 256)).shape == (2, 1, 30, 30)  # as the reference's PatchGAN


def test_patchnce_is_the_reference_loss(cut) -> None:
    loss = cut.registry.create("loss", "patchnce")
    q = F.normalize(torch.randn(2, 5, 8), dim=-1).requires_grad_(True)
    k = F.normalize(torch.randn(2, 5, 8), dim=-1)
    want = torch.stack([_reference_patchnce(q.reshape(10, 8), k.reshape(10, 8), batch=2)]).mean()
    got = loss(q, k)
    assert torch.allclose(got, want, atol=1e-6)
    got.backward()
    assert q.grad is not None
    batch = cut.registry.create("loss", "patchnce", negatives="batch")
    assert torch.allclose(batch(q, k), _reference_patchnce(q.reshape(10, 8), k.reshape(10, 8), batch=1).mean())


def test_an_all_zero_patch_row_has_a_finite_gradient() -> None:
    from imgtrans_cut.patchnce import l2_normalise

    x = torch.zeros(2, 3, 4)
    x[0, 0] = 1.0
    x.requires_grad_(True)
    l2_normalise(x).sum().backward()
    assert torch.isfinite(x.grad).all()


# -- one reference step ------------------------------------------------------------------------------------

def _reference_features(model: torch.nn.Sequential, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
    """The reference's ``encode_only`` forward: run the layers in order, keep the chosen outputs."""
    feats = []
    for i, layer in enumerate(model):
        x = layer(x)
        if i in layers:
            feats.append(x)
        if i == layers[-1]:
            return feats
    return feats


def _reference_sample(sampler: torch.nn.Module, feats: list[torch.Tensor], patches: int, ids=None):
    """The reference's ``PatchSampleF`` with MLPs: shared positions, (B*P, C) rows, MLP, x / (|x| + 1e-7)
    (the norm's gradient at 0 aside, below)."""
    out, chosen = [], []
    for i, feat in enumerate(feats):
        rows = feat.permute(0, 2, 3, 1).flatten(1, 2)
        idx = torch.randperm(rows.shape[1])[:min(patches, rows.shape[1])] if ids is None else ids[i]
        x = getattr(sampler, f"mlp_{i}")(rows[:, idx, :].flatten(0, 1))
        # the reference writes the norm as x.pow(2).sum(1).pow(0.5), equal in value; its gradient at an
        # all-zero row is NaN (rows of a near-flat first output are exactly zero after a ReLU), the
        # plugin's is 0 (test_an_all_zero_patch_row_has_a_finite_gradient)
        out.append(x / (x.norm(dim=1, keepdim=True) + 1e-7))
        chosen.append(idx)
    return out, chosen


def _reference_patchnce(q: torch.Tensor, k: torch.Tensor, batch: int, temperature: float = 0.07) -> torch.Tensor:
    """The reference's ``PatchNCELoss`` on (B*P, C) rows: per-row cross-entropy (reduction 'none')."""
    k = k.detach()
    n, dim = q.shape
    positive = torch.bmm(q.view(n, 1, -1), k.view(n, -1, 1)).view(n, 1)
    qb, kb = q.view(batch, -1, dim), k.view(batch, -1, dim)
    negative = torch.bmm(qb, kb.transpose(2, 1))
    negative.masked_fill_(torch.eye(qb.shape[1], dtype=torch.bool)[None], -10.0)
    logits = torch.cat([positive, negative.view(-1, qb.shape[1])], 1) / temperature
    return F.cross_entropy(logits, torch.zeros(n, dtype=torch.long), reduction="none")


def _reference_step(g, d, f, real_a, real_b, *, nce_idt: bool, lambda_nce: float, flip: bool, patches: int,
                    layers=(0, 4, 8, 12, 16), lr=2e-4) -> dict[str, float]:
    """``CUTModel.optimize_parameters``, written out: forward, D step, then G and F together."""
    layers = list(layers)
    opt_g, opt_d, opt_f = (torch.optim.Adam(n.parameters(), lr=lr, betas=(0.5, 0.999)) for n in (g, d, f))
    mse = lambda x, real: F.mse_loss(x, torch.full_like(x, 1.0 if real else 0.0))
    n = real_a.shape[0]
    real = torch.cat([real_a, real_b]) if nce_idt else real_a
    flipped = flip and np.random.random() < 0.5
    if flipped:
        real = torch.flip(real, [3])
    fake = g(real)
    fake_b, idt_b = fake[:n], fake[n:]

    for p in d.parameters():
        p.requires_grad_(True)
    opt_d.zero_grad()
    d_fake, d_real = mse(d(fake_b.detach()), False), mse(d(real_b), True)
    ((d_fake + d_real) * 0.5).backward()
    opt_d.step()

    def nce(src, tgt):
        feat_q = _reference_features(g.model, tgt, layers)
        if flipped:
            feat_q = [torch.flip(fq, [3]) for fq in feat_q]
        feat_k = _reference_features(g.model, src, layers)
        k_pool, ids = _reference_sample(f, feat_k, patches)
        q_pool, _ = _reference_sample(f, feat_q, patches, ids)
        return sum(_reference_patchnce(q, k, n).mean() * lambda_nce for q, k in zip(q_pool, k_pool)) / len(layers)

    for p in d.parameters():
        p.requires_grad_(False)
    opt_g.zero_grad()
    opt_f.zero_grad()
    g_gan = mse(d(fake_b), True) * 1.0
    losses = {"G_GAN": g_gan, "NCE": nce(real_a, fake_b), "D_real": d_real, "D_fake": d_fake}
    both = losses["NCE"]
    if nce_idt:
        losses["NCE_Y"] = nce(real_b, idt_b)
        both = (losses["NCE"] + losses["NCE_Y"]) * 0.5
    losses["G"] = g_gan + both
    losses["G"].backward()
    opt_g.step()
    opt_f.step()
    return {k: float(v.detach()) for k, v in losses.items()}


@pytest.mark.parametrize("recipe,seed", [("cut", 0), ("fastcut", 1)])  # numpy seed 1: FastCUT flips this step
def test_one_step_equals_the_reference_step(cut, recipe: str, seed: int) -> None:
    registry = cut.registry
    torch.manual_seed(0)
    config = resolve(recipe, registry, [TINY, {"data": {"source": "x"}}])
    r = build_recipe(config, registry)
    nets = {k: copy.deepcopy(v) for k, v in r.networks().items()}
    real_a, real_b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    optimizers = r.configure_optimizers(2e-4, (0.5, 0.999))
    torch.manual_seed(5)
    np.random.seed(seed)
    got = r.train_step({"A": real_a, "B": real_b}, optimizers)
    torch.manual_seed(5)
    np.random.seed(seed)
    want = _reference_step(nets["generator"], nets["discriminator"], nets["patch_sampler"], real_a, real_b,
                           nce_idt=r.nce_idt, lambda_nce=r.lambda_nce, flip=r.flip_equivariance, patches=32)
    assert set(got) == set(want) == ({"G_GAN", "D_real", "D_fake", "G", "NCE"} | ({"NCE_Y"} if r.nce_idt else set()))
    for name, value in want.items():
        assert float(got[name]) == pytest.approx(value, rel=1e-5), name
    for name, net in r.networks().items():
        noise = _cancelled_biases(net)
        for (key, value), ref in zip(net.state_dict().items(), nets[name].state_dict().values()):
            if key not in noise:
                assert torch.allclose(value, ref, atol=1e-6), f"{name}.{key} differs from the reference step"
        assert len(noise) < len(net.state_dict()) // 2


def _cancelled_biases(net: torch.nn.Module) -> set[str]:
    """Biases of convolutions followed by an instance norm without affine parameters: the norm subtracts
    them again, so their gradient is zero in exact arithmetic and rounding noise in practice, which
    Adam's first step turns into +-lr whatever its size; such a bias matches no reference bit for bit."""
    keys = set()
    for prefix, module in net.named_modules():
        if isinstance(module, torch.nn.Sequential):
            for i in range(len(module) - 1):
                conv, norm = module[i], module[i + 1]
                if isinstance(conv, torch.nn.Conv2d) and conv.bias is not None and \
                        isinstance(norm, torch.nn.InstanceNorm2d) and not norm.affine:
                    keys.add(f"{prefix}.{i}.bias".lstrip("."))
    return keys


# -- the plugin end to end -----------------------------------------------------------------------------------

def test_the_plugin_passes_the_conformance_kit(cut, tmp_path: Path) -> None:
    """Every component, and both recipes: trains, and a stopped run resumes bit-exactly, F included."""
    cases = conformance_cases("cut") if "cut" in cut.plugins else []
    assert {("generator", "cut_resnet_9blocks"), ("discriminator", "cut_patchgan_70"), ("loss", "patchnce"),
            ("recipe", "cut"), ("recipe", "fastcut")} <= set(cases)
    for kind, name in cases:
        if kind == "recipe":
            run = check_recipe(cut.registry, name, tmp_path / name)["run_dir"]
            ckpt = load_checkpoint(run / "checkpoints" / "last.safetensors")
            assert "patch_sampler" in ckpt.tensors and "optim/patch_sampler" in ckpt.state
        else:
            check_case(kind, name, tmp_path / name)


def test_trains_translates_exports_serves_and_inits_the_sampler(cut, tmp_path: Path) -> None:
    registry = cut.registry
    data = recipe_data(registry, "cut", tmp_path / "data")
    config = resolve("cut", registry, tiny_layers(registry, "cut", data, tmp_path / "run"))
    config.optim.max_steps = 3
    result = imgtrans.train(config)
    meta = read_metadata(result.model_path)
    assert meta["networks"] == ["generator"] and meta["directions"]["AtoB"]["generator"]["name"] == "cut_resnet_9blocks"
    x = torch.rand(1, 3, 37, 29) * 2 - 1
    assert imgtrans.translate(imgtrans.load_model(str(result.model_path)), x).shape == x.shape
    if HAVE_ONNX:
        report = imgtrans.export(str(result.model_path), tmp_path / "cut.onnx")
        assert report.max_grey_levels <= 1
    if HAVE_SERVE:  # the HTTP API serves it like any model file
        from serving import image_bytes, pixels_of, post_image

        from imgtrans.serve.app import create_app
        from imgtrans.serve.models import load_served
        from imgtrans.serve.server import running

        with running(create_app(load_served([str(result.model_path)]))) as base:
            reply = post_image(base, image_bytes(37, 29))
        assert reply.status == 200 and pixels_of(reply.body).shape == (29, 37, 3)
    # the owned network is a network like the slots': --init can start it from a checkpoint
    last = result.run_dir / "checkpoints" / "last.safetensors"
    init = resolve("cut", registry, tiny_layers(registry, "cut", data, tmp_path / "init",
                                                init={"patch_sampler": str(last)}))
    init.optim.max_steps = 1
    from imgtrans.training.building import apply_init

    recipe = build_recipe(init, registry)
    apply_init(recipe, init.run.init)
    saved = load_checkpoint(last).state_dict("patch_sampler")
    assert all(torch.equal(v, saved[k]) for k, v in recipe.sampler.state_dict().items())
    info = imgtrans.describe("recipe", "cut")
    assert [n["name"] for n in info["owned_networks"]] == ["patch_sampler"]
    from imgtrans.cli import cli

    out = CliRunner().invoke(cli, ["info", "recipe", "cut"])
    assert out.exit_code == 0 and "patch_sampler" in out.output, out.output


def test_a_generator_without_encoder_features_is_refused_in_one_line(tmp_path: Path) -> None:
    from imgtrans import hookimpl
    from imgtrans.api import ConfigError, Generator

    class Plain(Generator):
        """No encoder features."""

        def __init__(self, in_channels: int = 3, out_channels: int = 3):
            super().__init__()
            self.in_channels, self.out_channels, self.stride = in_channels, out_channels, 1
            self.conv = torch.nn.Conv2d(in_channels, out_channels, 1)

        def forward(self, x):
            return torch.tanh(self.conv(x))

    installed = "cut" in get_host().registry.names("recipe")

    @hookimpl
    def register_components(registry):
        registry.generator("plain", Plain)
        if not installed:
            imgtrans_cut.register_components(registry)

    with use_plugin("cutcheck", register_components) as host:
        config = resolve("cut", host.registry, [TINY, {"generator": {"name": "plain"}, "data": {"source": "x"}}])
        with pytest.raises(ConfigError, match=r"^cut needs a generator with encoder features .*declares no encoder_"):
            build_recipe(config, host.registry)
        config = resolve("cut", host.registry, [TINY, {"recipe": {"nce_layers": "0,4,99"}, "data": {"source": "x"}}])
        with pytest.raises(ConfigError, match=r"has encoder layers 0\.\.31, not 99"):
            build_recipe(config, host.registry)


def test_zoo_import_recognises_a_reference_cut_generator(cut, tmp_path: Path) -> None:
    """A ``latest_net_G.pth`` of the CUT reference (its anti-aliased layout: ``model.7.filt`` ...) is
    recognised from its keys alone as ``cut_resnet_9blocks`` and labelled as a CUT model."""
    from imgtrans.zoo.importer import import_reference

    torch.manual_seed(0)
    reference = cut.registry.create("generator", "cut_resnet_9blocks", ngf=8)
    pth = tmp_path / "latest_net_G.pth"
    torch.save(reference.state_dict(), pth)
    out = import_reference(pth, tmp_path / "cut.safetensors", generator_args={"ngf": 8})
    meta = read_metadata(out)
    assert meta["generator"]["name"] == "cut_resnet_9blocks" and meta["recipe"] in ("cut", "fastcut")
    model = imgtrans.load_model(str(out))
    x = torch.rand(1, 3, 36, 28) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(imgtrans.translate(model, x), reference.eval()(x), atol=1e-5)
    plain = cut.registry.create("generator", "resnet_9blocks", ngf=8)  # CycleGAN's layout stays CycleGAN's
    torch.save(plain.state_dict(), tmp_path / "cyclegan_G.pth")
    assert read_metadata(import_reference(tmp_path / "cyclegan_G.pth", tmp_path / "cg.safetensors",
                                          generator_args={"ngf": 8}))["generator"]["name"] == "resnet_9blocks"
