"""Thread settings and build/machine configuration."""

import os
import platform
import sys
import warnings

import numpy as np

from . import _core
from ._params import thread_limit
from ._version import __version__


def usable_cores():
    """The number of cores this process may run on (its CPU affinity, where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _initial_threads():
    env = os.environ.get("TOKENPICK_NUM_THREADS", "").strip()
    if env:
        try:
            return thread_limit("TOKENPICK_NUM_THREADS", int(env))
        except (TypeError, ValueError):
            warnings.warn(
                f"TOKENPICK_NUM_THREADS={env!r} is not an integer >= 1; ignored",
                RuntimeWarning,
                stacklevel=2,
            )
    return usable_cores()


_num_threads = _initial_threads()


def set_num_threads(n):
    """Set the largest number of threads a call may spread its rows over.

    Parameters
    ----------
    n : int
        At least 1.  Results are bitwise identical for any value.
    """
    global _num_threads
    _num_threads = thread_limit("num_threads", n)


def get_num_threads():
    """The largest number of threads a call may spread its rows over."""
    return _num_threads


def show_config(mode="stdout"):
    """Show tokenpick's version, build, SIMD path and thread settings.

    Parameters
    ----------
    mode : {"stdout", "dicts"}
        Print a readable summary (the default), or return it as a dict.

    Returns
    -------
    dict or None
    """
    info = {
        "version": __version__,
        "simd": _core.simd_path(),
        # None, or what emulates that path in a test build (setup.py's TOKENPICK_EMULATE_SIMD)
        "simd_emulated_by": _core.simd_emulation(),
        "simd_available": _core.simd_paths(),
        "num_threads": get_num_threads(),
        "usable_cores": usable_cores(),
        "compiler": _core.compiler(),
        "compile_flags": _core.build_flags(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "machine": platform.machine(),
        "platform": platform.platform(),
    }
    if mode == "dicts":
        return info
    if mode != "stdout":
        raise ValueError(f"mode must be 'stdout' or 'dicts', got {mode!r}")
    width = max(map(len, info))
    for key, value in info.items():
        if isinstance(value, list):
            value = ", ".join(value)
        elif value is None:
            value = "-"
        print(f"{key:<{width}} : {value}")
    return None
