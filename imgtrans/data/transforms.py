"""Paired augmentation: one random draw applied identically to A and B (albumentations).

The reference pix2pix recipe: bicubic resize to ``load_size``, random ``crop_size`` crop, and
horizontal flip with p = 0.5.  Evaluation resizes straight to ``crop_size`` with no randomness.
"""
from __future__ import annotations

import albumentations as A
import cv2
import numpy as np


class PairedTransform:
    def __init__(self, load_size: int = 286, crop_size: int = 256, flip: bool = True, train: bool = True,
                 seed: int | None = None):
        if crop_size > load_size:
            raise ValueError(f"crop_size ({crop_size}) must not exceed load_size ({load_size})")
        if train:
            ops = [A.Resize(load_size, load_size, interpolation=cv2.INTER_CUBIC),
                   A.RandomCrop(crop_size, crop_size)]
            if flip:
                ops.append(A.HorizontalFlip(p=0.5))
        else:
            ops = [A.Resize(crop_size, crop_size, interpolation=cv2.INTER_CUBIC)]
        self.pipeline = A.Compose(ops, additional_targets={"target": "image"}, seed=seed)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self.pipeline(image=a, target=b)
        return _keep_channels(out["image"], a), _keep_channels(out["target"], b)

    def single(self, image: np.ndarray) -> np.ndarray:
        """One draw for one image: unpaired data transforms A and B independently."""
        return _keep_channels(self.pipeline(image=image)["image"], image)


def _keep_channels(arr: np.ndarray, like: np.ndarray) -> np.ndarray:
    """OpenCV drops a trailing channel axis of size 1; put it back."""
    return arr[:, :, None] if arr.ndim == 2 and like.ndim == 3 else arr
