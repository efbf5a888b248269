"""setuptools' own PEP 517 backend, without its "Editable installation" notices.

Our packages are mapped from ``imgtrans/``, ``plugins/`` and ``zoo/`` (the layout of the design
card), so an editable install uses setuptools' import finder, which prints an information-only
notice ("be careful with folders in your working directory with the same name as your package")
through ``warnings`` on every ``pip install -e .``.  Here those folders *are* the package, so the
notice says nothing actionable; only setuptools' ``InformationOnly`` category is silenced, every real
warning and error still prints.  Everything else is ``setuptools.build_meta`` unchanged.
"""
import warnings

from setuptools.build_meta import *  # noqa: F401,F403  (the PEP 517 hooks, re-exported)
from setuptools.warnings import InformationOnly

warnings.filterwarnings("ignore", category=InformationOnly)
