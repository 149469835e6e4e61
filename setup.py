"""Only the C extension lives here; everything else is in pyproject.toml.

``cti.ami._speedups`` is the C version of the AMI header loops
(``cti/ami/framing.py`` holds the same loops in Python and falls back to them
when the module is not built).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("cti.ami._speedups", ["cti/ami/_speedups.c"])])
