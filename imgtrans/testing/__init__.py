"""The conformance kit: check a plugin's registrations against the rules the bundled plugins pass.

A plugin's own test suite runs it against the installed plugin (the rules are listed in
docs/plugins.md, "Conformance rules")::

    from imgtrans.testing import check_case, conformance

    @conformance("mynets")                 # one test per thing plugin "mynets" registered
    def test_conformance(kind, name, tmp_path):
        check_case(kind, name, tmp_path)

or, without pytest, ``check_plugin("mynets")``.  Each check can also be called alone with a
registry (``check_generator(registry, "my_generator")``), and :func:`use_plugin` loads hooks from
the current process as a plugin, before the package is installed.  A broken rule raises
:class:`ConformanceError` (an ``AssertionError``) naming the component, its plugin and the rule.

Not imported by ``import imgtrans``; pytest is imported only by :func:`conformance`.
"""
from __future__ import annotations

from ..util.errors import ConformanceError
from .cases import (
                    CASE_KINDS,
                    check_case,
                    check_command,
                    check_plugin,
                    check_zoo_entry,
                    conformance,
                    conformance_cases,
                    use_plugin,
)
from .check_components import check_discriminator, check_generator, check_loss
from .check_datasets import check_dataset, check_dataset_format, promised_keys
from .check_metrics import check_metric
from .check_pairmakers import check_pair_maker
from .check_recipes import check_recipe, recipe_data, tiny_layers
from .samples import write_aligned, write_paired_folders, write_sample_layouts, write_single, write_unpaired

__all__ = [
    "CASE_KINDS", "ConformanceError", "check_case", "check_command", "check_dataset", "check_dataset_format",
    "check_discriminator", "check_generator", "check_loss", "check_metric", "check_pair_maker", "check_plugin",
    "check_recipe", "check_zoo_entry",
    "conformance", "conformance_cases", "promised_keys", "recipe_data", "tiny_layers", "use_plugin",
    "write_aligned", "write_paired_folders", "write_sample_layouts", "write_single", "write_unpaired",
]
