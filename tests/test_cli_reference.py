"""docs/cli.md cannot drift: it is what the commands generate, and it names every IMGTRANS_* variable."""
from __future__ import annotations

import re
from pathlib import Path

from imgtrans.cli import cli
from imgtrans.cli.reference import ENVIRONMENT, cli_reference

REPO = Path(__file__).resolve().parents[1]


def test_docs_cli_md_is_what_the_commands_generate() -> None:
    page = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert page == cli_reference(cli), "docs/cli.md is stale: run `python scripts/cli_reference.py`"
    for flag in ("--print-config", "--init", "--direction", "--format", "--precision"):
        assert f"`{flag}`" in page


def test_every_environment_variable_the_code_reads_is_documented() -> None:
    used = set()
    for path in [*(REPO / "imgtrans").rglob("*.py"), *(REPO / "plugins").rglob("*.py")]:
        used |= set(re.findall(r"IMGTRANS_[A-Z_]+", path.read_text(encoding="utf-8")))
    assert used <= set(ENVIRONMENT), sorted(used - set(ENVIRONMENT))
    assert set(ENVIRONMENT) <= used, sorted(set(ENVIRONMENT) - used)  # nothing documented that is gone
