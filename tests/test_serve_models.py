"""`imgtrans serve`'s models: the name each is served under (a run's model under the run's name) and
what `GET /v1/models` says each does (its domains, what each direction means).  The page showing
it in a browser: test_serve_page.py."""
from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'imgtrans[serve]')")
pytest.importorskip("uvicorn", reason="the serve extra is not installed (pip install 'imgtrans[serve]')")

from click.testing import CliRunner  # noqa: E402
from serving import request, write_one_way, write_run, write_two_way  # noqa: E402

from imgtrans.cli import cli  # noqa: E402
from imgtrans.serve.app import create_app  # noqa: E402
from imgtrans.serve.models import load_served, split_spec  # noqa: E402
from imgtrans.serve.server import running  # noqa: E402


def test_a_runs_model_is_served_under_the_runs_name(tmp_path, monkeypatch) -> None:
    demo = write_run(tmp_path / "runs" / "demo")
    other = write_run(tmp_path / "runs" / "other")   # two runs' model.safetensors no longer clash
    best = write_one_way(tmp_path / "runs" / "demo" / "model_best.safetensors")
    (tmp_path / "runs" / "demo" / "checkpoints").mkdir()
    step = write_one_way(tmp_path / "runs" / "demo" / "checkpoints" / "step_5.safetensors")
    old = tmp_path / "runs" / "old"                  # a run from before marks: its config and metrics
    old.mkdir()
    (old / "config.toml").write_text("")
    (old / "metrics.jsonl").write_text("")
    old_model = write_one_way(old / "model.safetensors")
    (tmp_path / "mine").mkdir()
    plain = write_one_way(tmp_path / "mine" / "model.safetensors")  # not a run: the file's stem
    assert [split_spec(str(p))[0] for p in (demo, other, best, step, old_model, plain)] == [
        "demo", "other", "demo-model_best", "demo-step_5", "old", "model"]
    assert split_spec(f"mine={demo}") == ("mine", str(demo))  # NAME=MODEL still wins
    monkeypatch.chdir(demo.parent)
    assert split_spec("model.safetensors") == ("demo", "model.safetensors")
    served = load_served([str(demo), str(other), str(plain)])
    assert list(served) == ["demo", "other", "model"]


def test_a_run_directory_is_served_under_the_runs_name(tmp_path) -> None:
    demo = write_run(tmp_path / "demo")
    assert split_spec(str(demo.parent)) == ("demo", str(demo.parent))
    assert list(load_served([str(demo.parent)])) == ["demo"]            # its model.safetensors
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(cli, ["serve", "--port", "0", "--model", str(empty)])
    assert result.exit_code != 0 and len(result.output.strip().splitlines()) == 1, result.output
    assert "model.safetensors" in result.output


def test_models_say_what_they_do(tmp_path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    specs = [str(write_run(tmp_path / "demo")),                                   # domains from the dataset catalog
             f"z2h={write_one_way(folder / 'z2h.safetensors', direction='BtoA', domains={'A': 'horse', 'B': 'zebra'})}",
             str(write_two_way(folder / "both.safetensors")),                    # nothing recorded
             f"odd={write_one_way(folder / 'odd.safetensors', domains='{not json', dataset='/srv/secret/pairs')}",
             f"bad={write_one_way(folder / 'bad.safetensors', domains={'A': 3, 'B': 'map'})}",
             "zoo:basemap_a2b"]
    with running(create_app(load_served(specs))) as base:
        listed = {m["name"]: m for m in request(base, "GET", "/v1/models").json()["models"]}
    about = {name: (m["description"], m["domains"], m["means"]) for name, m in listed.items()}
    assert about == {
        "demo": ("pix2pix, trained on basemap, step 7", {"A": "satellite", "B": "shaded relief"},
                 {"AtoB": "satellite -> shaded relief"}),
        "z2h": ("pix2pix", {"A": "horse", "B": "zebra"}, {"BtoA": "zebra -> horse"}),
        "both": ("cyclegan", None, {"AtoB": "domain A -> domain B", "BtoA": "domain B -> domain A"}),
        "odd": ("pix2pix, trained on pairs", None, {"AtoB": "domain A -> domain B"}),  # no path leaves the server
        "bad": ("pix2pix", None, {"AtoB": "domain A -> domain B"}),
        "basemap_a2b": ("Satellite image (NASA Blue Marble) -> shaded relief map (Natural Earth), trained by "
                        "imgtrans offline", {"A": "satellite", "B": "shaded relief"},
                        {"AtoB": "satellite -> shaded relief"})}
    assert listed["basemap_a2b"]["channels"] == {"AtoB": {"in": 3, "out": 3}}  # the fields of before are kept
