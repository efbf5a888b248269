"""``imgtrans export``: a trained generator as one ONNX, TorchScript or ``torch.export`` (pt2) file
that runs without imgtrans, verified before it is left in place.

The exported graph takes float32 ``(N, C, H, W)`` in [-1, 1] of any batch, height and width and
returns ``(N, out_channels, H, W)`` in [-1, 1]: padding to the stride and the crop are inside it
(:mod:`imgtrans.inference.export_graph`), the normalisation mode is baked in, dropout is off.  The file
carries the model's imgtrans metadata (:mod:`imgtrans.inference.export_formats`), so ``imgtrans translate
--model FILE.onnx`` knows its channels, stride and direction.

Why verify: exported graphs can be silently wrong (a shape baked in at trace time, an operator
translated differently), which is what users of the reference met.  So every export runs the
written file with its own runtime on two inputs of odd sizes whose padded sizes differ, compares
with the eager fp32 forward of ``imgtrans translate --precision fp32``, and refuses (removing
the file) when the outputs differ by more than :data:`MAX_GREY_LEVELS`.
"""
from __future__ import annotations

import contextlib
import copy
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..util.errors import ConfigError, ImgtransError, RunError

#: most difference (in grey levels of 8-bit output, 1 = 2/255 in [-1, 1]) an export may show
MAX_GREY_LEVELS = 1.0
RUNTIMES = {"onnx": "onnxruntime", "torchscript": "torch.jit.load", "pt2": "torch.export.load"}


@dataclass
class ExportReport:
    path: Path
    format: str
    direction: str
    norm_stats: str
    runtime: str                                    # what ran the file to verify it
    max_grey_levels: float                          # largest difference from eager fp32
    shapes: list[tuple[int, ...]] = field(default_factory=list)  # the verification inputs
    files: list[Path] = field(default_factory=list)  # everything written (a side-car beyond 2 GB)


def verification_inputs(channels: int, stride: int, seed: int = 0) -> list[torch.Tensor]:
    """Two batches of odd sizes (1 x 67 x 93, 2 x 131 x 45, taller for strides above 128) whose
    padded sizes differ, so a size baked into the graph shows."""
    tall = max(131, stride + 3) | 1
    g = torch.Generator().manual_seed(seed)
    return [torch.rand((1, channels, 67, 93), generator=g) * 2 - 1,
            torch.rand((2, channels, tall, 45), generator=g) * 2 - 1]


def export(model: Any, output: str | Path, *, format: str | None = None, direction: str | None = None,
           norm_stats: str | None = None, opset: int | None = None, dropout: bool = False,
           overwrite: bool = False, on_message: Callable[[str], None] | None = None) -> ExportReport:
    """Export ``model`` (a model file, ``zoo:NAME`` or a loaded ``TranslationModel``) to ``output``.

    ``format``: ``onnx``, ``torchscript`` or ``pt2`` (default: from ``output``'s suffix);
    ``direction``: of a two-way model; ``norm_stats``: ``running``/``instance`` (default: the
    model's recommendation); ``opset``: ONNX only.  ``dropout=True`` is refused: a graph with
    dropout masks drawn per image is not what exporters can write.  The file is verified (module
    docstring) before it replaces ``output``; an existing ``output`` needs ``overwrite``."""
    from .engine import run_generator
    from .export_formats import format_of, open_exported, require_onnx
    from .exported import EXPORTED_SUFFIXES
    from .model import NORM_STATS, TranslationModel, load_model

    if dropout:
        raise ConfigError("--dropout cannot be exported: an exported graph is deterministic (dropout off, as "
                          "`imgtrans translate` without --dropout); translate the .safetensors model with --dropout")
    if norm_stats is not None and norm_stats not in NORM_STATS:
        raise ConfigError(f"--norm-stats must be one of {', '.join(NORM_STATS)}, not {norm_stats!r}")
    out = Path(output)
    fmt = format_of(out, format)
    if opset is not None and fmt != "onnx":
        raise ConfigError(f"--opset applies to --format onnx only, not {fmt}")
    if fmt == "onnx":
        require_onnx()
    _check_output(out, overwrite, model.source if isinstance(model, TranslationModel) else model)
    source = model.source if isinstance(model, TranslationModel) else str(model)
    if source.lower().endswith(EXPORTED_SUFFIXES):  # its graph has no PyTorch weights to trace again
        raise ConfigError(f"{source} is an exported model and cannot be exported again; export the .safetensors "
                          "model it came from")
    loaded = model if isinstance(model, TranslationModel) else load_model(model, device="cpu", direction=direction)
    if direction is not None and loaded.direction != direction:
        raise ConfigError(f"the model given translates {loaded.direction}, not {direction}")
    norm_stats = norm_stats or loaded.recommended_norm_stats
    say = on_message or (lambda _: None)

    module, metadata = _prepare(loaded, fmt, norm_stats, opset)
    # the eager fp32 forward on the CPU, where the exported file runs (a GPU may use TF32)
    reference = loaded.generator if loaded.device.type == "cpu" else copy.deepcopy(loaded.generator).cpu()
    inputs = verification_inputs(loaded.in_channels, loaded.stride)
    made = [d for d in (out.parent, *out.parent.parents) if not d.exists()]  # deepest first
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    done = False
    try:
        staged = work / out.name
        say(f"exporting {loaded.source or 'the model'} ({loaded.direction}, norm_stats {norm_stats}) to {fmt}")
        _write(module, inputs[1], fmt, staged, metadata, opset)
        run = open_exported(staged, fmt, threads=torch.get_num_threads())
        worst = 0.0
        for x in inputs:
            try:
                got = run(x)
            except Exception as exc:
                raise RunError(f"the exported {fmt} file fails on a {'x'.join(map(str, x.shape))} input "
                               f"({_first_line(exc)}); {out} was not written") from None
            want = run_generator(reference, x, stride=loaded.stride, norm_stats=norm_stats)
            if got.shape != want.shape:
                raise RunError(f"the exported {fmt} file returns {tuple(got.shape)} for a {tuple(x.shape)} "
                               f"input, not {tuple(want.shape)}; {out} was not written")
            worst = max(worst, float((got - want).abs().max()) * 127.5)
        if not worst <= MAX_GREY_LEVELS:  # (also a NaN)
            raise RunError(f"the exported {fmt} file differs from the eager fp32 model by {worst:.3g} grey levels "
                           f"(more than {MAX_GREY_LEVELS:g}); {out} was not written")
        files = []
        for staged_file in sorted(work.iterdir()):
            target = out.parent / staged_file.name
            os.replace(staged_file, target)
            files.append(target)
        done = True
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for folder in made if not done else ():  # a failed export leaves no trace, not even a folder
            with contextlib.suppress(OSError):
                folder.rmdir()
    return ExportReport(out, fmt, loaded.direction, norm_stats, RUNTIMES[fmt], worst,
                        [tuple(x.shape) for x in inputs], files)


def _check_output(out: Path, overwrite: bool, source: Any) -> None:
    from ..util.destinations import check_writable_file

    check_writable_file(out, "-o")
    if source is not None and Path(str(source)).expanduser().exists() and \
            Path(str(source)).expanduser().resolve() == out.resolve():
        raise ImgtransError(f"-o {out} is the model being exported; choose another file name")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise ImgtransError(f"{out} exists (pass --overwrite to replace it)")


def _prepare(model: Any, fmt: str, norm_stats: str, opset: int | None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The module to export and the metadata that travels in the file."""
    from ..util.version import __version__
    from .export_formats import EXPORT_FORMAT
    from .export_graph import PaddedGenerator, baked_network

    entry = {**model.info, "in_channels": model.in_channels, "out_channels": model.out_channels,
             "stride": model.stride, "norm_stats": norm_stats}
    kept = {k: v for k, v in model.metadata.items() if k not in ("format", "networks", "directions")}
    kept.update(directions={model.direction: entry}, direction=model.direction, norm_stats=norm_stats,
                in_channels=model.in_channels, out_channels=model.out_channels, stride=model.stride)
    if isinstance(entry.get("generator"), dict):
        kept["generator"] = entry["generator"]
    metadata = {"format": EXPORT_FORMAT, "exported_as": fmt, "direction": model.direction,
                "norm_stats": norm_stats, "in_channels": model.in_channels, "out_channels": model.out_channels,
                "stride": model.stride, "value_range": "[-1, 1]", "source": Path(model.source).name,
                "imgtrans_version": __version__, "torch_version": torch.__version__, "opset": opset,
                "model": kept}
    return PaddedGenerator(baked_network(model.generator, norm_stats), model.stride).eval(), metadata


def _write(module: torch.nn.Module, example: torch.Tensor, fmt: str, path: Path, metadata: dict[str, Any],
           opset: int | None) -> None:
    from .export_formats import export_program, write_onnx, write_pt2, write_torchscript

    try:
        if fmt == "torchscript":
            write_torchscript(module, example, path, metadata)
            return
        program = export_program(module, example)
        if fmt == "pt2":
            write_pt2(program, path, metadata)
        else:
            write_onnx(program, example, path, metadata, opset)
    except ImgtransError:
        raise
    except Exception as exc:
        raise RunError(f"{fmt} export failed: {type(exc).__name__}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    return ((str(exc).strip().splitlines() or [type(exc).__name__])[0])[:300]
