"""Deprecated path: this module moved to :mod:`imgtrans.core.hookspecs` (plugins: import from :mod:`imgtrans.core.hookspecs`).
Kept so that plugins and scripts written against the old layout keep working."""
from imgtrans.util.moved import alias_module

alias_module(__name__, "imgtrans.core.hookspecs", "imgtrans.core.hookspecs")
