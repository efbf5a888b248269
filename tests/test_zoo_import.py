"""Importing the reference implementation's .pth generator weights (imgtrans.zoo.importer)."""
from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import imgtrans
from imgtrans.cli import cli
from imgtrans.core.checkpoint import read_metadata
from imgtrans.util.errors import CheckpointError
from imgtrans.zoo.importer import adapt_state_dict, import_reference, load_reference_state_dict


class Payload:
    """An object whose unpickling has a visible side effect: ``__setstate__`` writes a marker file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __setstate__(self, state: dict) -> None:
        Path(state["marker"]).write_text("unpickled")
        self.__dict__.update(state)


def _perturb_batch_norm(net: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial running statistics, so that eval-mode outputs depend on them being imported."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.num_batches_tracked.fill_(1234)


def _source(name: str, seed: int = 0, **args) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = imgtrans.create_generator(name, **args)
    _perturb_batch_norm(net, seed)
    return net


def _save(state: dict, path: Path) -> Path:
    torch.save(state, path)
    return path


def _input(size: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_unet256_at_reference_defaults_imports_exactly(tmp_path: Path) -> None:
    src = _source("unet_256")  # true defaults: ngf 64, batch norm, dropout
    pth = _save(src.state_dict(), tmp_path / "facades_label2photo.pth")
    out = import_reference(pth, tmp_path / "facades.safetensors")

    meta = read_metadata(out)
    assert meta["recipe"] == "pix2pix" and meta["direction"] == "AtoB" and meta["value_range"] == "[-1, 1]"
    assert meta["generator"] == {"name": "unet_256", "norm": "batch", "dropout": True}
    assert (meta["in_channels"], meta["out_channels"], meta["stride"]) == (3, 3, 256)
    assert meta["norm_stats"] == "instance" and meta["source"] == "facades_label2photo.pth"

    model = imgtrans.load_model(out)
    x = _input(256)
    with torch.no_grad():
        assert torch.equal(model.generator(x), src.eval()(x))
        # The reference's test mode: train-mode batch norm (per-image statistics); dropout held off.
        src.train()
        for m in src.modules():
            if isinstance(m, torch.nn.Dropout):
                m.eval()
        expected = src(x)
    assert not torch.allclose(expected, model.generator(x), atol=1e-3)  # the two modes really differ
    got = imgtrans.translate(model, x, norm_stats="instance")
    assert torch.allclose(got, expected, atol=1e-6, rtol=0)
    assert model.recommended_norm_stats == "instance"


def _roundtrip(tmp_path: Path, state: dict, src: torch.nn.Module, size: int, **kwargs) -> imgtrans.inference.model.TranslationModel:
    out = import_reference(_save(state, tmp_path / "w.pth"), tmp_path / "w.safetensors", **kwargs)
    model = imgtrans.load_model(out)
    x = _input(size)
    with torch.no_grad():
        assert torch.equal(model.generator(x), src.eval()(x))
    return model


def test_dataparallel_prefix_is_removed(tmp_path: Path) -> None:
    src = _source("unet_256", ngf=8)
    state = {f"module.{k}": v for k, v in src.state_dict().items()}
    _roundtrip(tmp_path, state, src, 256, generator_args={"ngf": 8})


def test_missing_num_batches_tracked_is_filled(tmp_path: Path) -> None:
    src = _source("unet_256", ngf=8)
    state = {k: v for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")}
    model = _roundtrip(tmp_path, state, src, 256, generator_args={"ngf": 8})
    counts = [v for k, v in model.generator.state_dict().items() if k.endswith("num_batches_tracked")]
    assert counts and all(v.dtype == torch.int64 and int(v) == 0 for v in counts)


def test_wrapped_state_dict_is_unwrapped(tmp_path: Path) -> None:
    src = _source("unet_256", ngf=8)
    _roundtrip(tmp_path, {"netG": src.state_dict(), "epoch": 200}, src, 256, generator_args={"ngf": 8})


def test_resnet_with_stale_instance_norm_statistics(tmp_path: Path) -> None:
    src = _source("resnet_9blocks", ngf=8)
    state = dict(src.state_dict())
    stale = 0
    for name, m in src.named_modules():
        if isinstance(m, torch.nn.InstanceNorm2d):
            state[f"{name}.running_mean"] = torch.randn(m.num_features)
            state[f"{name}.running_var"] = torch.rand(m.num_features) + 0.5
            state[f"{name}.num_batches_tracked"] = torch.tensor(7)
            stale += 1
    assert stale == 2 * 9 + 5  # two per residual block, plus the stem, the downsamplings and the upsamplings
    model = _roundtrip(tmp_path, state, src, 36, generator="resnet_9blocks", generator_args={"ngf": 8},
                       metadata={"recipe": "cyclegan", "direction": "BtoA"})
    meta = model.metadata
    assert meta["generator"] == {"name": "resnet_9blocks", "norm": "instance", "dropout": False, "ngf": 8}
    assert (meta["recipe"], meta["direction"], meta["norm_stats"], meta["stride"]) == ("cyclegan", "BtoA", "running", 4)


def test_wrong_architecture_lists_missing_and_unexpected_keys(tmp_path: Path) -> None:
    pth = _save(_source("unet_128", ngf=8).state_dict(), tmp_path / "u128.pth")
    with pytest.raises(CheckpointError) as info:
        import_reference(pth, tmp_path / "out.safetensors", generator="unet_256", generator_args={"ngf": 8})
    msg = str(info.value)
    assert "missing key" in msg and "unexpected key" in msg and "u128.pth" in msg
    assert "model.model.1.model.3.model.3.model.3.model.3.model.3.model.3.model.1.weight" in msg  # the 8th level
    assert "\n" not in msg and not (tmp_path / "out.safetensors").exists()


def test_shape_mismatch_is_reported(tmp_path: Path) -> None:
    pth = _save(_source("unet_256", ngf=8).state_dict(), tmp_path / "narrow.pth")
    with pytest.raises(CheckpointError, match="shape") as info:
        import_reference(pth, tmp_path / "out.safetensors", generator_args={"ngf": 16})
    assert "(8, 3, 4, 4) vs (16, 3, 4, 4)" in str(info.value)


def test_a_huge_declared_architecture_is_refused_before_it_allocates(tmp_path: Path, monkeypatch) -> None:
    """`zoo import --set ngf=100000` built the real network (tens of GB) before failing: now the
    declared architecture is compared with the weights on the meta device first."""
    pth = _save(_source("unet_256", ngf=8).state_dict(), tmp_path / "narrow.pth")
    built = []
    real_create = imgtrans.get_registry().create

    def create(kind, name, **args):  # count real (not meta-device) builds
        net = real_create(kind, name, **args)
        if kind == "generator" and any(not p.is_meta for p in net.parameters()):
            built.append(args)
        return net

    monkeypatch.setattr(imgtrans.get_registry(), "create", create)
    with pytest.raises(CheckpointError, match=r"\(8, 3, 4, 4\) vs \(100000, 3, 4, 4\)"):
        import_reference(pth, tmp_path / "out.safetensors", generator_args={"ngf": 100000})
    assert built == [] and not (tmp_path / "out.safetensors").exists()


def test_long_mismatch_lists_are_truncated_with_counts() -> None:
    gen = imgtrans.create_generator("unet_256", ngf=8)
    state = {f"other.{i}": torch.zeros(1) for i in range(50)}
    with pytest.raises(CheckpointError) as info:
        adapt_state_dict(state, gen)
    msg = str(info.value)
    counted = [k for k in gen.state_dict() if not k.endswith("num_batches_tracked")]  # those are filled in
    assert f"{len(counted)} missing keys" in msg and "50 unexpected keys" in msg and "more)" in msg
    assert len(msg) < 3000


def test_pickled_objects_are_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    pth = tmp_path / "evil.pth"
    torch.save({"model.model.0.weight": torch.zeros(1), "x": Payload(str(marker))}, pth)
    # The payload is live: an unrestricted load would run it.
    torch.load(pth, weights_only=False)
    assert marker.exists()
    marker.unlink()

    with pytest.raises(CheckpointError, match="only tensors are loaded") as info:
        load_reference_state_dict(pth)
    assert "\n" not in str(info.value)
    with pytest.raises(CheckpointError):
        import_reference(pth, tmp_path / "out.safetensors")
    assert not marker.exists()

    plain = tmp_path / "plain.pkl"  # a raw pickle (not a torch zip file) is refused the same way
    plain.write_bytes(pickle.dumps(Payload(str(marker)), protocol=2))
    with pytest.raises(CheckpointError):
        load_reference_state_dict(plain)
    assert not marker.exists()


def test_files_that_hold_no_state_dict(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_reference_state_dict(tmp_path / "absent.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="does not hold a state dict"):
        load_reference_state_dict(tmp_path / "list.pth")
    torch.save({"optimizer": {"lr": 0.1}}, tmp_path / "opt.pth")
    with pytest.raises(CheckpointError, match="does not hold a state dict"):
        load_reference_state_dict(tmp_path / "opt.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_reference_state_dict(tmp_path / "junk.pth")


def test_keys_are_matched_by_name_not_by_shape(tmp_path: Path) -> None:
    src = _source("unet_256", ngf=8)
    state = copy.copy(src.state_dict())
    conv_keys = [k for k, v in state.items() if k.endswith(".weight") and tuple(v.shape) == (64, 64, 4, 4)]
    a, b = conv_keys[0], conv_keys[1]  # two down convs of the same shape, at different levels
    assert not torch.equal(state[a], state[b])
    state[a], state[b] = state[b], state[a]
    out = import_reference(_save(state, tmp_path / "swapped.pth"), tmp_path / "swapped.safetensors",
                           generator_args={"ngf": 8})
    imported = imgtrans.load_model(out).generator.state_dict()
    assert torch.equal(imported[a], src.state_dict()[b]) and torch.equal(imported[b], src.state_dict()[a])
    assert not torch.equal(imported[a], src.state_dict()[a])


@pytest.mark.parametrize("name,args", [("unet_256", {"ngf": 8}), ("unet_128", {"ngf": 8}),
                                       ("resnet_6blocks", {"ngf": 8}), ("resnet_9blocks", {"ngf": 8})])
def test_the_architecture_is_recognised_from_the_weights(tmp_path: Path, name: str, args: dict) -> None:
    """No --generator: the registered generator whose reference layout the keys and shapes fit, and
    the recipe label from the plugin that trains it (the core names neither)."""
    src = _source(name, **args)
    out = import_reference(_save(src.state_dict(), tmp_path / "w.pth"), tmp_path / "w.safetensors",
                           generator_args=args)
    meta = read_metadata(out)
    assert meta["generator"]["name"] == name
    # the recipe whose generator defaults to this architecture, if any
    assert meta["recipe"] == {"unet_256": "pix2pix", "resnet_9blocks": "cyclegan"}.get(name, "")


def test_a_reference_cyclegan_run_becomes_one_two_way_model(tmp_path: Path) -> None:
    run = tmp_path / "horse2zebra"
    run.mkdir()
    g_a, g_b = _source("resnet_6blocks", seed=1, ngf=8), _source("resnet_6blocks", seed=2, ngf=8)
    _save(g_a.state_dict(), run / "latest_net_G_A.pth")
    _save(g_b.state_dict(), run / "latest_net_G_B.pth")
    _save(g_a.state_dict(), run / "latest_net_D_A.pth")  # discriminators are left alone
    result = CliRunner().invoke(cli, ["zoo", "import", str(run), "--set", "ngf=8", "-o", str(tmp_path / "h2z.safetensors")])
    assert result.exit_code == 0, result.output
    meta = read_metadata(tmp_path / "h2z.safetensors")
    assert meta["recipe"] == "cyclegan" and set(meta["directions"]) == {"AtoB", "BtoA"}
    assert meta["networks"] == ["generator_a", "generator_b"]
    x = _input(32)
    for direction, src in (("AtoB", g_a), ("BtoA", g_b)):
        model = imgtrans.load_model(str(tmp_path / "h2z.safetensors"), direction=direction)
        with torch.no_grad():
            assert torch.equal(model.generator(x), src.eval()(x))
    missing = CliRunner().invoke(cli, ["zoo", "import", str(run), "--epoch", "200", "-o", str(tmp_path / "x.safetensors")])
    assert missing.exit_code != 0 and "200_net_G_A.pth" in missing.output
