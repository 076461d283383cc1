"""Packaging hook: ship presets/ and models/ inside the wheel (as plugin_bridge/_presets, _models).

The project keeps its chain templates and shipped models at the top level of the repository; an
installed package finds them beside its code (`plugin_bridge.chain.presets_dir`,
`plugin_bridge.ml.inference.models_dir`). Everything else is configured in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DATA = {"presets": "_presets", "models": "_models"}


class BuildWithData(build_py):
    """build_py that also copies the top-level data folders into the built package."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads them from the checkout
            return
        for src, dst in DATA.items():
            target = Path(self.build_lib) / "plugin_bridge" / dst
            shutil.copytree(ROOT / src, target, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildWithData})
