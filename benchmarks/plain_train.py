"""The papers' training steps in plain PyTorch: the baseline of ``benchmarks/train.py --whole-process``.

    python benchmarks/plain_train.py pix2pix --steps 70             # 70 steps, 256x256, batch 1
    python benchmarks/plain_train.py cyclegan --steps 4 --threads 1

What the reference implementation (pytorch-CycleGAN-and-pix2pix) runs, written out with nothing
but torch, so that the comparison is with the procedure, not with another library:

* pix2pix: unet_256 (batch norm, dropout) + 70x70 PatchGAN on A|B (6 channels, batch norm);
  D step on ``0.5 * (BCE(D(a, G(a).detach()), 0) + BCE(D(a, b), 1))``, then G step on
  ``BCE(D(a, G(a)), 1) + 100 * L1(G(a), b)`` with D frozen (BCE with logits);
* CycleGAN: two resnet_9blocks generators and two PatchGANs (instance norm, no dropout), LSGAN
  (MSE to 1 / 0), cycle weight 10 each way, identity 0.5 x 10; the generators step together with
  the discriminators frozen, then both discriminators on fakes from image pools of 50.

Both use Adam (lr 2e-4, betas 0.5 and 0.999; PyTorch's default implementation), N(0, 0.02)
initialisation, batch 1, fp32, NCHW, torch's default thread count (unless ``--threads``), no
allocator tuning.  The networks come from ``imgtrans.create_generator`` / ``create_discriminator``
so that both sides of the comparison train identical architectures; imgtrans_pix2pix's GEMM path
for small maps is switched off in this process (``MAX_GEMM_AREA = 0``), so every convolution is
PyTorch's own.
Inputs are random tensors in [-1, 1], made each step.  The imgtrans side also decodes, resizes
and crops the basemap tiles (about 1-2 ms a step, docs/datasets.md), so the comparison leans,
slightly, against imgtrans.
"""
from __future__ import annotations

import argparse
import itertools
import random
from collections.abc import Callable

import imgtrans_pix2pix.im2col as im2col
import torch
from torch import nn

import imgtrans
from machine import count_flops

LR, BETAS = 2e-4, (0.5, 0.999)


def init_weights(net: nn.Module) -> nn.Module:
    """The papers' N(0, 0.02) initialisation: convolutions N(0, 0.02), norms' scales N(1, 0.02), biases 0."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return net


def set_requires_grad(nets: list[nn.Module], flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


class ImagePool:
    """The reference's image pool: fill up, then return a stored fake (and keep the new one) half the time."""

    def __init__(self, size: int = 50):
        self.size, self.images = size, []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        out = []
        for image in images.detach().split(1):
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.uniform(0, 1) > 0.5:
                i = random.randint(0, self.size - 1)
                out.append(self.images[i].clone())
                self.images[i] = image
            else:
                out.append(image)
        return torch.cat(out)


class PlainTrainer:
    """Networks, optimizers and one training step; ``update = False`` skips the optimizer steps
    (for counting FLOPs on the meta device, where Adam cannot run)."""

    update = True

    def __init__(self, size: int):
        self.size = size

    def batch(self) -> tuple[torch.Tensor, ...]:
        return tuple(torch.rand(1, 3, self.size, self.size) * 2 - 1 for _ in range(2))

    def _step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.update:
            optimizer.step()

    def step(self, a: torch.Tensor, b: torch.Tensor) -> float:
        raise NotImplementedError


class Pix2Pix(PlainTrainer):
    def __init__(self, size: int, ngf: int = 64, ndf: int = 64):
        super().__init__(size)
        self.g = init_weights(imgtrans.create_generator("unet_256", ngf=ngf))
        self.d = init_weights(imgtrans.create_discriminator("patchgan_70", ndf=ndf, in_channels=6))
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=LR, betas=BETAS)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=LR, betas=BETAS)
        self.gan, self.l1 = nn.BCEWithLogitsLoss(), nn.L1Loss()

    def step(self, a: torch.Tensor, b: torch.Tensor) -> float:
        fake = self.g(a)
        set_requires_grad([self.d], True)
        self.opt_d.zero_grad()
        pred_fake = self.d(torch.cat([a, fake.detach()], 1))
        pred_real = self.d(torch.cat([a, b], 1))
        loss_d = 0.5 * (self.gan(pred_fake, torch.zeros_like(pred_fake)) + self.gan(pred_real, torch.ones_like(pred_real)))
        loss_d.backward()
        self._step(self.opt_d)
        set_requires_grad([self.d], False)
        self.opt_g.zero_grad()
        pred = self.d(torch.cat([a, fake], 1))
        loss_g = self.gan(pred, torch.ones_like(pred)) + 100.0 * self.l1(fake, b)
        loss_g.backward()
        self._step(self.opt_g)
        return loss_g.item() if fake.device.type != "meta" else 0.0


class CycleGAN(PlainTrainer):
    def __init__(self, size: int, ngf: int = 64, ndf: int = 64):
        super().__init__(size)
        gen = dict(ngf=ngf, norm="instance", dropout=False)
        self.g_a, self.g_b = (init_weights(imgtrans.create_generator("resnet_9blocks", **gen)) for _ in range(2))
        self.d_a, self.d_b = (init_weights(imgtrans.create_discriminator("patchgan_70", ndf=ndf, norm="instance", in_channels=3))
                              for _ in range(2))
        self.opt_g = torch.optim.Adam(itertools.chain(self.g_a.parameters(), self.g_b.parameters()), lr=LR, betas=BETAS)
        self.opt_d = torch.optim.Adam(itertools.chain(self.d_a.parameters(), self.d_b.parameters()), lr=LR, betas=BETAS)
        self.mse, self.l1 = nn.MSELoss(), nn.L1Loss()
        self.pool_a, self.pool_b = ImagePool(50), ImagePool(50)

    def _gan(self, pred: torch.Tensor, real: bool) -> torch.Tensor:
        return self.mse(pred, torch.ones_like(pred) if real else torch.zeros_like(pred))

    def step(self, a: torch.Tensor, b: torch.Tensor) -> float:
        fake_b = self.g_a(a)
        rec_a = self.g_b(fake_b)
        fake_a = self.g_b(b)
        rec_b = self.g_a(fake_a)
        set_requires_grad([self.d_a, self.d_b], False)
        self.opt_g.zero_grad()
        loss_idt = self.l1(self.g_a(b), b) * 10 * 0.5 + self.l1(self.g_b(a), a) * 10 * 0.5
        loss_g = (self._gan(self.d_a(fake_b), True) + self._gan(self.d_b(fake_a), True)
                  + self.l1(rec_a, a) * 10 + self.l1(rec_b, b) * 10 + loss_idt)
        loss_g.backward()
        self._step(self.opt_g)
        set_requires_grad([self.d_a, self.d_b], True)
        self.opt_d.zero_grad()
        for d, real, fake in ((self.d_a, b, self.pool_b.query(fake_b)), (self.d_b, a, self.pool_a.query(fake_a))):
            loss_d = 0.5 * (self._gan(d(real), True) + self._gan(d(fake.detach()), False))
            loss_d.backward()
        self._step(self.opt_d)
        return loss_g.item() if fake_b.device.type != "meta" else 0.0


RECIPES: dict[str, Callable[[int, int, int], PlainTrainer]] = {"pix2pix": Pix2Pix, "cyclegan": CycleGAN}


def build(recipe: str, size: int, ngf: int = 64, ndf: int = 64) -> PlainTrainer:
    """The plain trainer of ``recipe`` (:func:`main` also turns imgtrans_pix2pix's GEMM path off)."""
    return RECIPES[recipe](size, ngf, ndf)


def step_flops(recipe: str, size: int, ngf: int = 64, ndf: int = 64) -> int:
    """FLOPs of one training step (benchmarks/machine.py says what counts), on the meta device.
    imgtrans's recipe step runs the same products (its GEMM path counts as the convolution)."""
    with torch.device("meta"):
        trainer = build(recipe, size, ngf, ndf)
        trainer.update = False
        a, b = trainer.batch()
        return count_flops(lambda: trainer.step(a, b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", choices=list(RECIPES))
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--ngf", type=int, default=64, help="generator width (64 is the papers')")
    parser.add_argument("--ndf", type=int, default=64, help="discriminator width (64 is the papers')")
    parser.add_argument("--threads", default="default", help="torch threads, or 'default' (torch's own choice)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads != "default":
        torch.set_num_threads(int(args.threads))
    im2col.MAX_GEMM_AREA = 0  # every convolution PyTorch's own (this process only)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    trainer = build(args.recipe, args.size, args.ngf, args.ndf)
    loss = float("nan")
    for _ in range(args.steps):
        loss = trainer.step(*trainer.batch())
    print(f"{args.recipe}: {args.steps} steps, {torch.get_num_threads()} threads, last generator loss {loss:.4f}")


if __name__ == "__main__":
    main()
