"""The ``imgtrans`` command line: thin Click commands over the library API.

Commands from plugins (``register_commands`` hook) are loaded only when a name is not built in,
so ``imgtrans --help`` and friends stay fast.  Every :class:`ImgtransError` becomes a one-line
message and exit status 2: users never see a traceback for bad input.
"""
from __future__ import annotations

import sys

import click

from ..errors import ImgtransError
from .eval import eval_command
from .inspect import list_command, plugins_command
from .train import train_command
from .translate import translate_command


class _Group(click.Group):
    _plugins_loaded = False

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
    """Image-to-image translation: train pix2pix-style models, translate images, inspect plugins.

    \b
    Quick start:
      imgtrans train pix2pix --data basemap --out runs/basemap
      imgtrans translate --model runs/basemap/model.safetensors photos/ translated/
      imgtrans eval --model runs/basemap/model.safetensors --data basemap
      imgtrans list generator 'unet*'
    """


cli.add_command(train_command)
cli.add_command(translate_command)
cli.add_command(eval_command)
cli.add_command(plugins_command)
cli.add_command(list_command)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="imgtrans", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ImgtransError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except FloatingPointError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
