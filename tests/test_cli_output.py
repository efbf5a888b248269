"""Readable output (issue 16, item 4): names are never cut, a pipe gets plain text, every table has --json."""
from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from rich.cells import cell_len

import imgtrans
from imgtrans.cli import cli

BOX = set("┏┓┗┛┃━│─┡┩╇┳┻╋└┘┌┐├┤┼")
TABLES = [["list"], ["list", "generator"], ["plugins"], ["zoo", "list"], ["data", "list"],
          ["info", "generator", "unet_256"], ["info", "recipe", "pix2pix"], ["info", "dataset", "basemap"]]


def run(*args: str, **env: str):
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "80", **env}, catch_exceptions=False)


def _names(args: list[str]) -> list[str]:
    """The names a table must show whole: what its --json lists."""
    if args[0] == "info":
        data = json.loads(run(*args, "--json").output)
        return [data["name"], *(a["name"] for a in data.get("arguments", []))]
    key = "name"
    return [row[key] for row in json.loads(run(*args, "--json").output)]


@pytest.mark.parametrize("args", TABLES, ids=" ".join)
def test_a_pipe_gets_plain_whole_rows(args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert not BOX & set(result.output), result.output[:400]
    assert "…" not in result.output and "\x1b[" not in result.output
    words = set(result.output.split())
    missing = [n for n in _names(args) if n not in words]
    assert not missing, f"cut or missing: {missing}"


@pytest.mark.parametrize("args", TABLES, ids=" ".join)
def test_an_80_column_terminal_never_cuts_a_name(args: list[str]) -> None:
    result = run(*args, TTY_COMPATIBLE="1")  # a terminal, as Rich sees it
    assert result.exit_code == 0, result.output
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.output)
    assert "…" not in output
    cells = {w.strip("│┃ ") for line in output.splitlines() for w in line.split()}
    missing = [n for n in _names(args) if n not in cells]
    assert not missing, f"cut or missing: {missing}\n{output}"
    if BOX & set(output):  # drawn: it fits; otherwise plain lines that the terminal wraps
        assert max(cell_len(line) for line in output.splitlines() if BOX & set(line)) <= 80


def test_zoo_list_has_whole_names_in_80_columns() -> None:
    """The finding: `zoo list` showed `facades_…` and `cyclegan…`."""
    output = run("zoo", "list", TTY_COMPATIBLE="1").output
    for name in ("facades_label2photo", "cyclegan_summer2winter_yosemite", "cyclegan_cityscapes_photo2label"):
        assert name in output


@pytest.mark.parametrize("args", [["list"], ["plugins"], ["zoo", "list"], ["data", "list"],
                                  ["info", "generator", "unet_256"], ["zoo", "info", "basemap_a2b"],
                                  ["zoo", "verify"], ["data", "info", "facades"]], ids=" ".join)
def test_every_table_command_has_json(args: list[str]) -> None:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    json.loads(result.output)


def test_plain_rows_can_be_cut_by_column() -> None:
    """`imgtrans list generator | awk '{print $2}'` gives the names."""
    lines = run("list", "generator").output.splitlines()
    assert [line.split()[1] for line in lines[1:]] == imgtrans.list_components("generator")


def test_a_plain_table_keeps_its_title() -> None:
    from rich.table import Table

    from imgtrans.cli.tables import plain_lines

    table = Table("", "score", title="facades / test [bold](fp16)[/bold]", caption="lower is better")
    table.add_row("model", "0.25")
    assert plain_lines(table) == ["facades / test (fp16)", "       score", "model  0.25", "lower is better"]


@pytest.mark.parametrize("args", [["zoo", "list"], ["data", "list"]], ids=" ".join)
def test_the_long_tables_are_drawn_within_80_columns(args: list[str]) -> None:
    """`zoo list` was 127 columns wide and `data list` 165 (printed plain, so the terminal wrapped
    every row): now the least useful columns give way, as the caption says, and names stay whole."""
    output = re.sub(r"\x1b\[[0-9;]*m", "", run(*args, TTY_COMPATIBLE="1").output)
    assert BOX & set(output) and max(cell_len(line) for line in output.splitlines()) <= 80, output
    assert "not shown at this width:" in output
    cells = {w.strip("│┃ ") for line in output.splitlines() for w in line.split()}
    assert not [n for n in _names(args) if n not in cells]


def test_data_list_fills_the_splits_of_every_set() -> None:
    rows = {row["name"]: row for row in json.loads(run("data", "list", "--json").output)}
    plain = {line.split()[0]: line for line in run("data", "list").output.splitlines()[1:]}
    assert "trainA, trainB, testA, testB" in plain["cyclegan_apple2orange"]  # was an empty cell
    assert set(rows["cyclegan_apple2orange"]["splits"]) == {"trainA", "trainB", "testA", "testB"}


def test_info_shows_each_arguments_help_in_80_columns() -> None:
    """The README promises `imgtrans info generator unet_256` shows every argument's help."""
    result = run("info", "generator", "unet_256", TTY_COMPATIBLE="1")
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.output)
    table = [line for line in output.splitlines() if BOX & set(line)]
    assert table and max(cell_len(line) for line in table) <= 80, output
    assert "help" in table[1] and "channels of the outermost level" in output, output
    for name in ("in_channels", "out_channels", "ngf", "norm", "dropout", "upsample"):
        assert any(line.startswith(f"│ {name} ") for line in table), name


def test_every_bundled_components_arguments_have_help() -> None:
    """Help is declared once, on the class that takes the argument (a subclass, such as unet_256,
    or a dataset format inherits it from its base class or interface)."""
    from imgtrans.core.registry import KINDS

    missing = [f"{kind} {name}: {arg['name']}" for kind in KINDS for name in imgtrans.list_components(kind)
               for arg in imgtrans.describe(kind, name)["arguments"] if not arg["help"]]
    assert not missing, missing


@pytest.mark.parametrize("command", ["translate", "export", "serve"])
def test_help_shows_examples_within_80_columns(command: str) -> None:
    output = run(command, "--help").output
    examples = output.split("Examples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(examples) >= 3 and all(line.strip().startswith(("imgtrans", "curl", "'")) for line in examples)
    assert any(line.strip().startswith(f"imgtrans {command} ") for line in examples)
    assert max(len(line) for line in examples) <= 80, examples
