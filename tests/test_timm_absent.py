"""Without timm installed, the timm plugin loads cleanly and registers nothing (no broken-plugin
report, no component that cannot be built); this runs whether or not timm is installed."""
from __future__ import annotations

import sys

import imgtrans_timm
import pytest

from imgtrans.core.plugin_host import PluginHost, PluginInfo


@pytest.mark.parametrize("installed", [False, True])
def test_registers_only_with_timm(installed: bool, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    if installed and not imgtrans_timm.timm_installed():
        pytest.skip("timm is not installed: pip install 'imgtrans[backbones]'")
    monkeypatch.setattr(imgtrans_timm, "timm_installed", lambda: installed)
    host = PluginHost()
    host.register_module(imgtrans_timm, PluginInfo("timm", imgtrans_timm.__name__))
    host.collect()
    assert host.plugins["timm"].error is None and "timm" not in capsys.readouterr().err
    assert ("unet_timm" in host.registry.names("generator")) is installed
    assert ("perceptual" in host.registry.names("loss")) is installed


def test_importing_the_plugin_does_not_import_timm() -> None:
    import subprocess

    code = "import sys, imgtrans_timm; imgtrans_timm.timm_installed(); assert 'timm' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
