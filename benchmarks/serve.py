"""`imgtrans serve` on loopback: throughput and latency for 1, 4 and 16 concurrent clients, with
dynamic batching and one request at a time (``--max-batch 1``).

    python benchmarks/serve.py                                  # untrained full-size unet_256, 256x256 PNGs
    python benchmarks/serve.py --model zoo:basemap_a2b --requests 128
    python benchmarks/serve.py --clients 1,4 --requests 16 --ngf 8    # a quick smoke run

The server runs as a separate process (``python -m imgtrans serve --port 0``), as it would in use,
so the clients' threads do not share its interpreter.  Each client sends one PNG at a time (the
next as soon as the answer arrives) until ``--requests`` answers have come back in all; a warm-up
round per configuration is not timed.  Latency is from sending the request to reading the whole
answer.  Other processes on the machine make figures noisy: repeat before comparing small gaps.
"""
from __future__ import annotations

import argparse
import http.client
import io
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image


def _png(size: int, seed: int) -> bytes:
    pixels = (np.random.default_rng(seed).random((size, size, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def _model(ngf: int, folder: Path) -> str:
    import torch

    import imgtrans
    from imgtrans.core.checkpoint import save_checkpoint

    torch.manual_seed(0)
    gen = imgtrans.create_generator("unet_256", ngf=ngf)
    meta = {"recipe": "pix2pix", "generator": {"name": "unet_256", "ngf": ngf}, "in_channels": 3,
            "out_channels": 3, "stride": 256, "direction": "AtoB", "norm_stats": "running"}
    return str(save_checkpoint(folder / "bench.safetensors", {"generator": gen}, meta))


class Server:
    """``imgtrans serve`` in a child process on a free loopback port."""

    def __init__(self, model: str, extra: list[str]):
        self.proc = subprocess.Popen([sys.executable, "-m", "imgtrans", "serve", "--model", f"bench={model}",
                                      "--port", "0", "--log-level", "warning", *extra],
                                     stderr=subprocess.PIPE, text=True)
        for line in self.proc.stderr:
            found = re.search(r"at http://127\.0\.0\.1:(\d+)/", line)
            if found:
                self.port = int(found.group(1))
                break
        else:
            raise SystemExit(f"the server did not start (exit status {self.proc.wait()})")
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()  # keep draining its log

    def post(self, body: bytes) -> float:
        start = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        try:
            conn.request("POST", "/v1/translate?model=bench", body=body)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise SystemExit(f"the server answered {response.status}")
        finally:
            conn.close()
        return time.perf_counter() - start

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def run(server: Server, bodies: list[bytes], clients: int, requests: int) -> tuple[float, list[float]]:
    """(seconds, latencies) for ``requests`` answers to ``clients`` clients sending one at a time."""
    counter, lock = iter(range(requests)), threading.Lock()

    def client(_: int) -> list[float]:
        latencies = []
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return latencies
            latencies.append(server.post(bodies[i % len(bodies)]))

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [x for per_client in pool.map(client, range(clients)) for x in per_client]
    return time.perf_counter() - start, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a checkpoint or zoo:NAME instead of an untrained unet_256")
    parser.add_argument("--ngf", type=int, default=64, help="width of the untrained unet_256 (without --model)")
    parser.add_argument("--size", type=int, default=256, help="side of the square noise PNGs sent")
    parser.add_argument("--clients", default="1,4,16", help="comma-separated numbers of concurrent clients")
    parser.add_argument("--requests", type=int, default=64, help="answers timed per configuration")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--batch-wait-ms", default="5")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    bodies = [_png(args.size, seed) for seed in range(16)]
    modes = {"dynamic batching": [], "one at a time": ["--max-batch", "1"]}
    common = ["--precision", args.precision, "--batch-wait-ms", args.batch_wait_ms,
              "--queue-size", str(max(clients) * 2)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or _model(args.ngf, Path(tmp))
        print(f"model {args.model or f'untrained unet_256 ngf {args.ngf}'}, {args.size}x{args.size} PNGs, "
              f"precision {args.precision}, {os.cpu_count()} CPUs, {args.requests} requests per row", flush=True)
        for mode, extra in modes.items():
            server = Server(model, common + extra)
            try:
                for c in clients:
                    run(server, bodies, c, c)  # warm-up: one request per client
                    seconds, latencies = run(server, bodies, c, args.requests)
                    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
                    rows.append((mode, c, len(latencies) / seconds, q[49] * 1000, q[98] * 1000))
                    print(f"  {mode:17s} {c:3d} client(s): {rows[-1][2]:6.2f} img/s, p50 {rows[-1][3]:7.1f} ms, "
                          f"p99 {rows[-1][4]:7.1f} ms", flush=True)
            finally:
                server.close()
    print("\n| clients | batching img/s | p50 ms | p99 ms | one-at-a-time img/s | p50 ms | p99 ms | gain |")
    print("|---|---|---|---|---|---|---|---|")
    by = {(m, c): r for m, c, *r in rows}
    for c in clients:
        b, o = by[("dynamic batching", c)], by[("one at a time", c)]
        print(f"| {c} | {b[0]:.2f} | {b[1]:.0f} | {b[2]:.0f} | {o[0]:.2f} | {o[1]:.0f} | {o[2]:.0f} | "
              f"{b[0] / o[0]:.2f}x |")


if __name__ == "__main__":
    main()
