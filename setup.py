"""Packaging hooks: ship presets/ and models/ inside the wheel (as plugin_bridge/_presets, _models),
and build the optional compiled kernels.

The project keeps its chain templates and shipped models at the top level of the repository; an
installed package finds them beside its code (`plugin_bridge.chain.presets_dir`,
`plugin_bridge.ml.inference.models_dir`). `plugin_bridge.backends.dsp._ckernels` is a small C
extension with the sample-recursive loops (IIR sections, envelopes): built when a C compiler is
there, skipped otherwise (numba then compiles the same loops at run time). Everything else is
configured in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import Extension, setup
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


#: The loops must round exactly as their Python references (numba's numbers): no fused multiply-adds.
CKERNELS = Extension(
    "plugin_bridge.backends.dsp._ckernels",
    ["plugin_bridge/backends/dsp/_ckernels.c"],
    extra_compile_args=["-O2", "-ffp-contract=off"],
    optional=True,
)

setup(cmdclass={"build_py": BuildWithData}, ext_modules=[CKERNELS])
