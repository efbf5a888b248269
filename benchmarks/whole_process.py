"""Whole-process speed comparisons: interleaved pairs, marginal rates, the report and the table.

Shared by ``benchmarks/translate.py --whole-process`` and ``benchmarks/train.py --whole-process``.
Each variant (the plain PyTorch loop, or an ``imgtrans`` command) is a command line that takes a
run length (images or steps).  Every variant runs as a fresh process at a short and a long
length; the marginal rate ``(long - short) / (t_long - t_short)`` cancels start-up (imports,
network construction, data checks, the final save) and leaves the steady rate a user gets on a
long job.  One repeat runs every variant once; repeats alternate the order (forwards, then
backwards), so drift in the machine's load falls on both sides of a comparison alike.  The
reported figures are medians over repeats; a ratio is the median of the per-repeat ratios of a
variant to its baseline (the plain loop at the same thread count), so each compares runs made
close together.

Thread counts (``--threads``, repeatable; ``default`` leaves the choice to each process: torch's
default for the plain loop, ``choose_threads`` for imgtrans) multiply the variants, so the report
can say which count was best under the load of the moment.
"""
from __future__ import annotations

import json
import math
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from machine import describe, header_lines, load_average, measure_peaks, peak_for, say


@dataclass
class Variant:
    """One command compared: ``argv(n)`` runs it for ``n`` images or steps."""

    name: str                              # "plain fp32", "imgtrans auto"
    threads: int | None                    # as requested; None: the process's own default
    resolved_threads: int                  # what it is expected to use (its peak is measured there)
    precision: str                         # the arithmetic it runs in (picks its peak)
    argv: Callable[[int], list[str]]
    baseline: str | None = None            # the name of the variant it is compared with
    rates: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return label(self.name, self.threads)


def label(name: str, threads: int | None) -> str:
    """``plain fp32 @2``, ``imgtrans auto @default``: a variant at one thread count."""
    return f"{name} @{'default' if threads is None else threads}"


def _threads(row: dict[str, Any]) -> str:
    """A row's thread count for the table: ``2``, or ``d=2`` for a process's own default (about 2)."""
    return str(row["threads"]) if row["threads"] else f"d={row['resolved_threads']}"


def parse_threads(values: list[str] | None) -> list[int | None]:
    """``--threads`` values: numbers, or ``default`` (None); none given -> [default]."""
    out: list[int | None] = []
    for value in values or ["default"]:
        if value == "default":
            out.append(None)
        elif value.isdigit() and int(value) > 0:
            out.append(int(value))
        else:
            raise SystemExit(f"--threads {value!r}: give a positive number or 'default'")
    return list(dict.fromkeys(out))


def process_seconds(argv: list[str]) -> float:
    """Wall seconds of one whole process; a failure stops the benchmark with its last error line."""
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SystemExit(f"{' '.join(argv[:6])} ... failed (exit {done.returncode}): {last}")
    return elapsed


def run_pairs(variants: list[Variant], short: int, long: int, repeats: int, unit: str, scratch: Path) -> None:
    """Fill each variant's ``rates`` (``unit`` per second), ``repeats`` interleaved rounds.
    Commands write their outputs under ``scratch``, which is emptied after each process (a
    training run leaves hundreds of MB of checkpoints)."""
    def seconds(argv: list[str]) -> float:
        elapsed = process_seconds(argv)
        shutil.rmtree(scratch, ignore_errors=True)
        return elapsed

    for r in range(repeats):
        order = variants if r % 2 == 0 else variants[::-1]
        for v in order:
            t_short, t_long = seconds(v.argv(short)), seconds(v.argv(long))
            v.rates.append((long - short) / (t_long - t_short) if t_long > t_short else math.nan)
        say(f"  round {r + 1}/{repeats}: " + ", ".join(f"{v.label} {_num(v.rates[-1])}" for v in variants)
              + f" {unit}/s, load {load_average():.2f}")


def _median(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else math.nan


def _num(value: float | None, spec: str = ".2f", suffix: str = "") -> str:
    """``value`` formatted, or n/a (NaN: a long run that was not slower than its short one)."""
    return "n/a" if value is None or not math.isfinite(value) else f"{value:{spec}}{suffix}"


def _runs(values: list[float]) -> str:
    return ", ".join(_num(v) for v in values)


def resolved(threads: int | None, default: int) -> int:
    """The thread count a variant runs with: as requested, else its process's ``default``."""
    return default if threads is None else threads


def measure_machine(info: dict[str, Any], variants: list[Variant]) -> dict[int, dict[str, float | None]]:
    """Print the machine header (``info`` from :func:`machine.describe`) and the peaks at every
    thread count the variants use; returns the peaks by thread count."""
    peaks = {t: measure_peaks(t) for t in sorted({v.resolved_threads for v in variants})}
    for line in header_lines(info, peaks):
        print(line, flush=True)
    return peaks


def report(title: str, unit: str, variants: list[Variant], flops: float, info: dict[str, Any],
           peaks: dict[int, dict[str, float | None]], settings: dict[str, Any], json_path: Path | None) -> None:
    """Print rates, ratios, GFLOP/s against the peak, the best thread count and a table;
    write every figure to ``json_path`` if given.  ``flops``: FLOPs per image or step."""
    after = describe()
    say(f"load before {info['load_1min']:.2f}, after {after['load_1min']:.2f}; imgtrans default threads "
          f"{info['imgtrans_threads']} before, {after['imgtrans_threads']} after ({after['imgtrans_threads_reason']})")
    by_label = {v.label: v for v in variants}
    rows = []
    for v in variants:
        median = _median(v.rates)
        finite = [r for r in v.rates if math.isfinite(r)]
        peak_name, peak = peak_for(v.precision, peaks[v.resolved_threads])
        gflops = flops * median / 1e9
        row: dict[str, Any] = {"name": v.name, "threads": v.threads, "resolved_threads": v.resolved_threads,
                               "precision": v.precision, "rates": v.rates, "median": median,
                               "min": min(finite, default=math.nan), "max": max(finite, default=math.nan),
                               "gflops": gflops,
                               "peak_name": peak_name, "peak_gflops": peak,
                               "fraction_of_peak": gflops / peak if peak else None, "ratios": None, "ratio": None}
        say(f"{v.label}: median {_num(median, '.3f')} {unit}/s (runs: {_runs(v.rates)}), "
              f"{_num(gflops, '.1f')} GFLOP/s" + (f" = {_num(gflops / peak, '.0%')} of the {peak_name} peak"
                                                  if peak else f" ({peak_name} peak not measured)"))
        if v.baseline:
            base = by_label[label(v.baseline, v.threads)]
            row["ratios"] = [a / b for a, b in zip(v.rates, base.rates)]
            row["ratio"] = _median(row["ratios"])
            row["baseline"] = v.baseline
            say(f"ratio {v.label} / {base.label}: {_num(row['ratio'], '.2f', 'x')} "
                  f"(per round: {_runs(row['ratios'])})")
        rows.append(row)
    if any(not math.isfinite(r) for v in variants for r in v.rates):
        print("n/a: a long run was not slower than its short one; lengthen the long runs")
    best = _best_threads(rows)
    if len({v.threads for v in variants}) > 1:
        for name, row in best.items():
            say(f"best thread count under this load for {name}: {_threads(row)} ({row['median']:.3f} {unit}/s)")
        for name, row in best.items():
            base = best.get(row.get("baseline") or "")
            if base:
                say(f"ratio at each one's best thread count, {name} @{_threads(row)} / "
                      f"{base['name']} @{_threads(base)}: {row['median'] / base['median']:.2f}x")
    print()
    say(title)
    for line in table(rows, unit):
        print(line)
    if json_path:
        json_path.write_text(json.dumps({"title": title, "unit": unit, "flops_per_unit": flops, "settings": settings,
                                         "machine_before": info, "machine_after": after,
                                         "peaks": {str(t): p for t, p in peaks.items()}, "variants": rows},
                                        indent=2, default=str) + "\n")
        print(f"wrote {json_path}")


def _best_threads(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per variant name, the row (thread count) with the highest median rate."""
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        if math.isfinite(row["median"]) and (row["name"] not in best or row["median"] > best[row["name"]]["median"]):
            best[row["name"]] = row
    return best


def table(rows: list[dict[str, Any]], unit: str) -> list[str]:
    """The compact summary (under 80 columns): one line per variant and thread count."""
    lines = [f"{'variant':19s} {'thr':>4s} {unit + '/s':>8s} {'min-max':>13s} {'ratio':>6s} {'GFLOP/s':>7s} "
             f"{'of peak':>16s}"]
    for row in rows:
        ratio = "-" if row["ratio"] is None else _num(row["ratio"], ".2f", "x")
        peak = "n/a" if row["fraction_of_peak"] is None else _num(row["fraction_of_peak"], ".0%", " " + row["peak_name"])
        span = f"{_num(row['min'])}-{_num(row['max'])}"
        lines.append(f"{row['name'][:19]:19s} {_threads(row):>4s} {_num(row['median'], '8.3f'):>8s} "
                     f"{span:>13s} {ratio:>6s} {_num(row['gflops'], '7.1f'):>7s} {peak:>16s}")
    if any(not row["threads"] for row in rows):
        lines.append("thr d=N: the process's own default, expected to be N threads")
    return lines
