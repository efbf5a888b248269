"""What machine a benchmark ran on, what it can do at best, and how much arithmetic a network needs.

Shared by ``benchmarks/translate.py --whole-process`` and ``benchmarks/train.py --whole-process``
(imported as a sibling module: run them as ``python benchmarks/NAME.py``), so that every speed
figure comes with the facts needed to judge it: the CPU and its flags, the cores this process may
use, the load, torch's version and thread count, and achieved GFLOP/s against a peak measured on
the same machine a moment before.

Peaks (:func:`measure_peaks`), each the median of a few timed repeats after one warm-up, a few
seconds in all:

* fp32 GEMM: a 1536x1536 square matrix product;
* bf16 GEMM: the same in bfloat16, only where the CPU computes bf16 natively (AVX-512 BF16 or
  AMX).  Elsewhere bf16 is emulated, about 60x slower on AVX2-only CPUs, so it is not run at all;
* 3x3 convolution fp32: 64 -> 64 channels on a 128x128 map, batch 1, in NCHW and channels-last.
  The "fp32 conv peak" is the faster of the two.

FLOPs (:func:`count_flops`): :class:`torch.utils.flop_counter.FlopCounterMode` counts matrix
products and convolutions (forward, and the input and weight gradients a backward pass asks
for), a multiply-add being 2 FLOPs; ``conv_transpose`` is counted as the convolution it is.
Element-wise work (norms, activations, losses, Adam) is not counted.  Counting runs on the
``meta`` device, so it costs no arithmetic.  Figures at 256x256, batch 1: unet_256 forward
12.1 GFLOP (as issue 25 says), patchgan_70 (6 channels) forward 6.4 GFLOP, a pix2pix training
step 86.9 GFLOP (imgtrans's recipe step and the plain one alike; issue 25 quoted about 94 from
another count), resnet_9blocks forward 99 GFLOP, a CycleGAN step 1.88 TFLOP.

    python benchmarks/machine.py          # print this machine's header and peaks
"""
from __future__ import annotations

import copy
import os
import platform
import statistics
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from imgtrans.inference.engine import cpu_has_fast_bf16
from imgtrans.util.devices import choose_threads, usable_cores

#: CPU flags that decide how fast convolutions and matrix products can run
FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
GEMM_SIZE = 1536
CONV_SIZE = 128


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (Linux); empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return {}
    fields = {}
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def load_average() -> float:
    """The 1-minute load average (NaN where the OS has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def describe() -> dict[str, Any]:
    """The facts printed above every result: CPU, flags, cores, load, torch and its threads.

    ``torch_threads`` is what a fresh process gets by default (all cores, or ``OMP_NUM_THREADS``);
    ``imgtrans_threads`` is what the library's default (``choose_threads``) would pick right now."""
    info = _cpuinfo()
    flags = (info.get("flags") or info.get("Features") or "").split()
    choice = choose_threads()
    return {
        "cpu": info.get("model name") or platform.processor() or platform.machine(),
        "flags": [f for f in FLAGS if f in flags],
        "native_bf16": cpu_has_fast_bf16(),
        "cores": usable_cores(),
        "load_1min": load_average(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "imgtrans_threads": choice.threads,
        "imgtrans_threads_reason": choice.reason,
    }


def _rate(fn: Callable[[], object], flops: float, repeats: int) -> float:
    """Median GFLOP/s of ``fn`` over ``repeats`` timed calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return flops / statistics.median(times) / 1e9


def measure_peaks(threads: int, repeats: int = 5) -> dict[str, float | None]:
    """GFLOP/s of a large fp32 GEMM, a bf16 GEMM (None where bf16 is emulated: never run there)
    and a 3x3 fp32 convolution (NCHW and channels-last) at ``threads`` torch threads."""
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            n = GEMM_SIZE
            a, b = torch.randn(n, n), torch.randn(n, n)
            peaks: dict[str, float | None] = {"fp32_gemm": _rate(lambda: a @ b, 2 * n**3, repeats)}
            if cpu_has_fast_bf16():
                a16, b16 = a.bfloat16(), b.bfloat16()
                peaks["bf16_gemm"] = _rate(lambda: a16 @ b16, 2 * n**3, repeats)
            else:
                peaks["bf16_gemm"] = None
            c, s = 64, CONV_SIZE
            w = torch.randn(c, c, 3, 3)
            conv_flops = 2 * c * c * 9 * s * s
            x = torch.randn(1, c, s, s)
            peaks["conv3x3_fp32"] = _rate(lambda: F.conv2d(x, w, padding=1), conv_flops, 2 * repeats)
            x_cl, w_cl = (t.contiguous(memory_format=torch.channels_last) for t in (x, w))
            peaks["conv3x3_fp32_cl"] = _rate(lambda: F.conv2d(x_cl, w_cl, padding=1), conv_flops, 2 * repeats)
    finally:
        torch.set_num_threads(saved)
    peaks["fp32_conv"] = max(peaks["conv3x3_fp32"], peaks["conv3x3_fp32_cl"])  # type: ignore[type-var]
    return peaks


def peak_for(precision: str, peaks: dict[str, float | None]) -> tuple[str, float | None]:
    """The peak a run in ``precision`` is judged against: the bf16 GEMM for bf16, else the fp32 conv."""
    if precision.startswith("bf16"):
        return "bf16 GEMM", peaks["bf16_gemm"]
    return "fp32 conv", peaks["fp32_conv"]


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs (2 per multiply-add) of the matrix products and convolutions ``fn`` runs."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def forward_flops(net: torch.nn.Module, shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass of ``net`` (in eval mode) on an input of ``shape``, run on a copy
    on the meta device (no arithmetic)."""
    meta = copy.deepcopy(net).to("meta").eval()
    x = torch.empty(shape, device="meta")
    with torch.no_grad():
        return count_flops(lambda: meta(x))


def _gflops(value: float | None) -> str:
    return "not measured (bf16 emulated here)" if value is None else f"{value:.0f} GFLOP/s"


def say(text: str) -> None:
    """Print ``text`` wrapped to 80 columns (continuation lines indented), flushed: the benchmarks'
    prose reads in an 80-column terminal like their tables."""
    print(textwrap.fill(text, 80, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False), flush=True)


def header_lines(info: dict[str, Any], peaks: dict[int, dict[str, float | None]]) -> list[str]:
    """The machine header, lines under 80 columns; ``peaks`` by thread count."""
    omp = f", OMP_NUM_THREADS={info['omp_num_threads']}" if info["omp_num_threads"] else ""
    flags = f"flags: {' '.join(info['flags']) or '(none of interest)'}"
    bf16 = f"; bf16 {'native' if info['native_bf16'] else 'emulated'}"
    lines = [f"cpu: {info['cpu']}", *textwrap.wrap(flags + bf16.replace(" ", "\N{NO-BREAK SPACE}"), 80,
                                                   subsequent_indent="  ")]
    lines[-1] = lines[-1].replace("\N{NO-BREAK SPACE}", " ")
    lines += [f"cores: {info['cores']}, load {info['load_1min']:.2f}, torch {info['torch']}, "
              f"{info['torch_threads']} threads by default{omp}",
              f"imgtrans default threads now: {info['imgtrans_threads']} ({info['imgtrans_threads_reason']})"]
    for threads, p in sorted(peaks.items()):
        lines.append(f"peak at {threads} thread(s): fp32 GEMM {_gflops(p['fp32_gemm'])}, "
                     f"bf16 GEMM {_gflops(p['bf16_gemm'])}")
        lines.append(f"  3x3 conv fp32 {p['conv3x3_fp32']:.0f} GFLOP/s, "
                     f"channels-last {p['conv3x3_fp32_cl']:.0f} GFLOP/s")
    return lines


def main() -> None:
    info = describe()
    threads = sorted({info["torch_threads"], info["imgtrans_threads"]})
    print("\n".join(header_lines(info, {t: measure_peaks(t) for t in threads})))


if __name__ == "__main__":
    main()
