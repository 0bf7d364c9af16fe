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
* ``TOKENPICK_EMULATE_SIMD=1`` (GCC and Clang, x86-64): a build for testing,
  not for release.  The AVX2 and AVX-512 kernel tables are compiled for the
  baseline instead, against SIMDe (SIMD Everywhere, header-only: Debian's
  ``libsimde-dev``, or any directory on the include path that holds
  ``simde/``), so that any x86-64 CPU runs them, and they are chosen without
  asking cpuid; show_config() names the emulation.  Their results are bitwise
  those of the native tables (fused multiply-adds by fmaf: see
  csrc/rows/vec_simde.h); ``.ci/emulated`` checks it.

Nothing here tunes for the build machine or relaxes IEEE floating point: the
wheel must run on any CPU of its platform (wider instruction sets are compiled
separately and chosen at run time), and the kernels rely on ``-inf`` and NaN.
"""

import os
import sys
import sysconfig
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CompileError, PlatformError, PreprocessError

# Compiled once, with the extension's flags (the baseline of the target).
CSRC = [
    "csrc/tp_rows_baseline.c",
    "csrc/tp_dispatch.c",
    "csrc/tp_philox.c",
    "csrc/tp_config.c",
    "csrc/tp_workspace.c",
    "csrc/tp_proc.c",
    "csrc/tp_kept.c",
    "csrc/tp_routes.c",
]

# The same row kernels again, for wider instruction sets; csrc/tp_dispatch.c
# picks one at run time.  name: (source, GCC/Clang flags, MSVC flags)
X86_VARIANTS = {
    "avx2": ("csrc/tp_rows_avx2.c", ["-mavx2", "-mfma", "-mf16c"], ["/arch:AVX2"]),
    "avx512": (
        "csrc/tp_rows_avx512.c",
        [
            "-mavx512f",
            "-mavx512dq",
            "-mavx512bw",
            "-mavx512vl",
            "-mavx2",
            "-mfma",
            "-mf16c",
            "-mprefer-vector-width=512",
        ],
        ["/arch:AVX512"],
    ),
}


# The emulated build (TOKENPICK_EMULATE_SIMD) compiles both variants with the
# extension's flags, for the baseline, then these: -O1, since GCC 12 takes
# 14 s to compile the AVX-512 variant against SIMDe at -O3 and 3 s at -O1
# (AVX2: 5 s and 2 s), while .ci/emulated's tests take 56 s of CPU at -O3
# and 60 s at -O1, and every result is the same at any level; and no
# -Wpsabi, which warns that vector arguments would change the ABI, of
# functions that are all static inline.
SIMDE_FLAGS = ["-O1", "-Wno-psabi"]


def _flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


SANITIZE = [
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=undefined",
    "-fno-omit-frame-pointer",
    "-g",
]


def _compile_args():
    if sys.platform == "win32":
        return ["/O2", "/fp:precise", "/std:c11"]
    return [
        "-O3",
        "-std=c11",
        "-fno-math-errno",
        "-fno-trapping-math",
        # no a * b + c fused unless written so (fmaf): Clang fuses by default
        # where the instruction set has FMA, and the kernels must give the
        # same floats on every instruction set
        "-ffp-contract=off",
        "-Wall",
        "-Wextra",
        "-Wno-unused-function",
        "-Wno-unused-parameter",
        *(SANITIZE if _flag("TOKENPICK_SANITIZE") else []),
    ]


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

    def run(self):
        # pip builds in the source tree, and build_ext reuses the objects and
        # the module of an earlier build whose sources have not changed since:
        # after a change of a switch that changes the flags, build all anew.
        stamp = os.path.join(self.build_temp, "tokenpick-switches")
        switches = " ".join(
            f"{name}={_flag(name):d}"
            for name in ("TOKENPICK_SANITIZE", "TOKENPICK_EMULATE_SIMD", "TOKENPICK_COUNT_ROUTES")
        )
        try:
            with open(stamp) as f:
                self.force = self.force or f.read() != switches
        except OSError:
            self.force = True
        super().run()
        os.makedirs(self.build_temp, exist_ok=True)
        with open(stamp, "w") as f:
            f.write(switches)

    def build_extension(self, ext):
        emulate = _flag("TOKENPICK_EMULATE_SIMD")
        if _targets_x86_64():
            msvc = self.compiler.compiler_type == "msvc"
            if emulate:
                if msvc:
                    raise PlatformError("TOKENPICK_EMULATE_SIMD=1 needs GCC or Clang")
                simde = f'"SIMDe {self._simde_version(ext)}"'
                ext.define_macros.append(("TP_SIMDE_TABLES", simde))
            for name, (source, gnu_flags, msvc_flags) in X86_VARIANTS.items():
                macros, flags = ext.define_macros, (msvc_flags if msvc else gnu_flags)
                if emulate:  # csrc/rows/vec.h then takes the instructions from SIMDe
                    macros, flags = macros + [(f"TP_SIMDE_{name.upper()}", "1")], SIMDE_FLAGS
                objects = self.compiler.compile(
                    [source],
                    output_dir=self.build_temp,
                    include_dirs=ext.include_dirs,
                    macros=macros,
                    extra_postargs=ext.extra_compile_args + flags,
                    depends=ext.depends,
                )
                ext.extra_objects.extend(objects)
                ext.define_macros.append((f"TP_HAVE_{name.upper()}", "1"))
        elif emulate:
            raise PlatformError(
                "TOKENPICK_EMULATE_SIMD=1 emulates the x86-64 kernel tables; "
                "build for an x86-64 target"
            )
        super().build_extension(ext)

    def _simde_version(self, ext):
        """The version of the SIMDe headers the compiler finds, or a clear error."""
        os.makedirs(self.build_temp, exist_ok=True)
        probe = os.path.join(self.build_temp, "simde_probe.c")
        with open(probe, "w") as f:
            f.write(
                "#include <simde/x86/avx512.h>\n#include <simde/x86/fma.h>\ntp_simde_version "
                "SIMDE_VERSION_MAJOR SIMDE_VERSION_MINOR SIMDE_VERSION_MICRO\n"
            )
        try:
            self.compiler.preprocess(probe, output_file=probe + ".i", include_dirs=ext.include_dirs)
        except (CompileError, PreprocessError):  # preprocess() raises either
            raise PlatformError(
                "TOKENPICK_EMULATE_SIMD=1 needs the SIMDe headers (simde/x86/avx512.h), which "
                "the compiler did not find: install them (Debian, Ubuntu: apt-get install "
                "libsimde-dev), or put the directory that holds simde/ on the include path "
                "(CPATH=/that/dir)"
            ) from None
        with open(probe + ".i") as f:  # the numbers may follow line markers
            tail = f.read().rpartition("tp_simde_version")[2].splitlines()
        version = " ".join(line for line in tail if not line.startswith("#")).split()[:3]
        return ".".join(version) if len(version) == 3 else "(unknown version)"


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
    define_macros=[
        ("TOKENPICK_COMPILER_FLAGS", '"' + " ".join(_compile_args()) + '"'),
        # the oldest numpy the package runs with (pyproject's dependencies)
        ("NPY_TARGET_VERSION", "NPY_1_23_API_VERSION"),
        ("NPY_NO_DEPRECATED_API", "NPY_1_23_API_VERSION"),
        *([("TP_COUNT_ROUTES", "1")] if _flag("TOKENPICK_COUNT_ROUTES") else []),
    ],
    depends=[
        "csrc/tokenpick.h",
        "csrc/tp_internal.h",
        "csrc/tp_workspace.h",
        *sorted(str(p) for p in Path("csrc/rows").iterdir()),
    ],
)

setup(
    ext_modules=cythonize([extension], compiler_directives=directives),
    cmdclass={"build_ext": BuildExtWithVariants},
)
