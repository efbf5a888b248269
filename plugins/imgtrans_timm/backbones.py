"""timm feature backbones with their pretrained weights fetched by imgtrans's own downloader.

Why not let timm download: timm fetches through the Hugging Face hub client, which ignores
``IMGTRANS_OFFLINE``, keeps its own cache layout and has its own error messages.  Here a backbone's
published file goes through :func:`imgtrans.api.fetch` into ``$IMGTRANS_HOME/backbones/``
(atomic, resumable, bounded, offline-aware, one-line errors naming the path to place it at), and
timm then reads that local file (``pretrained_cfg_overlay={"file": ...}``), adapting the first
convolution to other input channel counts and dropping the classifier as it does for its own
downloads.  A file put at that path by hand is used as is, without the network.
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import torch
from torch import nn

from imgtrans.api import ConfigError, DownloadError, fetch, home

#: where backbone weights are downloaded from: the Hugging Face hub or a mirror of its layout
ENDPOINT_ENV = "HF_ENDPOINT"
DEFAULT_ENDPOINT = "https://huggingface.co"


def _timm() -> Any:
    import timm  # imported here: ``import imgtrans_timm`` and plugin discovery must stay cheap

    return timm


def check_name(name: str, what: str) -> None:
    """Refuse a name timm does not know, in one line with the closest names it does."""
    timm = _timm()
    arch = name.split(".", 1)[0]
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else " (see timm.list_models())"
        raise ConfigError(f"{what}: timm has no model {name!r}{hint}")


def weights_source(name: str) -> tuple[str, Path]:
    """The URL of backbone ``name``'s published weights and the cache path they are kept at.

    ``name`` may carry a timm pretrained tag (``resnet18.tv_in1k``); without one, timm's default
    tag.  Files on the hub are fetched from ``$HF_ENDPOINT`` (a mirror) when set.
    """
    from timm.models import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(name)
    except RuntimeError as exc:  # an unknown tag
        raise ConfigError(f"timm backbone {name!r}: {exc}") from None
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise ConfigError(f"timm publishes no pretrained weights for {name!r}; build it with pretrained=false")
    root = home() / "backbones"
    if cfg.hf_hub_id:
        filename = cfg.hf_hub_filename or "model.safetensors"
        endpoint = os.environ.get(ENDPOINT_ENV, "").strip() or DEFAULT_ENDPOINT
        return f"{endpoint.rstrip('/')}/{cfg.hf_hub_id}/resolve/main/{filename}", root / cfg.hf_hub_id / filename
    filename = Path(urlsplit(cfg.url).path).name or "weights.pth"
    return cfg.url, root / f"{name.split('.', 1)[0]}.{cfg.tag}" / filename


def pretrained_file(name: str) -> Path:
    """The local file of ``name``'s pretrained weights: the cache, else a download (one line on failure)."""
    url, dest = weights_source(name)
    try:
        fetch(url, dest, description=f"{name} weights")
    except DownloadError as exc:
        # the same class (OfflineError stays OfflineError), with what the file is for
        raise type(exc)(f"pretrained weights of timm backbone {name!r}: {exc} "
                        "(or build it with pretrained=false)") from None
    return dest


def create_features(name: str, *, in_channels: int, pretrained: bool, what: str,
                    out_indices: tuple[int, ...] | None = None) -> nn.Module:
    """``timm.create_model(name, features_only=True)``: the backbone's feature maps, shallow to deep."""
    check_name(name, what)
    kwargs: dict[str, Any] = {"features_only": True, "in_chans": in_channels}
    if out_indices is not None:
        kwargs["out_indices"] = tuple(out_indices)
    if pretrained:
        path = pretrained_file(name)
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(path)})
    try:
        return _timm().create_model(name, **kwargs)
    except Exception as exc:  # noqa: BLE001 - timm's and safetensors' errors have no common base
        detail = " ".join(str(exc).split())[:300]
        if pretrained:
            raise ConfigError(f"{what}: the weights in {kwargs['pretrained_cfg_overlay']['file']} do not load into "
                              f"timm backbone {name!r} ({detail}); delete the file to download it again") from None
        raise ConfigError(f"{what}: timm cannot build {name!r} as a feature backbone ({detail})") from None


def input_normalisation(backbone: nn.Module, in_channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, std)`` of shape ``(1, C, 1, 1)`` that turn images in [0, 1] into what the backbone's
    weights were trained on (ImageNet statistics for most); channel counts other than 3 use the
    averages, as timm does when it adapts the first convolution."""
    cfg = getattr(backbone, "pretrained_cfg", None) or {}
    mean = torch.tensor(cfg.get("mean", (0.485, 0.456, 0.406)), dtype=torch.float32)
    std = torch.tensor(cfg.get("std", (0.229, 0.224, 0.225)), dtype=torch.float32)
    if in_channels != len(mean):
        mean, std = mean.mean().repeat(in_channels), std.mean().repeat(in_channels)
    return mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)
