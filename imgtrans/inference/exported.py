"""Running a file written by ``imgtrans export --format onnx`` through onnxruntime, with everything
``imgtrans translate`` does around the network (any size, batching, tiling, nothing lost).

The file becomes an :class:`ExportedGenerator`: a :class:`~imgtrans.core.interfaces.Generator` whose
forward pass is an onnxruntime session, so the engine, the tiling and the reading and writing
pipeline are exactly those of a PyTorch model.  The engine still pads to the stride before the
session runs (so ``--batch-size auto`` budgets the same padded pixels); the graph's own padding
then has nothing to do.  What the export fixed cannot be changed at run time: the precision
(fp32), the normalisation mode and dropout (off); asking for another is one line of error
(:meth:`ExportedGenerator.check_options`), never a silently different result.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch

from ..core.interfaces import Generator
from ..util.errors import CheckpointError, ConfigError
from .export_formats import open_exported, read_exported_metadata

#: model files that :func:`imgtrans.inference.model.load_model` hands to :func:`load_exported`
EXPORTED_SUFFIXES = (".onnx",)


class ExportedGenerator(Generator):
    """An exported network: float32 ``(N, C, H, W)`` in [-1, 1] -> ``(N, out_channels, H, W)``, on the CPU."""

    #: what ``auto`` precision means for it (:class:`~imgtrans.inference.precision_probe.AutoPrecision`)
    fixed_precision: ClassVar[str | None] = "fp32"

    def __init__(self, path: Path, metadata: dict[str, Any], run: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.path, self.run = path, run
        self.in_channels = int(metadata["in_channels"])
        self.out_channels = int(metadata["out_channels"])
        self.stride = int(metadata["stride"])
        self.norm_stats = str(metadata["norm_stats"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x).to(x.device)

    def __deepcopy__(self, memo: dict) -> ExportedGenerator:
        return self  # nothing to copy: the engine's private copies cast convolutions, and there are none

    def check_options(self, *, norm_stats: str, precision: str, compile: bool, dropout: bool) -> None:
        """Refuse, in one line, a run option the exported graph cannot honour."""
        name = self.path.name
        if precision != "fp32":
            raise ConfigError(f"{name} runs in fp32 through onnxruntime (--precision {precision} applies to "
                              f".safetensors models); pass --precision fp32")
        if norm_stats != self.norm_stats:
            raise ConfigError(f"{name} was exported with --norm-stats {self.norm_stats} baked in, not {norm_stats}; "
                              f"export the model again with --norm-stats {norm_stats}")
        if dropout:
            raise ConfigError(f"{name} has no dropout (exported graphs are deterministic); translate the "
                              ".safetensors model with --dropout")
        if compile:
            raise ConfigError(f"--compile applies to PyTorch models, not {name} (onnxruntime optimises it itself)")


def load_exported(path: str | Path, device: str | torch.device = "cpu",
                  direction: str | None = None) -> tuple[ExportedGenerator, dict[str, Any], str, dict[str, Any]]:
    """An exported ONNX file as what :func:`imgtrans.inference.model.load_model` wraps: the network,
    the model file's metadata it was exported from, its one direction, and that direction's entry."""
    path = Path(path)
    metadata = read_exported_metadata(path, "onnx")
    try:
        exported_direction = str(metadata["direction"])
        for key in ("in_channels", "out_channels", "stride"):
            int(metadata[key])
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{path}: its imgtrans metadata lacks the direction, channels or stride") from None
    if direction is not None and direction != exported_direction:
        raise CheckpointError(f"{path} was exported for {exported_direction} only, not {direction}; export the "
                              f"model again with --direction {direction}")
    providers = ["CPUExecutionProvider"]
    if torch.device(device).type == "cuda":
        import onnxruntime as ort

        if "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
    run = open_exported(path, "onnx", threads=torch.get_num_threads(), providers=providers)
    generator = ExportedGenerator(path, metadata, run).eval()
    model = metadata.get("model") if isinstance(metadata.get("model"), dict) else {}
    info = dict((model.get("directions") or {}).get(exported_direction) or {})
    info.update({k: metadata[k] for k in ("in_channels", "out_channels", "stride", "norm_stats")})
    return generator, model, exported_direction, info
