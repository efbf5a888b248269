"""Option types shared by several commands, so that train, translate and eval read the same words."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from ..util.errors import ConfigError
from ..util.precision_names import SPELLINGS, inference_precision, training_precision


class Precision(click.ParamType):
    """``--precision``: any spelling of :mod:`imgtrans.util.precision_names`, converted to the command's own."""

    name = "precision"

    def __init__(self, convert: Callable[[str], str], shown: str):
        self._convert = convert
        self._shown = shown

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return f"[{self._shown}]"

    def convert(self, value, param, ctx):
        try:
            return self._convert(value)
        except ConfigError:
            self.fail(f"{value!r} is not a precision; use one of {', '.join(SPELLINGS)}", param, ctx)

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        return [CompletionItem(s) for s in SPELLINGS if s.startswith(incomplete.lower())]


#: train: stored as auto | fp32 | bf16-mixed | fp16-mixed (run.precision)
TRAIN_PRECISION = Precision(training_precision, "auto|fp32|bf16-mixed|fp16-mixed")
#: translate and eval: run as auto | fp32 | bf16 | fp16
INFERENCE_PRECISION = Precision(inference_precision, "auto|fp32|bf16|fp16")
#: said in each --precision help text
ALSO_ACCEPTED = "Lightning's names are accepted too (bf16-mixed, 16-mixed, 32-true, 32)."


class ModelSource(click.ParamType):
    """``--model``: a model file or ``zoo:NAME`` as given, or a run directory, which stands for its
    ``model.safetensors`` (said in one line on stderr, so the file used is never a guess); a
    directory without one is a one-line error naming the file looked for."""

    name = "model"

    def convert(self, value, param, ctx):
        from ..zoo.store import PREFIX, run_model_file

        folder = Path(str(value)).expanduser()
        if str(value).startswith(PREFIX) or not folder.is_dir():
            return value
        path = run_model_file(folder)
        click.echo(f"model: {path}", err=True)
        return str(path)


#: --model of translate, eval and export
MODEL = ModelSource()


class BatchSize(click.ParamType):
    """``--batch-size``: ``auto`` or a whole number >= 1."""

    name = "auto|N"

    def convert(self, value, param, ctx):
        if isinstance(value, int) or value == "auto":
            return value
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1:
            self.fail(f"{value!r} is neither 'auto' nor a whole number >= 1", param, ctx)
        return n


#: ``--threads``, the same on every command that computes
THREADS = click.option(
    "--threads", type=click.IntRange(1), metavar="N",
    help="CPU threads for torch.  [default: one per core that no other work is using when the command "
         "starts (on a busy 2-core machine 2 threads ran 5-9x slower than 1); OMP_NUM_THREADS when set]")


def apply_threads(threads: int | None, console) -> None:
    """Set torch's thread count (``--threads`` or the default) and say so when cores are left out."""
    from ..util.devices import THREADS_ADVICE, set_threads  # torch: after the command's early refusals

    choice = set_threads(threads)
    if choice.worth_saying:
        console.print(f"threads: {choice.threads} of {choice.cores} cores ({choice.reason}; {THREADS_ADVICE})",
                      markup=False, highlight=False)
