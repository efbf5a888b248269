"""The timm plugin: unet_timm (any timm backbone as U-Net encoder) and the perceptual loss, their
pretrained weights through imgtrans's downloader (cache, hand-placed file, offline, loopback
server), --init and translation at any size.  The registry-wide conformance tests check both too
(tests/test_components.py).  Tiny timm test models with random weights keep every test offline."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

timm = pytest.importorskip("timm", reason="the timm plugin needs timm: pip install 'imgtrans[backbones]'")

from click.testing import CliRunner  # noqa: E402
from helpers import write_aligned  # noqa: E402
from imgtrans_timm.backbones import ENDPOINT_ENV, weights_source  # noqa: E402

import imgtrans  # noqa: E402
from imgtrans.cli import cli  # noqa: E402
from imgtrans.core.checkpoint import load_checkpoint  # noqa: E402
from imgtrans.core.config import resolve  # noqa: E402
from imgtrans.training.building import apply_init  # noqa: E402
from imgtrans.training.trainer import build_recipe  # noqa: E402
from imgtrans.util.download import OFFLINE_ENV, DownloadError, OfflineError  # noqa: E402
from imgtrans.util.errors import ConfigError  # noqa: E402

BACKBONE = "test_resnet"  # timm's own tiny test model: 0.4 M parameters, 5 feature levels
TINY_GEN = {"name": "unet_timm", "encoder": BACKBONE, "decoder_channels": 8}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache of our own, and no mirror from the environment."""
    monkeypatch.setenv("IMGTRANS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(ENDPOINT_ENV, raising=False)
    return tmp_path / "home"


def _published(path: Path) -> dict[str, torch.Tensor]:
    """What timm publishes for the test backbone (a whole classifier's state dict), with random weights."""
    from safetensors.torch import save_file

    torch.manual_seed(7)
    state = {k: v.contiguous() for k, v in timm.create_model(BACKBONE).state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return state


def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the network was used")
    monkeypatch.setattr("urllib.request.urlopen", refuse)


def _assert_encoder_holds(gen: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    encoder = gen.encoder.state_dict()
    assert encoder and all(torch.equal(v, state[k]) for k, v in encoder.items())


def test_registered_when_timm_is_installed(registry) -> None:
    """The plugin's entry point is installed (after `pip install -e .`) and registers both components."""
    assert registry.get("generator", "unet_timm").plugin == "timm"
    assert registry.get("loss", "perceptual").plugin == "timm"


@pytest.mark.parametrize("size", [(32, 32), (37, 53), (1, 3)])
def test_translates_any_size(size: tuple[int, int]) -> None:
    gen = imgtrans.create_generator("unet_timm", **{k: v for k, v in TINY_GEN.items() if k != "name"}).eval()
    assert gen.stride == 64  # twice the encoder's reduction (32)
    x = torch.rand(1, 3, *size) * 2 - 1
    # the engine pads to the declared stride and crops back, as translate does
    from imgtrans.inference.engine import run_generator

    y = run_generator(gen, x, stride=gen.stride, norm_stats="running", precision="fp32", channels_last=False)
    assert y.shape == (1, 3, *size) and float(y.abs().max()) <= 1


def test_other_channel_counts_and_backbones() -> None:
    gen = imgtrans.create_generator("unet_timm", encoder="test_efficientnet", in_channels=1, out_channels=2,
                                    decoder_channels=4, norm="instance").eval()
    assert gen(torch.zeros(1, 1, 64, 32)).shape == (1, 2, 64, 32)


def test_unknown_encoder_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"timm has no model 'resnet1800'.*did you mean.*resnet18") as info:
        imgtrans.create_generator("unet_timm", encoder="resnet1800")
    assert "\n" not in str(info.value)


def test_hand_placed_weights_are_used_offline(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, dest = weights_source(BACKBONE)
    assert dest == home / "backbones" / "timm" / "test_resnet.r160_in1k" / "model.safetensors"
    assert url == "https://huggingface.co/timm/test_resnet.r160_in1k/resolve/main/model.safetensors"
    state = _published(dest)
    monkeypatch.setenv(OFFLINE_ENV, "1")
    _no_network(monkeypatch)
    gen = imgtrans.create_generator("unet_timm", encoder=BACKBONE, pretrained=True, decoder_channels=4)
    _assert_encoder_holds(gen, state)
    # one input channel: timm adapts the first convolution of the same file
    gray = imgtrans.create_generator("unet_timm", encoder=BACKBONE, pretrained=True, in_channels=1, decoder_channels=4)
    assert gray.encoder.conv1[0].weight.shape[1] == 1


def test_offline_without_weights_is_one_line(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OFFLINE_ENV, "1")
    _no_network(monkeypatch)
    _, dest = weights_source(BACKBONE)
    with pytest.raises(OfflineError) as info:
        imgtrans.create_generator("unet_timm", encoder=BACKBONE, pretrained=True)
    message = str(info.value)
    assert "\n" not in message and str(dest) in message and OFFLINE_ENV in message and "pretrained=false" in message
    with pytest.raises(OfflineError, match="timm backbone 'vgg19'"):  # the loss's default needs its weights too
        imgtrans.create_loss("perceptual")


def test_weights_download_from_the_endpoint_once(home: Path, monkeypatch: pytest.MonkeyPatch, http_server,
                                                 tmp_path: Path) -> None:
    state = _published(tmp_path / "published.safetensors")
    path = "/timm/test_resnet.r160_in1k/resolve/main/model.safetensors"
    http_server.files[path] = (tmp_path / "published.safetensors").read_bytes()
    monkeypatch.setenv(ENDPOINT_ENV, http_server.url(""))
    gen = imgtrans.create_generator("unet_timm", encoder=BACKBONE, pretrained=True, decoder_channels=4)
    _assert_encoder_holds(gen, state)
    assert weights_source(BACKBONE)[1].is_file()
    imgtrans.create_generator("unet_timm", encoder=BACKBONE, pretrained=True, decoder_channels=4)
    assert [p for p, _ in http_server.requests] == [path]  # the second build read the cache


def test_corrupt_weights_file_is_one_line(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, dest = weights_source(BACKBONE)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"not a safetensors file")
    monkeypatch.setenv(OFFLINE_ENV, "1")
    with pytest.raises(ConfigError, match="do not load into timm backbone 'test_resnet'.*delete the file") as info:
        imgtrans.create_generator("unet_timm", encoder=BACKBONE, pretrained=True)
    assert "\n" not in str(info.value)


def test_trained_model_translates_and_inits_offline(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path, registry) -> None:
    """A model trained from pretrained weights loads without them (its file holds every weight),
    translates odd sizes, and starts another run through --init, all offline."""
    _, dest = weights_source(BACKBONE)
    _published(dest)
    monkeypatch.setenv(OFFLINE_ENV, "1")
    _no_network(monkeypatch)
    data = write_aligned(tmp_path / "data", count=2, size=64)  # batch-norm needs a 2x2 deepest map at batch size 1
    args = ["train", "pix2pix", "--data", str(data), "--generator", "unet_timm", "--set", f"generator.encoder={BACKBONE}",
            "--set", "generator.decoder_channels=8", "--set", "generator.pretrained=true", "--set", "discriminator.ndf=4",
            "--load-size", "64", "--crop-size", "64", "--max-steps", "2", "--quiet", "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    model = tmp_path / "run" / "model.safetensors"
    dest.unlink()  # rebuilding the model must not need the backbone's published weights

    out = imgtrans.translate(str(model), torch.rand(2, 3, 37, 53) * 2 - 1)
    assert out.shape == (2, 3, 37, 53)

    recipe = build_recipe(resolve("pix2pix", registry, [{"generator": TINY_GEN, "discriminator": {"ndf": 4},
                                                         "data": {"source": "x"}}]), registry)
    apply_init(recipe, {"generator": str(model)})
    saved = load_checkpoint(model).state_dict("generator")
    for key, value in recipe.components["generator"].state_dict().items():
        assert torch.equal(value, saved[key]), key


# the perceptual loss ------------------------------------------------------------------------------
def _loss(**kwargs):
    torch.manual_seed(0)  # random backbone weights, the same in every loss built here
    return imgtrans.create_loss("perceptual", backbone=BACKBONE, pretrained=False, **kwargs)


def test_perceptual_gradients_reach_the_generator_not_the_backbone() -> None:
    loss = _loss(pixel_weight=0.0)
    gen = imgtrans.create_generator("unet", num_downs=5, ngf=4)
    loss.train()  # what the trainer does to every component: the backbone must stay in eval mode
    assert not loss.backbone.training
    x, target = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    value = loss(gen(x), target)
    value.backward()
    assert float(value.detach()) > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in gen.parameters())
    assert all(not p.requires_grad and p.grad is None for p in loss.backbone.parameters())
    assert float(loss(target, target.clone())) == 0.0
    # one channel is compared as gray on the backbone's three
    assert float(loss(x[:, :1], target[:, :1])) > 0


def test_perceptual_weights_and_terms() -> None:
    x, y = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    pixel = float(torch.nn.functional.l1_loss(x, y))
    assert float(_loss(feature_weight=0.0)(x, y)) == pytest.approx(pixel)
    shallow = float(_loss(layers=[0], layer_weights=[1.0], pixel_weight=0.0, feature_weight=1.0)(x, y))
    both = float(_loss(layers=[3, 0], layer_weights=[0.0, 1.0], pixel_weight=0.0, feature_weight=1.0)(x, y))
    assert both == pytest.approx(shallow)  # weights follow their layers, whatever the order given


@pytest.mark.parametrize("kwargs,match", [
    ({"layers": [0, 1], "layer_weights": [1.0]}, "one weight per layer"),
    ({"layers": [0, 9], "layer_weights": [1.0, 1.0]}, "5 feature levels"),
    ({"layers": [0, 0], "layer_weights": [1.0, 1.0]}, "distinct"),
])
def test_perceptual_bad_layers_are_one_line(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        _loss(**kwargs)
    assert "\n" not in str(info.value)


def test_perceptual_trains_in_pix2pix(tmp_path: Path) -> None:
    """The documented command: perceptual in pix2pix's pixel_loss slot trains, and the frozen backbone
    is not saved with the networks."""
    data = write_aligned(tmp_path / "data", count=2, size=32)
    args = ["train", "pix2pix", "--data", str(data), "--generator", "unet", "--set", "generator.num_downs=5",
            "--set", "generator.ngf=4", "--set", "discriminator.ndf=4", "--set", "pixel_loss.name=perceptual",
            "--set", f"pixel_loss.backbone={BACKBONE}", "--set", "pixel_loss.pretrained=false",
            "--load-size", "32", "--crop-size", "32", "--max-steps", "2", "--quiet", "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    ckpt = load_checkpoint(tmp_path / "run" / "model.safetensors")
    assert set(ckpt.tensors) == {"generator"}
    assert ckpt.metadata["config"]["pixel_loss"]["name"] == "perceptual"
    last = _train_rows(tmp_path / "run")[-1]
    assert last["step"] == 2 and 0 < last["G_L1"] < float("inf")


def _train_rows(run: Path) -> list[dict]:
    import json

    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if "G_L1" in row]
