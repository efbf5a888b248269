"""Optimizer, scheduler and RNG states as safetensors tensors plus JSON, so that a training
checkpoint never holds a pickle.

Each ``*_state`` function splits a state into the tensors a checkpoint stores as tensors and
the JSON-able rest; its ``load_*``/``set_*`` counterpart puts the two back together.  Where the
layout of a whole training checkpoint is defined: :mod:`imgtrans.training.checkpoints`.
"""
from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..util.errors import CheckpointError


def optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors (``"<param index>.<key>"``) and the JSON rest of ``optimizer.state_dict()``."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    state: dict[str, dict[str, Any]] = {}
    for pid, values in sd["state"].items():
        state[str(pid)] = {}
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = value
            else:
                state[str(pid)][key] = value
    return tensors, {"param_groups": sd["param_groups"], "state": state}


def load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor],
                         meta: Mapping[str, Any]) -> None:
    current = optimizer.state_dict()["param_groups"]
    if len(current) != len(meta["param_groups"]):
        raise CheckpointError("the checkpoint's optimizer has a different number of parameter groups")
    # JSON turned tuples (Adam's betas) into lists: give them back their type
    groups = [{k: tuple(v) if isinstance(now.get(k), tuple) else v for k, v in saved.items()}
              for saved, now in zip(meta["param_groups"], current)]
    state: dict[int, dict[str, Any]] = {int(pid): dict(values) for pid, values in meta["state"].items()}
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for key, value in tensors.items():
        pid, _, name = key.partition(".")
        if int(pid) >= len(params):
            raise CheckpointError("the checkpoint's optimizer state is for more parameters than these networks have")
        param = params[int(pid)]
        if value.shape == param.shape:
            # moments in the parameter's own layout (channels-last included) and device, as the
            # optimizer made them: fused kernels walk both in memory order
            value = torch.empty_like(param, dtype=value.dtype).copy_(value)
        state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def scheduler_state(scheduler: Any) -> dict[str, Any]:
    return {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}


def load_scheduler_state(scheduler: Any, state: Mapping[str, Any]) -> None:
    """Restore the position; the learning rate is recomputed from the (possibly extended) schedule."""
    state = dict(state)
    if hasattr(scheduler, "lr_lambdas"):
        state["lr_lambdas"] = [None] * len(scheduler.lr_lambdas)
    scheduler.load_state_dict(state)
    lambdas = getattr(scheduler, "lr_lambdas", None)
    if lambdas is not None:
        for group, base, factor in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, lambdas):
            group["lr"] = base * factor(scheduler.last_epoch)
        scheduler._last_lr = [g["lr"] for g in scheduler.optimizer.param_groups]


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """torch (CPU and CUDA), numpy and Python global RNG states: tensors ``torch``, ``cuda<i>``
    and ``numpy`` (the MT19937 key), and JSON (the rest of the numpy and Python states)."""
    tensors = {"torch": torch.get_rng_state()}
    name, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss = random.getstate()
    meta: dict[str, Any] = {"numpy": {"name": name, "pos": int(pos), "has_gauss": int(has_gauss),
                                      "cached_gaussian": float(cached)},
                            "python": [version, list(internal), gauss], "cuda": 0}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states = torch.cuda.get_rng_state_all()
        tensors.update({f"cuda{i}": s for i, s in enumerate(states)})
        meta["cuda"] = len(states)
    return tensors, meta


def set_rng_state(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"].to(torch.uint8))
    n = meta["numpy"]
    np.random.set_state((n["name"], tensors["numpy"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    count = min(meta.get("cuda", 0), torch.cuda.device_count() if torch.cuda.is_available() else 0)
    for i in range(count):
        torch.cuda.set_rng_state(tensors[f"cuda{i}"].to(torch.uint8), i)
