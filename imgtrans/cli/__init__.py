"""The ``imgtrans`` command line: thin Click commands over the library API.

Commands from plugins (``register_commands`` hook) are loaded only when a name is not built in,
so ``imgtrans --help`` and friends stay fast.  Every :class:`ImgtransError` becomes a one-line
message and exit status 2: users never see a traceback for bad input.
"""
from __future__ import annotations

import click

from ..errors import ImgtransError
from .data import data_group
from .eval import eval_command
from .inspect import list_command, plugins_command
from .train import train_command
from .translate import translate_command
from .zoo import zoo_group


class UserError(click.ClickException):
    """An :class:`ImgtransError` on its way to the terminal: one line, exit status 2."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class _Group(click.Group):
    _plugins_loaded = False

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ImgtransError as exc:
            raise UserError(str(exc)) from exc
        except FloatingPointError as exc:  # a diverged training run
            err = UserError(str(exc))
            err.exit_code = 1
            raise err from exc

    def _load_plugin_commands(self) -> None:
        if not self._plugins_loaded:
            self._plugins_loaded = True
            from ..plugins import get_host

            get_host().add_commands(self)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        cmd = super().get_command(ctx, name)
        if cmd is None:
            self._load_plugin_commands()
            cmd = super().get_command(ctx, name)
        return cmd


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="imgtrans")
def cli() -> None:
    """Image-to-image translation: train pix2pix-style models, translate images, manage models and data.

    \b
    Quick start:
      imgtrans translate --model zoo:basemap_a2b satellite/ relief/   (shipped model, offline)
      imgtrans train pix2pix --data basemap --out runs/basemap
      imgtrans translate --model runs/basemap/model.safetensors photos/ translated/
      imgtrans eval --model runs/basemap/model.safetensors --data basemap
      imgtrans list generator 'unet*'
      imgtrans zoo list        imgtrans data list        imgtrans plugins
    """


cli.add_command(train_command)
cli.add_command(translate_command)
cli.add_command(eval_command)
cli.add_command(plugins_command)
cli.add_command(list_command)
cli.add_command(zoo_group)
cli.add_command(data_group)


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="imgtrans")
