"""``--val-metric`` and ``--keep-best``: validation scores with any registered metric, and the best
checkpoint by one of them survives worse scores and resumes.  The scores are scripted by a metric
registered through the plugin hooks, as a third party's would be, so the test decides which step
is best."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from helpers import TINY, write_aligned

import imgtrans
from imgtrans import hookimpl
from imgtrans.cli import cli
from imgtrans.core.checkpoint import load_checkpoint, read_metadata
from imgtrans.core.config import resolve
from imgtrans.core.interfaces import PairedMetric, SetMetric
from imgtrans.testing import use_plugin
from imgtrans.training.resume import resume_config

#: the scores the next validations give, one per validation (the val split has one image)
SCRIPT: list[float] = []


class Scripted(PairedMetric):
    """Scores taken from SCRIPT (lower is better)."""

    better = "lower"

    def score(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.full((len(prediction),), SCRIPT.pop(0))


class MeanDistance(SetMetric):
    """A set metric on one feature per image (its mean): squared distance of the two sets' means."""

    better = "lower"
    min_images = 2

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return images.float().mean((1, 2, 3))[:, None]

    def compute(self, generated: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
        return {"distance": float((generated.mean() - reference.mean()) ** 2)}


@pytest.fixture
def host():
    @hookimpl
    def register_components(registry):
        registry.metric("scripted", Scripted)
        registry.metric("meandist", MeanDistance)

    with use_plugin("best_test_metrics", register_components) as plugin_host:
        yield plugin_host


def _config(registry, data: Path, out: Path, epochs: int, recipe: str = "pix2pix", **run):
    size = {"load_size": 64, "crop_size": 64} if recipe == "pix2pix" else {"load_size": 32, "crop_size": 32}
    tiny = TINY if recipe == "pix2pix" else registry.get("recipe", recipe).factory.tiny_config
    return resolve(recipe, registry, [tiny, {"data": {"source": str(data), **size},
                                             "optim": {"epochs": epochs, "epochs_decay": 0},
                                             "run": {"out": str(out), "progress": False, "validate_every": 1,
                                                     **run}}])


def _best(path: Path) -> dict:
    return read_metadata(path)["best"]


def _generator(path: Path, slot: str = "generator") -> dict[str, torch.Tensor]:
    return load_checkpoint(path).state_dict(slot)


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_keep_best_survives_worse_scores_and_resumes_and_its_model_translates(host, tmp_path: Path) -> None:
    data = write_aligned(tmp_path / "data", "train", count=1)  # one step an epoch, validated every epoch
    write_aligned(data, "val", count=1, seed=3)
    run = tmp_path / "run"
    config = _config(host.registry, data, run, epochs=3, val_metrics=["l1"], keep_best="scripted")
    assert config.run.keep_best == "val_scripted" and config.run.val_metrics == ["l1", "scripted"]

    SCRIPT[:] = [0.5, 0.2, 0.4]
    imgtrans.train(config)
    assert SCRIPT == []
    best = _best(run / "checkpoints" / "best.safetensors")
    assert best == {"metric": "val_scripted", "score": pytest.approx(0.2), "better": "lower", "step": 2, "epoch": 2}
    assert _best(run / "model_best.safetensors") == best
    step2 = _generator(run / "checkpoints" / "step_00000002.safetensors")
    assert _same(_generator(run / "model_best.safetensors"), step2)  # not replaced by step 3's 0.4
    assert read_metadata(run / "model_best.safetensors")["networks"] == ["generator"]
    assert "Best by val_scripted (lower is better)" in (run / "index.html").read_text()

    # a run killed between the two writes: the model file is rebuilt from the best checkpoint
    (run / "model_best.safetensors").unlink()
    SCRIPT[:] = [0.3]  # worse than the 0.2 before the resume
    imgtrans.train(resume_config(run, host.registry, {"epochs": 4}), resume=True)
    assert SCRIPT == [] and _best(run / "checkpoints" / "best.safetensors")["step"] == 2
    assert _same(_generator(run / "model_best.safetensors"), step2)

    SCRIPT[:] = [0.1]
    imgtrans.train(resume_config(run, host.registry, {"epochs": 5}), resume=True)
    assert _best(run / "model_best.safetensors")["step"] == 5
    assert _same(_generator(run / "model_best.safetensors"), _generator(run / "model.safetensors"))
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["val_scripted"] for r in records if "val_scripted" in r] == pytest.approx([0.5, 0.2, 0.4, 0.3, 0.1])

    out = tmp_path / "out.png"
    result = CliRunner().invoke(cli, ["translate", "--model", str(run / "model_best.safetensors"),
                                      str(data / "val" / "pair_00.png"), str(out)])
    assert result.exit_code == 0 and out.is_file(), result.output


def test_a_set_metric_validates_both_directions_and_chooses_the_best(host, tmp_path: Path) -> None:
    """CycleGAN validated by a set metric: recorded per direction under its registered name (not the
    key its compute returns), and --keep-best BtoA_meandist follows the way back's figures."""
    data = write_aligned(tmp_path / "data", "train", count=1, size=32)
    write_aligned(data, "val", count=2, size=32, seed=3)
    run = tmp_path / "run"
    config = _config(host.registry, data, run, epochs=3, recipe="cyclegan", val_metrics=["meandist"],
                     keep_best="BtoA_meandist")
    imgtrans.train(config)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if "val_meandist" in r]
    assert len(val) == 3 and all("val_BtoA_meandist" in r and r["val_images"] == 2 for r in val)
    way_back = [r["val_BtoA_meandist"] for r in val]
    best = _best(run / "checkpoints" / "best.safetensors")
    assert best["metric"] == "val_BtoA_meandist" and best["score"] == min(way_back)
    assert best["step"] == val[way_back.index(min(way_back))]["step"]
    assert read_metadata(run / "model_best.safetensors")["networks"] == ["generator_a", "generator_b"]
    page = (run / "index.html").read_text()
    assert "val_BtoA_meandist" in page and "Best by val_BtoA_meandist" in page


def _train_cli(data: Path, out: Path, *args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(cli, ["train", "pix2pix", "--data", str(data), "--out", str(out), "--quiet",
                                      "--set", "generator.name=unet", "--set", "generator.num_downs=6",
                                      "--set", "generator.ngf=4", "--set", "discriminator.ndf=4",
                                      "--load-size", "64", "--crop-size", "64", "--max-steps", "1", *args])
    return result.exit_code, result.output.strip().splitlines()


@pytest.mark.parametrize("args,message", [
    (["--keep-best", "l1"], "--keep-best val_l1 needs --validate-every N"),
    (["--keep-best", "BtoA_l1", "--validate-every", "1"], "this recipe trains no BtoA generator"),
    (["--keep-best", "fdi", "--validate-every", "1"], "unknown metric 'fdi'. Did you mean 'fid'?"),
    (["--val-metric", "sism", "--validate-every", "1"], "unknown metric 'sism'. Did you mean 'ssim'?"),
    (["--val-metric", "fid", "--validate-every", "1"], "--val-metric fid needs at least 2 validation images, but "
                                                       "the 'val' split has 1"),
    (["--keep-best", "l1", "--validate-every", "1", "--set", "run.validate_split=nope"],
     "--keep-best val_l1 needs validation, but the dataset has no 'nope' split"),
])
def test_validation_settings_that_cannot_work_are_refused_at_start_up(args, message, tmp_path: Path) -> None:
    data = write_aligned(tmp_path / "data", "train", count=1)
    write_aligned(data, "val", count=1, seed=3)
    code, lines = _train_cli(data, tmp_path / "run", *args)
    assert code == 2 and len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "run").exists()  # refused before the run directory is made
