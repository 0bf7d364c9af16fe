"""The PyTorch peer: HF-transformers-style logits warpers, written here in torch.

Temperature, top-k, top-p and min-p are applied in tokenpick's order, which
is also HF's, then ``torch.softmax`` and ``torch.multinomial`` with a seeded
``torch.Generator``, on the whole batch in one call, with torch's threads set
to tokenpick's and its idle OpenMP threads blocking (``OMP_WAIT_POLICY=PASSIVE``)
as tokenpick's do.
"""

import functools
import math
import os

import tokenpick

from .timing import Peer

NAME = "torch"


def setup_torch(args):
    """Import PyTorch and give it tokenpick's thread count; call it after ``--threads``.

    Unless the environment sets ``OMP_WAIT_POLICY``, it is set to ``PASSIVE``
    before the import (the OpenMP runtime reads it when torch loads it): torch's
    idle threads then block instead of spinning, which on a machine with few or
    shared cores can stall a call by milliseconds.

    Returns
    -------
    peer : Peer or None
        None when torch is not to be timed.
    info : dict
        JSON-ready: its ``version``, ``num_threads`` and ``omp_wait_policy``,
        or why it is ``absent``.
    """
    if args.no_torch:
        return None, {"absent": "not timed (--no-torch)"}
    policy = os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch
    except (ImportError, OSError) as exc:  # OSError: an install whose libraries do not load
        return None, {"absent": f"absent ({type(exc).__name__}: {exc}), so no torch column"}
    torch.set_num_threads(tokenpick.get_num_threads())
    info = {
        "version": torch.__version__,
        "num_threads": torch.get_num_threads(),
        "omp_wait_policy": policy,
    }
    return Peer(NAME, bind_torch(torch), repeats=5), info


def describe(info):
    """The header's line on PyTorch."""
    if "version" in info:
        return (
            f"torch {info['version']}, {info['num_threads']} threads (set to tokenpick's), "
            f"OMP_WAIT_POLICY={info['omp_wait_policy']}"
        )
    return f"torch: {info['absent']}"


def bind_torch(torch):
    """A `Peer.bind` for PyTorch: the logits become a tensor sharing their memory
    (``torch.from_numpy``) outside the timing; the call does `op` on the whole batch."""
    builders = {"greedy": torch_greedy, "softmax": torch_softmax, "sample": torch_sample}

    def bind(op, logits):
        if op.func not in builders:
            raise NotImplementedError(op.func)
        return builders[op.func](torch, torch.from_numpy(logits), **op.kwargs)

    return bind


def torch_greedy(torch, x):
    """`tokenpick.greedy` in torch: ``torch.argmax(x, dim=-1)``."""
    return functools.partial(torch.argmax, x, dim=-1)


def torch_softmax(torch, x, temperature=1.0):
    """`tokenpick.softmax` in torch: ``torch.softmax(x / T, dim=-1)``."""
    return lambda: torch.softmax(torch_temperature(x, temperature), dim=-1)


def torch_sample(torch, x, *, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed, offset=0):
    """`tokenpick.sample` in torch: the warpers, ``torch.softmax``, then
    ``torch.multinomial(probs, 1)`` with a ``torch.Generator`` seeded with `seed`.

    `offset`, a position in tokenpick's stream, has no use here: the generator
    is seeded once, outside the timing, and its stream simply goes on.
    """
    generator = torch.Generator().manual_seed(seed)

    def call():
        probs = torch.softmax(torch_warped(x, temperature, top_k, top_p, min_p), dim=-1)
        return torch.multinomial(probs, 1, generator=generator)

    return call


def torch_warped(x, temperature, top_k, top_p, min_p):
    """Logits through the HF-style warpers that the parameters enable, in tokenpick's
    order (the project's semantics), which is also HF transformers': temperature,
    top-k, top-p on the distribution left by top-k, then min-p."""
    scores = torch_temperature(x, temperature)
    if top_k > 0:
        scores = torch_top_k(scores, top_k)
    if top_p < 1.0:
        scores = torch_top_p(scores, top_p)
    if min_p > 0.0:
        scores = torch_min_p(scores, min_p)
    return scores


def torch_temperature(x, temperature):
    """HF's temperature warper, ``x / T``; as in HF, none at all for T = 1."""
    return x if temperature == 1.0 else x / temperature


def torch_top_k(scores, k):
    """HF's top-k warper: ``-inf`` below the k-th largest score (ties with it are kept)."""
    kth = scores.topk(min(k, scores.shape[-1]), dim=-1).values[..., -1:]
    return scores.masked_fill(scores < kth, -math.inf)


def torch_top_p(scores, p):
    """HF's top-p warper: sort ascending, remove the tokens whose cumulative
    probability is ``<= 1 - p`` (never the most likely one), scatter back."""
    ascending, order = scores.sort(dim=-1)
    remove = ascending.softmax(dim=-1).cumsum(dim=-1) <= 1.0 - p
    remove[..., -1] = False
    return scores.masked_fill(remove.scatter(-1, order, remove), -math.inf)


def torch_min_p(scores, m):
    """HF's min-p warper: remove the tokens whose probability is below ``m`` times the largest."""
    probs = scores.softmax(dim=-1)
    return scores.masked_fill(probs < m * probs.amax(dim=-1, keepdim=True), -math.inf)
