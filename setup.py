"""Build of tokenpick's compiled core: the C kernels in csrc/ and the Cython driver.

Environment switches (all off by default):

* ``TOKENPICK_CYTHON_CHECKS=1``: compile the Cython module with bounds checks,
  wraparound and initialization checks turned back on, for debugging.

Nothing here uses ``-march=native`` or ``-ffast-math``: the wheel must run on
any CPU of its platform, and the kernels rely on IEEE ``-inf`` and NaN rules.
"""

import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

CSRC = ["csrc/tp_kernels.c", "csrc/tp_select.c", "csrc/tp_philox.c", "csrc/tp_config.c"]


def _flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _compile_args():
    if sys.platform == "win32":
        return ["/O2", "/fp:precise"]
    return ["-O3", "-std=c11", "-fno-math-errno", "-fno-trapping-math", "-Wall", "-Wextra",
            "-Wno-unused-function", "-Wno-unused-parameter"]


checks = _flag("TOKENPICK_CYTHON_CHECKS")
directives = {
    "language_level": 3,
    "boundscheck": checks,
    "wraparound": checks,
    "initializedcheck": checks,
    "cdivision": True,
    "freethreading_compatible": True,
    "embedsignature": True,
}

extension = Extension(
    "tokenpick._core",
    sources=["src/tokenpick/_core.pyx", *CSRC],
    include_dirs=["csrc"],
    extra_compile_args=_compile_args(),
    define_macros=[("TOKENPICK_COMPILER_FLAGS", '"' + " ".join(_compile_args()) + '"')],
)

setup(ext_modules=cythonize([extension], compiler_directives=directives))
