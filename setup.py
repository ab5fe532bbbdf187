"""Only what pyproject.toml cannot say: the optional C accelerator, and the project folders a wheel carries.

The extension is optional: where it cannot be compiled, tuner works the same, only its cold scans of
JSONL datasets are slower.

schemas/, examples/ (the CI recipes) and the example data stay at the top of the repository, where the README
documents them; a wheel carries copies under runner/_shipped/, which runner/shipped.py finds at run time.
"""

from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

SHIPPED = ("schemas", "examples", "data/sentiment")  # runner/shipped.py reads these


class BuildWithProjectFolders(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the folders where they are
            return
        for folder in SHIPPED:
            self.copy_tree(folder, str(Path(self.build_lib, "runner", "_shipped", folder)))


setup(ext_modules=[Extension("runner._fastscan", ["runner/_fastscan.c"], optional=True,
                             extra_compile_args=["-O2"])],
      cmdclass={"build_py": BuildWithProjectFolders})
