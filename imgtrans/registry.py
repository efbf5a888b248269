"""Deprecated path: this module moved to :mod:`imgtrans.core.registry` (plugins: import from :mod:`imgtrans.core.registry`).
Kept so that plugins and scripts written against the old layout keep working."""
from imgtrans.util.moved import alias_module

alias_module(__name__, "imgtrans.core.registry", "imgtrans.core.registry")
