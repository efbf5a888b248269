"""Writing and reading the three export formats, each one file with the imgtrans metadata inside.

* ``onnx``: ``torch.export`` then ``torch.onnx.export`` of that program; the metadata is the
  ONNX model's ``metadata_props`` entry ``imgtrans`` (JSON).  Weights are stored inside the file;
  only a model over 2 GB (the protobuf limit) gets a side-car ``FILE.data``.
* ``torchscript``: the generator traced at one padded size (convolutional networks do not depend
  on it), inside the scripted padding of :class:`~imgtrans.inference.export_graph.PaddedGenerator`;
  ``torch.jit.save`` with the metadata as the extra file ``imgtrans.json``.
* ``pt2``: ``torch.export.save`` of the exported program, metadata as the extra file ``imgtrans.json``.

Batch, height and width are dynamic in all three.  :func:`open_exported` loads any of them back as
a function from a float32 tensor to a float32 tensor, which is what verification and
``imgtrans translate`` run.
"""
from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from ..core.checkpoint_fit import check_declared_sizes
from ..util.errors import CheckpointError, ConfigError, ImgtransError

FORMATS = ("onnx", "torchscript", "pt2")
#: file suffix -> format, for ``-o FILE`` without ``--format`` and for loading
SUFFIXES = {".onnx": "onnx", ".pt": "torchscript", ".ts": "torchscript", ".torchscript": "torchscript",
            ".pt2": "pt2"}
METADATA_KEY = "imgtrans"
EXTRA_FILE = "imgtrans.json"
#: the protobuf limit of one ONNX file
ONNX_SINGLE_FILE_BYTES = 2 * 1024 ** 3


def format_of(path: str | Path, fmt: str | None = None) -> str:
    """``fmt`` when given, else the format ``path``'s suffix names."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ImgtransError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise ImgtransError(f"cannot tell the format of {path} from its suffix {suffix or '(none)'}: pass "
                            f"--format onnx|torchscript|pt2 (or name it .onnx, .pt or .pt2)")
    return SUFFIXES[suffix]


def require_onnx() -> None:
    """One line naming the extra when onnx, onnxscript or onnxruntime is missing."""
    import importlib.util

    missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImgtransError(f"ONNX needs {', '.join(missing)}: pip install 'imgtrans[onnx]'")


# ----------------------------------------------------------------------------- writing

def export_program(module: torch.nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """``torch.export`` with batch, height and width dynamic.  Sizes of intermediate feature maps
    are not specialised on being 1 (``backed_size_oblivious``), or a U-Net-256 traced at 256x256
    (a 1x1 bottleneck) would only accept inputs of at most 256 pixels."""
    import torch.fx.experimental._config as fx_config
    from torch.export import Dim

    dims = {"x": {0: Dim.AUTO, 2: Dim.AUTO, 3: Dim.AUTO}}
    with fx_config.patch(backed_size_oblivious=True), torch.no_grad():
        return torch.export.export(module, (example,), dynamic_shapes=dims)


def write_onnx(program: torch.export.ExportedProgram, example: torch.Tensor, path: Path,
               metadata: dict[str, Any], opset: int | None) -> None:
    require_onnx()
    import io

    size = sum(t.numel() * t.element_size() for t in program.state_dict.values())
    # the exporter's progress lines (stdout) and its logged warnings about opset conversion, which
    # the check below turns into one line
    with contextlib.redirect_stdout(io.StringIO()), _quiet("torch.onnx", "onnxscript", "onnx_ir"):
        onnx_program = torch.onnx.export(program, (example,), dynamo=True, opset_version=opset,
                                         input_names=["image"], output_names=["translated"],
                                         external_data=size >= ONNX_SINGLE_FILE_BYTES)
    written = onnx_program.model.opset_imports.get("")
    if opset is not None and written != opset:
        raise ConfigError(f"--opset {opset} is not available: torch.onnx could only write opset {written} for this "
                          f"model (it converts to other opsets where it can)")
    shape = onnx_program.model.graph.inputs[0].shape  # name the dynamic axes for the file's users
    onnx_program.rename_axes({shape[i]: name for i, name in ((0, "batch"), (2, "height"), (3, "width"))
                              if not isinstance(shape[i], int)})
    onnx_program.model.metadata_props[METADATA_KEY] = json.dumps(metadata)
    onnx_program.save(str(path), external_data=size >= ONNX_SINGLE_FILE_BYTES)


@contextlib.contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """Only errors from ``loggers`` while the block runs."""
    saved = [(logging.getLogger(name), logging.getLogger(name).level) for name in loggers]
    for logger, _ in saved:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


def write_torchscript(module: torch.nn.Module, example: torch.Tensor, path: Path, metadata: dict[str, Any]) -> None:
    import warnings

    from .export_graph import PaddedGenerator

    assert isinstance(module, PaddedGenerator)
    stride = module.stride
    padded = example.new_zeros(example.shape[0], example.shape[1], -(-example.shape[2] // stride) * stride,
                               -(-example.shape[3] // stride) * stride)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TorchScript is deprecated in favour of torch.export; still asked for
        traced = torch.jit.trace(module.net, padded, check_trace=False)
        scripted = torch.jit.script(PaddedGenerator(traced, stride))
        torch.jit.save(scripted, str(path), _extra_files={EXTRA_FILE: json.dumps(metadata)})


def write_pt2(program: torch.export.ExportedProgram, path: Path, metadata: dict[str, Any]) -> None:
    torch.export.save(program, str(path), extra_files={EXTRA_FILE: json.dumps(metadata)})


# ----------------------------------------------------------------------------- reading

def read_exported_metadata(path: str | Path, fmt: str | None = None) -> dict[str, Any]:
    """The imgtrans metadata of an exported file (one line naming the file when it has none)."""
    path = Path(path)
    fmt = format_of(path, fmt)
    if not path.is_file():
        raise CheckpointError(f"model not found: {path}")
    try:
        if fmt == "onnx":
            require_onnx()
            import onnx

            proto = onnx.load(str(path), load_external_data=False)
            raw = {p.key: p.value for p in proto.metadata_props}.get(METADATA_KEY)
        else:
            extra = {EXTRA_FILE: ""}
            if fmt == "torchscript":
                _jit_load(path, extra)
            else:
                torch.export.load(str(path), extra_files=extra)
            raw = extra[EXTRA_FILE] or None
    except ImgtransError:
        raise
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable {fmt} file ({_first_line(exc)})") from None
    if not raw:
        raise CheckpointError(f"{path} has no imgtrans metadata: it was not written by `imgtrans export`")
    try:
        metadata = json.loads(raw)
    except (json.JSONDecodeError, TypeError):
        raise CheckpointError(f"{path}: its imgtrans metadata is corrupt") from None
    if not isinstance(metadata, dict) or metadata.get("format") != EXPORT_FORMAT:
        raise CheckpointError(f"{path}: its imgtrans metadata is not of a known version ({EXPORT_FORMAT})")
    check_declared_sizes(path, metadata)  # a stride of 2**30 tried to allocate 11.7 GB
    return metadata


#: the version of the metadata an exported file carries
EXPORT_FORMAT = "imgtrans-export/1"


def open_exported(path: str | Path, fmt: str | None = None, *, threads: int | None = None,
                  providers: list[str] | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function running the exported file: float32 ``(N, C, H, W)`` -> float32 (on the CPU)."""
    path = Path(path)
    fmt = format_of(path, fmt)
    try:
        if fmt == "onnx":
            return _onnx_runner(path, threads, providers)
        if fmt == "torchscript":
            module = _jit_load(path).eval()
        else:
            module = torch.export.load(str(path)).module()
    except ImgtransError:
        raise
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable {fmt} file ({_first_line(exc)})") from None

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(x.float().contiguous()).float()

    return run


def _onnx_runner(path: Path, threads: int | None, providers: list[str] | None) -> Callable[[torch.Tensor], torch.Tensor]:
    require_onnx()
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: no warnings about unused initialisers on stderr
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        out = session.run(None, {name: x.detach().to("cpu", torch.float32).contiguous().numpy()})[0]
        return torch.from_numpy(out)

    return run


def _jit_load(path: Path, extra: dict[str, str] | None = None) -> torch.jit.ScriptModule:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated in favour of torch.export: asked for anyway
        return torch.jit.load(str(path), map_location="cpu", _extra_files=extra or {})


def _first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text[:300]
