"""The public functions: check once, convert, call the compiled core.

Logits are 1-D ``(V,)`` or 2-D ``(B, V)``; the vocabulary is the last axis.
Per-row parameters are a scalar or a 1-D array of length B.  1-D logits give
scalar-shaped results, as ``np.argmax`` does.  Every check happens before any
output is written, so a call that raises leaves the caller's arrays as they
were.  docs/semantics.md states the semantics; :mod:`tokenpick.reference` is
their executable form.
"""

import numpy as np

from . import _core, _threads
from . import _params as P


def _run_into(kernel, x, args, out):
    """An elementwise kernel over x into ``out=`` (checked; x is copied when
    out overlaps it partly) or into a new array, which is returned."""
    x = P.check_out(out, x)
    result = np.empty(x.shape, dtype=np.float32) if out is None else out
    _run(kernel, x, *args, result, own_outputs=out is None)
    return result


def _per_row_result(values, x):
    return values[0] if x.ndim == 1 else values


def _run(
    kernel, x, *args, num_threads=None, own_outputs=True, per_thread=_threads.MIN_LOGITS_PER_THREAD
):
    """The kernel over every row of x, spread over threads when that pays.

    A bad row raises before anything the caller can see is written.  When
    the outputs are the call's own arrays (own_outputs), the kernel checks
    each row right before using it and stops at the first bad one (the new
    arrays are dropped); a caller's ``out=`` is checked whole, on this
    thread, before any work.  Each thread gets at least `per_thread` logits.
    """
    nrows = P.nrows(x)
    threads = _threads.thread_count(nrows, x.shape[-1], num_threads, per_thread)
    stats = None if own_outputs else _core.scan(x)
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
    return _run_into(_core.softmax, x, (t,), out)


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
    return _run_into(_core.log_softmax, x, (t,), out)


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


def mask(logits, *, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, out=None):
    """A copy of the logits with ``-inf`` outside the kept set.

    The filters apply in the order temperature, top-k, top-p (on the
    distribution renormalized after top-k), min-p.  The kept values are the
    logits themselves, not divided by T.

    Parameters
    ----------
    logits : array_like, shape (V,) or (B, V)
    temperature : float or array_like of shape (B,)
        Scales the distribution top-p and min-p look at.  ``T == 0`` keeps only
        the argmax (lowest index on ties), whatever the other filters say.
    top_k : int or array_like of shape (B,)
        Keep tokens whose logit is ``>=`` the k-th largest (ties at the boundary
        are all kept).  0, -1 and k >= V disable it.
    top_p : float or array_like of shape (B,)
        In (0, 1]: keep the shortest most-probable prefix whose mass reaches p,
        plus every token tied with its last one.  1 disables it.
    min_p : float or array_like of shape (B,)
        In [0, 1]: keep tokens with probability ``>= min_p * max probability``.
        0 disables it.
    out : ndarray of float32, optional
        Where to write the result; may be ``logits`` itself.

    Returns
    -------
    ndarray of float32, the shape of logits
    """
    x = P.as_logits(logits)
    f = P.filters(P.nrows(x), x.shape[-1], temperature, top_k, top_p, min_p)
    return _run_into(_core.mask, x, f, out)


def top_k_mask(logits, top_k, *, out=None):
    """:func:`mask` with top-k only."""
    return mask(logits, top_k=top_k, out=out)


def top_p_mask(logits, top_p, *, temperature=1.0, out=None):
    """:func:`mask` with top-p only (at the given temperature)."""
    return mask(logits, temperature=temperature, top_p=top_p, out=out)


def min_p_mask(logits, min_p, *, temperature=1.0, out=None):
    """:func:`mask` with min-p only (at the given temperature)."""
    return mask(logits, temperature=temperature, min_p=min_p, out=out)


def filtered_probs(logits, *, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, out=None):
    """The distribution :func:`sample` draws from.

    Softmax at the temperature, restricted to the kept set of :func:`mask`
    and renormalized; 0 outside it, one-hot at the argmax when ``T == 0``.

    Returns
    -------
    ndarray of float32, the shape of logits
    """
    x = P.as_logits(logits)
    f = P.filters(P.nrows(x), x.shape[-1], temperature, top_k, top_p, min_p)
    return _run_into(_core.filtered_probs, x, f, out)


def sample(
    logits,
    *,
    temperature=1.0,
    top_k=0,
    top_p=1.0,
    min_p=0.0,
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
    temperature, top_k, top_p, min_p
        As for :func:`mask`.
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
        :func:`filtered_probs`.
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
    f = P.filters(nrows, x.shape[-1], temperature, top_k, top_p, min_p)
    if num_threads is not None:
        P.thread_limit("num_threads", num_threads)
    u, seeds, offsets = P.uniforms_or_seeds(nrows, seed, offset, uniforms)
    if nrows == 1:  # the shortest way to the kernel: no thread to consider, results made there
        return _core.sample_row(x, *f, u, seeds, offsets, return_logprobs, x.ndim == 2)
    tokens = np.empty(nrows, dtype=np.int64)
    logprobs = np.empty(nrows, dtype=np.float32)
    _run(_core.sample, x, *f, u, seeds, offsets, tokens, logprobs, num_threads=num_threads)
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


def uniform(seed, offset=0):
    """The float64 uniform in [0, 1) that :func:`sample` uses for ``(seed, offset)``.

    Philox4x32-10 with key ``(seed & 0xffffffff, seed >> 32)`` and counter
    ``(offset & 0xffffffff, offset >> 32, 0, 0)``; of its output words
    ``x0..x3``, ``u = ((x0 | x1 << 32) >> 11) * 2**-53``.

    Parameters
    ----------
    seed, offset : int or 1-D array_like of int
        In [0, 2**64); arrays broadcast against each other.

    Returns
    -------
    numpy.float64, or ndarray of float64 if either argument is an array

    Examples
    --------
    >>> import tokenpick
    >>> float(tokenpick.uniform(0, 0))  # from Philox's known answer 6627e8d5 e169c58d ...
    0.8805201978886142
    """
    shape = np.broadcast_shapes(np.shape(seed), np.shape(offset))
    if len(shape) > 1:
        raise ValueError("seed and offset must be scalars or 1-D")
    nrows = shape[0] if shape else 1
    seeds = P.uint64_rows("seed", seed, nrows, P.SEED)
    offsets = P.uint64_rows("offset", offset, nrows, P.OFFSET)
    res = np.empty(nrows, dtype=np.float64)
    _core.uniform(seeds, offsets, res)
    return res if shape else res[0]
