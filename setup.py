# The C core is built by CFFI (API mode, out-of-line); everything else is in pyproject.toml.
from setuptools import setup

setup(cffi_modules=["feedhandler/_build_core.py:ffibuilder"])
