"""Deprecated path: this module moved to :mod:`imgtrans.util.download` (plugins: import from :mod:`imgtrans.api`).
Kept so that plugins and scripts written against the old layout keep working."""
from imgtrans.util.moved import alias_module

alias_module(__name__, "imgtrans.util.download", "imgtrans.api")
