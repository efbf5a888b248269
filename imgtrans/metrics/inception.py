"""The Inception-v3 weights FID and KID are computed with: fetched once, verified, then loaded.

Every published pix2pix / CycleGAN FID uses the TensorFlow FID Inception (2015-12-05) ported to
PyTorch; torch-fidelity publishes that port as ``weights-inception-2015-12-05-6726825d.pth``
(pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` has the same hash prefix).  The file is a
pickle, which can run code when loaded, so its sha256 is checked against the pinned value on the
very bytes that are then deserialised: a substituted or damaged file is refused, never loaded.

Cache: ``$IMGTRANS_HOME/metrics/<file>``; ``IMGTRANS_METRICS_MIRROR`` (a base URL or folder holding
the file) replaces the published URL; ``IMGTRANS_OFFLINE=1`` makes a missing file a one-line
error naming the file and where to put it; ``--fid-weights FILE`` uses a file placed by hand.
"""
from __future__ import annotations

import functools
import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..util.download import ChecksumMismatch, fetch, mirrored
from ..util.errors import ConfigError
from ..util.paths import home

MIRROR_ENV = "IMGTRANS_METRICS_MIRROR"
EXTRA_HINT = "install the metrics extra: pip install 'imgtrans[metrics]'"


@dataclass(frozen=True)
class WeightsFile:
    """A published weights file: where it is, and the bytes it must hold."""

    url: str
    sha256: str
    size: int

    @property
    def name(self) -> str:
        return Path(urlsplit(self.url).path).name


#: torch-fidelity's release of the TF FID Inception.  The sha256 and size are those reported by
#: several independent users of this file (and its first 8 hex digits are the name's torch.hub
#: hash prefix); they could not be checked against a download here, which had no internet.
INCEPTION = WeightsFile(
    url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
    sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
    size=95_628_359,
)


def weights_dir() -> Path:
    return home() / "metrics"


def inception_weights(local: str | Path | None = None, *, spec: WeightsFile | None = None, mirror: str | None = None,
                      progress: bool = True) -> Path:
    """The path of the Inception weights: ``local`` when given (verified when loaded), else the
    cached download, fetched (resumable, verified, atomic) on first use."""
    spec = spec or INCEPTION
    if local is not None:
        path = Path(local).expanduser()
        if not path.is_file():
            raise ConfigError(f"--fid-weights {path}: no such file (expected {spec.name}, sha256 {spec.sha256})")
        return path
    dest = weights_dir() / spec.name
    url = mirrored(spec.url, mirror or os.environ.get(MIRROR_ENV) or None)
    fetch(url, dest, sha256=spec.sha256, size=spec.size, progress=progress,
          description=f"FID Inception weights ({spec.name})",
          advice=f"or pass --fid-weights FILE (a copy of {spec.name}); or set {MIRROR_ENV} to a mirror "
                 "(a URL or folder holding it); or score without FID/KID (--metric l1 --metric psnr "
                 "--metric ssim)")
    return dest


def verified_bytes(path: Path, spec: WeightsFile | None = None) -> bytes:
    """The file's bytes, once their sha256 is the pinned one: what is hashed is what gets loaded."""
    import hashlib

    spec = spec or INCEPTION

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the FID weights {path}: {exc.strerror or exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec.sha256:
        raise ChecksumMismatch(f"{path} is not {spec.name}: its sha256 is {digest}, expected {spec.sha256}; "
                               "it was not loaded (FID from other weights is not comparable with published figures)")
    return data


_lock = threading.Lock()


@functools.lru_cache(maxsize=2)
def _extractor(path: str, spec: WeightsFile) -> Any:
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError:
        raise ConfigError(f"FID and KID need torch-fidelity; {EXTRA_HINT}") from None
    data = verified_bytes(Path(path), spec)
    return FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=io.BytesIO(data))


def inception_extractor(path: Path, spec: WeightsFile | None = None) -> Any:
    """torch-fidelity's Inception-v3 (2048-d pool features), built once per process and file."""
    with _lock:
        return _extractor(str(Path(path).resolve()), spec or INCEPTION)
