"""Write docs/cli.md from the Click commands (run after changing a command or option)."""
from pathlib import Path

from imgtrans.cli import cli
from imgtrans.cli.reference import cli_reference

if __name__ == "__main__":
    target = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
    target.write_text(cli_reference(cli), encoding="utf-8")
    print(f"wrote {target}")
