"""Tiled translation of large images: coverage, a smooth normalised blend, agreement with the
untiled result, and float buffers bounded by a band of tiles."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import imgtrans
from imgtrans.data.images import to_pixels, to_tensor
from imgtrans.inference.engine import run_generator
from imgtrans.inference.tiling import WEIGHT_FLOOR, blend_window, ramp, tile_starts, translate_tiled
from imgtrans.util.errors import ConfigError


@pytest.fixture(autouse=True)
def _one_thread():
    """These tests run many tiny tensor ops; on a loaded 2-core machine each one can wait ~10 ms for
    a descheduled second OpenMP thread.  One thread keeps the module fast; restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _pixels(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


def _seam_distance(length: int, tile: int, overlap: int) -> np.ndarray:
    """Distance of each position from the nearest tile edge that lies inside the image."""
    starts = tile_starts(length, tile, overlap)
    edges = {s for s in starts if s > 0} | {s + tile for s in starts if s + tile < length}
    d = np.full(length, 10**9)
    for e in edges:
        d = np.minimum(d, np.abs(np.arange(length) - e))
    return d


def _untiled(run, pixels: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return to_pixels(run(to_tensor(pixels)[None])[0])


# ----------------------------------------------------------------------------- tile_starts

@pytest.mark.parametrize("tile,overlap", [(128, 32), (64, 0), (10, 9), (256, 128), (1024, 128)])
def test_tile_starts_cover_with_the_overlap(tile: int, overlap: int) -> None:
    for length in [1, 5, tile - 1, tile, tile + 1, 2 * tile - overlap, 2 * tile - overlap + 1, 300, 517, 1000, 4096]:
        starts = tile_starts(length, tile, overlap)
        if length <= tile:
            assert starts == [0]
            continue
        assert starts[0] == 0 and starts[-1] + tile == length, (length, starts)
        steps = np.diff(starts)
        assert (steps > 0).all(), (length, starts)
        assert (tile - steps >= overlap).all(), f"neighbours overlap by less than {overlap}: {length} {starts}"
        # as few tiles as the overlap allows, spread evenly
        assert len(starts) == -(-(length - overlap) // (tile - overlap))
        assert steps.max() - steps.min() <= 1
        covered = np.zeros(length, bool)
        for s in starts:
            covered[s:s + tile] = True
        assert covered.all()


def test_bad_tile_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="overlap"):
        tile_starts(100, 32, 32)
    with pytest.raises(ConfigError, match="tile size"):
        blend_window(0, 0)
    with pytest.raises(ConfigError, match="batch size"):
        translate_tiled(lambda x: x, _pixels(8, 8), tile=4, overlap=1, out_channels=3, batch_size=0)


# ----------------------------------------------------------------------------- the window

def test_blend_window_is_smooth_symmetric_positive_and_one_inside() -> None:
    tile, overlap = 128, 32
    w = blend_window(tile, overlap)
    assert w.shape == (tile, tile) and w.dtype == torch.float32
    assert torch.equal(w, w.T) and torch.equal(w, w.flip(0)) and torch.equal(w, w.flip(1))
    assert (w >= WEIGHT_FLOOR).all() and (w <= 1).all()
    assert (w[overlap:-overlap, overlap:-overlap] == 1).all()
    edge = w[tile // 2]  # one row through the middle: rises monotonically, in small steps
    assert (torch.diff(edge[:overlap]) >= 0).all() and torch.diff(edge).abs().max() < 0.1
    r = ramp(overlap)  # complementary ramps: two tiles overlapping by exactly `overlap` sum to 1
    assert np.allclose(r + r[::-1], 1.0)


@pytest.mark.parametrize("length,tile,overlap", [(300, 128, 32), (517, 128, 32), (129, 128, 32), (1000, 256, 100)])
def test_blend_weights_never_sum_to_zero(length: int, tile: int, overlap: int) -> None:
    w = blend_window(tile, overlap)[tile // 2].double().numpy()  # a 1-D section of the window
    total = np.zeros(length)
    for s in tile_starts(length, tile, overlap):
        total[s:s + tile] += w[:min(tile, length - s)]
    inner = slice(overlap, length - overlap)  # away from the image border, where one tile has its ramp
    assert total.min() > 0 and total[inner].min() >= 1 - 1e-9


# ----------------------------------------------------------------------------- translate_tiled

def test_identity_gives_the_input_back_exactly() -> None:
    pixels = _pixels(300, 517)
    seen = []

    def run(x: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(x.shape))
        assert x.dtype == torch.float32 and -1 <= x.min() and x.max() <= 1
        return x

    out = translate_tiled(run, pixels, tile=128, overlap=32, out_channels=3)
    assert out.dtype == np.uint8 and np.array_equal(out, pixels)
    assert set(seen) == {(1, 3, 128, 128)} and len(seen) == 3 * 6


def test_channels_small_images_and_batches() -> None:
    grey = _pixels(100, 700, 1)  # smaller than a tile in height: tiles of 100 x 256
    shapes = []

    def to_rgb(x: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(x.shape))
        return -x.repeat(1, 3, 1, 1)

    out = translate_tiled(to_rgb, grey, tile=256, overlap=64, out_channels=3, batch_size=2)
    assert out.shape == (100, 700, 3) and np.array_equal(out, np.repeat(255 - grey, 3, axis=2))
    assert shapes == [(2, 1, 100, 256)] * 2  # 4 tiles across 700 px
    tiny = _pixels(17, 9)
    out = translate_tiled(lambda x: x.mean(1, keepdim=True), tiny, tile=256, overlap=64, out_channels=1)
    assert out.shape == (17, 9, 1)
    with pytest.raises(ValueError, match="expected"):
        translate_tiled(lambda x: x, tiny, tile=256, overlap=64, out_channels=1)


def _small_net() -> nn.Module:
    """Three 3x3 convs: receptive field 7 px (radius 3), translation-equivariant away from its padding."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(8, 3, 3, padding=1), nn.Tanh()).eval()
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Conv2d):
                m.weight.mul_(3)  # outputs spread over the whole grey range
    return net


def test_batch_size_does_not_change_the_result() -> None:
    """Batches spanning rows of tiles are blended like single tiles (the run is exactly batch-invariant
    and wraps around each tile, so the blend matters)."""
    pixels = _pixels(200, 333)

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(2 * x - x.roll(5, dims=-1))

    outs = [translate_tiled(run, pixels, tile=64, overlap=16, out_channels=3, batch_size=b) for b in (1, 4, 7, 100)]
    assert all(np.array_equal(outs[0], o) for o in outs[1:])
    assert not np.array_equal(outs[0], _untiled(run, pixels))


@pytest.mark.parametrize("tile,overlap", [(192, 96), (64, 16), (100, 12)])
def test_small_receptive_field_matches_untiled_everywhere(tile: int, overlap: int) -> None:
    """Receptive-field radius 3 <= overlap // 4: the tile borders get no weight, the result is the
    untiled one up to float rounding (a value on a .5 boundary may round the other way)."""
    net, pixels = _small_net(), _pixels(384, 384)
    full = _untiled(net, pixels).astype(int)
    assert full.std() > 40
    tiled = translate_tiled(net, pixels, tile=tile, overlap=overlap, out_channels=3).astype(int)
    diff = np.abs(full - tiled)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_resnet_tiled_agrees_with_untiled() -> None:
    """ResNet-6 (no normalisation, stride 4; receptive field ~125 px, more than the overlap).

    Measured (He-initialised, 384x384 random image, tile 192, overlap 96): max difference 12 grey
    levels over the whole image (near seams), 1 at least overlap/2 px from any seam, mean 0.13;
    with tile 256 / overlap 128: max 1 everywhere."""
    assert "resnet_6blocks" in imgtrans.list_components("generator")
    torch.manual_seed(0)
    gen = imgtrans.create_generator("resnet_6blocks", ngf=4, norm="none").eval()
    with torch.no_grad():  # He initialisation: a network whose output actually depends on its input
        for m in gen.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                fan_in = m.weight[0].numel() if isinstance(m, nn.Conv2d) else m.weight[:, 0].numel()
                m.weight.normal_(0, (2 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.zero_()

    def run(x: torch.Tensor) -> torch.Tensor:
        return run_generator(gen, x, stride=4, norm_stats="running")

    pixels = _pixels(384, 384, seed=1)
    full = _untiled(run, pixels).astype(int)
    assert full.std() > 40
    tile, overlap = 192, 96
    diff = np.abs(full - translate_tiled(run, pixels, tile=tile, overlap=overlap, out_channels=3).astype(int)).max(2)
    d = _seam_distance(384, tile, overlap)
    interior = np.minimum(d[:, None], d[None, :]) >= overlap // 2
    print(f"resnet tiled vs untiled: max {diff.max()}, interior max {diff[interior].max()}, mean {diff.mean():.3f}")
    assert diff[interior].max() <= 2 and diff.mean() < 0.5


def test_float_buffers_are_bounded_by_a_band_of_tiles() -> None:
    size, tile, overlap = 4096, 512, 64
    pixels = _pixels(size, size)
    stats: dict = {}
    out = translate_tiled(lambda x: -x, pixels, tile=tile, overlap=overlap, out_channels=3, batch_size=4, stats=stats)
    assert np.array_equal(out, 255 - pixels)
    per_row = (3 + 1) * 4 * size  # float32 sum (3 channels) + weight, per image row
    assert stats["tiles"] == 81 and stats["tile_shape"] == (tile, tile)
    assert stats["peak_buffer_bytes"] <= 2 * tile * per_row, stats  # a band or two, not the image
    assert stats["peak_buffer_bytes"] < size * per_row / 4
