"""Deprecated path: this module moved to :mod:`imgtrans.core.plugin_host` (plugins: import from :mod:`imgtrans.core.plugin_host`).
Kept so that plugins and scripts written against the old layout keep working."""
from imgtrans.util.moved import alias_module

alias_module(__name__, "imgtrans.core.plugin_host", "imgtrans.core.plugin_host")
