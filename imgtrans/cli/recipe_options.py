"""``imgtrans train RECIPE``: the options a recipe declares (``Recipe.options``) join the command's
own, so ``imgtrans train cyclegan --help`` shows ``--lambda-a`` and ``imgtrans train pix2pix --help``
shows ``--lambda-l1``, while the core names no recipe's settings."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ..core.config import recipe_class
from ..core.plugin_host import get_host
from ..util.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover - the CLI must start without importing torch
    from ..core.interfaces import RecipeOption

META_KEY = "imgtrans_recipe_options"


def _click_type(kind: Any) -> Any:
    if isinstance(kind, tuple):
        return click.Choice(kind)
    return {int: int, float: float, str: str}.get(kind, str)


def recipe_params(recipe_name: str, options: tuple[RecipeOption, ...],
                  taken: set[str]) -> tuple[list[click.Option], dict[str, RecipeOption]]:
    """Click options for a recipe's declared options, and which config keys each one sets."""
    params, by_name = [], {}
    for option in options:
        if not option.flag.startswith("--"):
            raise ConfigError(f"recipe {recipe_name!r} declares option {option.flag!r}; flags start with --")
        if option.flag in taken:
            raise ConfigError(f"recipe {recipe_name!r} declares option {option.flag}, which `imgtrans train` "
                              "already has; choose another flag")
        name = "recipe__" + option.flag[2:].replace("-", "_")
        if option.type is bool:  # --flag / --no-flag: a default that is on can be turned off too
            negative = "--no-" + option.flag[2:]
            if negative in taken:
                raise ConfigError(f"recipe {recipe_name!r} declares option {option.flag}, whose {negative} "
                                  "`imgtrans train` already has; choose another flag")
            param = click.Option([f"{option.flag}/{negative}", name], is_flag=True, default=None, help=option.help)
        else:
            param = click.Option([option.flag, name], type=_click_type(option.type), default=None, help=option.help)
        params.append(param)
        by_name[name] = option
    return params, by_name


def recipe_layer(values: dict[str, Any], declared: dict[str, RecipeOption]) -> dict[str, dict[str, Any]]:
    """The config layer that recipe options given on the command line make."""
    layer: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        if value is None:
            continue
        for key in declared[name].keys:
            section, _, field = key.partition(".")
            layer.setdefault(section, {})[field] = value
    return layer


class TrainCommand(click.Command):
    """A command whose options depend on its first argument, the recipe."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        names = set(get_host().registry.names("recipe"))
        recipe = next((a for a in args if not a.startswith("-") and a in names), None)
        ctx.meta[META_KEY] = ([], {})
        if recipe is not None:
            cls = recipe_class(get_host().registry, recipe)
            taken = {opt for p in self.params for opt in getattr(p, "opts", [])}
            ctx.meta[META_KEY] = recipe_params(recipe, tuple(cls.options), taken)
        return super().parse_args(ctx, args)

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        extra = ctx.meta.get(META_KEY, ([], {}))[0]
        return [*params[:-1], *extra, params[-1]] if extra else params  # --help stays last

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        if not ctx.meta.get(META_KEY, ([], {}))[0]:
            recipes = ", ".join(get_host().registry.names("recipe"))
            formatter.write_paragraph()
            formatter.write_text(f"Recipes: {recipes}. `imgtrans train RECIPE --help` adds the recipe's own options.")
