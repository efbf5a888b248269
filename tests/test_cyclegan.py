"""The CycleGAN recipe against the reference's definition: network sizes, the image pool, and one
full optimisation step computed by hand from the reference's description (fp32, pool filling)."""
from __future__ import annotations

import copy
import json
import random

import pytest
import torch
import torch.nn.functional as F

from imgtrans.core.config import resolve
from imgtrans.training.trainer import build_recipe

TINY = {"generator_a": {"ngf": 4}, "generator_b": {"ngf": 4},
        "discriminator_a": {"ndf": 4}, "discriminator_b": {"ndf": 4}}


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_defaults_are_the_reference_networks(registry):
    config = resolve("cyclegan", registry, [{"data": {"source": "x"}}])
    recipe = build_recipe(config, registry)
    assert _count(recipe.components["generator_a"]) == 11_378_179
    assert _count(recipe.components["generator_b"]) == 11_378_179
    assert _count(recipe.components["discriminator_a"]) == 2_764_737
    assert _count(recipe.components["discriminator_b"]) == 2_764_737
    assert config.recipe.args == {"lambda_a": 10.0, "lambda_b": 10.0, "lambda_identity": 0.5, "pool_size": 50}
    assert config.components["gan_loss"].name == "lsgan"
    assert set(recipe.networks()) == {"generator_a", "generator_b", "discriminator_a", "discriminator_b"}
    assert recipe.directions == {"AtoB": "generator_a", "BtoA": "generator_b"}


def test_image_pool_follows_the_reference():
    from imgtrans_cyclegan.pool import ImagePool

    pool = ImagePool(2)
    x = [torch.full((1, 1, 2, 2), float(i)) for i in range(6)]
    assert torch.equal(pool.query(x[0]), x[0]) and torch.equal(pool.query(x[1]), x[1])  # filling
    random.seed(3)
    expected_rng = random.Random(3)
    stored = [x[0], x[1]]
    for i in range(2, 6):
        out = pool.query(x[i])
        if expected_rng.uniform(0, 1) > 0.5:
            j = expected_rng.randint(0, 1)
            assert torch.equal(out, stored[j])
            stored[j] = x[i]
        else:
            assert torch.equal(out, x[i])
    restored = ImagePool(2)
    restored.restore(pool.state())
    assert all(torch.equal(a, b) for a, b in zip(restored.images, pool.images))
    assert ImagePool(0).query(x[3]) is x[3]


def _reference_step(g_a, g_b, d_a, d_b, real_a, real_b, lam_a=10.0, lam_b=10.0, lam_idt=0.5, lr=2e-4):
    """The reference's optimize_parameters, written out (plain Adam, MSE GAN loss, L1)."""
    opt_g = torch.optim.Adam([*g_a.parameters(), *g_b.parameters()], lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam([*d_a.parameters(), *d_b.parameters()], lr=lr, betas=(0.5, 0.999))
    mse = lambda x, real: F.mse_loss(x, torch.full_like(x, 1.0 if real else 0.0))  # noqa: E731
    fake_b = g_a(real_a)
    rec_a = g_b(fake_b)
    fake_a = g_b(real_b)
    rec_b = g_a(fake_a)
    for p in [*d_a.parameters(), *d_b.parameters()]:
        p.requires_grad_(False)
    opt_g.zero_grad()
    loss_g = (F.l1_loss(g_a(real_b), real_b) * lam_b * lam_idt + F.l1_loss(g_b(real_a), real_a) * lam_a * lam_idt
              + mse(d_a(fake_b), True) + mse(d_b(fake_a), True)
              + F.l1_loss(rec_a, real_a) * lam_a + F.l1_loss(rec_b, real_b) * lam_b)
    loss_g.backward()
    opt_g.step()
    for p in [*d_a.parameters(), *d_b.parameters()]:
        p.requires_grad_(True)
    opt_d.zero_grad()
    # pool still filling: the query returns the newest fakes themselves
    (0.5 * (mse(d_a(real_b), True) + mse(d_a(fake_b.detach()), False))).backward()
    (0.5 * (mse(d_b(real_a), True) + mse(d_b(fake_a.detach()), False))).backward()
    opt_d.step()
    return float(loss_g.detach())


def test_one_step_equals_the_reference_step(registry):
    torch.manual_seed(0)
    config = resolve("cyclegan", registry, [TINY, {"data": {"source": "x"}}])
    recipe = build_recipe(config, registry)
    nets = {k: copy.deepcopy(v) for k, v in recipe.networks().items()}
    real_a, real_b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    optimizers = recipe.configure_optimizers(2e-4, (0.5, 0.999))
    losses = recipe.train_step({"A": real_a, "B": real_b}, optimizers)
    expected_g = _reference_step(nets["generator_a"], nets["generator_b"], nets["discriminator_a"],
                                 nets["discriminator_b"], real_a, real_b)
    got_g = sum(float(losses[k]) for k in ("idt_A", "idt_B", "G_A", "G_B", "cycle_A", "cycle_B"))
    assert got_g == pytest.approx(expected_g, rel=1e-5)
    for name, net in recipe.networks().items():
        for (key, got), want in zip(net.state_dict().items(), nets[name].state_dict().values()):
            assert torch.allclose(got, want, atol=1e-6), f"{name}.{key} differs from the reference step"
    assert len(recipe.pool_a.images) == 2 and len(recipe.pool_b.images) == 2  # batch of 2 stored


def test_identity_needs_matching_channels(registry):
    from imgtrans.util.errors import ConfigError

    config = resolve("cyclegan", registry, [TINY, {"generator_a": {"out_channels": 1}, "data": {"source": "x"}}])
    assert config.components["generator_b"].args["in_channels"] == 1
    assert config.components["discriminator_a"].args["in_channels"] == 1
    with pytest.raises(ConfigError, match="identity"):
        build_recipe(config, registry)
    config = resolve("cyclegan", registry, [TINY, {"generator_a": {"out_channels": 1}, "data": {"source": "x"},
                                                   "recipe": {"lambda_identity": 0.0}}])
    build_recipe(config, registry)


def test_an_aligned_dataset_serves_as_two_unpaired_sets(registry, tmp_path) -> None:
    """CycleGAN on a paired dataset: each item's B comes from another pair, drawn per (seed, epoch, i),
    so both recipes can be compared on the same images; validation still has ground truth."""
    from helpers import write_aligned

    import imgtrans
    from imgtrans.data.views import UnpairedView
    from imgtrans.training.trainer import build_dataset

    data = write_aligned(tmp_path / "data", "train", count=6, size=32)
    write_aligned(data, "val", count=2, size=32, seed=1)
    config = resolve("cyclegan", registry, [TINY, {"data": {"source": str(data), "load_size": 32, "crop_size": 32},
                                                   "optim": {"max_steps": 2},
                                                   "run": {"out": str(tmp_path / "run"), "progress": False,
                                                           "validate_every": 1}}])
    from imgtrans.core.plugin_host import get_host

    view = build_dataset(config, registry, get_host().catalog, split="train", train=True)
    assert isinstance(view, UnpairedView)
    view.set_epoch(1)
    partners = [view.partner(i) for i in range(len(view))]
    assert partners != list(range(len(view)))  # B is not A's own partner
    view.set_epoch(2)
    assert [view.partner(i) for i in range(len(view))] != partners  # new draws each epoch
    result = imgtrans.train(config)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert result.steps == 2 and any("val_BtoA_l1" in r for r in records)
