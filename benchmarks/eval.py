"""Evaluation speed: FID feature extraction alone, and the whole ``imgtrans eval`` on a split.

    python benchmarks/eval.py --fid-weights weights-inception-2015-12-05-6726825d.pth
    python benchmarks/eval.py --random-weights            # no weights file: random values, same network
    python benchmarks/eval.py --device cuda --precision bf16 --batch-size 16 --random-weights

Prints images/s of (1) torch-fidelity's Inception on 256x256 images in batches of ``--batch-size``
and (2) ``imgtrans.evaluate`` with ``--model`` (default the shipped ``zoo:basemap_a2b``) on
``--data`` / ``--split`` (default the basemap test split), scored by L1/PSNR/SSIM and by FID+KID.
``--random-weights`` builds the network with random values and pins their hash for this process
only: the speed is the real network's, the FID figures are meaningless.  Other processes on the
machine make single runs noisy; each figure is the median of ``--repeats`` runs after a warm-up.
"""
from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

import torch

import imgtrans
from imgtrans.metrics import inception


def _random_weights(folder: Path) -> Path:
    from unittest import mock

    import torch_fidelity.feature_extractor_inceptionv3 as fe

    with mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: None), \
            mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None):
        net = fe.FeatureExtractorInceptionV3("random", ["2048"])
    path = folder / "random-inception.pth"
    torch.save(net.state_dict(), path)
    data = path.read_bytes()
    inception.INCEPTION = inception.WeightsFile("file://" + str(path), hashlib.sha256(data).hexdigest(), len(data))
    return path


def _median(run, repeats: int) -> float:
    run()  # warm-up: weights loaded, kernels chosen
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fid-weights", help="the published Inception weights file")
    parser.add_argument("--random-weights", action="store_true", help="time the network with random values")
    parser.add_argument("--model", default="zoo:basemap_a2b")
    parser.add_argument("--data", default="basemap")
    parser.add_argument("--split", default="test")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--images", type=int, default=32, help="images for the feature-extraction timing")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not (args.fid_weights or args.random_weights):
        parser.error("give --fid-weights FILE or --random-weights")
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(args.fid_weights) if args.fid_weights else _random_weights(Path(tmp))
        from imgtrans.metrics.distribution import FID

        fid = FID(weights=str(weights))
        images = torch.rand(args.images, 3, 256, 256, generator=torch.Generator().manual_seed(0)) * 2 - 1
        images = images.to(args.device)

        def extract() -> None:
            for i in range(0, len(images), args.batch_size):
                with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
                    fid.features(images[i:i + args.batch_size])
            if images.is_cuda:
                torch.cuda.synchronize()

        t = _median(extract, args.repeats)
        print(f"FID features ({args.device}, {args.precision}, batch {args.batch_size}): "
              f"{len(images) / t:.1f} images/s")
        model = imgtrans.load_model(args.model, device=args.device)
        for metrics in (["l1", "psnr", "ssim"], ["fid", "kid"]):
            counted = []

            def whole() -> None:
                counted[:] = imgtrans.evaluate({"model": model}, args.data, args.split, metrics=metrics,
                                               precision=args.precision, batch_size=args.batch_size,
                                               fid_weights=weights)

            t = _median(whole, args.repeats)
            print(f"eval {args.data}/{args.split} with {'+'.join(metrics)}: {counted[0].count / t:.1f} images/s "
                  f"({counted[0].count} images, {t:.2f} s)")


if __name__ == "__main__":
    main()
