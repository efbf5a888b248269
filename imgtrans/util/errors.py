"""Errors a user can act on.

Every error that reaches the command line is an :class:`ImgtransError`; the CLI prints its
message on one line and exits with the error's ``exit_code`` (2 for bad input, 1 for a run that
cannot go on), so users never see a traceback.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class ImgtransError(Exception):
    """Base class of errors whose message alone tells the user what to do."""

    #: the command line's exit status for this error
    exit_code = 2


class UnknownNameError(ImgtransError, KeyError):
    """A name (component, dataset, option key) that is not among the valid choices."""

    def __init__(self, what: str, name: str, choices: Iterable[str], note: str = ""):
        self.what, self.name, self.choices, self.note = what, name, sorted(choices), note
        super().__init__(self._message())

    def _message(self) -> str:
        close = difflib.get_close_matches(self.name, self.choices, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        listed = ", ".join(self.choices) if self.choices else "(none)"
        note = f" {self.note}" if self.note else ""
        return f"unknown {self.what} {self.name!r}.{hint}{note} Valid choices: {listed}"

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self._message()


class DuplicateComponentError(ImgtransError):
    """Two plugins registered the same name for the same kind of component."""


class ConfigError(ImgtransError):
    """A configuration value or file that cannot be used."""


class CheckpointError(ImgtransError):
    """A checkpoint that is missing, corrupt, or not an imgtrans checkpoint."""


class DataError(ImgtransError):
    """A dataset or image that cannot be used."""


class PixelLimitError(DataError):
    """An image with more pixels than the limit allows (a possible decompression bomb), refused
    from its header before it is decoded."""


class PluginCodeError(ImgtransError):
    """Code inside a plugin (a component's constructor, a recipe's step) raised.

    The message names the plugin, the component and the exception on one line, so a user knows
    whom to report it to; the original exception is kept as ``__cause__`` and its traceback is
    shown with ``imgtrans --debug`` or ``IMGTRANS_DEBUG=1``.
    """

    def __init__(self, plugin: str, what: str, exc: BaseException):
        self.plugin, self.what = plugin, what
        detail = " ".join(str(exc).split())
        super().__init__(f"{what} (plugin {plugin!r}) failed: {type(exc).__name__}"
                         + (f": {detail}" if detail else ""))


class RunError(ImgtransError):
    """A valid request that cannot be carried out now (the run directory is in use, the disk is
    full, the data changed under a run): exit status 1, as for any other failure at run time."""

    exit_code = 1


class ConformanceError(ImgtransError, AssertionError):
    """A registered component breaks a rule of the plugin contract (:mod:`imgtrans.testing`).

    Also an ``AssertionError``, so pytest reports it as a failed check rather than a crash; the
    message names the component, its plugin and the rule (docs/plugins.md, "Conformance rules").
    """
