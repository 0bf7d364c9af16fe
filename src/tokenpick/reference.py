"""Pure-numpy, float64, sort-based twins of tokenpick's public functions.

This module is the executable form of the semantics in docs/semantics.md and
the oracle the tests compare the compiled kernels with.  It is written to be obviously right,
not fast: every row is handled on its own, every selection sorts, every sum is
a float64 ``cumsum``.  It imports nothing else of tokenpick's.

Differences from the compiled API, all deliberate:

* results are float64 (the oracle is more precise than what it checks);
* ``out=`` is accepted and filled (cast to its dtype) so signatures match.

Everything else -- argument checking, the errors raised and their types,
broadcasting of per-row parameters, the scalar shape of results for 1-D
logits -- follows the contract, so a test can require that both sides raise
the same error (type and message) or agree within the tolerances of
docs/semantics.md ("Accuracy").
"""

import operator
import os

import numpy as np

__all__ = [
    "softmax",
    "log_softmax",
    "logsumexp",
    "greedy",
    "mask",
    "top_k_mask",
    "top_p_mask",
    "min_p_mask",
    "filtered_probs",
    "sample",
    "top_logprobs",
    "uniform",
    "philox4x32_10",
]

_M32 = 0xFFFFFFFF
_U64_END = 1 << 64


# ----------------------------------------------------------------------------
# Philox4x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as easy
# as 1, 2, 3", SC 2011), written with Python integers.


def philox4x32_10(counter, key):
    """Philox4x32 with 10 rounds: four 32-bit counter words, two key words."""
    c0, c1, c2, c3 = (int(w) & _M32 for w in counter)
    k0, k1 = (int(w) & _M32 for w in key)
    for _ in range(10):
        p0 = 0xD2511F53 * c0
        p1 = 0xCD9E8D57 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0, p1 & _M32, (p0 >> 32) ^ c3 ^ k1, p0 & _M32)
        k0 = (k0 + 0x9E3779B9) & _M32
        k1 = (k1 + 0xBB67AE85) & _M32
    return c0, c1, c2, c3


def _uniform_scalar(seed, offset):
    x0, x1, _, _ = philox4x32_10((offset & _M32, offset >> 32, 0, 0), (seed & _M32, seed >> 32))
    return ((x0 | (x1 << 32)) >> 11) * 2.0**-53


# ----------------------------------------------------------------------------
# Argument checking: same rules, error types and messages as the compiled API,
# written out again here rather than imported, so that the oracle stands apart.
# The valid values of each parameter, as the messages state them:

_TEMPERATURE = "a finite number >= 0 (0 means greedy)"
_TOP_K = "an integer >= -1 (0 or -1 disables it)"
_TOP_P = "a number in (0, 1] (1 disables it)"
_MIN_P = "a number in [0, 1] (0 disables it)"
_UNIFORMS = "a number in [0, 1)"
_U64 = "an integer in [0, 2**64)"
_NUM_THREADS = "an integer >= 1"


def _logits(logits):
    """Return (float64 (B, V) copy of the float32 logits, was_1d); values unchecked."""
    try:
        a = np.asarray(logits)
    except (TypeError, ValueError, MemoryError, RecursionError):
        raise
    except Exception as exc:  # the object's own failure, e.g. a torch tensor needing grad
        raise TypeError(
            f"logits could not be read as an array: {type(exc).__name__}: {exc}"
        ) from exc
    if a.dtype.kind != "f":
        raise TypeError(f"logits must be a real floating-point array, got dtype {a.dtype}")
    if a.ndim not in (1, 2):
        raise ValueError(f"logits must be 1-D (V,) or 2-D (B, V), got {a.ndim}-D")
    if a.shape[-1] == 0:
        raise ValueError("logits has an empty vocabulary (V == 0)")
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf
        x = a.astype(np.float32).astype(np.float64)
    was_1d = x.ndim == 1
    return x.reshape(-1, x.shape[-1]), was_1d


def _integer(name, value):
    """A single integer argument, a count: bools and floats are TypeErrors."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None


def _check_rows(x):
    """The checks only a look at the values can make; after every argument check."""
    for i, row in enumerate(x):
        if np.isnan(row).any():
            raise ValueError(f"logits row {i} contains NaN")
        if np.isposinf(row).any():
            raise ValueError(f"logits row {i} contains +inf")
        if np.isneginf(row).all():
            raise ValueError(f"logits row {i} is entirely -inf: nothing can be chosen")


def _row_values(name, value, nrows, kind):
    """Broadcast a scalar or 1-D per-row parameter to a list of nrows values.

    kind is "float" (any real number) or "int" (integers only; floats with an
    integral value are accepted only by the callers that say so).
    """
    if value is None:
        if kind == "int":
            raise TypeError(f"{name} must be an integer or a 1-D array of integers, not None")
        raise TypeError(f"{name} must be a number or a 1-D array, not None")
    if kind == "int" and isinstance(value, (list, tuple)):
        a = np.array(value, dtype=object)  # exactly: numpy reads [2**63, -1] as float64
    elif kind == "float" and type(value) is int:
        # a Python int is a real number however large; numpy would make it an object
        try:
            a = np.asarray(float(value))
        except OverflowError:  # beyond float64: out of range, not of the wrong type
            a = np.asarray(np.inf)
    else:
        a = np.asarray(value)
    if a.dtype.kind == "b" or a.dtype.kind not in "iuf" + ("O" if kind == "int" else ""):
        what = "integers" if kind == "int" else "real numbers"
        raise TypeError(f"{name} must be {what}, got dtype {a.dtype}")
    if a.ndim > 1:
        raise ValueError(f"{name} must be a scalar or 1-D, got {a.ndim}-D")
    if a.ndim == 1 and a.shape[0] != nrows:
        raise ValueError(f"{name} has length {a.shape[0]}, but logits has {nrows} row(s)")
    # a scalar is checked even when there are no rows to give it to
    return a.tolist() if a.ndim == 1 else [a.item()] * max(nrows, 1)


def _bad_value(name, value, i, v, what):
    """The ValueError for row i's value v of the parameter given as value."""
    where = name if np.ndim(value) == 0 else f"{name} for row {i}"
    return ValueError(f"{where} must be {what}; got {v!r}")


def _check_each(name, value, vals, ok, what):
    for i, v in enumerate(vals):
        if not ok(v):
            raise _bad_value(name, value, i, v, what)


def _temperatures(temperature, nrows):
    vals = [float(v) for v in _row_values("temperature", temperature, nrows, "float")]
    _check_each("temperature", temperature, vals, lambda t: np.isfinite(t) and t >= 0, _TEMPERATURE)
    return vals


def _int_type_check(where, v, allow_integral_float):
    """TypeError unless v is an integer (or, where allowed, a float)."""
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{where} must be an integer, got {v!r}")
    if isinstance(v, (float, np.floating)):
        if not allow_integral_float:
            raise TypeError(f"{where} must be an integer, got {v!r}")
    elif not isinstance(v, (int, np.integer)):
        raise TypeError(f"{where} must be an integer, got {v!r}")


def _int_values(name, value, nrows, ok, what, allow_integral_float):
    # Types first, before any shape or value: a wrong type is reported before a wrong shape.
    if value is not None:
        a = np.array(value, dtype=object) if isinstance(value, (list, tuple)) else np.asarray(value)
        if a.dtype.kind == "f" and not allow_integral_float:  # also when a is empty
            raise TypeError(f"{name} must be integers, got dtype {a.dtype}")
        if a.dtype.kind == "O":
            for i, v in enumerate(a.reshape(-1).tolist()):
                _int_type_check(f"{name}[{i}]", v, allow_integral_float)
    vals = _row_values(name, value, nrows, "int")
    for i, v in enumerate(vals):
        if isinstance(v, (float, np.floating)) and not (np.isfinite(v) and float(v).is_integer()):
            raise _bad_value(name, value, i, v, "a whole number")
    vals = [int(v) for v in vals]
    _check_each(name, value, vals, ok, what)
    return vals


def _u64_values(name, value, nrows):
    return _int_values(name, value, nrows, lambda v: 0 <= v < _U64_END, _U64, False)


def _filters(nrows, V, temperature, top_k, top_p, min_p):
    T = _temperatures(temperature, nrows)
    K = _int_values("top_k", top_k, nrows, lambda k: k >= -1, _TOP_K, True)
    P = [float(v) for v in _row_values("top_p", top_p, nrows, "float")]
    _check_each("top_p", top_p, P, lambda p: 0.0 < p <= 1.0, _TOP_P)
    M = [float(v) for v in _row_values("min_p", min_p, nrows, "float")]
    _check_each("min_p", min_p, M, lambda m: 0.0 <= m <= 1.0, _MIN_P)
    return list(zip(T, K, P, M))


def _out(out, shape):
    if out is None:
        return
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
    if out.dtype != np.float32:
        raise TypeError(f"out must have dtype float32 (native byte order), got {out.dtype}")
    if out.shape != shape:
        raise ValueError(f"out has shape {out.shape}, expected {shape}")
    if not (out.flags.c_contiguous and out.flags.aligned):
        raise ValueError("out must be C-contiguous (and aligned)")
    if not out.flags.writeable:
        raise ValueError("out must be writable")


def _finish(rows, x, was_1d, out=None):
    res = np.stack(rows) if rows else np.empty(x.shape)
    if out is not None:
        out[...] = res.reshape(out.shape)
        return out
    return res[0] if was_1d else res


def _scalar_or_rows(values, was_1d, dtype):
    arr = np.asarray(values, dtype=dtype)
    return arr[0] if was_1d else arr


# ----------------------------------------------------------------------------
# One row at a time: the semantics.


def _argmax(x):
    return int(np.argmax(x))  # lowest index among ties


def _scores(x, T):
    """(x - max) / T, the log of each token's unnormalized probability."""
    return (x - x.max()) / T


def _kept(x, T, k, p, m):
    """The boolean kept set of one row after temperature, top-k, top-p, min-p."""
    V = x.shape[0]
    keep = np.zeros(V, dtype=bool)
    if T == 0.0:
        keep[_argmax(x)] = True
        return keep
    keep[:] = True
    if 0 < k < V:
        kth = np.sort(x)[V - k]  # the k-th largest logit
        keep &= x >= kth
    s = _scores(x, T)
    if p < 1.0:
        e = np.where(keep, np.exp(s), 0.0)
        order = np.argsort(-x, kind="stable")  # by probability, descending
        cum = np.cumsum(e[order])
        crossing = int(np.argmax(cum >= p * cum[-1]))  # first prefix reaching p
        keep &= x >= x[order[crossing]]  # ties with the last kept token stay
    if m > 0.0:
        keep &= s >= np.log(m)  # probability >= m * max probability
    return keep


def _filtered_row(x, T, k, p, m):
    keep = _kept(x, T, k, p, m)
    if T == 0.0:
        return keep.astype(np.float64), keep
    e = np.where(keep, np.exp(_scores(x, T)), 0.0)
    return e / e.sum(), keep


def _draw(probs, u):
    cum = np.cumsum(probs)
    above = np.nonzero(cum > u * cum[-1])[0]
    if above.size:
        return int(above[0])
    return int(np.nonzero(probs > 0)[0][-1])  # u * total rounded up to total


# ----------------------------------------------------------------------------
# Public twins.


def softmax(logits, temperature=1.0, *, out=None):
    """Probabilities ``exp(x/T) / sum(exp(x/T))`` per row; one-hot argmax at T = 0."""
    x, was_1d = _logits(logits)
    T = _temperatures(temperature, x.shape[0])
    _out(out, x.shape if not was_1d else x.shape[1:])
    _check_rows(x)
    rows = []
    for row, t in zip(x, T):
        if t == 0.0:
            r = np.zeros_like(row)
            r[_argmax(row)] = 1.0
        else:
            e = np.exp(_scores(row, t))
            r = e / e.sum()
        rows.append(r)
    return _finish(rows, x, was_1d, out)


def log_softmax(logits, temperature=1.0, *, out=None):
    """Log-probabilities ``x/T - logsumexp(x/T)``; at T = 0, 0 at the argmax and -inf elsewhere."""
    x, was_1d = _logits(logits)
    T = _temperatures(temperature, x.shape[0])
    _out(out, x.shape if not was_1d else x.shape[1:])
    _check_rows(x)
    rows = []
    for row, t in zip(x, T):
        if t == 0.0:
            r = np.full_like(row, -np.inf)
            r[_argmax(row)] = 0.0
        else:
            s = _scores(row, t)
            r = s - np.log(np.exp(s).sum())
        rows.append(r)
    return _finish(rows, x, was_1d, out)


def logsumexp(logits, temperature=1.0):
    """``log(sum(exp(x/T)))`` per row.

    At T = 0 this is the limit as T -> 0+: +inf if the row's max is positive,
    -inf if it is negative, and log(number of tokens equal to the max) if it is 0.
    """
    x, was_1d = _logits(logits)
    T = _temperatures(temperature, x.shape[0])
    _check_rows(x)
    vals = []
    for row, t in zip(x, T):
        mx = row.max()
        if t == 0.0:
            vals.append(np.log(np.count_nonzero(row == mx)) if mx == 0 else np.inf * np.sign(mx))
        else:
            vals.append(mx / t + np.log(np.exp(_scores(row, t)).sum()))
    return _scalar_or_rows(vals, was_1d, np.float64)


def greedy(logits):
    """The argmax of each row, the lowest index among ties."""
    x, was_1d = _logits(logits)
    _check_rows(x)
    return _scalar_or_rows([_argmax(row) for row in x], was_1d, np.int64)


def mask(logits, *, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, out=None):
    """A copy of the logits (not divided by T) with -inf outside the kept set."""
    x, was_1d = _logits(logits)
    F = _filters(x.shape[0], x.shape[1], temperature, top_k, top_p, min_p)
    _out(out, x.shape if not was_1d else x.shape[1:])
    _check_rows(x)
    rows = [np.where(_kept(row, *f), row, -np.inf) for row, f in zip(x, F)]
    return _finish(rows, x, was_1d, out)


def top_k_mask(logits, top_k, *, out=None):
    """``mask`` with top-k only."""
    return mask(logits, top_k=top_k, out=out)


def top_p_mask(logits, top_p, *, temperature=1.0, out=None):
    """``mask`` with top-p only."""
    return mask(logits, temperature=temperature, top_p=top_p, out=out)


def min_p_mask(logits, min_p, *, temperature=1.0, out=None):
    """``mask`` with min-p only."""
    return mask(logits, temperature=temperature, min_p=min_p, out=out)


def filtered_probs(logits, *, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, out=None):
    """The renormalized distribution ``sample`` draws from: 0 outside the kept set."""
    x, was_1d = _logits(logits)
    F = _filters(x.shape[0], x.shape[1], temperature, top_k, top_p, min_p)
    _out(out, x.shape if not was_1d else x.shape[1:])
    _check_rows(x)
    rows = [_filtered_row(row, *f)[0] for row, f in zip(x, F)]
    return _finish(rows, x, was_1d, out)


def _uniforms(nrows, seed, offset, uniforms):
    if uniforms is not None:
        if seed is not None:
            raise ValueError("give either seed or uniforms, not both")
        U = [float(v) for v in _row_values("uniforms", uniforms, nrows, "float")]
        _check_each("uniforms", uniforms, U, lambda u: 0.0 <= u < 1.0, _UNIFORMS)
        return U
    offsets = _u64_values("offset", offset, nrows)
    if seed is None:
        seeds = [int.from_bytes(os.urandom(8), "little") for _ in range(nrows)]
    else:
        seeds = _u64_values("seed", seed, nrows)
    return [_uniform_scalar(s, o) for s, o in zip(seeds, offsets)]


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
    """One token per row drawn from ``filtered_probs``; optionally its log-probability."""
    x, was_1d = _logits(logits)
    F = _filters(x.shape[0], x.shape[1], temperature, top_k, top_p, min_p)
    if num_threads is not None:
        n = _integer("num_threads", num_threads)
        if n < 1:
            raise ValueError(f"num_threads must be {_NUM_THREADS}; got {n}")
    U = _uniforms(x.shape[0], seed, offset, uniforms)
    _check_rows(x)
    tokens, logprobs = [], []
    for row, f, u in zip(x, F, U):
        probs, keep = _filtered_row(row, *f)
        tok = _draw(probs, u)
        tokens.append(tok)
        T = f[0]
        if T == 0.0:
            logprobs.append(0.0)
        else:
            s = _scores(row, T)
            logprobs.append(s[tok] - np.log(np.exp(s[keep]).sum()))
    tokens = _scalar_or_rows(tokens, was_1d, np.int64)
    if return_logprobs:
        return tokens, _scalar_or_rows(logprobs, was_1d, np.float64)
    return tokens


def top_logprobs(logits, n, temperature=1.0):
    """The n most likely tokens of ``log_softmax`` per row, descending, lowest id first on ties.

    "Most likely" is exact: for T > 0 the order is that of the logits (float64
    log-probabilities of far-apart logits can round to equal values; the
    logits still rank them).  At T = 0 every token but the argmax has
    log-probability -inf, a tie, so they follow the argmax in id order.
    """
    x, was_1d = _logits(logits)
    n = _integer("n", n)
    V = x.shape[1]
    if not 1 <= n <= V:
        raise ValueError(f"n must be an integer in [1, V] = [1, {V}]; got {n}")
    T = _temperatures(temperature, x.shape[0])
    _check_rows(x)
    lsm = np.atleast_2d(log_softmax(x, temperature=temperature))  # x is already checked
    ids, vals = [], []
    for row, lp, t in zip(x, lsm, T):
        rank = lp if t == 0.0 else row
        order = np.lexsort((np.arange(V), -rank))[:n]
        ids.append(order)
        vals.append(lp[order])
    ids = np.array(ids, dtype=np.int64).reshape(-1, n)
    vals = np.array(vals, dtype=np.float64).reshape(-1, n)
    return (ids[0], vals[0]) if was_1d else (ids, vals)


def uniform(seed, offset=0):
    """The float64 uniform in [0, 1) that ``sample`` uses for ``(seed, offset)``.

    Scalars give a float; 1-D arrays (broadcast against each other) give an array.
    """
    shape = np.broadcast_shapes(np.shape(seed), np.shape(offset))
    if len(shape) > 1:
        raise ValueError("seed and offset must be scalars or 1-D")
    n = shape[0] if shape else 1
    seeds = _u64_values("seed", seed, n)
    offsets = _u64_values("offset", offset, n)
    vals = [_uniform_scalar(s, o) for s, o in zip(seeds, offsets)]
    return np.float64(vals[0]) if not shape else np.array(vals, dtype=np.float64)
