"""Build of tokenpick's compiled core: the C kernels in csrc/ and the Cython driver.

Environment switches (all off by default):

* ``TOKENPICK_CYTHON_CHECKS=1``: compile the Cython module with bounds checks,
  wraparound and initialization checks turned back on, for debugging.
* ``TOKENPICK_COUNT_ROUTES=1`` (GCC and Clang): count the routes selection
  takes (``tokenpick._core.route_counts``), for the tests that show every
  route runs; a shared counter per route, so not for production.
* ``TOKENPICK_SANITIZE=1`` (GCC and Clang): compile and link everything with
  AddressSanitizer and UndefinedBehaviorSanitizer, any UB report fatal; the
  interpreter must then preload the ASan runtime (``.ci/sanitize`` does).

Nothing here tunes for the build machine or relaxes IEEE floating point: the
wheel must run on any CPU of its platform (wider instruction sets are compiled
separately and chosen at run time), and the kernels rely on ``-inf`` and NaN.
"""

import os
import sys
import sysconfig
from pathlib import Path

from Cython.Build import cythonize
import numpy
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# Compiled once, with the extension's flags (the baseline of the target).
CSRC = ["csrc/tp_rows_baseline.c", "csrc/tp_dispatch.c", "csrc/tp_philox.c",
        "csrc/tp_config.c", "csrc/tp_workspace.c", "csrc/tp_routes.c"]

# The same row kernels again, for wider instruction sets; csrc/tp_dispatch.c
# picks one at run time.  name: (source, GCC/Clang flags, MSVC flags)
X86_VARIANTS = {
    "avx2": ("csrc/tp_rows_avx2.c", ["-mavx2", "-mfma"], ["/arch:AVX2"]),
    "avx512": ("csrc/tp_rows_avx512.c",
               ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mavx2", "-mfma",
                "-mprefer-vector-width=512"],
               ["/arch:AVX512"]),
}


def _flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
            "-fno-omit-frame-pointer", "-g"]


def _compile_args():
    if sys.platform == "win32":
        return ["/O2", "/fp:precise", "/std:c11"]
    return ["-O3", "-std=c11", "-fno-math-errno", "-fno-trapping-math", "-Wall", "-Wextra",
            "-Wno-unused-function", "-Wno-unused-parameter",
            *(SANITIZE if _flag("TOKENPICK_SANITIZE") else [])]


def _link_args():
    return SANITIZE if _flag("TOKENPICK_SANITIZE") and sys.platform != "win32" else []


def _targets_x86_64():
    """Whether the extension is built for x86-64 (the host may cross-compile)."""
    archflags = os.environ.get("ARCHFLAGS", "")
    if archflags:
        return "x86_64" in archflags and "arm64" not in archflags
    return sysconfig.get_platform().lower().endswith(("x86_64", "amd64"))


class BuildExtWithVariants(build_ext):
    """build_ext that first compiles each instruction-set variant with its own flags."""

    def build_extension(self, ext):
        if _targets_x86_64():
            msvc = self.compiler.compiler_type == "msvc"
            for name, (source, gnu_flags, msvc_flags) in X86_VARIANTS.items():
                objects = self.compiler.compile(
                    [source], output_dir=self.build_temp, include_dirs=ext.include_dirs,
                    macros=ext.define_macros,
                    extra_postargs=ext.extra_compile_args + (msvc_flags if msvc else gnu_flags),
                    depends=ext.depends)
                ext.extra_objects.extend(objects)
                ext.define_macros.append((f"TP_HAVE_{name.upper()}", "1"))
        super().build_extension(ext)


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
    include_dirs=["csrc", numpy.get_include()],
    extra_compile_args=_compile_args(),
    extra_link_args=_link_args(),
    define_macros=[("TOKENPICK_COMPILER_FLAGS", '"' + " ".join(_compile_args()) + '"'),
                   # the oldest numpy the package runs with (pyproject's dependencies)
                   ("NPY_TARGET_VERSION", "NPY_1_23_API_VERSION"),
                   ("NPY_NO_DEPRECATED_API", "NPY_1_23_API_VERSION"),
                   *([("TP_COUNT_ROUTES", "1")] if _flag("TOKENPICK_COUNT_ROUTES") else [])],
    depends=["csrc/tokenpick.h", "csrc/tp_internal.h", "csrc/tp_workspace.h",
             *sorted(str(p) for p in Path("csrc/rows").iterdir())],
)

setup(ext_modules=cythonize([extension], compiler_directives=directives),
      cmdclass={"build_ext": BuildExtWithVariants})
