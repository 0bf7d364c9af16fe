"""Logits in half precision for ``--dtype``: the rows as a server hands them over.

The run's float32 rows are rounded to the dtype once, outside the timing, and passed as a
torch tensor when torch can be imported (what a model gives), else as a numpy array
(float16, or ``ml_dtypes.bfloat16``).  The peers that take float32 only (the floor,
llama.cpp) and the comparison call ("float32") get the same values widened to float32,
so that every column times the same numbers.
"""

import functools
from dataclasses import replace

import numpy as np

DTYPES = ("float32", "float16", "bfloat16")
FLOAT32_NAME = "float32"  # the peer: tokenpick on the same values in float32


def check(dtype):
    """None if rows of `dtype` can be made here, else why not (for the command line)."""
    if dtype in ("float32", "float16") or _torch() is not None or _ml_dtypes() is not None:
        return None
    return (
        "--dtype bfloat16 needs torch or ml_dtypes (numpy has no bfloat16): pip install ml_dtypes"
    )


def describe(dtype):
    """How the rows of `dtype` are passed, for the legend."""
    if dtype == "float32":
        return "numpy float32 arrays"
    return f"{'torch' if _torch() is not None else 'numpy'} {dtype} " + (
        "tensors" if _torch() is not None else "arrays"
    )


@functools.lru_cache(maxsize=None)
def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


@functools.lru_cache(maxsize=None)
def _ml_dtypes():
    try:
        import ml_dtypes
    except ImportError:
        return None
    return ml_dtypes


def rows(logits, dtype):
    """The float32 `logits` rounded to `dtype`, as a torch tensor or a numpy array."""
    torch = _torch()
    if torch is not None:
        return torch.from_numpy(np.ascontiguousarray(logits)).to(getattr(torch, dtype))
    if dtype == "float16":
        return logits.astype(np.float16)
    return logits.astype(_ml_dtypes().bfloat16)


def widened(logits, dtype):
    """The float32 values of `rows(logits, dtype)`, exactly."""
    r = rows(logits, dtype)
    torch = _torch()
    if torch is not None:
        return r.to(torch.float32).numpy()
    return r.astype(np.float32)


def on_rows(peer, dtype):
    """`peer` fed the rows of `dtype` (its name kept)."""
    return replace(peer, bind=lambda op, logits: peer.bind(op, rows(logits, dtype)))


def on_widened(peer, dtype, name=None):
    """`peer` fed the rows' float32 values (renamed `name` if given)."""
    return replace(
        peer,
        name=name or peer.name,
        bind=lambda op, logits: peer.bind(op, widened(logits, dtype)),
    )
