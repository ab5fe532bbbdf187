"""Only for the optional C accelerator; everything else is in pyproject.toml.

The extension is optional: where it cannot be compiled, tuner works the same, only its cold scans of
JSONL datasets are slower.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("runner._fastscan", ["runner/_fastscan.c"], optional=True,
                             extra_compile_args=["-O2"])])
