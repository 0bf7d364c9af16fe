"""The public functions: check once, convert, call the compiled core.

Logits are 1-D ``(V,)`` or 2-D ``(B, V)``; the vocabulary is the last axis.
Per-row parameters are a scalar or a 1-D array of length B.  1-D logits give
scalar-shaped results, as ``np.argmax`` does.  Every check happens before any
output is written, so a call that raises leaves the caller's arrays as they
were.  docs/semantics.md states the semantics; :mod:`tokenpick.reference` is
their executable form.
"""

import numpy as np

from . import _core, _frameworks, _processors, _threads
from . import _params as P


def _run_into(kernel, logits, x, args, out, plan=None, proc=None):
    """An elementwise kernel over x (the logits as read) into ``out=``
    (checked; x is copied when out overlaps it partly) or into a new array;
    returns the new array, in the logits' shape, or out as the caller gave it
    (a tensor stays a tensor).  With the processor arguments `proc` of a
    plan, their errors come before out's, as everywhere (a plain plan's ids
    are otherwise checked only by the core)."""
    given = out
    try:
        out = _frameworks.read_out(out, x.shape)
        x = P.check_out(out, x)
    except (TypeError, ValueError):
        if plan is not None and proc is not None:
            _processors.prepare(P.nrows(x), x.shape[-1], x.ndim == 1, *proc, plain=False)
        raise
    result = np.empty(x.shape, dtype=np.float32) if out is None else out
    _run(kernel, x, *args, result, own_outputs=out is None, plan=plan)
    return result.reshape(_frameworks.given_shape(logits, x)) if given is None else given


def _explain(x, proc):
    """Raise, for the core's StrayIds (ids of the processor arguments out of
    range, which the core checks for arrays it reads unchecked), the error of
    the general check of the arguments `proc`.  Called from an except clause:
    a try costs nothing where nothing is raised, where a context manager
    costs about a microsecond a call."""
    _processors.explain(P.nrows(x), x.shape[-1], x.ndim == 1, *proc)


def _per_row_result(values, x):
    return values[0] if x.ndim == 1 else values


def _run(
    kernel,
    x,
    *args,
    num_threads=None,
    own_outputs=True,
    per_thread=_threads.MIN_LOGITS_PER_THREAD,
    plan=None,
):
    """The kernel over every row of x, spread over threads when that pays.

    A bad row raises before anything the caller can see is written.  When
    the outputs are the call's own arrays (own_outputs), the kernel checks
    each row right before using it and stops at the first bad one (the new
    arrays are dropped); a caller's ``out=`` is checked whole, on this
    thread, before any work (with the logit processors of `plan`, if any:
    then the kernel is told it need not check the rows again; a single row
    is checked by the kernel right before it is written).  Each thread gets
    at least `per_thread` logits.
    """
    nrows = P.nrows(x)
    threads = _threads.thread_count(nrows, x.shape[-1], num_threads, per_thread)
    stats = None
    if not own_outputs and plan is None:
        stats = _core.scan(x)
    elif not own_outputs and nrows > 1:  # one row is checked right before it is written
        stats = _core.check_processed(x, plan)
    if threads == 1:
        kernel(x, stats, *args, 0, nrows)
    else:
        _threads.run_rows(kernel, threads, nrows, x, stats, *args)


def softmax(logits, temperature=1.0, *, out=None):
    """Probabilities ``exp(x / T) / sum(exp(x / T))`` along the last axis.

    Parameters
    ----------
    logits : array_like, shape (V,) or (B, V)
        Real floating values; ``-inf`` means "never".
    temperature : float or array_like of shape (B,)
        ``T >= 0``; ``T == 0`` gives the one-hot distribution of the argmax.
    out : ndarray of float32, optional
        Where to write the result; may be ``logits`` itself.

    Returns
    -------
    ndarray of float32, the shape of logits

    Examples
    --------
    >>> import numpy as np, tokenpick
    >>> tokenpick.softmax(np.array([0.0, np.log(3.0)], dtype=np.float32)).round(3)
    array([0.25, 0.75], dtype=float32)
    """
    x = P.as_logits(logits)
    t = P.temperatures(temperature, P.nrows(x))
    return _run_into(_core.softmax, logits, x, (t,), out)


def log_softmax(logits, temperature=1.0, *, out=None):
    """Log-probabilities ``x / T - logsumexp(x / T)`` along the last axis.

    Parameters
    ----------
    logits : array_like, shape (V,) or (B, V)
    temperature : float or array_like of shape (B,)
        ``T == 0`` gives 0 at the argmax and ``-inf`` elsewhere.
    out : ndarray of float32, optional

    Returns
    -------
    ndarray of float32, the shape of logits
    """
    x = P.as_logits(logits)
    t = P.temperatures(temperature, P.nrows(x))
    return _run_into(_core.log_softmax, logits, x, (t,), out)


def logsumexp(logits, temperature=1.0):
    """``log(sum(exp(x / T)))`` of each row, computed without overflow.

    At ``T == 0`` this is its limit as T -> 0+: ``+inf`` if the row's max is
    positive, ``-inf`` if negative, ``log(ties)`` if it is 0.

    Returns
    -------
    float32 scalar for 1-D logits, else ndarray of float32, shape (B,)
    """
    x = P.as_logits(logits)
    nrows = P.nrows(x)
    t = P.temperatures(temperature, nrows)
    res = np.empty(nrows, dtype=np.float32)
    _run(_core.logsumexp, x, t, res)
    return _per_row_result(res, x)


def greedy(logits):
    """The argmax of each row, the lowest index among ties.

    Returns
    -------
    int64 scalar for 1-D logits, else ndarray of int64, shape (B,)
    """
    x = P.as_logits(logits)
    res = np.empty(P.nrows(x), dtype=np.int64)
    _run(_core.greedy, x, res, per_thread=_threads.MIN_LOGITS_PER_THREAD_READ_ONLY)
    return _per_row_result(res, x)


def mask(
    logits,
    *,
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
    out=None,
):
    """A copy of the logits with ``-inf`` outside the kept set.

    The filters apply in the order temperature, top-n-sigma, top-k, top-p, min-p,
    typical, epsilon, eta, XTC, each on the distribution renormalized over what
    the ones before it kept, ties at every boundary kept (``order=`` chooses
    another sampler's pipeline).  The kept values are the logits themselves,
    not divided by T; with logit processors, the processed logits
    (:func:`process_logits`), which the filters then see.

    Parameters
    ----------
    logits : array_like, shape (V,) or (B, V)
    temperature : float or array_like of shape (B,)
        Scales the distribution the filters look at.  ``T == 0`` keeps only
        the argmax (lowest index on ties), whatever the other filters say
        (but see ``order="llama.cpp"``).
    top_k : int or array_like of shape (B,)
        Keep tokens whose logit is ``>=`` the k-th largest (ties at the boundary
        are all kept).  0, -1 and k >= V disable it.
    top_p : float or array_like of shape (B,)
        In (0, 1]: keep the shortest most-probable prefix whose mass reaches p,
        plus every token tied with its last one.  1 disables it.
    min_p : float or array_like of shape (B,)
        In [0, 1]: keep tokens with probability ``>= min_p * max probability``.
        0 disables it.
    top_n_sigma : float or array_like of shape (B,)
        Keep tokens whose logit is ``>= max - n * sigma``, sigma the population
        standard deviation of the row's finite (processed) logits (top-n-sigma,
        Tang et al. 2024, llama.cpp's).  A finite number; ``<= 0`` disables it.
    typical_p : float or array_like of shape (B,)
        In (0, 1]: locally typical sampling (Meister et al. 2022, HF's): keep
        the tokens whose surprise ``-log p`` is nearest the entropy H, nearest
        first, until their mass reaches typical_p (ties at the last distance
        kept).  1 disables it.
    epsilon : float or array_like of shape (B,)
        In [0, 1): drop tokens with ``p < epsilon`` (the most likely always
        stays).  0 disables it.
    eta : float or array_like of shape (B,)
        In [0, 1): drop tokens with ``p < min(eta, sqrt(eta) * exp(-H))``
        (Hewitt et al. 2022, HF's; the most likely always stays).  0 disables it.
    xtc_threshold, xtc_probability : float or array_like of shape (B,)
        llama.cpp's XTC ("exclude top choices"), each in [0, 1]: where
        ``uniform(seed, offset, index=1) < xtc_probability`` and two or more
        tokens have ``p >= xtc_threshold``, all of those but the least likely
        are dropped.  xtc_probability 0 (the default) disables it; between 0
        and 1 it needs ``seed``.
    order : {"tokenpick", "hf", "vllm", "llama.cpp"}
        Whose pipeline the filters follow.  "tokenpick" (the default) is the
        order above; "hf" is the same (HF's warpers), without top-n-sigma and
        XTC; "vllm" applies min-p before top-k and top-p, and has no
        top-n-sigma, typical, epsilon, eta or XTC; "llama.cpp" is its default
        chain: top-n-sigma, top-k keeping exactly k (ties by lowest id),
        typical, top-p, min-p, XTC, all on the logits before temperature,
        which only shapes the draw (a row at ``T == 0`` takes the largest
        logit the chain kept); its top-p and typical end at the first
        cumulative sum to reach (typical: exceed) p, ties by lowest id; no
        epsilon or eta.  A filter the chosen sampler lacks is a ValueError.
    token_bitmask, logit_bias, prompt_ids, output_ids, repetition_penalty,
    frequency_penalty, presence_penalty, min_tokens, stop_ids
        The logit processors, applied before the filters: see
        :func:`process_logits`.  All off by default.
    seed, offset : int or array_like of shape (B,)
        Only for XTC's coin, as :func:`sample` takes them.
    out : ndarray of float32, optional
        Where to write the result; may be ``logits`` itself.

    Returns
    -------
    ndarray of float32, the shape of logits
    """
    x = P.as_logits(logits)
    nrows = P.nrows(x)
    f = P.filters(
        nrows, x.shape[-1], temperature, top_k, top_p, min_p, top_n_sigma, typical_p, epsilon,
        eta, xtc_threshold, xtc_probability, order,
    )  # fmt: skip
    f = _coins(f, nrows, seed, offset)
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
    plan = _processors.prepare(P.nrows(x), x.shape[-1], x.ndim == 1, *proc)
    try:
        return _run_into(_core.mask, logits, x, (f, plan), out, plan, proc)
    except _core.StrayIds:
        _explain(x, proc)


def _coins(f, nrows, seed, offset):
    """The filters with XTC's coins tossed, for mask and filtered_probs: seed and
    offset serve only XTC there."""
    if not P.tosses_coins(f) or seed is None:
        return P.xtc_coins(f, nrows, None, None)  # none to toss, or the error it needs seed
    seeds = P.uint64_rows("seed", seed, nrows, P.SEED)
    return P.xtc_coins(f, nrows, seeds, P.uint64_rows("offset", offset, nrows, P.OFFSET))


def top_k_mask(logits, top_k, *, out=None):
    """:func:`mask` with top-k only."""
    return mask(logits, top_k=top_k, out=out)


def top_p_mask(logits, top_p, *, temperature=1.0, out=None):
    """:func:`mask` with top-p only (at the given temperature)."""
    return mask(logits, temperature=temperature, top_p=top_p, out=out)


def min_p_mask(logits, min_p, *, temperature=1.0, out=None):
    """:func:`mask` with min-p only (at the given temperature)."""
    return mask(logits, temperature=temperature, min_p=min_p, out=out)


def filtered_probs(
    logits,
    *,
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
    out=None,
):
    """The distribution :func:`sample` draws from.

    Softmax at the temperature, restricted to the kept set of :func:`mask`
    and renormalized; 0 outside it, one-hot at the argmax when ``T == 0``.
    The arguments are :func:`mask`'s; with logit processors, this is the
    distribution of the processed logits.

    Returns
    -------
    ndarray of float32, the shape of logits
    """
    x = P.as_logits(logits)
    nrows = P.nrows(x)
    f = P.filters(
        nrows, x.shape[-1], temperature, top_k, top_p, min_p, top_n_sigma, typical_p, epsilon,
        eta, xtc_threshold, xtc_probability, order,
    )  # fmt: skip
    f = _coins(f, nrows, seed, offset)
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
    plan = _processors.prepare(P.nrows(x), x.shape[-1], x.ndim == 1, *proc)
    try:
        return _run_into(_core.filtered_probs, logits, x, (f, plan), out, plan, proc)
    except _core.StrayIds:
        _explain(x, proc)


def sample(
    logits,
    *,
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
    """Draw one token per row from :func:`filtered_probs`.

    With a uniform ``u`` in [0, 1), the token is the first kept token, in
    ascending id, at which the running sum of kept probabilities exceeds
    ``u * total``.  ``u`` is a pure function of ``(seed, offset)``
    (Philox4x32-10, see :func:`uniform`), so a row's token never depends on
    its batch, its position there or the thread count.

    Parameters
    ----------
    logits : array_like, shape (V,) or (B, V)
    temperature, top_k, top_p, min_p, top_n_sigma, typical_p, epsilon, eta, xtc_threshold,
    xtc_probability, order
        As for :func:`mask`; XTC's coin is ``uniform(seed, offset, index=1)``.
    token_bitmask, logit_bias, prompt_ids, output_ids, repetition_penalty,
    frequency_penalty, presence_penalty, min_tokens, stop_ids
        The logit processors (:func:`process_logits`), applied before the
        filters; ``T == 0`` rows then take the argmax of the processed logits.
    seed : int or array_like of shape (B,), optional
        Integers in [0, 2**64).  A scalar gives every row the same seed.
        None (the default) draws a fresh seed per row from the OS.
    offset : int or array_like of shape (B,)
        Integers in [0, 2**64): the position in the seed's stream, e.g. the
        decoding step.
    uniforms : float or array_like of shape (B,), optional
        The ``u`` of each row, in [0, 1), instead of seed and offset.
    return_logprobs : bool
        Also return the log-probability of each chosen token under
        :func:`filtered_probs` (of the processed logits; :func:`token_logprobs`
        gives the raw one).
    num_threads : int, optional
        The most threads to spread rows over (default: :func:`get_num_threads`).

    Returns
    -------
    tokens : int64 scalar or ndarray of int64, shape (B,)
    logprobs : float32 scalar or ndarray of float32, shape (B,)
        Only with ``return_logprobs=True``.

    Examples
    --------
    >>> import numpy as np, tokenpick
    >>> logits = np.array([1.2, 2.0, 3.5, 3.0, 1.8, 1.0], dtype=np.float32)
    >>> int(tokenpick.sample(logits, top_k=3, seed=42, offset=0))
    2
    """
    x = P.as_logits(logits)
    nrows = P.nrows(x)
    f = P.filters(
        nrows, x.shape[-1], temperature, top_k, top_p, min_p, top_n_sigma, typical_p, epsilon,
        eta, xtc_threshold, xtc_probability, order,
    )  # fmt: skip
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
    plan = _processors.prepare(nrows, x.shape[-1], x.ndim == 1, *proc)
    return draw(x, f, plan, proc, seed, offset, uniforms, return_logprobs, num_threads)


def draw(x, f, plan, proc, seed, offset, uniforms, return_logprobs, num_threads):
    """sample's work once its logits `x` (as read), filters `f` and processors' `plan`
    (from their arguments `proc`, or None for a plan that needs no explaining: one of
    tokenpick.Sampler's) are checked; the rest is checked here."""
    nrows = P.nrows(x)
    if num_threads is not None:
        P.thread_limit("num_threads", num_threads)
    u, seeds, offsets = P.uniforms_or_seeds(nrows, seed, offset, uniforms)
    f = P.xtc_coins(f, nrows, seeds, offsets)
    if nrows == 1:  # the shortest way to the kernel: no thread to consider, results made there
        if plan is None:
            return _core.sample_row(x, f, None, u, seeds, offsets, return_logprobs, x.ndim == 2)
        try:
            return _core.sample_row(x, f, plan, u, seeds, offsets, return_logprobs, x.ndim == 2)
        except _core.StrayIds:
            _explain(x, proc)
    tokens = np.empty(nrows, dtype=np.int64)
    logprobs = np.empty(nrows, dtype=np.float32)
    try:
        _run(_core.sample, x, f, plan, u, seeds, offsets, tokens, logprobs, num_threads=num_threads)
    except _core.StrayIds:
        _explain(x, proc)
    if return_logprobs:
        return _per_row_result(tokens, x), _per_row_result(logprobs, x)
    return _per_row_result(tokens, x)


def top_logprobs(logits, n, temperature=1.0):
    """The n most likely tokens of each row and their log-probabilities.

    Parameters
    ----------
    logits : array_like, shape (V,) or (B, V)
    n : int
        In [1, V].
    temperature : float or array_like of shape (B,)

    Returns
    -------
    ids : ndarray of int64, shape (n,) or (B, n)
        Most likely first; the lowest id first among ties.
    logprobs : ndarray of float32, the shape of ids
        The matching values of :func:`log_softmax`.
    """
    x = P.as_logits(logits)
    n = P.top_logprobs_n(n, x.shape[-1])
    t = P.temperatures(temperature, P.nrows(x))
    ids = np.empty(x.shape[:-1] + (n,), dtype=np.int64)
    lps = np.empty(x.shape[:-1] + (n,), dtype=np.float32)
    _run(_core.top_logprobs, x, t, n, ids, lps)
    return ids, lps


def process_logits(
    logits,
    *,
    token_bitmask=None,
    logit_bias=None,
    prompt_ids=None,
    output_ids=None,
    repetition_penalty=1.0,
    frequency_penalty=0.0,
    presence_penalty=0.0,
    min_tokens=0,
    stop_ids=None,
    out=None,
):
    """The logits after the logit processors: what the filters of :func:`sample`,
    :func:`filtered_probs` and :func:`mask` see when given the same arguments.

    Each row goes through, in this order (vLLM's; HF and llama.cpp also bias
    before they penalize): the bans (the bitmask's zeros, ``-inf`` biases, the
    stop ids while ``min_tokens`` is unmet); the finite biases, added; the
    repetition penalty; the frequency and presence penalties.  The tokens
    they change are computed in float64 from the float32 logit and rounded
    to float32 once; every other token keeps its logit bit for bit.  A banned
    token stays ``-inf`` whatever the biases and penalties.  Every argument is
    off by default; with none given the result is a float32 copy of the logits.

    Parameters
    ----------
    logits : array_like, shape (V,) or (B, V)
    token_bitmask : int32 or uint32 array, shape (W,) or (B, W), optional
        A grammar's allowed tokens in xgrammar's and llguidance's layout: token
        j is allowed iff bit ``j % 32`` of word ``j // 32`` is 1 (the bits count,
        not the sign: an int32 word of -1 allows its 32 tokens).  ``(W,)``
        serves every row.  Tokens ``j >= 32 * W`` are banned; bits past V are
        ignored.  Another dtype is a TypeError.
    logit_bias : mapping, or a sequence of B mappings or None, optional
        ``{token_id: bias}`` added to the logits; one mapping serves every row.
        Ids in [0, V) (integers; convert JSON's string keys with ``int``);
        biases real, ``-inf`` bans, NaN and ``+inf`` are errors.
    prompt_ids, output_ids : integer ids, optional
        Each row's tokens so far: a 2-D integer array ``(B, L)`` padded with -1,
        or a sequence of B 1-D arrays or lists; for 1-D logits, one 1-D list.
        -1 is padding wherever it stands and counts for nothing.  Repeats are
        counted, in any order.
    repetition_penalty : float or array_like of shape (B,)
        ``p > 0``: every token present in prompt or output (once, however often)
        becomes ``x / p`` if ``x > 0``, else ``x * p``, with x the biased logit
        (HF's ``RepetitionPenaltyLogitsProcessor``, vLLM).  1 disables it.
    frequency_penalty, presence_penalty : float or array_like of shape (B,)
        Finite: ``x -= f * c + r * (c > 0)``, c the token's count in
        ``output_ids`` only (OpenAI's formula, vLLM).  0 disables them.
    min_tokens : int or array_like of shape (B,)
        While a row's output holds fewer tokens than this (padding aside), the
        ids of its ``stop_ids`` are banned.  There is no implicit EOS: list it
        among the stop ids.  ``min_tokens > 0`` without ``stop_ids`` is an error.
    stop_ids : integer ids, optional
        One 1-D list for every row, or one per row (padded 2-D, or B lists).
    out : ndarray of float32, optional
        Where to write the result; may be ``logits`` itself (in place).

    Returns
    -------
    ndarray of float32, the shape of logits; ``-inf`` where banned.

    Raises
    ------
    TypeError, ValueError
        For wrong types, shapes, ids or values, naming the row; for a row the
        processors leave with no token, or whose processed logit leaves
        float32's range upwards.  Nothing is written before an error.

    Examples
    --------
    >>> import numpy as np, tokenpick
    >>> x = np.zeros(6, dtype=np.float32)
    >>> tokenpick.process_logits(x, token_bitmask=np.array([0b100101], dtype=np.int32))
    array([  0., -inf,   0., -inf, -inf,   0.], dtype=float32)
    >>> tokenpick.process_logits(np.array([2.0, -2.0, 1.0], dtype=np.float32),
    ...                          prompt_ids=[0, 1], output_ids=[2, 2, -1],
    ...                          repetition_penalty=2.0, frequency_penalty=0.25)
    array([ 1., -4.,  0.], dtype=float32)
    """
    x = P.as_logits(logits)
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
    plan = _processors.prepare(P.nrows(x), x.shape[-1], x.ndim == 1, *proc)
    if plan is None:  # nothing to apply: the checked logits, as float32
        given, out = out, _frameworks.read_out(out, x.shape)
        x = P.check_out(out, x)
        _core.scan(x)
        if out is None:
            copy = x.copy() if x.dtype == np.float32 else P.as_float32(x)
            return copy.reshape(_frameworks.given_shape(logits, x))
        np.copyto(out, P.as_float32(x))
        return given
    try:
        return _run_into(_core.process, logits, x, (plan,), out, plan, proc)
    except _core.StrayIds:
        _explain(x, proc)


def token_logprobs(logits, tokens, temperature=1.0):
    """The raw log-probability of given tokens: ``log_softmax(logits, T)`` at them.

    Raw: of the logits as given, before any processor or filter (vLLM's raw
    logprobs; what an RL trainer recomputes for the tokens a rollout drew).

    Parameters
    ----------
    logits : array_like, shape (V,) or (B, V)
    tokens : int or array_like of int, shape (B,)
        One id in [0, V) per row; a scalar serves every row.
    temperature : float or array_like of shape (B,)
        ``T == 0`` gives 0 at the argmax and ``-inf`` elsewhere.

    Returns
    -------
    float32 scalar for 1-D logits, else ndarray of float32, shape (B,)
        Equal to ``log_softmax(logits, temperature)`` at the tokens, bit for bit.
    """
    x = P.as_logits(logits)
    nrows = P.nrows(x)
    toks = P.token_rows("tokens", tokens, nrows, x.shape[-1])
    t = P.temperatures(temperature, nrows)
    res = np.empty(nrows, dtype=np.float32)
    _run(_core.token_logprobs, x, t, toks, res)
    return _per_row_result(res, x)


def uniform(seed, offset=0, index=0):
    """The float64 uniform in [0, 1) that :func:`sample` uses for ``(seed, offset)``,
    and the others of the same step.

    Philox4x32-10 with key ``(seed & 0xffffffff, seed >> 32)`` and counter
    ``(offset & 0xffffffff, offset >> 32, index, 0)``; of its output words
    ``x0..x3``, ``u = ((x0 | x1 << 32) >> 11) * 2**-53``.  Index 0 is the draw's
    (``sample``'s, and the emitted token's of :func:`verify`); :func:`verify`'s test
    of draft k takes index ``k + 1``.

    Parameters
    ----------
    seed, offset : int or 1-D array_like of int
        In [0, 2**64); arrays broadcast against each other.
    index : int or 1-D array_like of int
        In [0, 2**32); broadcast against them.

    Returns
    -------
    numpy.float64, or ndarray of float64 if either argument is an array

    Examples
    --------
    >>> import tokenpick
    >>> float(tokenpick.uniform(0, 0))  # from Philox's known answer 6627e8d5 e169c58d ...
    0.8805201978886142
    """
    shape = np.broadcast_shapes(np.shape(seed), np.shape(offset), np.shape(index))
    if len(shape) > 1:
        raise ValueError("seed, offset and index must be scalars or 1-D")
    nrows = shape[0] if shape else 1
    seeds = P.uint64_rows("seed", seed, nrows, P.SEED)
    offsets = P.uint64_rows("offset", offset, nrows, P.OFFSET)
    indices = P.uint64_rows("index", index, nrows, P.INDEX)
    res = np.empty(nrows, dtype=np.float64)
    _core.uniform(seeds, offsets, indices, res)
    return res if shape else res[0]
