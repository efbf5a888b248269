"""Where and how a run's networks train: device, memory format (channels-last), synchronised
batch norm, identical initial weights in every process, compilation; and the settings that
cannot work with a given number of processes."""
from __future__ import annotations

import torch

from ..core.config import TrainConfig
from ..core.directions import primary_direction
from ..core.interfaces import Recipe
from ..util.devices import resolve_device
from ..util.errors import ConfigError
from .distributed import ProcessGroup


def wants_channels_last(net: torch.nn.Module, config: TrainConfig, device: torch.device) -> bool:
    """Whether ``net`` trains in channels-last (NHWC) memory format: as set by ``run.channels_last``,
    and with ``auto``: every network on CUDA (tensor cores read NHWC); on the CPU only networks
    without transposed convolutions, whose oneDNN NHWC kernels are slower there (measured on a
    paper-size bf16 step: the PatchGAN in NHWC saves about 25 ms, the U-Net in NHWC costs about 80)."""
    if config.run.channels_last != "auto":
        return config.run.channels_last == "on"
    return device.type == "cuda" or not any(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())


def place_networks(recipe: Recipe, config: TrainConfig, device: torch.device) -> torch.memory_format:
    """Move the recipe's networks to ``device`` in training mode and their memory format; returns
    the format for input batches (the generator's)."""
    formats = {name: torch.channels_last if wants_channels_last(net, config, device) else torch.contiguous_format
               for name, net in recipe.components.items()}
    for name, net in recipe.components.items():
        net.to(device=device, memory_format=formats[name]).train()
    return formats[recipe.directions[primary_direction(recipe.directions)]]


def prepare_networks(recipe: Recipe, config: TrainConfig, device: torch.device,
                     group: ProcessGroup) -> torch.memory_format:
    """Sync batch norm, device and memory format, identical weights everywhere, compilation;
    returns the memory format for input batches."""
    if config.run.sync_bn and group.distributed:
        for net in recipe.components.values():  # converts in place below the top module
            torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    memory_format = place_networks(recipe, config, device)
    group.broadcast_parameters(recipe.networks().values())
    if config.run.compile:
        for net in recipe.networks().values():
            net.compile()  # in place: state-dict keys stay those of the plain module
    return memory_format


def check_processes(config: TrainConfig, world_size: int) -> None:
    """Settings that cannot work with ``world_size`` processes; checked before any process starts."""
    if world_size < 2:
        return
    device = resolve_device(config.run.device)
    if config.run.sync_bn and device.type != "cuda":
        raise ConfigError("--sync-bn needs CUDA devices: PyTorch's SyncBatchNorm does not run on the CPU "
                          "(leave it off; batch-norm statistics are then averaged after each step)")
    if device.type == "cuda" and torch.cuda.device_count() < world_size:
        raise ConfigError(f"{world_size} processes need {world_size} GPUs, {torch.cuda.device_count()} are visible "
                          "(one process per GPU; or train on the CPU with --device cpu)")
