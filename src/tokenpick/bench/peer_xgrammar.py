"""The xgrammar peer: its CPU kernel that applies a grammar's token bitmask in place.

Timed in the processors section only, against ``tokenpick.process_logits(x,
token_bitmask=..., out=x)`` on the same rows: ``xgrammar.apply_token_bitmask_inplace``
writes ``-inf`` into a ``torch`` tensor sharing the rows' memory wherever a bit is 0.
Before it is timed, it must ban what ``tokenpick.reference`` bans on a small batch
whose vocabulary is not a multiple of 32, and write nothing past the rows.
"""

import functools
import os
from importlib import metadata

import numpy as np

from .. import reference
from .cases import DATA_SEED, bitmask_row, half_allowed
from .timing import Peer

NAME = "xgrammar"


def setup_xgrammar(args):
    """Import xgrammar (and torch, whose tensors it takes) and check its kernel.

    Unless the environment sets ``OMP_WAIT_POLICY``, it is set to ``PASSIVE``
    before torch loads, as for the PyTorch peer (`peer_torch.setup_torch`).

    Returns
    -------
    peer : Peer or None
        None when xgrammar is not to be timed: ``--no-xgrammar``, not importable, or
        its kernel failed the check.
    info : dict
        JSON-ready: its ``version``, or why it is ``absent``.
    """
    if args.no_xgrammar:
        return None, {"absent": "not timed (--no-xgrammar)"}
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch
        import xgrammar
    except (ImportError, OSError) as exc:  # OSError: an install whose libraries do not load
        return None, {"absent": f"absent ({type(exc).__name__}: {exc})"}
    try:
        version = metadata.version("xgrammar")
    except metadata.PackageNotFoundError:
        version = getattr(xgrammar, "__version__", "unknown")
    problem = check_kernel(torch, xgrammar.apply_token_bitmask_inplace)
    if problem:
        return None, {"absent": f"xgrammar {version} not timed: {problem}"}
    return Peer(NAME, bind_xgrammar(torch, xgrammar), repeats=7), {"version": version}


def describe(info):
    """The header's line on xgrammar."""
    if "version" in info:
        return f"xgrammar {info['version']} (the logit-processors section's in-place bitmask)"
    return f"xgrammar: {info['absent']}"


def check_kernel(torch, apply, B=3, V=1000):
    """Why `apply` (xgrammar's ``apply_token_bitmask_inplace``) may not be timed, or
    None: on `B` rows of `V` logits and the benchmark's kind of bitmask (about half
    the vocabulary, every bit past V set), it must turn into ``-inf`` exactly the
    tokens that ``tokenpick.reference.process_logits`` bans, and leave alone a row
    placed after them in memory."""
    rng = np.random.default_rng([DATA_SEED, V, 3])
    words = np.array([bitmask_row(half_allowed(rng, V, int(rng.integers(V))), V) for _ in range(B)])
    memory = rng.standard_normal((B + 1, V)).astype(np.float32)
    logits = memory[:B]
    want = np.isneginf(reference.process_logits(logits, token_bitmask=words))
    after = memory[B].copy()
    apply(torch.from_numpy(logits), torch.from_numpy(words))
    if not np.array_equal(memory[B], after):
        return "its CPU kernel wrote past the rows on a small example"
    if not np.array_equal(np.isneginf(logits), want):
        return "its CPU kernel banned other tokens than tokenpick.reference on a small example"
    return None


def bind_xgrammar(torch, xgrammar):
    """A `Peer.bind` for xgrammar: `op` is ``process_logits`` with a ``token_bitmask``;
    the logits and the bitmask become tensors sharing their memory
    (``torch.from_numpy``) outside the timing, and the call masks the logits in place."""

    def bind(op, logits):
        if op.func != "process_logits" or set(op.kwargs) - {"token_bitmask", "out"}:
            raise NotImplementedError(op.func)
        bitmask = torch.from_numpy(np.ascontiguousarray(op.kwargs["token_bitmask"]))
        return functools.partial(
            xgrammar.apply_token_bitmask_inplace, torch.from_numpy(logits), bitmask
        )

    return bind
