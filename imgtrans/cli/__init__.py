"""The ``imgtrans`` command line: thin Click commands over the library API.

Commands from plugins (``register_commands`` hook) are loaded when a name is not built in or
when the commands are listed (``imgtrans --help``), so running a built-in command stays fast.
Every :class:`ImgtransError` becomes a one-line message and its exit status (2: bad input,
1: failed at run time); an ``OSError`` that no command turned into one (a full disk, a folder
that cannot be written) is one line with status 1, and Ctrl-C one line with status 130: users
never see a traceback.  Failing plugin code (:class:`PluginCodeError`, or an exception from a
plugin's command) is one line too, with status 1; ``--debug`` (or ``IMGTRANS_DEBUG=1``) adds the
traceback behind any of these, which is what a plugin author needs when their code fails.
"""
from __future__ import annotations

import os
import sys
import traceback

import click

from ..core.plugin_host import BUILTIN_COMMANDS
from ..util.errors import ImgtransError, PluginCodeError
from .data_cmd import data_group
from .eval_cmd import eval_command
from .export_cmd import export_command
from .info_cmd import info_command
from .listing import list_command, plugins_command
from .serve_cmd import serve_command
from .train_cmd import train_command
from .translate_cmd import translate_command
from .zoo_cmd import zoo_group


class UserError(click.ClickException):
    """An :class:`ImgtransError` on its way to the terminal: one line, exit status 2 unless set."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class _Group(click.Group):
    _plugins_loaded = False

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except ImgtransError as exc:
            # plugin code failing is not bad input: status 1, like a diverged run
            raise _user_error(exc, 1 if isinstance(exc, PluginCodeError) else exc.exit_code) from exc
        except FloatingPointError as exc:  # a diverged training run
            raise _user_error(exc, 1) from exc
        except BrokenPipeError:  # `imgtrans zoo list | head`: the reader has all it wanted
            try:  # what Python's docs advise: point stdout at devnull so the flush at exit is quiet
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError, AttributeError):  # no real file descriptor (a test runner)
                pass
            ctx.exit(0)
        except KeyboardInterrupt as exc:  # (click's own handler would say "Aborted!" with status 1)
            click.echo(str(exc) or "interrupted", err=True)
            ctx.exit(130)
        except Exception as exc:
            owner = None
            if self._plugins_loaded:  # else no plugin command ran
                from ..core.plugin_host import get_host

                owner = get_host().command_plugins.get(ctx.invoked_subcommand or "")
            if owner is not None:
                wrapped = PluginCodeError(owner, f"command {ctx.invoked_subcommand!r}", exc)
                raise _user_error(exc, 1, str(wrapped)) from exc
            if isinstance(exc, OSError):  # a full disk, an unwritable folder that no command reported
                where = f"{exc.filename}: " if exc.filename else ""
                raise _user_error(exc, 1, f"{where}{exc.strerror or exc}") from exc
            raise

    def _load_plugin_commands(self) -> None:
        if not self._plugins_loaded:
            self._plugins_loaded = True
            from ..core.plugin_host import get_host

            get_host().add_commands(self)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        cmd = super().get_command(ctx, name)
        if cmd is None:
            self._load_plugin_commands()
            cmd = super().get_command(ctx, name)
        return cmd

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return super().list_commands(ctx)


def _user_error(exc: BaseException, status: int, message: str | None = None) -> UserError:
    """One line for the user; the traceback too under --debug / IMGTRANS_DEBUG=1."""
    from ..core.plugin_host import debug_enabled

    if debug_enabled():
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    err = UserError(message or str(exc))
    err.exit_code = status
    return err


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="imgtrans")
@click.option("--debug", is_flag=True, help="Show the traceback behind an error (also: IMGTRANS_DEBUG=1).")
def cli(debug: bool) -> None:
    """Image-to-image translation: train pix2pix and CycleGAN models, translate images either way, manage models and data.

    \b
    Quick start:
      imgtrans translate --model zoo:basemap_a2b satellite/ relief/   (shipped model, offline)
      imgtrans train pix2pix --data basemap --out runs/basemap
      imgtrans translate --model runs/basemap/model.safetensors photos/ translated/
      imgtrans eval --model runs/basemap/model.safetensors --data basemap
      imgtrans export --model runs/basemap/model.safetensors -o basemap.onnx
      imgtrans list generator 'unet*'
      imgtrans zoo list        imgtrans data list        imgtrans plugins
      imgtrans info generator unet_256                  (arguments, types, defaults)
    """
    if debug:  # through the environment, so plugin loading and worker processes see it too
        os.environ["IMGTRANS_DEBUG"] = "1"


cli.add_command(train_command)
cli.add_command(translate_command)
cli.add_command(serve_command)
cli.add_command(eval_command)
cli.add_command(export_command)
cli.add_command(plugins_command)
cli.add_command(list_command)
cli.add_command(info_command)
cli.add_command(zoo_group)
cli.add_command(data_group)
if set(cli.commands) != BUILTIN_COMMANDS:  # pragma: no cover - caught by every test run
    raise RuntimeError(f"imgtrans.core.plugin_host.BUILTIN_COMMANDS is stale: the CLI has {sorted(cli.commands)}")


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="imgtrans")
