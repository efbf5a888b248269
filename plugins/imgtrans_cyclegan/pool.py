"""The image pool of Shrivastava et al. (2017), as CycleGAN's reference uses it: discriminators see
a history of generated images, not only the newest, which damps oscillation."""
from __future__ import annotations

import random

import torch


class ImagePool:
    """Up to ``size`` past generated images; ``size`` 0 disables the pool.

    ``query`` behaves exactly like the reference's: while the pool is filling, each image is stored
    and returned; afterwards, with probability 0.5 a uniformly chosen stored image is returned and
    replaced by the new one, otherwise the new image is returned.  The draws use Python's
    ``random`` module, as the reference does, so its state (saved with every checkpoint) decides them.
    """

    def __init__(self, size: int):
        if size < 0:
            raise ValueError(f"pool size must be >= 0, got {size}")
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.uniform(0, 1) > 0.5:
                index = random.randint(0, self.size - 1)
                out.append(self.images[index].clone())
                self.images[index] = image
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state(self) -> torch.Tensor | None:
        """The stored images as one ``(n, C, H, W)`` tensor on the CPU (None while empty)."""
        return torch.cat(self.images, 0).cpu() if self.images else None

    def restore(self, images: torch.Tensor | None, device: torch.device | str = "cpu") -> None:
        self.images = [] if images is None else [img.unsqueeze(0).to(device) for img in images]
