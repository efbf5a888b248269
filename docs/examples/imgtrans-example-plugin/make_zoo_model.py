"""Train and write the example's shipped zoo model, ``imgtrans_example/example_invert.safetensors``.

    python make_zoo_model.py       # from this folder, with the plugin NOT installed

Trains ``example_l1`` on ``example_stripes`` (a few seconds on a CPU) with the plugin's hooks
loaded from this source tree, keeps the generator and the metadata that describes it, and
prints the ``sha256`` and ``size`` to put into ``imgtrans_example/zoo.toml``.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "imgtrans_example" / "example_invert.safetensors"
TRAINED_WITH = ("imgtrans train example_l1 --data example_stripes --load-size 32 --crop-size 32 --set data.flip=false "
                "--set optim.lr=0.01 --epochs 30 --epochs-decay 30")


def main() -> None:
    os.environ["IMGTRANS_HOME"] = tempfile.mkdtemp(prefix="example-zoo-")  # the dataset is built there
    sys.path.insert(0, str(HERE))
    import imgtrans
    import imgtrans_example
    from imgtrans.core.checkpoint import load_checkpoint, save_checkpoint
    from imgtrans.core.config import resolve
    from imgtrans.testing import use_plugin

    # register_zoo is left out: it names the file this script makes
    with use_plugin("example", imgtrans_example.register_components, imgtrans_example.register_datasets) as host:
        run = Path(os.environ["IMGTRANS_HOME"]) / "run"
        config = resolve("example_l1", host.registry, [
            {"data": {"source": "example_stripes", "load_size": 32, "crop_size": 32, "flip": False},
             "optim": {"lr": 0.01, "epochs": 30, "epochs_decay": 30},
             "run": {"out": str(run), "progress": False, "device": "cpu", "preview_every": 60}}])
        result = imgtrans.train(config)
        scores = imgtrans.evaluate({"model": imgtrans.load_model(str(result.model_path)), "identity": None},
                                   "example_stripes", "test")
    ckpt = load_checkpoint(result.model_path, networks=["generator"])
    meta = {k: v for k, v in ckpt.metadata.items() if k not in ("format", "imgtrans_version", "networks", "config")}
    origin = {"plugin": "example", "distribution": "imgtrans-example-plugin", "version": "0.1.0"}
    for entry in meta["directions"].values():
        entry["provided_by"] = origin
    meta.update(zoo_name="example_invert", source=OUT.name, trained_with=TRAINED_WITH)
    save_checkpoint(OUT, {"generator": ckpt.state_dict("generator")}, meta)
    data = OUT.read_bytes()
    print(f"wrote {OUT}\nsha256 = \"{hashlib.sha256(data).hexdigest()}\"\nsize = {len(data)}")
    model, identity = scores
    print(f"eval = {{ split = \"test\", images = {model.count}, l1 = {model.l1:.4f}, psnr = {model.psnr:.2f}, "
          f"identity_l1 = {identity.l1:.4f} }}")


if __name__ == "__main__":
    main()
