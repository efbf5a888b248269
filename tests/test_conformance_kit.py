"""The conformance kit (imgtrans.testing) catches each rule it promises, naming the component,
its plugin and the rule; and it is usable without installing anything (use_plugin)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
import torch
from torch import nn

import imgtrans
from helpers import TinyGen
from imgtrans import hookimpl
from imgtrans.core.checkpoint import save_checkpoint
from imgtrans.core.interfaces import Discriminator, Loss, Recipe, Slot
from imgtrans.data.formats import AlignedDataset
from imgtrans.testing import ConformanceError, check_case, check_plugin, check_recipe, conformance_cases, use_plugin


Gen = TinyGen  # a conforming tiny generator; the subclasses below each break one rule


class Shrinks(Gen):
    """Loses a border."""

    def forward(self, x):
        return super().forward(x)[:, :, 1:-1, 1:-1]


class Unbounded(Gen):
    """No tanh."""

    def forward(self, x):
        return self.conv(x) * 10


class UnusedLayer(Gen):
    """A layer forward never calls."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3):
        super().__init__(in_channels, out_channels)
        self.spare = nn.Conv2d(3, 3, 1)


class NoDefault(Gen):
    """An argument without a default."""

    def __init__(self, width: int, in_channels: int = 3, out_channels: int = 3):
        super().__init__(in_channels, out_channels)


class Undocumented(Gen):
    pass


class ReadsMemoryOrder(Gen):
    """Reads its input's memory as if it were NCHW, whatever its layout."""

    def forward(self, x):
        return super().forward(x.as_strided(x.shape, x.contiguous().stride()))


class DeclaresAString(Gen):
    """Declares its layout preference as text."""

    channels_last_on_cpu = "yes"


class BatchMean(Discriminator):
    """Averages the batch away."""

    def __init__(self, in_channels: int = 6):
        super().__init__()
        self.in_channels, self.conv = in_channels, nn.Conv2d(in_channels, 1, 4, stride=2)

    def forward(self, x):
        return self.conv(x).mean(0, keepdim=True)


class NaiveCharbonnier(Loss):
    """sqrt(d^2 + eps^2): about eps, not 0, on identical images."""

    def forward(self, prediction, target):
        return torch.sqrt((prediction - target) ** 2 + 1e-2).mean()


class SwappedTargets(Loss):
    """An adversarial loss with its targets the wrong way round."""

    role = "adversarial"

    def forward(self, logits, target_is_real):
        target = torch.zeros_like(logits) if target_is_real else torch.ones_like(logits)
        return nn.functional.binary_cross_entropy_with_logits(logits, target)


class OddRole(Loss):
    """A role no slot can need."""

    role = "perceptual"

    def forward(self, prediction, target):
        return (prediction - target).abs().mean()


class Broken(AlignedDataset):
    """The bundled aligned format with one fault (``fault``), set per test."""

    fault = ""

    def __init__(self, root, split="train", transform=None, direction="AtoB", in_channels=3, out_channels=3,
                 max_items=None):
        f = self.fault
        super().__init__(root, split, None if f == "transform" else transform,
                         "AtoB" if f == "direction" else direction, 3 if f == "channels" else in_channels,
                         out_channels, None if f == "max-items" else max_items)

    def __getitem__(self, index):
        item = super().__getitem__(index)
        return {**item, "A": item["A"].double()} if self.fault == "items" else item


BROKEN = [("generator", Shrinks, "forward"), ("generator", Unbounded, "range"),
          ("generator", UnusedLayer, "gradients"), ("generator", NoDefault, "defaults"),
          ("generator", Undocumented, "described"), ("generator", ReadsMemoryOrder, "layout"),
          ("generator", DeclaresAString, "attributes"), ("discriminator", BatchMean, "forward"),
          ("loss", NaiveCharbonnier, "zero-on-identical"), ("loss", SwappedTargets, "real-below-fake"),
          ("loss", OddRole, "attributes")]


@pytest.mark.parametrize("kind,factory,rule", BROKEN, ids=[f"{k}-{r}" for k, _, r in BROKEN])
def test_a_broken_component_is_named_with_the_rule_it_breaks(kind, factory, rule, tmp_path) -> None:
    @hookimpl
    def register_components(registry):
        registry.add(kind, "faulty", factory)
        registry.generator("sound", Gen)

    with use_plugin("kitcheck", register_components):
        assert ("generator", "sound") in conformance_cases("kitcheck")
        check_case("generator", "sound", tmp_path)
        with pytest.raises(ConformanceError) as err:
            check_case(kind, "faulty", tmp_path)
    message = str(err.value)
    assert message.startswith(f"{kind} 'faulty' (plugin 'kitcheck') breaks rule '{rule}': "), message
    assert "\n" not in message


@pytest.mark.parametrize("fault", ["direction", "transform", "channels", "items", "max-items"])
def test_a_dataset_format_that_ignores_a_keyword_is_caught(fault, tmp_path) -> None:
    faulty = type("Faulty", (Broken,), {"fault": fault, "__doc__": f"Ignores {fault}."})

    @hookimpl
    def register_components(registry):
        registry.dataset_format("faulty", faulty)

    with use_plugin("kitdata", register_components):
        with pytest.raises(ConformanceError, match=f"dataset format 'faulty' .* breaks rule '{fault}'"):
            check_case("dataset_format", "faulty", tmp_path)


class Counting(Recipe):
    """A recipe whose step count changes its loss; resumable only if ``keeps_count``."""

    slots = {"generator": Slot("generator", "sound")}
    tiny_config = {"data": {"load_size": 32, "crop_size": 32}}
    keeps_count = True

    def __init__(self, components):
        super().__init__(components)
        self.count = 0

    def configure_optimizers(self, lr, betas):
        return {"generator": torch.optim.Adam(self.components["generator"].parameters(), lr=lr, betas=betas)}

    def train_step(self, batch, optimizers):
        self.count += 1
        optimizers["generator"].zero_grad()
        loss = (self.components["generator"](batch["A"]) - batch["B"]).abs().mean() * self.count
        self.backward(loss)
        self.step(optimizers["generator"])
        return {"loss": loss.detach()}

    def state_dict(self):
        return {"count": torch.tensor(self.count)} if self.keeps_count else {}

    def load_state_dict(self, state):
        self.count = int(state["count"]) if self.keeps_count else self.count


def test_a_recipe_that_forgets_state_on_resume_is_caught(tmp_path) -> None:
    forgetful = type("Forgetful", (Counting,), {"keeps_count": False, "__doc__": "Forgets its count."})

    @hookimpl
    def register_components(registry):
        registry.generator("sound", Gen)
        registry.recipe("counting", Counting)
        registry.recipe("forgetful", forgetful)

    with use_plugin("kitrecipe", register_components) as host:
        assert check_recipe(host.registry, "counting", tmp_path / "ok")["steps"] == 4
        with pytest.raises(ConformanceError, match="recipe 'forgetful' .* breaks rule 'resume': resumed after step 2"):
            check_recipe(host.registry, "forgetful", tmp_path / "bad")


def test_named_dataset_zoo_entry_and_command_rules(tmp_path) -> None:
    def build(dest, progress=None):
        from imgtrans.testing import write_aligned

        write_aligned(dest, "train", count=2, size=32)

    weights = tmp_path / "gen.safetensors"
    save_checkpoint(weights, {"generator": Gen()}, {"generator": {"name": "sound"}})
    zoo = tmp_path / "zoo.toml"
    zoo.write_text('[models.mislabelled]\ndescription = "declares other arguments than its file"\n'
                   'recipe = "pix2pix"\ngenerator = { name = "sound", in_channels = 1 }\n'
                   'source = "gen.safetensors"\nformat = "safetensors"\n')

    @hookimpl
    def register_components(registry):
        registry.generator("sound", Gen)

    @hookimpl
    def register_datasets(catalog):
        catalog.add("short", "declares more images than it builds", build=build, splits={"train": 3})

    @hookimpl
    def register_zoo(manifests):
        manifests.append(str(zoo))

    @hookimpl
    def register_commands(cli):
        @cli.command("kit-silent")
        def silent() -> None:
            pass

    with use_plugin("kitmore", register_components, register_datasets, register_zoo, register_commands):
        assert {k for k, _ in conformance_cases("kitmore")} == {"generator", "dataset", "zoo", "command"}
        with pytest.raises(ConformanceError) as err:
            check_plugin("kitmore", tmp_path / "work")
    failures = str(err.value).splitlines()
    assert len(failures) == 3, failures
    assert failures[0].startswith("dataset 'short' (plugin 'kitmore') breaks rule 'splits': ")
    assert "train: 2 images, expected 3" in failures[0]
    assert failures[1].startswith("zoo model 'mislabelled' (plugin 'kitmore') breaks rule 'loads': ")
    assert failures[2].startswith("command 'kit-silent' (plugin 'kitmore') breaks rule 'described': ")


def test_cases_of_a_missing_or_rejected_plugin_fail_loudly() -> None:
    with pytest.raises(ConformanceError, match="plugin 'nowhere' is not installed"):
        conformance_cases("nowhere")

    @hookimpl
    def register_component(registry):  # misspelt: the plugin is rejected
        pass

    with pytest.raises(ConformanceError, match="plugin 'typo' was rejected: .*register_component"):
        with use_plugin("typo", register_component):
            pass


def test_use_plugin_is_visible_to_the_library_then_gone(tmp_path) -> None:
    @hookimpl
    def register_components(registry):
        registry.generator("sound", Gen)

    with use_plugin("kitvisible", register_components):
        assert imgtrans.create_generator("sound").out_channels == 3
    assert "sound" not in imgtrans.list_components("generator")


def test_importing_imgtrans_does_not_import_the_kit_nor_the_kit_pytest() -> None:
    code = ("import sys, imgtrans; assert 'imgtrans.testing' not in sys.modules; "
            "import imgtrans.testing; assert 'pytest' not in sys.modules, 'pytest'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_kit_writes_the_layouts_it_promises(tmp_path) -> None:
    from imgtrans.data.detect import detect_format
    from imgtrans.testing import write_sample_layouts

    formats = {c.name: c.factory for c in imgtrans.get_registry().components("dataset_format")}
    for layout, root in write_sample_layouts(Path(tmp_path)).items():
        assert detect_format(root, formats) == layout


def test_a_set_metric_whose_optional_dependency_is_missing_still_passes(monkeypatch) -> None:
    """FID without torch-fidelity: the kit checks what it can and says it did not compute, so a plain
    `make test` (no extras) passes; before, the missing extra was reported as a broken rule."""
    import sys

    import imgtrans
    from imgtrans.testing.check_metrics import check_metric

    for name in [m for m in sys.modules if m == "torch_fidelity" or m.startswith("torch_fidelity.")] or ["torch_fidelity"]:
        monkeypatch.setitem(sys.modules, name, None)
    assert check_metric(imgtrans.get_registry(), "fid") == {"shape": "set", "better": "lower", "computed": False}
