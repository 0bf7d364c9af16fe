"""Speculative decoding: ``verify``, the test of draft tokens against the target model's
distributions, in one batched call (the kernels: csrc/rows/verify.c, one row's positions
in turn in ``_core.verify``)."""

import numpy as np

from . import _core, _frameworks, _processors, _threads
from . import _params as P


def verify(
    target_logits,
    draft_tokens,
    *,
    draft_probs=None,
    num_draft=None,
    temperature=1.0,
    top_k=0,
    top_p=1.0,
    min_p=0.0,
    top_n_sigma=0.0,
    typical_p=1.0,
    epsilon=0.0,
    eta=0.0,
    xtc_threshold=0.1,
    xtc_probability=0.0,
    order="tokenpick",
    token_bitmask=None,
    logit_bias=None,
    prompt_ids=None,
    output_ids=None,
    repetition_penalty=1.0,
    frequency_penalty=0.0,
    presence_penalty=0.0,
    min_tokens=0,
    stop_ids=None,
    seed=None,
    offset=0,
    uniforms=None,
    return_logprobs=False,
    num_threads=None,
):
    """Verify K draft tokens per row by rejection sampling: the emitted tokens follow the
    target model's distributions exactly, whatever drafted them (Leviathan et al. 2023;
    Chen et al. 2023).

    At position k of row b, p_k is :func:`filtered_probs` of ``target_logits[b, k]`` with
    the row's filters and logit processors, its ``output_ids`` extended by the drafts
    before k (and ``token_bitmask[b, k]`` when the bitmask is 3-D).  Draft k is accepted
    iff ``u_{k+1} * q_k(d_k) < p_k(d_k)``, q_k being ``draft_probs[b, k]`` (for drafts
    without one, n-gram drafts: q = 1 at the draft) and ``u_j = uniform(seed, offset,
    index=j)``; the first rejection ends the row, its token drawn with ``u_0`` by
    :func:`sample`'s rule from ``max(0, p_k - q_k)`` (from p_k where that is all zero).
    If every draft is accepted, a bonus token is drawn from p at position
    ``num_draft[b]`` with ``u_0``, so a row without drafts draws what :func:`sample`
    draws.  Rows at ``T == 0`` accept while the draft is the processed argmax and emit
    the argmax.

    Parameters
    ----------
    target_logits : array_like, shape (B, K+1, V)
        The target model's logits at each draft position and the bonus position; any
        dtype and framework the other functions take (bfloat16 read in place).
    draft_tokens : array_like of int, shape (B, K)
        Ids in [0, V) where ``k < num_draft[b]``; the rest are not read.
    draft_probs : array_like, shape (B, K, V), optional
        The distribution each draft was drawn from, finite and >= 0 (checked where read:
        at the draft, and the whole row at a rejection).  None: drafts taken as certain.
    num_draft : int or array_like of int, shape (B,), optional
        Drafts of each row, in [0, K]; default K.
    temperature, top_k, top_p, min_p, top_n_sigma, typical_p, epsilon, eta, xtc_threshold,
    xtc_probability, order, token_bitmask, logit_bias, prompt_ids, output_ids,
    repetition_penalty, frequency_penalty, presence_penalty, min_tokens, stop_ids
        As for :func:`sample`, per row; ``token_bitmask`` may also be (B, K+1, W), one
        per position (grammar decoding with drafts).  XTC's coin at position k is
        ``uniform(seed, offset + k, index=1)``, the coin :func:`sample` would toss at
        that step.
    seed, offset : as for :func:`sample`.
    uniforms : array_like of float, shape (B, K+1), optional
        Instead of seeds: column j is u_j.
    return_logprobs : bool
        Also return each emitted token's log-probability under its position's p.
    num_threads : int, optional

    Returns
    -------
    tokens : ndarray of int64, shape (B, K+1)
        The accepted drafts, then the emitted token, then -1.
    num_accepted : ndarray of int64, shape (B,)
    logprobs : ndarray of float32, shape (B, K+1), with return_logprobs
        -inf past the emitted token.

    Raises
    ------
    ValueError
        For bad shapes and values (a draft id out of range, a probability that is not
        one, a position's logits with NaN or +inf or all -inf, no token left after its
        processors), naming the row and the position.  Problems are found row by row,
        and within a row position by position: a position's logits and processors
        (every position, reached or not), then, at a position reached, the draft's
        probabilities where read.
    """
    a = _frameworks.read_positions(target_logits, bfloat16_bits=True)
    B, npos, V = a.shape
    K = npos - 1
    x = _positions_in_place(a)
    given = _drafts(draft_tokens, B, K)
    nd = _num_draft(num_draft, B, K)
    _check_draft_ids(given, nd, V)
    with np.errstate(over="ignore"):  # those read are in [0, V); the rest is not read
        drafts = np.ascontiguousarray(given, dtype=np.int64)
    q = _draft_probs(draft_probs, B, K, V)
    f = P.filters(
        B, V, temperature, top_k, top_p, min_p, top_n_sigma, typical_p, epsilon, eta,
        xtc_threshold, xtc_probability, order,
    )  # fmt: skip
    f = tuple(_per_position(v, B, npos) for v in f)
    proc = (
        token_bitmask,
        logit_bias,
        prompt_ids,
        output_ids,
        repetition_penalty,
        frequency_penalty,
        presence_penalty,
        min_tokens,
        stop_ids,
    )
    plan = _position_plan(B, npos, V, drafts, nd, proc)
    if num_threads is not None:
        P.thread_limit("num_threads", num_threads)
    u, seeds, offsets = _uniforms_or_seeds(B, npos, seed, offset, uniforms)
    f = P.xtc_coins(f, B * npos, *_position_steps(B, npos, seeds, offsets))
    tokens = np.full((B, npos), -1, dtype=np.int64)
    accepted = np.zeros(B, dtype=np.int64)
    logprobs = np.full((B, npos), -np.inf, dtype=np.float32)
    args = (x, drafts, nd, q, f, plan, u, seeds, offsets, tokens, accepted, logprobs, npos)
    threads = _threads.thread_count(B, npos * V, num_threads)
    try:
        if threads == 1:
            _core.verify(*args, 0, B)
        else:
            _threads.run_rows(_core.verify, threads, B, *args)
    except _core.StrayIds:  # an id of the processor arguments out of range: which one
        _processors.explain(B, V, False, *proc)
        raise
    if return_logprobs:
        return tokens, accepted, logprobs
    return tokens, accepted


def _positions_in_place(a):
    """The (B, K+1, V) target logits as the core reads them: (B*(K+1), V) rows, a view
    where they are C-contiguous; a itself where each row is one block of memory a whole
    number of elements from the next (the last K+1 positions of a model's (B, L, V)
    logits); else a copy (rows_in_place)."""
    B, npos, V = a.shape
    if a.flags.c_contiguous:
        return P.rows_in_place(a.reshape(B * npos, V))
    if B and _core.plain_logits(a[:, 0]) and _core.plain_logits(a[0]):
        return a
    return P.rows_in_place(a.reshape(B * npos, V))


def _drafts(draft_tokens, B, K):
    a = _frameworks.as_array("draft_tokens", draft_tokens)
    if a.dtype.kind not in "iu":
        raise TypeError(f"draft_tokens must hold integer token ids, got dtype {a.dtype}")
    if a.shape != (B, K):
        raise ValueError(
            f"draft_tokens must have shape (B, K) = ({B}, {K}) for target_logits of shape "
            f"(B, K+1, V); got {a.shape}"
        )
    return a


def _num_draft(num_draft, B, K):
    if num_draft is None:
        return np.full(B, K, dtype=np.int64)
    n = P.int_rows("num_draft", num_draft, B, P.Rule(0, K, integer=True))
    return np.ascontiguousarray(np.broadcast_to(np.asarray(n, dtype=np.int64), (B,)))


def _check_draft_ids(drafts, nd, V):
    K = drafts.shape[1]
    bad = (np.arange(K) < nd[:, None]) & ((drafts < 0) | (drafts >= V))
    if bad.any():
        b, k = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"draft_tokens row {b}, position {k} holds {drafts[b, k]}, not a token id in "
            f"[0, V) = [0, {V})"
        )


def _draft_probs(draft_probs, B, K, V):
    if draft_probs is None:
        return None
    a = _frameworks.read_floats(draft_probs, "draft_probs")
    if a.shape != (B, K, V):
        raise ValueError(f"draft_probs must have shape (B, K, V) = ({B}, {K}, {V}); got {a.shape}")
    with np.errstate(over="ignore"):
        return np.require(a, dtype=np.float32, requirements=["C", "A"])


def _per_position(value, B, npos):
    """A per-row number (a scalar, or an array or sequence of B) for each of the B * npos
    positions."""
    if type(value) is float or type(value) is int:  # the common case, kept cheap
        return value
    if np.ndim(value) == 1:  # an array, a sequence, a tensor of another framework
        return np.repeat(np.asarray(value), npos)
    return value


def _position_steps(B, npos, seeds, offsets):
    """The seed and the step (offset + k, modulo 2**64) of each of the B * npos
    positions, for XTC's coins; (None, None) without seeds."""
    if seeds is None:
        return None, None
    s = np.repeat(np.broadcast_to(np.asarray(seeds, dtype=np.uint64), (B,)), npos)
    o = np.repeat(np.broadcast_to(np.asarray(offsets, dtype=np.uint64), (B,)), npos)
    return s, o + np.tile(np.arange(npos, dtype=np.uint64), B)


def _uniforms_or_seeds(B, npos, seed, offset, uniforms):
    if uniforms is None:
        _, seeds, offsets = P.uniforms_or_seeds(B, seed, offset, None)
        return None, seeds, offsets
    if seed is not None:
        raise ValueError("give either seed or uniforms, not both")
    u = _frameworks.as_array("uniforms", uniforms)
    if u.dtype.kind not in "fiu" or u.shape != (B, npos):
        raise ValueError(
            f"uniforms must be an array of numbers of shape (B, K+1) = ({B}, {npos}); "
            f"got {u.shape if u.dtype.kind in 'fiu' else u.dtype}"
        )
    u = np.ascontiguousarray(u, dtype=np.float64)
    if not ((u >= 0) & (u < 1)).all():
        raise ValueError(f"uniforms must each be {P.UNIFORMS.text}")
    return u, None, None


def _position_plan(B, npos, V, drafts, nd, proc):
    """The processors of each position: the row's, its output_ids extended by the drafts
    before the position (num_draft[b] of them at most), its own bitmask where the
    bitmask is 3-D; None where no processor is on (the drafts then change nothing)."""
    bitmask, bias, prompt, output, rep, freq, pres, min_tokens, stop = proc
    bitmask3 = bitmask is not None and np.ndim(bitmask) == 3
    if bitmask3:
        words = _frameworks.as_array("token_bitmask", bitmask)
        if words.shape[:2] != (B, npos):
            raise ValueError(
                f"token_bitmask of 3 dimensions must have shape (B, K+1, W) = ({B}, {npos}, W); "
                f"got {words.shape}"
            )
        bitmask = words[:, 0]  # its rows' checks, with the others, against B rows
    row_plan = _processors.prepare(B, V, False, bitmask, *proc[1:])
    penalized = not (
        np.all(np.asarray(rep) == 1.0)
        and np.all(np.asarray(freq) == 0.0)
        and np.all(np.asarray(pres) == 0.0)
    )
    if row_plan is None and not penalized:  # the drafts, as output, change nothing
        return None
    K = npos - 1
    if bitmask3:
        bitmask = words.reshape(B * npos, words.shape[2])
    elif bitmask is not None and np.ndim(bitmask) == 2:
        bitmask = np.repeat(_frameworks.as_array("token_bitmask", bitmask), npos, axis=0)
    # output_ids, padded with -1: the row's history, then its drafts before each position
    history = _padded_rows(output, B)
    L = history.shape[1]
    out = np.full((B, npos, L + K), -1, dtype=np.int64)
    out[:, :, :L] = history[:, None, :]
    for k in range(npos):
        n = np.minimum(k, nd)
        out[:, k, L : L + k] = np.where(np.arange(k) < n[:, None], drafts[:, :k], -1)
    expanded = (
        bitmask,
        _repeat_rows(bias, B, npos),
        None if prompt is None else _repeat_rows(_ragged(prompt, B), B, npos),
        out.reshape(B * npos, L + K),
        _per_position(rep, B, npos),
        _per_position(freq, B, npos),
        _per_position(pres, B, npos),
        _per_position(min_tokens, B, npos),
        stop if stop is None or _shared_ids(stop) else _repeat_rows(_ragged(stop, B), B, npos),
    )
    return _processors.prepare(B * npos, V, False, *expanded)


def _ragged(ids, B):
    """B 1-D int64 arrays of ids: from a (B, L) array padded with -1, or a sequence of B
    1-D arrays (the forms _processors.prepare has checked)."""
    if not isinstance(ids, (list, tuple)):
        a = _frameworks.as_array("ids", ids)
        ids = a.tolist() if a.dtype.kind == "O" else a
    return [np.asarray(r, dtype=np.int64).reshape(-1) for r in ids][:B]


def _padded_rows(ids, B):
    """output_ids as an int64 (B, L) array padded with -1 (L = 0 without them)."""
    rows = [] if ids is None else _ragged(ids, B)
    out = np.full((B, max((len(r) for r in rows), default=0)), -1, dtype=np.int64)
    for b, r in enumerate(rows):
        out[b, : len(r)] = r
    return out


def _shared_ids(ids):
    """Whether stop_ids is one list of ids for every row (not one per row)."""
    if isinstance(ids, (list, tuple)):
        return all(np.ndim(e) == 0 for e in ids)
    return np.ndim(ids) == 1 and _frameworks.as_array("stop_ids", ids).dtype.kind in "iu"


def _repeat_rows(value, B, npos):
    """A per-row argument (a mapping or None for every row, a (B, ...) array, or a
    sequence of B entries) with each row's entry repeated for its npos positions."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind != "O":
            return np.repeat(value, npos, axis=0)
        value = value.tolist()
    if not isinstance(value, (list, tuple)):  # None, or one mapping for every row
        return value
    return [e for e in value for _ in range(npos)]
