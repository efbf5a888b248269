"""Grid artefacts: how much more period-2 and period-4 energy an output carries than its target.

A generator that up-samples by stride-2 transposed convolutions (or pads its tiles badly) leaves
a lattice in flat regions that L1, PSNR and SSIM barely see (a few grey levels of amplitude) but a
person sees at once.  Such a lattice is periodic with the strides of the decoder's last levels,
so its energy sits on the spectrum's lattice points: the frequencies whose periods are 2 and 4
pixels along either axis.  Natural images carry little energy exactly there, and what they carry
the target carries too, so the ratio of the two energies isolates what the network added.

The score per image is ``max(1, (E(output) + q) / (E(target) + q))``: ``E`` the windowed power summed over
the 15 non-zero lattice points (each with its 3x3 neighbourhood, where a Hann window spreads an
exact period), ``q`` the power of a checkerboard of half an 8-bit level in every channel (below
what anyone sees).  A clean output scores about 1; a checkerboard of 2 levels over a flat target
scores about 37.  The floor keeps flat pairs (sea tiles) near 1 instead of dividing noise by noise.
"""
from __future__ import annotations

import torch

from ..core.interfaces import PairedMetric

#: the periods (pixels) whose harmonics are counted: the strides of a decoder's last two levels
PERIODS = (2, 4)


def lattice_bins(size: int) -> list[int]:
    """The frequency indices (of an FFT of ``size`` points) whose periods divide 2 or 4, zero included."""
    return sorted({round(size * k / period) % size for period in PERIODS for k in range(period)})


def lattice_mask(height: int, width: int) -> torch.Tensor:
    """``(H, W)`` bool mask of the non-zero lattice points and their 3x3 neighbourhoods."""
    mask = torch.zeros(height, width, dtype=torch.bool)
    for u in lattice_bins(height):
        for v in lattice_bins(width):
            if u == 0 and v == 0:
                continue
            for du in (-1, 0, 1):
                for dv in (-1, 0, 1):
                    mask[(u + du) % height, (v + dv) % width] = True
    # the direct-current neighbourhood carries the image's mean and slow gradients, never a lattice
    for du in (-1, 0, 1):
        for dv in (-1, 0, 1):
            mask[du % height, dv % width] = False
    return mask


def lattice_energy(images: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Per-image power at the lattice points (channels summed) of ``(N, C, H, W)`` images in
    [-1, 1], and the floor: the power of a lattice too faint to see (half an 8-bit level)."""
    x = (images.double().clamp(-1, 1) + 1) / 2
    height, width = x.shape[-2:]
    window = torch.outer(torch.hann_window(height, periodic=False, dtype=torch.float64),
                         torch.hann_window(width, periodic=False, dtype=torch.float64)).to(x.device)
    centred = (x - x.mean(dim=(-2, -1), keepdim=True)) * window
    power = torch.fft.fft2(centred).abs().pow(2)
    mask = lattice_mask(height, width).to(x.device)
    energy = power[..., mask].sum(dim=(-2, -1))  # (N, C, points) -> (N,)
    # the visibility threshold: a checkerboard of half an 8-bit level in every channel
    floor = (0.5 / 255) ** 2 * float(window.sum()) ** 2 * x.shape[1]
    return energy, floor


def grid_ratio(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image ratio of the output's lattice energy to the target's (both plus the visibility floor),
    at least 1: only added lattice counts, so a perfect output scores best (1) and a smoother one
    does not score better than it."""
    out_energy, floor = lattice_energy(prediction)
    target_energy, _ = lattice_energy(target)
    # less lattice than the target (a smoother output) is not an artefact, and not better either
    return ((out_energy + floor) / (target_energy + floor)).clamp(min=1.0).float()


class GridArtefacts(PairedMetric):
    """Period-2/4 lattice energy of each output relative to its target's, at least 1 (1 = none added;
    lower is better).

    Catches the checkerboard of transposed convolutions and tiling seams, which L1, PSNR and SSIM
    hardly register.  The project's goal for its showcase models is a mean ratio of at most 1.2.
    """

    better = "lower"
    label = "grid x"
    protocol = ("grid: Hann-windowed power at the period-2/4 lattice frequencies (15 points, 3x3 bins "
                "each), output over target (at least 1), each plus a half-level lattice's power; 1 = no added lattice")

    def score(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return grid_ratio(prediction, target)
