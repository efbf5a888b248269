"""PatchNCE (CUT's contrastive loss) and the patch sampler that feeds it.

PatchNCE asks each patch of the output to be recognised as coming from the patch of the input at
the same place, among the other patches of the same image: a cross-entropy over similarities of
L2-normalised features divided by a temperature, with the true pair as the class to pick.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from imgtrans.api import Loss

from .networks import initialise


class PatchNCELoss(Loss):
    """PatchNCE: InfoNCE over patches, each output patch against its own input patch (CUT).

    Called as a ``feature`` loss: ``loss(query, key)`` with ``(N, P, C)`` L2-normalised features of
    ``P`` patches of each of ``N`` images (``query`` from the output, ``key`` from the input at the
    same positions).  The key is a fixed target (no gradient flows into it), and a patch's
    similarity with itself among the negatives is replaced by -10, as in the reference.

    Args:
        temperature: divides the similarities (the reference's nce_T).
        negatives: image (the other patches of the same image, CUT's choice) or batch (those of
            every image of the batch, for single-image translation).
    """

    role = "feature"
    arg_constraints: ClassVar[dict[str, dict[str, Any]]] = {"temperature": {"gt": 0},
                                                            "negatives": {"choices": ("image", "batch")}}

    def __init__(self, temperature: float = 0.07, negatives: str = "image"):
        super().__init__()
        self.temperature, self.negatives = temperature, negatives

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        if query.ndim != 3 or query.shape != key.shape:
            raise ValueError(f"PatchNCE takes query and key of the same shape (N, P, C), got {tuple(query.shape)} "
                             f"and {tuple(key.shape)}")
        q, k = query.float(), key.detach().float()
        positive = (q * k).sum(-1).reshape(-1, 1)  # (N * P, 1)
        if self.negatives == "batch":
            q, k = q.reshape(1, -1, q.shape[-1]), k.reshape(1, -1, k.shape[-1])
        negative = torch.bmm(q, k.transpose(1, 2))  # (groups, P', P'): every query against every key
        eye = torch.eye(negative.shape[-1], dtype=torch.bool, device=negative.device)
        negative = negative.masked_fill(eye, -10.0).reshape(-1, negative.shape[-1])
        logits = torch.cat([positive, negative], 1) / self.temperature
        return F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device))


def l2_normalise(x: torch.Tensor) -> torch.Tensor:
    """``x / (||x|| + 1e-7)`` along the last dimension, the reference's normalisation.  The norm is
    ``torch.linalg.vector_norm``, whose gradient at an all-zero row (every unit of the MLP's ReLU
    off) is 0, where the reference's ``pow(0.5)`` gives NaN and poisons the sampler's weights."""
    return x / (torch.linalg.vector_norm(x, dim=-1, keepdim=True) + 1e-7)


class PatchSampler(nn.Module):
    """CUT's ``F`` (``mlp_sample``): picks the same random positions in each feature map of a pair
    and projects each picked feature vector with a two-layer MLP per layer, L2-normalised.

    Built from the encoder's widths (``channels``, one per layer); the MLPs are
    ``Linear(C_i, width) -> ReLU -> Linear(width, width)``, named ``mlp_<i>`` as in the reference.
    """

    def __init__(self, channels: Sequence[int], width: int = 256, init: str = "xavier"):
        super().__init__()
        self.channels, self.width = list(channels), width
        for i, c in enumerate(self.channels):
            self.add_module(f"mlp_{i}", nn.Sequential(nn.Linear(c, width), nn.ReLU(), nn.Linear(width, width)))
        initialise(self, init)

    def forward(self, features: Sequence[torch.Tensor], patches: int,
                positions: Sequence[torch.Tensor] | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``(N, C_i, H_i, W_i)`` maps -> ``(N, P_i, width)`` projections at ``P_i = min(patches, H_i W_i)``
        positions, and those positions (drawn with ``torch.randperm`` unless given, to reuse them)."""
        if len(features) != len(self.channels):
            raise ValueError(f"the patch sampler was built for {len(self.channels)} feature maps, got {len(features)}")
        out, chosen = [], []
        for i, feat in enumerate(features):
            flat = feat.flatten(2).transpose(1, 2)  # (N, H*W, C)
            if positions is None:
                ids = torch.randperm(flat.shape[1], device=feat.device)[:min(patches, flat.shape[1])]
            else:
                ids = positions[i]
            out.append(l2_normalise(getattr(self, f"mlp_{i}")(flat[:, ids, :])))
            chosen.append(ids)
        return out, chosen
