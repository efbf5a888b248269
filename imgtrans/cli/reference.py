"""``docs/cli.md``: every command and option, the exit codes and the environment variables, in
one page generated from the Click commands themselves (``python scripts/cli_reference.py``), so a
test can regenerate it and fail when the page and the commands disagree."""
from __future__ import annotations

import click

#: every IMGTRANS_* variable the code reads, and what it does (a test greps the code for more)
ENVIRONMENT = {
    "IMGTRANS_HOME": "Cache root for datasets, zoo downloads and converted models [~/.cache/imgtrans].",
    "IMGTRANS_ZOO_MIRROR": "Base URL or folder to download zoo weights from instead of the published one.",
    "IMGTRANS_DATA_MIRROR": "Base URL or folder to download public datasets from instead.",
    "IMGTRANS_METRICS_MIRROR": "Base URL or folder to download the FID Inception weights from instead.",
    "IMGTRANS_OFFLINE": "1: never download; a missing file is a one-line error saying where to put it.",
    "IMGTRANS_MAX_DOWNLOAD": "Size cap of a download whose manifest declares no size (k/M/G/T suffixes) [20G].",
    "IMGTRANS_DOWNLOAD_STALL": "Seconds a download may deliver under 1 kB before it stops with an error [60].",
    "IMGTRANS_DOWNLOAD_MIN_RATE": "Slowest average a download may keep after its first stall window, bytes/s or "
                                  "4k, 1M [4k].",
    "IMGTRANS_MAX_IMAGE_PIXELS": "Largest image (pixels) decoded; 0 = no limit (decompression-bomb guard).",
    "IMGTRANS_DISABLE_PLUGINS": "Comma-separated plugin (entry-point) names to skip, or * for all.",
    "IMGTRANS_DEBUG": "1: show the traceback behind a one-line error (same as --debug).",
    "IMGTRANS_SERVE_TOKEN": "The bearer token of `imgtrans serve` (as --token, kept out of the process list).",
}

EXIT_CODES = {
    0: "success",
    1: "the work failed: a run stopped (lock held, disk full, NaN, plugin code raised), files failed "
       "to translate, a verification mismatch, a plugin failed to load (`imgtrans plugins`)",
    2: "the request was refused before any work: a bad option, setting, path, model or dataset",
    130: "interrupted (Ctrl-C); training says how to resume",
}


def _is_help(param: click.Parameter) -> bool:
    return "--help" in getattr(param, "opts", ())


def _option_line(param: click.Parameter) -> str:
    if isinstance(param, click.Argument):
        return f"- `{param.human_readable_name}` (argument)"
    opts = " / ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
    help_text = " ".join((getattr(param, "help", "") or "").split())
    return f"- {opts}: {help_text}" if help_text else f"- {opts}"


def _command(lines: list[str], name: str, command: click.Command, ctx: click.Context) -> None:
    sub_ctx = click.Context(command, info_name=name, parent=ctx)
    lines += [f"### `{sub_ctx.command_path}`", "", command.get_short_help_str(limit=300), ""]
    params = [p for p in command.get_params(sub_ctx) if not _is_help(p)]
    lines += [_option_line(p) for p in params]
    lines.append("")
    if isinstance(command, click.Group):
        for sub in command.list_commands(sub_ctx):
            _command(lines, sub, command.get_command(sub_ctx, sub), sub_ctx)


def cli_reference(cli: click.Group) -> str:
    """The Markdown of docs/cli.md for ``cli`` (plugins' commands included, as loaded now)."""
    ctx = click.Context(cli, info_name="imgtrans")
    lines = ["# Command-line reference", "",
             "Generated from the commands by `python scripts/cli_reference.py`; a test fails when this page "
             "and the commands disagree. `imgtrans COMMAND --help` says the same with examples; "
             "`imgtrans train RECIPE --help` adds the recipe's own options (see docs/recipes.md).", "",
             "## Exit codes", "", "| code | meaning |", "|---|---|",
             *(f"| {code} | {text} |" for code, text in EXIT_CODES.items()), "",
             "## Output", "",
             "Tables keep names whole. In a terminal narrower than a table, its least useful columns give "
             "way (the caption names them); a pipe or a file gets plain aligned rows, one line each, and "
             "messages on one line however long (no path wrapped mid-line), and training a line per epoch "
             "instead of a progress bar; every table command has `--json`.", "",
             "## Environment variables", "", "| variable | effect |", "|---|---|",
             *(f"| `{name}` | {text} |" for name, text in ENVIRONMENT.items()), "",
             "## Commands", ""]
    lines += ["### `imgtrans`", "", *[_option_line(p) for p in cli.get_params(ctx) if not _is_help(p)], ""]
    for name in cli.list_commands(ctx):
        _command(lines, name, cli.get_command(ctx, name), ctx)
    return "\n".join(lines).rstrip() + "\n"
