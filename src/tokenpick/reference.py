"""Pure-numpy, float64, sort-based twins of tokenpick's public functions.

This module is the executable form of the semantics in docs/semantics.md and
the oracle the tests compare the compiled kernels with.  It is written to be obviously right,
not fast: every row is handled on its own, every selection sorts, every sum is
a float64 ``cumsum``.  It imports nothing else of tokenpick's.

Differences from the compiled API, all deliberate:

* results are float64 (the oracle is more precise than what it checks),
  except ``process_logits``'s and ``token_logprobs``' (see there);
* ``out=`` is accepted and filled (cast to its dtype) so signatures match;
* the logit processors -- ``process_logits``, ``token_logprobs`` and the
  processor keywords of ``sample``, ``filtered_probs`` and ``mask`` (bitmask,
  bias, penalties, min_tokens) -- are defined here first, ahead of the
  compiled package; their rules are written in ``process_logits``' docstring.

Everything else -- argument checking, the errors raised and their types,
broadcasting of per-row parameters, the scalar shape of results for 1-D
logits -- follows the contract, so a test can require that both sides raise
the same error (type and message) or agree within the tolerances of
docs/semantics.md ("Accuracy").
"""

import numbers
import operator
import os
from collections.abc import Mapping

import numpy as np

from . import _frameworks  # the inputs are read as the package reads them, values untouched

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
    "process_logits",
    "token_logprobs",
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


def _uniform_scalar(seed, offset, index=0):
    x0, x1, _, _ = philox4x32_10((offset & _M32, offset >> 32, index, 0), (seed & _M32, seed >> 32))
    return ((x0 | (x1 << 32)) >> 11) * 2.0**-53


# ----------------------------------------------------------------------------
# Argument checking: same rules, error types and messages as the compiled API,
# written out again here rather than imported, so that the oracle stands apart.
# The valid values of each parameter, as the messages state them:

_TEMPERATURE = "a finite number >= 0 (0 means greedy)"
_TOP_K = "an integer >= -1 (0 or -1 disables it)"
_TOP_P = "a number in (0, 1] (1 disables it)"
_MIN_P = "a number in [0, 1] (0 disables it)"
_TOP_N_SIGMA = "a finite number (<= 0 disables it)"
_TYPICAL_P = "a number in (0, 1] (1 disables it)"
_EPSILON = "a number in [0, 1) (0 disables it)"
_XTC_THRESHOLD = "a number in [0, 1]"
_XTC_PROBABILITY = "a number in [0, 1] (0 disables XTC)"
_ORDERS = ("tokenpick", "hf", "vllm", "llama.cpp")
# the filters each order's sampler lacks
_LACKS = {
    "tokenpick": (),
    "hf": ("top_n_sigma", "xtc_probability"),
    "vllm": ("top_n_sigma", "typical_p", "epsilon", "eta", "xtc_probability"),
    "llama.cpp": ("epsilon", "eta"),
}
_UNIFORMS = "a number in [0, 1)"
_U64 = "an integer in [0, 2**64)"
_INDEX = "an integer in [0, 2**32)"
_NUM_THREADS = "an integer >= 1"


def _logits(logits):
    """Return (float64 (B, V) copy of the float32 logits, was_1d); values unchecked.

    Read as the package reads them (tokenpick._frameworks: numpy arrays, host tensors
    through DLPack, bfloat16 widened exactly, (B, 1, V) as (B, V))."""
    a = _frameworks.read_logits(logits)
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
        _check_row(i, row)


def _check_row(i, row, where=None):
    where = where or f"logits row {i}"
    if np.isnan(row).any():
        raise ValueError(f"{where} contains NaN")
    if np.isposinf(row).any():
        raise ValueError(f"{where} contains +inf")
    if np.isneginf(row).all():
        raise ValueError(f"{where} is entirely -inf: nothing can be chosen")


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


def _index_values(name, value, nrows):
    return _int_values(name, value, nrows, lambda v: 0 <= v < 1 << 32, _INDEX, False)


def _filters(
    nrows,
    V,
    temperature,
    top_k,
    top_p,
    min_p,
    top_n_sigma=0.0,
    typical_p=1.0,
    epsilon=0.0,
    eta=0.0,
    xtc_threshold=0.1,
    xtc_probability=0.0,
    order="tokenpick",
):
    """Each row's filters: (T, k, p, min_p, n, typical_p, epsilon, eta, xtc_threshold,
    xtc_probability, order); _coins then turns xtc_probability into whether XTC acts."""
    T = _temperatures(temperature, nrows)
    K = _int_values("top_k", top_k, nrows, lambda k: k >= -1, _TOP_K, True)

    def floats(name, value, ok, what):
        vals = [float(v) for v in _row_values(name, value, nrows, "float")]
        _check_each(name, value, vals, ok, what)
        return vals

    P = floats("top_p", top_p, lambda p: 0.0 < p <= 1.0, _TOP_P)
    M = floats("min_p", min_p, lambda m: 0.0 <= m <= 1.0, _MIN_P)
    S = floats("top_n_sigma", top_n_sigma, np.isfinite, _TOP_N_SIGMA)
    Y = floats("typical_p", typical_p, lambda p: 0.0 < p <= 1.0, _TYPICAL_P)
    E = floats("epsilon", epsilon, lambda e: 0.0 <= e < 1.0, _EPSILON)
    H = floats("eta", eta, lambda e: 0.0 <= e < 1.0, _EPSILON)
    XT = floats("xtc_threshold", xtc_threshold, lambda t: 0.0 <= t <= 1.0, _XTC_THRESHOLD)
    XP = floats("xtc_probability", xtc_probability, lambda t: 0.0 <= t <= 1.0, _XTC_PROBABILITY)
    if not isinstance(order, str):
        raise TypeError(f"order must be a str, got {type(order).__name__}")
    if order not in _ORDERS:
        names = ", ".join(repr(o) for o in _ORDERS)
        raise ValueError(f"order must be one of {names}; got {order!r}")
    on = {
        "top_n_sigma": any(v > 0 for v in S),
        "typical_p": any(v < 1 for v in Y),
        "epsilon": any(v > 0 for v in E),
        "eta": any(v > 0 for v in H),
        "xtc_probability": any(v > 0 for v in XP),
    }
    for name in _LACKS[order]:
        if on[name]:
            raise ValueError(f"order={order!r} has no {name}: the sampler it follows lacks it")
    return [f + (order,) for f in zip(T, K, P, M, S, Y, E, H, XT, XP)]


def _coins(F, seeds, offsets):
    """F with each row's XTC probability turned into whether XTC acts there: its coin
    uniform(seed, offset, index=1) < the probability (no coin at 0 or 1)."""
    out = []
    for i, f in enumerate(F):
        prob = f[9]
        if 0.0 < prob < 1.0:
            if seeds is None:
                raise ValueError(
                    "xtc_probability between 0 and 1 needs seed (and offset): XTC's coin "
                    "is uniform(seed, offset, index=1); uniforms= gives only the draw's"
                )
            acts = _uniform_scalar(seeds[i], offsets[i], 1) < prob
        else:
            acts = prob == 1.0
        out.append(f[:9] + (acts,) + f[10:])
    return out


def _seeds(nrows, seed, offset):
    """The rows' seeds (fresh from the OS where None) and offsets, checked."""
    offsets = _u64_values("offset", offset, nrows)
    if seed is None:
        return [int.from_bytes(os.urandom(8), "little") for _ in range(nrows)], offsets
    return _u64_values("seed", seed, nrows), offsets


def _out(out, shape):
    """out= checked, as an ndarray over the caller's memory (or None)."""
    out = _frameworks.read_out(out, shape)
    if out is None:
        return None
    if out.dtype != np.float32:
        raise TypeError(f"out must have dtype float32 (native byte order), got {out.dtype}")
    if out.shape != shape:
        raise ValueError(f"out has shape {out.shape}, expected {shape}")
    if not (out.flags.c_contiguous and out.flags.aligned):
        raise ValueError("out must be C-contiguous (and aligned)")
    if not out.flags.writeable:
        raise ValueError("out must be writable")
    return out


def _finish(rows, x, was_1d, out, logits):
    """The rows (a list, or a (B, V) array) as the result, in the logits' shape: written
    into out (returned as the caller gave it)."""
    if not isinstance(rows, np.ndarray):
        rows = np.stack(rows) if rows else np.empty(x.shape)
    res = rows.reshape(_frameworks.given_shape(logits, rows))
    if out is not None:
        view = _frameworks.read_out(out, res.shape[1:] if was_1d else res.shape)
        view[...] = res.reshape(view.shape)
        return out
    return res[0] if was_1d else res


def _scalar_or_rows(values, was_1d, dtype):
    arr = np.asarray(values, dtype=dtype)
    return arr[0] if was_1d else arr


# ----------------------------------------------------------------------------
# Logit processors: their arguments, checked one after the other in the order of the
# signature (each: its type, then its shape, then its values, row by row), and each row's
# plan, applied to the row by _process_row.

_REPETITION = "a finite number > 0 (1 disables it)"
_ADDITIVE_PENALTY = "a finite number (0 disables it)"
_MIN_TOKENS = "an integer >= 0 (0 disables it)"
_PADDING = -1  # "no token" in every list of ids


def _bitmask_rows(token_bitmask, nrows, V):
    """Each row's boolean (V,) allowed set from the packed bitmask, or None."""
    if token_bitmask is None:
        return None
    a = _frameworks.as_array("token_bitmask", token_bitmask)
    if a.dtype.kind not in "iu" or a.dtype.itemsize != 4:
        raise TypeError(f"token_bitmask must be int32 or uint32, got dtype {a.dtype}")
    if a.ndim not in (1, 2):
        raise ValueError(f"token_bitmask must be 1-D (W,) or 2-D (B, W), got {a.ndim}-D")
    if a.ndim == 2 and a.shape[0] != nrows:
        raise ValueError(f"token_bitmask has {a.shape[0]} rows, but logits has {nrows} row(s)")
    # the words' bits, whatever their sign: an int32 -1 is 0xffffffff, every token allowed
    words = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("="))).view(np.uint32)
    words = np.broadcast_to(words if a.ndim == 2 else words[None], (nrows, a.shape[-1]))
    W = a.shape[-1]
    j = np.arange(V)
    inside = j < 32 * W  # tokens past the last word are banned
    rows = []
    for w in words:
        if W == 0:
            rows.append(np.zeros(V, dtype=bool))
            continue
        word = w[np.minimum(j // 32, W - 1)]
        bit = (word >> (j % 32).astype(np.uint32)) & np.uint32(1)
        rows.append(inside & (bit == 1))
    return rows


def _bias_rows(logit_bias, nrows, V):
    """Each row's (ids int64, biases float64) from the mapping(s), or None."""
    if logit_bias is None:
        return None
    if isinstance(logit_bias, Mapping):  # checked even when there are no rows to give it to
        return [_bias_entries("logit_bias", logit_bias, V)] * nrows
    if not isinstance(logit_bias, (list, tuple)):
        raise TypeError(
            "logit_bias must be a mapping {token_id: bias} (every row) or a list of B such "
            f"mappings or None, got {type(logit_bias).__name__}"
        )
    if len(logit_bias) != nrows:
        raise ValueError(
            f"logit_bias has {len(logit_bias)} mappings, but logits has {nrows} row(s)"
        )
    for i, m in enumerate(logit_bias):
        if m is not None and not isinstance(m, Mapping):
            raise TypeError(
                f"logit_bias for row {i} must be a mapping {{token_id: bias}} or None, "
                f"got {type(m).__name__}"
            )
    return [_bias_entries(f"logit_bias for row {i}", m, V) for i, m in enumerate(logit_bias)]


def _bias_entries(where, mapping, V):
    """One mapping's (ids int64, biases float64): types first, then values."""
    ids, vals = [], []
    for k, v in (mapping or {}).items():
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral):
            raise TypeError(f"{where}: keys must be integer token ids, got {k!r}")
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise TypeError(f"{where}: biases must be real numbers, got {v!r} for token {k}")
        ids.append(int(k))
        try:
            vals.append(float(v))
        except OverflowError:  # a Python int beyond float64: +-inf, as float64 logits are
            vals.append(np.inf if v > 0 else -np.inf)
    for k, b in zip(ids, vals):
        if not 0 <= k < V:
            raise ValueError(f"{where}: token id {k} is not in [0, V) = [0, {V})")
        if np.isnan(b) or b == np.inf:
            raise ValueError(f"{where}: the bias of token {k} must be finite or -inf; got {b}")
    return np.array(ids, dtype=np.int64), np.array(vals, dtype=np.float64)


def _id_array(where, value, V):
    """One list of ids as int64, padding dropped: integers, each -1 or in [0, V)."""
    if isinstance(value, (list, tuple)) and len(value) == 0:
        return np.empty(0, dtype=np.int64)  # np.asarray([]) would be float64
    a = _frameworks.as_array(where, value)
    if a.dtype.kind == "O":  # Python ints beyond int64, or mixed objects
        items = a.reshape(-1).tolist()
        for v in items:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
                raise TypeError(f"{where} must hold integer token ids, got {v!r}")
        if a.ndim == 1:
            for v in items:
                if not (v == _PADDING or 0 <= v < V):
                    raise _bad_id(where, v, V)
            return np.array([v for v in items if v != _PADDING], dtype=np.int64)
    elif a.dtype.kind not in "iu":
        raise TypeError(f"{where} must hold integer token ids, got dtype {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"{where} must be a 1-D list of ids, got {a.ndim}-D")
    bad = a >= V if a.dtype.kind == "u" else (a < _PADDING) | (a >= V)
    if bad.any():
        raise _bad_id(where, a[bad][0].item(), V)
    if a.dtype.kind == "i":
        a = a[a != _PADDING]
    return a.astype(np.int64)


def _bad_id(where, v, V):
    return ValueError(f"{where} holds {v}, not a token id in [0, V) = [0, {V}) nor -1 (padding)")


def _id_rows(name, value, nrows, V, was_1d, shared):
    """Each row's ids (int64, padding dropped) from one of the accepted forms, or None.

    A 2-D integer array (B, L) or a sequence of B 1-D lists gives one list per row.
    A single 1-D list is the row's for 1-D logits, and, where ``shared`` (stop_ids),
    every row's for 2-D logits.
    """
    if value is None:
        return None
    if isinstance(value, np.ndarray) and value.dtype.kind == "O":
        value = value.tolist()  # an array of arrays is a sequence of rows
    one = "a 1-D list of ids" if was_1d else "a 2-D (B, L) array padded with -1, or B 1-D lists"
    if shared and not was_1d:
        one = "a 1-D list of ids (every row), a 2-D (B, L) array padded with -1, or B 1-D lists"
    if isinstance(value, (list, tuple)):
        if (was_1d or shared) and all(np.ndim(e) == 0 for e in value):
            return [_id_array(name, value, V)] * nrows
        if len(value) != nrows:
            raise ValueError(f"{name} has {len(value)} rows, but logits has {nrows} row(s)")
        return [_id_array(f"{name} row {i}", e, V) for i, e in enumerate(value)]
    a = _frameworks.as_array(name, value)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer token ids, got dtype {a.dtype}")
    if a.ndim == 1 and (was_1d or shared):
        return [_id_array(name, a, V)] * nrows
    if a.ndim != 2:
        raise ValueError(f"{name} must be {one}; got a {a.ndim}-D array")
    if a.shape[0] != nrows:
        raise ValueError(f"{name} has {a.shape[0]} rows, but logits has {nrows} row(s)")
    return [_id_array(f"{name} row {i}", r, V) for i, r in enumerate(a)]


def _float_values(name, value, nrows, ok, what):
    vals = [float(v) for v in _row_values(name, value, nrows, "float")]
    _check_each(name, value, vals, ok, what)
    return vals


def _processors(
    nrows,
    V,
    was_1d,
    token_bitmask,
    logit_bias,
    prompt_ids,
    output_ids,
    repetition_penalty,
    frequency_penalty,
    presence_penalty,
    min_tokens,
    stop_ids,
):
    """Check every processor argument; return each row's plan (a dict), or None if none is on.

    A plan holds dense (V,) arrays -- clarity over speed: ``banned`` (the bitmask's zeros,
    the -inf biases, the stop ids while min_tokens is unmet), ``bias``/``biased`` (the finite
    biases), ``present`` (in prompt or output), ``count`` (occurrences in the output) -- and
    the row's ``p``, ``f``, ``r``.
    """
    allowed = _bitmask_rows(token_bitmask, nrows, V)
    biases = _bias_rows(logit_bias, nrows, V)
    prompts = _id_rows("prompt_ids", prompt_ids, nrows, V, was_1d, shared=False)
    outputs = _id_rows("output_ids", output_ids, nrows, V, was_1d, shared=False)
    P = _float_values(
        "repetition_penalty",
        repetition_penalty,
        nrows,
        lambda p: np.isfinite(p) and p > 0,
        _REPETITION,
    )
    F = _float_values("frequency_penalty", frequency_penalty, nrows, np.isfinite, _ADDITIVE_PENALTY)
    R = _float_values("presence_penalty", presence_penalty, nrows, np.isfinite, _ADDITIVE_PENALTY)
    N = _int_values("min_tokens", min_tokens, nrows, lambda n: n >= 0, _MIN_TOKENS, False)
    stops = _id_rows("stop_ids", stop_ids, nrows, V, was_1d, shared=True)
    if stops is None and any(n > 0 for n in N):
        raise ValueError("min_tokens > 0 needs stop_ids: the ids it bans until then")
    if all(a is None for a in (token_bitmask, logit_bias, prompt_ids, output_ids, stop_ids)):
        return None  # nothing to ban, bias or penalize: the logits go on as they are
    return [
        _plan(
            V,
            None if allowed is None else allowed[i],
            None if biases is None else biases[i],
            None if prompts is None else prompts[i],
            None if outputs is None else outputs[i],
            P[i],
            F[i],
            R[i],
            N[i],
            None if stops is None else stops[i],
        )
        for i in range(nrows)
    ]


def _plan(V, allowed, bias_entries, prompt, out, p, f, r, min_tokens, stops):
    """One row's plan from its checked arguments (None: not given)."""
    banned = np.zeros(V, dtype=bool)
    if allowed is not None:
        banned |= ~allowed
    bias = np.zeros(V)
    biased = np.zeros(V, dtype=bool)
    if bias_entries is not None:
        ids, vals = bias_entries
        banned[ids[np.isneginf(vals)]] = True
        finite = np.isfinite(vals)
        bias[ids[finite]] = vals[finite]
        biased[ids[finite]] = True
    out = out if out is not None else np.empty(0, dtype=np.int64)
    if out.size < min_tokens:  # padding is not a token: out holds the real ones only
        banned[stops] = True
    count = np.bincount(out, minlength=V)
    present = count > 0
    if prompt is not None:
        present[prompt] = True
    return dict(
        banned=banned, bias=bias, biased=biased, present=present, count=count, p=p, f=f, r=r
    )


def _process_row(i, x, plan, where=None):
    """Row i's processed logits: float32 values, -inf where banned.  x: float64 (V,)."""
    where = where or f"logits row {i}"
    p, f, r, c = plan["p"], plan["f"], plan["r"], plan["count"]
    banned = plan["banned"] | np.isneginf(x)  # -inf in the logits is a ban too
    with np.errstate(over="ignore", invalid="ignore"):
        v = np.where(plan["biased"], x + plan["bias"], x)  # finite biases
        v = np.where(plan["present"], np.where(v > 0, v / p, v * p), v)  # repetition
        v = np.where(c > 0, v - (f * c + r * (c > 0)), v)  # frequency and presence
        v = v.astype(np.float32)  # rounded once; beyond float32's range is +-inf
    v[banned] = -np.inf  # a banned token stays banned, whatever the penalties
    bad = np.isnan(v) | np.isposinf(v)
    if bad.any():
        j = int(np.argmax(bad))
        raise ValueError(
            f"{where}: the logit processors take token {j}'s logit beyond float32's "
            "range (+inf or NaN)"
        )
    if np.isneginf(v).all():
        raise ValueError(
            f"{where} has no token left after the logit processors (token_bitmask, "
            "-inf logit_bias, min_tokens with stop_ids): nothing can be chosen"
        )
    return v


def _processed(x, plans):
    """The checked, processed logits, float32 (B, V); x itself (float64) if no processor
    is on.  Row by row: a row's own problems (NaN, +inf, all -inf), then the processors'
    (overflow, nothing left), so that the first bad row is the one named."""
    if plans is None:
        _check_rows(x)
        return x
    rows = []
    for i, (row, plan) in enumerate(zip(x, plans)):
        _check_row(i, row)
        rows.append(_process_row(i, row, plan))
    return np.array(rows, dtype=np.float32).reshape(x.shape)


# ----------------------------------------------------------------------------
# One row at a time: the semantics.


def _argmax(x):
    return int(np.argmax(x))  # lowest index among ties


def _scores(x, T):
    """(x - max) / T, the log of each token's unnormalized probability."""
    return (x - x.max()) / T


def _kept(x, T, k, p, m, n=0.0, typ=1.0, eps=0.0, eta=0.0, xt=0.1, xtc=False, order="tokenpick"):
    """The boolean kept set of one row under its filters, in the order's pipeline."""
    if order == "llama.cpp":
        return _kept_llama(x, T, k, p, m, n, typ, xt, xtc)
    V = x.shape[0]
    keep = np.zeros(V, dtype=bool)
    if T == 0.0:
        keep[_argmax(x)] = True
        return keep
    keep[:] = True
    if n > 0.0:  # the population standard deviation of the finite logits
        finite = x[np.isfinite(x)]
        keep &= x >= x.max() - n * finite.std()
    if 0 < k < V:
        kth = np.sort(x)[V - k]  # the k-th largest logit
        keep &= x >= kth
    s = _scores(x, T)
    if m > 0.0 and order == "vllm":
        keep &= s >= np.log(m)  # vLLM's min-p comes before top-p
    if p < 1.0:
        e = np.where(keep, np.exp(s), 0.0)
        order_ = np.argsort(-x, kind="stable")  # by probability, descending
        cum = np.cumsum(e[order_])
        crossing = int(np.argmax(cum >= p * cum[-1]))  # first prefix reaching p
        keep &= x >= x[order_[crossing]]  # ties with the last kept token stay
    if m > 0.0:
        keep &= s >= np.log(m)  # probability >= m * max probability
    if typ < 1.0:
        keep &= _typical(x, T, keep, typ, by_id=False)
    if eps > 0.0:
        probs, _ = _probs_entropy(x, T, keep)
        keep &= (probs >= eps) | (x == x[keep].max())
    if eta > 0.0:
        probs, H = _probs_entropy(x, T, keep)
        keep &= (probs >= min(eta, np.sqrt(eta) * np.exp(-H))) | (x == x[keep].max())
    if xtc:
        keep &= _xtc(x, T, keep, xt, by_id=False)
    return keep


def _probs_entropy(x, T, keep):
    """The distribution at T renormalized over keep (0 outside), and its entropy."""
    s = np.where(keep, (x - x[keep].max()) / T, -np.inf)
    logp = s - np.log(np.exp(s[keep]).sum())
    probs = np.exp(logp)
    some = probs > 0  # the tokens at -inf (or below float64's range) add nothing
    return probs, -np.sum(probs[some] * logp[some])


def _by_id(values, descending):
    """The ids ordered by value (descending or ascending), ties by lowest id."""
    ids = np.arange(values.shape[0])
    return np.lexsort((ids, -values if descending else values))


def _typical(x, T, keep, typ, by_id):
    """Locally typical sampling over keep: the tokens whose surprise is nearest the
    entropy, nearest first, until the mass reaches typ (ties at the last distance
    kept), or by_id (llama.cpp's) until it exceeds typ, ties by lowest id."""
    probs, H = _probs_entropy(x, T, keep)
    with np.errstate(divide="ignore"):
        dist = np.where(keep & (probs > 0), np.abs(-np.log(probs) - H), np.inf)
    order = _by_id(dist, descending=False)
    cum = np.cumsum(probs[order])
    crossing = int(np.argmax(cum > typ if by_id else cum >= typ))
    if not (cum > typ if by_id else cum >= typ).any():  # rounding left the total short
        crossing = int(np.count_nonzero(np.isfinite(dist))) - 1
    if by_id:
        out = np.zeros_like(keep)
        out[order[: crossing + 1]] = True
        return out
    return dist <= dist[order[crossing]]


def _xtc(x, T, keep, threshold, by_id):
    """XTC over keep: where two or more tokens have p >= threshold, all but the least
    likely of them go (its ties stay; by_id, only the last of them by lowest id)."""
    probs, _ = _probs_entropy(x, T, keep)
    top = keep & (probs >= threshold)
    if np.count_nonzero(top) < 2:
        return keep
    low = x[top].min()
    out = keep & (x <= low)
    if by_id:
        ties = np.nonzero(top & (x == low))[0]
        out[ties[:-1]] = False  # only the highest id of them stays
    return out


def _kept_llama(x, T, k, p, m, n, typ, xt, xtc):
    """llama.cpp's default chain on the logits as they are: top-n-sigma, top-k (exactly
    k, ties by lowest id), typical, top-p (until the mass reaches p, ties by lowest id),
    min-p, XTC; temperature only shapes the draw, and a row at T == 0 takes the largest
    logit kept (lowest id)."""
    V = x.shape[0]
    keep = np.isfinite(x)
    if n > 0.0:
        keep &= x >= x.max() - n * x[np.isfinite(x)].std()
    if 0 < k < V:
        order = _by_id(np.where(keep, x, -np.inf), descending=True)
        top = np.zeros(V, dtype=bool)
        top[order[:k]] = True
        keep &= top
    if typ < 1.0:
        keep &= _typical(x, 1.0, keep, typ, by_id=True)
    if p < 1.0:
        probs, _ = _probs_entropy(x, 1.0, keep)
        order = _by_id(np.where(keep, x, -np.inf), descending=True)
        cum = np.cumsum(probs[order])
        reach = cum >= p
        last = int(np.argmax(reach)) if reach.any() else int(np.count_nonzero(keep)) - 1
        top = np.zeros(V, dtype=bool)
        top[order[: last + 1]] = True
        keep &= top
    if m > 0.0:
        keep &= x - x[keep].max() >= np.log(m)
    if xtc:
        keep = _xtc(x, 1.0, keep, xt, by_id=True)
    if T == 0.0:
        one = np.zeros(V, dtype=bool)
        one[_argmax(np.where(keep, x, -np.inf))] = True
        return one
    return keep


def _filtered_row(x, T, *f):
    keep = _kept(x, T, *f)
    if T == 0.0:
        return keep.astype(np.float64), keep
    e = np.where(keep, np.exp((x - x[keep].max()) / T), 0.0)
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
    return _finish(rows, x, was_1d, out, logits)


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
    return _finish(rows, x, was_1d, out, logits)


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
    """The processed logits (not divided by T) where kept, -inf outside the kept set.

    With no processor argument this is a copy of the logits with -inf outside the kept
    set; the processor arguments are ``process_logits``' and apply first.
    """
    x, was_1d = _logits(logits)
    F = _filters(
        x.shape[0], x.shape[1], temperature, top_k, top_p, min_p, top_n_sigma, typical_p,
        epsilon, eta, xtc_threshold, xtc_probability, order,
    )  # fmt: skip
    F = _coins_of(F, x.shape[0], seed, offset)
    plans = _processors(
        x.shape[0], x.shape[1], was_1d, token_bitmask, logit_bias, prompt_ids, output_ids,
        repetition_penalty, frequency_penalty, presence_penalty, min_tokens, stop_ids,
    )  # fmt: skip
    _out(out, x.shape if not was_1d else x.shape[1:])
    x = _processed(x, plans).astype(np.float64)
    rows = [np.where(_kept(row, *f), row, -np.inf) for row, f in zip(x, F)]
    return _finish(rows, x, was_1d, out, logits)


def top_k_mask(logits, top_k, *, out=None):
    """``mask`` with top-k only."""
    return mask(logits, top_k=top_k, out=out)


def top_p_mask(logits, top_p, *, temperature=1.0, out=None):
    """``mask`` with top-p only."""
    return mask(logits, temperature=temperature, top_p=top_p, out=out)


def min_p_mask(logits, min_p, *, temperature=1.0, out=None):
    """``mask`` with min-p only."""
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
    """The renormalized distribution ``sample`` draws from: 0 outside the kept set.

    The filters see the processed logits (``process_logits``' arguments, applied first).
    """
    x, was_1d = _logits(logits)
    F = _filters(
        x.shape[0], x.shape[1], temperature, top_k, top_p, min_p, top_n_sigma, typical_p,
        epsilon, eta, xtc_threshold, xtc_probability, order,
    )  # fmt: skip
    F = _coins_of(F, x.shape[0], seed, offset)
    plans = _processors(
        x.shape[0], x.shape[1], was_1d, token_bitmask, logit_bias, prompt_ids, output_ids,
        repetition_penalty, frequency_penalty, presence_penalty, min_tokens, stop_ids,
    )  # fmt: skip
    _out(out, x.shape if not was_1d else x.shape[1:])
    x = _processed(x, plans).astype(np.float64)
    rows = [_filtered_row(row, *f)[0] for row, f in zip(x, F)]
    return _finish(rows, x, was_1d, out, logits)


def _uniforms(nrows, seed, offset, uniforms):
    """Each row's uniform of the draw, and the seeds and offsets (None with uniforms)."""
    if uniforms is not None:
        if seed is not None:
            raise ValueError("give either seed or uniforms, not both")
        U = [float(v) for v in _row_values("uniforms", uniforms, nrows, "float")]
        _check_each("uniforms", uniforms, U, lambda u: 0.0 <= u < 1.0, _UNIFORMS)
        return U, None, None
    seeds, offsets = _seeds(nrows, seed, offset)
    return [_uniform_scalar(s, o) for s, o in zip(seeds, offsets)], seeds, offsets


def _coins_of(F, nrows, seed, offset):
    """_coins for mask and filtered_probs, whose seed and offset serve only XTC (checked
    only where a coin is tossed)."""
    if not any(0.0 < f[9] < 1.0 for f in F) or seed is None:
        return _coins(F, None, None)
    return _coins(F, *_seeds(nrows, seed, offset))


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
    """One token per row drawn from ``filtered_probs``; optionally its log-probability.

    The processor arguments are ``process_logits``' and apply first: T == 0 rows take
    the argmax of the processed logits, and the log-probability returned is the token's
    under ``filtered_probs`` of the processed logits (``token_logprobs`` gives the raw one).
    """
    x, was_1d = _logits(logits)
    F = _filters(
        x.shape[0], x.shape[1], temperature, top_k, top_p, min_p, top_n_sigma, typical_p,
        epsilon, eta, xtc_threshold, xtc_probability, order,
    )  # fmt: skip
    plans = _processors(
        x.shape[0], x.shape[1], was_1d, token_bitmask, logit_bias, prompt_ids, output_ids,
        repetition_penalty, frequency_penalty, presence_penalty, min_tokens, stop_ids,
    )  # fmt: skip
    if num_threads is not None:
        n = _integer("num_threads", num_threads)
        if n < 1:
            raise ValueError(f"num_threads must be {_NUM_THREADS}; got {n}")
    U, seeds, offsets = _uniforms(x.shape[0], seed, offset, uniforms)
    F = _coins(F, seeds, offsets)
    x = _processed(x, plans).astype(np.float64)
    tokens, logprobs = [], []
    for row, f, u in zip(x, F, U):
        probs, keep = _filtered_row(row, *f)
        tok = _draw(probs, u)
        tokens.append(tok)
        logprobs.append(_logprob(row, f[0], keep, tok))
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
    """The logits after the logit processors: float32, -inf where banned.

    These are the logits that the filters of ``sample``, ``filtered_probs`` and ``mask``
    see when they are given the same processor arguments.  Every argument is off by
    default; with none given the result is the logits themselves (as float32).

    Parameters
    ----------
    token_bitmask : int32 or uint32 array, (W,) for every row or (B, W), optional
        The grammar's allowed set, in xgrammar's and llguidance's layout: token j is
        allowed iff bit ``j % 32`` of word ``j // 32`` is 1.  The words' bits count, not
        their sign: an int32 word of -1 allows all its 32 tokens.  Tokens ``j >= 32*W``
        are banned (a bitmask too short for the vocabulary bans its tail; xgrammar's
        ``apply_token_bitmask_inplace`` without ``vocab_size`` leaves that tail alone);
        bits past V are ignored, whatever they hold.  For 1-D logits, ``(1, W)`` is
        read as ``(W,)``, as a length-1 array is for every per-row argument.  Any other
        dtype (int64, uint8, bool, ...) is a TypeError; any other shape a ValueError.
    logit_bias : mapping, or a sequence of B mappings or None, optional
        ``{token_id: bias}``, added to the logit.  A mapping alone applies to every row.
        Keys are integers (Python or numpy integers; bools, floats and strings such as
        OpenAI's JSON keys are a TypeError: convert them with ``int``) in [0, V).
        Biases are real numbers; ``-inf`` bans the token; NaN and ``+inf`` are a
        ValueError.
    prompt_ids, output_ids : integer ids, optional
        Each row's tokens so far: a 2-D integer array ``(B, L)`` padded with -1, or a
        sequence of B 1-D integer arrays or lists (ragged); for 1-D logits one 1-D array
        or list (or a ``(1, L)`` array).  Ids are in [0, V); -1 is padding wherever it
        stands, in every form (so the rows of a padded array can be passed as a ragged
        list), and is no token: it is not counted and not penalized.  Other negative
        ids, ids ``>= V``, and float or bool arrays are errors (ValueError, TypeError).
        Repeated ids are counted, in any order.
    repetition_penalty : float or (B,) floats, default 1.0
        ``p > 0``, finite.  Every token present in the prompt or the output (at least
        once; the penalty is applied once, not per occurrence) gets ``x / p`` if
        ``x > 0``, else ``x * p`` (HF's ``RepetitionPenaltyLogitsProcessor``, vLLM; HF
        counts the prompt too in decoder-only models, as here).  ``x`` is the logit after
        the biases, so a bias decides the sign that picks the branch.
    frequency_penalty, presence_penalty : float or (B,) floats, default 0.0
        Finite (negative values encourage repetition).  ``x -= f * c + r * (c > 0)``
        with ``c`` the token's count in ``output_ids`` only, the prompt excluded (OpenAI's
        formula, vLLM).  llama.cpp's ``penalties`` sampler counts every token in its
        window, and llama-server puts the prompt in the window: to reproduce it with a
        window covering the whole history, pass prompt and output together as
        ``output_ids`` (the repetition penalty is the same either way).
    min_tokens : int or (B,) ints, default 0
        While a row's output holds fewer than ``min_tokens`` tokens (padding excluded;
        no ``output_ids`` is an empty output), every id of its ``stop_ids`` is banned.
        There is no implicit EOS: list the EOS ids among ``stop_ids`` (vLLM bans EOS
        and its ``stop_token_ids``).  ``min_tokens > 0`` without ``stop_ids`` is a
        ValueError (it would do nothing).  Integers only (a float is a TypeError, as
        for ``seed``).
    stop_ids : integer ids, optional
        One 1-D list of ids for every row, or one per row (a 2-D array padded with -1
        or a sequence of B 1-D lists); -1 is padding, duplicates are harmless, an empty
        list bans nothing.  Checked (ids in [0, V)) even when ``min_tokens`` is 0.
    out : float32 array, optional
        Filled with the result (it may be the logits themselves).

    Returns
    -------
    float32 array, the shape of logits
        Each row, from its float32 logits widened to float64 and every processor
        argument at its float64 value, goes through these steps in this order (vLLM's;
        HF and llama.cpp also bias before they penalize):

        1. bans: the bitmask's zeros, the ``-inf`` biases, the stop ids while
           ``min_tokens`` is unmet, and the logits already ``-inf``;
        2. ``x + bias`` for the tokens with a finite bias;
        3. the repetition penalty, on that result;
        4. ``x - (f * c + r * (c > 0))`` for the tokens with ``c > 0``;
        5. rounded once to float32 (a value below float32's range becomes ``-inf``,
           a ban; one above it, or NaN, is a ValueError naming the row);
        6. ``-inf`` at every banned token: a banned token stays banned, whatever the
           biases and penalties.

        Rounded once: ``16777216 + 1.0000001`` gives 16777218, where float32
        arithmetic on the bias rounded to float32 would give 16777216; an implementation
        in float32 computes the few tokens it touches in double to agree.  Tokens no
        processor touches keep their logit bit for bit.

    Raises
    ------
    TypeError
        For a wrong dtype or type (of logits, bitmask, ids, bias keys or values, ...).
    ValueError
        For the logits' own errors (NaN or +inf, ...), a wrong shape or number of
        rows, an id or parameter out of range (naming the row for per-row arguments),
        and a row that the processors leave with no allowed token (naming the row).
        Every check is made before anything is written.

    Examples
    --------
    >>> x = np.zeros(6, dtype=np.float32)
    >>> process_logits(x, token_bitmask=np.array([0b100101], dtype=np.int32))
    array([  0., -inf,   0., -inf, -inf,   0.], dtype=float32)
    >>> process_logits(np.array([2.0, -2.0, 1.0], dtype=np.float32),
    ...                prompt_ids=[0, 1], output_ids=[2, 2, -1],
    ...                repetition_penalty=2.0, frequency_penalty=0.25)
    array([ 1., -4.,  0.], dtype=float32)
    """
    x, was_1d = _logits(logits)
    plans = _processors(
        x.shape[0], x.shape[1], was_1d, token_bitmask, logit_bias, prompt_ids, output_ids,
        repetition_penalty, frequency_penalty, presence_penalty, min_tokens, stop_ids,
    )  # fmt: skip
    _out(out, x.shape if not was_1d else x.shape[1:])
    res = _processed(x, plans).astype(np.float32)
    return _finish(res, x, was_1d, out, logits)


def token_logprobs(logits, tokens, temperature=1.0):
    """The raw log-probability of given tokens: ``log_softmax(logits, T)`` at ``tokens``.

    Raw: of the logits as given, before any processor or filter (vLLM's raw logprobs;
    what an RL trainer recomputes).  ``tokens`` holds one integer id in [0, V) per row:
    a scalar (every row, like every per-row argument) or a 1-D array of length B; for
    1-D logits, a scalar.  Float and bool tokens are a TypeError.  Returns float32, a
    scalar for 1-D logits, (B,) otherwise; ``-inf`` for a token whose logit is -inf.
    At T == 0 the log-probability is 0 at the argmax and -inf elsewhere, as
    ``log_softmax``'s.

    Unlike the rest of this module, the result is float32 (the package's type), rounded
    once from the float64 value.
    """
    x, was_1d = _logits(logits)
    V = x.shape[1]
    toks = _int_values(
        "tokens",
        tokens,
        x.shape[0],
        lambda t: 0 <= t < V,
        f"a token id in [0, V) = [0, {V})",
        False,
    )
    T = _temperatures(temperature, x.shape[0])
    _check_rows(x)
    vals = []
    for row, tok, t in zip(x, toks, T):
        if t == 0.0:
            vals.append(0.0 if tok == _argmax(row) else -np.inf)
        else:
            s = _scores(row, t)
            vals.append(s[tok] - np.log(np.exp(s).sum()))
    return _scalar_or_rows(vals, was_1d, np.float32)


def uniform(seed, offset=0, index=0):
    """The float64 uniform in [0, 1) that ``sample`` uses for ``(seed, offset)`` (index
    0), and the others of the same step (Philox's counter word 2 is the index).

    Scalars give a float; 1-D arrays (broadcast against each other) give an array.
    """
    shape = np.broadcast_shapes(np.shape(seed), np.shape(offset), np.shape(index))
    if len(shape) > 1:
        raise ValueError("seed, offset and index must be scalars or 1-D")
    n = shape[0] if shape else 1
    seeds = _u64_values("seed", seed, n)
    offsets = _u64_values("offset", offset, n)
    indices = _index_values("index", index, n)
    vals = [_uniform_scalar(s, o, j) for s, o, j in zip(seeds, offsets, indices)]
    return np.float64(vals[0]) if not shape else np.array(vals, dtype=np.float64)


# ----------------------------------------------------------------------------
# Speculative decoding.


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
    """Speculative decoding's verification of K draft tokens per row by rejection sampling
    (Leviathan et al. 2023, "Fast inference from transformers via speculative decoding";
    Chen et al. 2023, "Accelerating large language model decoding with speculative
    sampling"): the emitted tokens follow the target distributions exactly.

    Row b's draft k (k < num_draft[b]) is tested against p_k, ``filtered_probs`` of
    ``target_logits[b, k]`` with the row's processors, its ``output_ids`` extended by the
    drafts before k (and ``token_bitmask[b, k]`` when it is 3-D): it is accepted iff
    ``u_{k+1} * q_k(d_k) < p_k(d_k)``, where q_k is ``draft_probs[b, k]`` (1 at every draft
    without it: n-gram drafts) and ``u_j = uniform(seed, offset, index=j)``.  The first
    rejected draft is replaced by a token drawn with ``u_0`` by ``sample``'s rule from
    ``max(0, p_k - q_k)`` (from p_k if that is all zero); if every draft is accepted, the
    bonus token is drawn from p at position num_draft[b] with ``u_0``.  ``T == 0`` rows
    accept while the draft is the processed argmax and emit the argmax.  Returns
    ``tokens`` (B, K+1) int64 (the accepted drafts, the emitted token, then -1) and
    ``num_accepted`` (B,); with ``return_logprobs``, each emitted token's log-probability
    under its position's p (float64, -inf past the emitted token).  ``uniforms``, if
    given instead of seeds: (B, K+1), column j being u_j.
    """
    a = _frameworks.read_positions(target_logits)
    with np.errstate(over="ignore"):
        X = a.astype(np.float32).astype(np.float64)
    B, npos, V = X.shape
    K = npos - 1
    given = _draft_array(draft_tokens, B, K)
    N = _num_draft(num_draft, B, K)
    for b in range(B):
        for k in range(N[b]):
            if not 0 <= int(given[b, k]) < V:
                raise ValueError(
                    f"draft_tokens row {b}, position {k} holds {given[b, k]}, not a token id "
                    f"in [0, V) = [0, {V})"
                )
    D = given.astype(np.int64)  # those read are in [0, V); the rest is not read
    Q = _draft_probs(draft_probs, B, K, V)
    F = _filters(
        B, V, temperature, top_k, top_p, min_p, top_n_sigma, typical_p, epsilon, eta,
        xtc_threshold, xtc_probability, order,
    )  # fmt: skip
    plans = _position_plans(
        B, npos, V, D, N, token_bitmask, logit_bias, prompt_ids, output_ids,
        repetition_penalty, frequency_penalty, presence_penalty, min_tokens, stop_ids,
    )  # fmt: skip
    if num_threads is not None:
        n = _integer("num_threads", num_threads)
        if n < 1:
            raise ValueError(f"num_threads must be {_NUM_THREADS}; got {n}")
    U, seeds, offsets = _step_uniforms(B, npos, seed, offset, uniforms)

    def position(b, k):
        """Row b's processed logits at position k, checked."""
        where = f"target_logits row {b}, position {k}"
        _check_row(b, X[b, k], where)
        plan = plans[b][k]
        return X[b, k] if plan is None else _process_row(b, X[b, k], plan, where)

    # Problems in the order of rows, then positions: a position's logits and processors
    # (every position, reached or not), then its draft's probabilities where read.
    tokens = np.full((B, npos), -1, dtype=np.int64)
    logprobs = np.full((B, npos), -np.inf)
    accepted = np.zeros(B, dtype=np.int64)
    for b in range(B):
        T = F[b][0]
        done = False
        for k in range(npos):
            x = position(b, k)  # checked even past the row's end
            if done:
                continue
            # XTC's coin at position k: the one sample would toss at step offset + k
            step = None if seeds is None else ([seeds[b]], [(offsets[b] + k) % (1 << 64)])
            probs, keep = _filtered_row(x, *_coins([F[b]], *(step or (None, None)))[0])
            u_draw = U[b][0]
            ok = False
            if k == N[b]:  # every draft accepted: the bonus token
                token = _draw(probs, u_draw)
            else:
                d = int(D[b, k])
                if T == 0.0:  # keep holds the one token greedy decoding takes
                    token = int(np.argmax(keep))
                    ok = d == token
                else:
                    q_d = 1.0 if Q is None else _draft_prob(Q, b, k, d)
                    ok = U[b][k + 1] * q_d < probs[d]
                    if not ok:
                        if Q is None:
                            residual = probs.copy()
                            residual[d] = 0.0
                        else:
                            residual = np.maximum(probs - _draft_row(Q, b, k), 0.0)
                        token = _draw(residual if residual.sum() > 0 else probs, u_draw)
            if ok:
                tokens[b, k] = d
                logprobs[b, k] = _logprob(x, T, keep, d)
                accepted[b] += 1
            else:
                tokens[b, k] = token
                logprobs[b, k] = _logprob(x, T, keep, token)
                done = True
    if return_logprobs:
        return tokens, accepted, logprobs
    return tokens, accepted


def _logprob(x, T, keep, token):
    """log p(token) under the row's filtered distribution (0 at T == 0: one-hot)."""
    if T == 0.0:
        return 0.0
    s = (x - x[keep].max()) / T
    return s[token] - np.log(np.exp(s[keep]).sum())


def _draft_array(draft_tokens, B, K):
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
        return [K] * B
    return _int_values(
        "num_draft", num_draft, B, lambda n: 0 <= n <= K, f"an integer in [0, {K}]", False
    )


def _draft_probs(draft_probs, B, K, V):
    if draft_probs is None:
        return None
    a = _frameworks.read_floats(draft_probs, "draft_probs")
    if a.shape != (B, K, V):
        raise ValueError(f"draft_probs must have shape (B, K, V) = ({B}, {K}, {V}); got {a.shape}")
    return a.astype(np.float32).astype(np.float64)


def _bad_draft_probs(b, k):
    return ValueError(
        f"draft_probs row {b}, position {k} holds a value that is not a probability "
        "(finite and >= 0)"
    )


def _draft_prob(Q, b, k, d):
    """q_k(d), checked: draft probabilities are checked where they are read."""
    q = Q[b, k, d]
    if not (np.isfinite(q) and q >= 0):
        raise _bad_draft_probs(b, k)
    return q


def _draft_row(Q, b, k):
    """The row q_k, checked whole (it is read whole for the residual)."""
    q = Q[b, k]
    if not (np.isfinite(q).all() and (q >= 0).all()):
        raise _bad_draft_probs(b, k)
    return q


def _step_uniforms(B, npos, seed, offset, uniforms):
    """Each row's uniforms of the step (column j is uniform(seed, offset, index=j)),
    seeds and offsets (None with uniforms)."""
    if uniforms is not None:
        if seed is not None:
            raise ValueError("give either seed or uniforms, not both")
        U = _frameworks.as_array("uniforms", uniforms)
        if U.dtype.kind not in "fiu" or U.shape != (B, npos):
            raise ValueError(
                f"uniforms must be an array of numbers of shape (B, K+1) = ({B}, {npos}); "
                f"got {U.shape if U.dtype.kind in 'fiu' else U.dtype}"
            )
        U = U.astype(np.float64)
        if not ((U >= 0) & (U < 1)).all():
            raise ValueError(f"uniforms must each be {_UNIFORMS}")
        return U.tolist(), None, None
    seeds, offsets = _seeds(B, seed, offset)
    U = [[_uniform_scalar(s, o, j) for j in range(npos)] for s, o in zip(seeds, offsets)]
    return U, seeds, offsets


def _position_plans(
    B, npos, V, D, N, token_bitmask, logit_bias, prompt_ids, output_ids,
    repetition_penalty, frequency_penalty, presence_penalty, min_tokens, stop_ids,
):  # fmt: skip
    """plans[b][k]: row b's processors at position k, its output extended by the drafts
    before k (those it has: num_draft[b] at most), or None where no processor is on."""
    bitmask3 = token_bitmask is not None and np.ndim(token_bitmask) == 3
    words = token_bitmask
    if bitmask3:
        w = _frameworks.as_array("token_bitmask", token_bitmask)
        if w.shape[:2] != (B, npos):
            raise ValueError(
                f"token_bitmask of 3 dimensions must have shape (B, K+1, W) = ({B}, {npos}, W); "
                f"got {w.shape}"
            )
        words = w.reshape(B * npos, w.shape[2])
    allowed = _bitmask_rows(words, B * npos if bitmask3 else B, V)
    biases = _bias_rows(logit_bias, B, V)
    prompts = _id_rows("prompt_ids", prompt_ids, B, V, False, shared=False)
    outputs = _id_rows("output_ids", output_ids, B, V, False, shared=False)
    P = _float_values(
        "repetition_penalty", repetition_penalty, B, lambda p: np.isfinite(p) and p > 0,
        _REPETITION,
    )  # fmt: skip
    F = _float_values("frequency_penalty", frequency_penalty, B, np.isfinite, _ADDITIVE_PENALTY)
    R = _float_values("presence_penalty", presence_penalty, B, np.isfinite, _ADDITIVE_PENALTY)
    M = _int_values("min_tokens", min_tokens, B, lambda n: n >= 0, _MIN_TOKENS, False)
    stops = _id_rows("stop_ids", stop_ids, B, V, False, shared=True)
    if stops is None and any(n > 0 for n in M):
        raise ValueError("min_tokens > 0 needs stop_ids: the ids it bans until then")
    if all(a is None for a in (token_bitmask, logit_bias, prompt_ids, output_ids, stop_ids)) and (
        all(p == 1.0 for p in P) and all(f == 0.0 for f in F) and all(r == 0.0 for r in R)
    ):
        return [[None] * npos for _ in range(B)]  # the drafts change nothing
    plans = []
    for b in range(B):
        row = []
        history = outputs[b] if outputs is not None else np.empty(0, dtype=np.int64)
        for k in range(npos):
            out = np.concatenate([history, D[b, : min(k, N[b])]])
            row.append(
                _plan(
                    V,
                    None if allowed is None else allowed[b * npos + k if bitmask3 else b],
                    None if biases is None else biases[b],
                    None if prompts is None else prompts[b],
                    out,
                    P[b],
                    F[b],
                    R[b],
                    M[b],
                    None if stops is None else stops[b],
                )
            )
        plans.append(row)
    return plans
