"""The PyTorch peer: HF-transformers-style logits warpers, written here in torch.

Temperature, top-k, top-p and min-p are applied in tokenpick's order, which
is also HF's, then ``torch.softmax`` and ``torch.multinomial`` with a seeded
``torch.Generator``, on the whole batch in one call, with torch's threads set
to tokenpick's and its idle OpenMP threads blocking (``OMP_WAIT_POLICY=PASSIVE``)
as tokenpick's do.

With the logit processors' keywords, ``sample`` first does what a PyTorch
server does before its warpers (`torch_processed`): the grammar's bitmask
unpacked and applied, the logit biases, then vLLM's penalty formula on counts
made with ``scatter_add_``.
"""

import functools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

import tokenpick

from .timing import Peer

NAME = "torch"
REPEATS = 5  # timed repeats, the median kept


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
    return Peer(NAME, bind_torch(torch), repeats=REPEATS), info


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
    (``torch.from_numpy``; a tensor, as ``--dtype`` gives, is taken as it is) outside
    the timing; the call does `op` on the whole batch."""
    builders = {"greedy": torch_greedy, "softmax": torch_softmax, "sample": torch_sample}

    def bind(op, logits):
        if op.func not in builders:
            raise NotImplementedError(op.func)
        x = logits if isinstance(logits, torch.Tensor) else torch.from_numpy(logits)
        return builders[op.func](torch, x, **op.kwargs)

    return bind


def torch_greedy(torch, x):
    """`tokenpick.greedy` in torch: ``torch.argmax(x, dim=-1)``."""
    return functools.partial(torch.argmax, x, dim=-1)


def torch_softmax(torch, x, temperature=1.0):
    """`tokenpick.softmax` in torch: ``torch.softmax(x / T, dim=-1)``."""
    return lambda: torch.softmax(torch_temperature(x, temperature), dim=-1)


def torch_sample(
    torch, x, *, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed, offset=0, **processors
):
    """`tokenpick.sample` in torch: the processors if any (`torch_processed`), the
    warpers, ``torch.softmax``, then ``torch.multinomial(probs, 1)`` with a
    ``torch.Generator`` seeded with `seed`.

    `offset`, a position in tokenpick's stream, has no use here: the generator
    is seeded once, outside the timing, and its stream simply goes on.  The
    processors' arguments become tensors here too (`TorchProcessors.prepare`), as
    a server keeps them.
    """
    generator = torch.Generator().manual_seed(seed)
    prepared = TorchProcessors.prepare(torch, x.shape, **processors) if processors else None

    def call():
        scores = x if prepared is None else torch_processed(torch, x, prepared)
        probs = torch.softmax(torch_warped(scores, temperature, top_k, top_p, min_p), dim=-1)
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


# ----------------------------------------------------------------------------
# The logit processors, as a PyTorch server applies them


@dataclass(frozen=True)
class TorchProcessors:
    """The logit processors' arguments as tensors, ready for `torch_processed`.

    Made once per batch, outside the timing (a server keeps them so from step to
    step): each row's ids padded with V (an extra column of counts that is cut
    off), the bitmask as int32 words, the biases as (row, token, value) triples,
    the penalties as ``(B, 1)`` columns.  A field is None when its processor is off.
    """

    bitmask: object = None  # (B, W) int32, 32 * W >= V
    shifts: object = None  # 0..31, int32: bit j % 32 of a word
    bias_rows: object = None  # int64
    bias_tokens: object = None  # int64
    bias_values: object = None  # float32
    prompt: object = None  # (B, Lp) int64, padded with V
    output: object = None  # (B, Lo) int64, padded with V
    ones: object = None  # (B, Lo) float32, what scatter_add_ adds
    repetition: object = None  # (B, 1) float32
    frequency: object = None
    presence: object = None

    @classmethod
    def prepare(
        cls,
        torch,
        shape,
        *,
        token_bitmask=None,
        logit_bias=None,
        prompt_ids=None,
        output_ids=None,
        repetition_penalty=1.0,
        frequency_penalty=0.0,
        presence_penalty=0.0,
    ):
        """The tensors for a ``(B, V)`` batch of logits from `tokenpick.process_logits`'
        arguments: a bitmask ``(W,)`` or ``(B, W)``; one logit_bias mapping or B of
        them; histories as ``(B, L)`` arrays padded with -1 or B lists; penalties as
        scalars or B values."""
        B, V = shape
        fields = {}
        if token_bitmask is not None:
            words = np.asarray(token_bitmask).view(np.int32)
            W = words.shape[-1]
            full = np.zeros((B, max(W, -(-V // 32))), dtype=np.int32)  # zero words: banned
            full[:, :W] = words  # (W,) is every row's
            fields["bitmask"] = torch.from_numpy(full)
            fields["shifts"] = torch.arange(32, dtype=torch.int32)
        if logit_bias is not None:
            per_row = [logit_bias] * B if isinstance(logit_bias, Mapping) else logit_bias
            triples = [(i, j, b) for i, m in enumerate(per_row) for j, b in (m or {}).items()]
            rows, tokens, values = zip(*triples) if triples else ((), (), ())
            fields["bias_rows"] = torch.tensor(rows, dtype=torch.int64)
            fields["bias_tokens"] = torch.tensor(tokens, dtype=torch.int64)
            fields["bias_values"] = torch.tensor(values, dtype=torch.float32)
        if prompt_ids is not None or output_ids is not None:
            fields["prompt"] = torch.from_numpy(padded_ids(prompt_ids, B, V))
            fields["output"] = torch.from_numpy(padded_ids(output_ids, B, V))
            fields["ones"] = torch.ones(fields["output"].shape, dtype=torch.float32)
            for name, value in (
                ("repetition", repetition_penalty),
                ("frequency", frequency_penalty),
                ("presence", presence_penalty),
            ):
                column = np.broadcast_to(np.asarray(value, dtype=np.float32), (B,)).reshape(B, 1)
                fields[name] = torch.from_numpy(column.copy())
        return cls(**fields)


def padded_ids(ids, B, V):
    """Each row's ids as one ``(B, L)`` int64 array padded with V (vLLM's padding,
    a column past the vocabulary), from a ``(B, L)`` array padded with -1, B lists,
    or None (no ids)."""
    rows = [[]] * B if ids is None else [np.asarray(r, dtype=np.int64) for r in ids]
    length = max([len(r) for r in rows] + [1])
    out = np.full((B, length), V, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = np.where(r == -1, V, r)
    return out


def torch_processed(torch, x, p):
    """The logits ``(B, V)`` after the processors of `p` (a `TorchProcessors`), in
    tokenpick's order, a new tensor (`x` is left as it is):

    * the bitmask: its words shifted right by 0..31 and ``& 1``, then
      ``masked_fill(-inf)`` where a bit is 0;
    * the logit biases, added with ``index_put_`` (a -inf bias bans);
    * vLLM's penalties: the output's counts with ``scatter_add_`` into ``(B, V + 1)``
      (the padding's column cut off), the tokens present in prompt or output, then
      ``where(x > 0, x / p, x * p)`` on those, then ``x -= f * counts`` and
      ``x -= r * (counts > 0)``.
    """
    B, V = x.shape
    if p.bitmask is not None:
        bits = (p.bitmask.unsqueeze(-1) >> p.shifts) & 1  # (B, W, 32)
        scores = x.masked_fill(bits.reshape(B, -1)[:, :V] == 0, -math.inf)
    else:
        scores = x.clone()
    if p.bias_rows is not None:
        scores.index_put_((p.bias_rows, p.bias_tokens), p.bias_values, accumulate=True)
    if p.output is not None:
        counts = torch.zeros((B, V + 1), dtype=torch.float32)
        counts.scatter_add_(1, p.output, p.ones)
        counts = counts[:, :V]
        in_output = counts > 0
        in_prompt = torch.zeros((B, V + 1), dtype=torch.bool).scatter_(1, p.prompt, True)
        present = in_output | in_prompt[:, :V]
        penalized = torch.where(scores > 0, scores / p.repetition, scores * p.repetition)
        scores = torch.where(present, penalized, scores)
        scores -= p.frequency * counts  # two steps, as vLLM: fewer temporaries than one
        scores -= p.presence * in_output
    return scores
