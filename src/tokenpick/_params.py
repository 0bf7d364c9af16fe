"""Argument checking and conversion for the public API, done once, at the boundary.

Each helper returns exactly what the compiled core expects (C-contiguous
float32 logits, 1-D per-row parameter arrays of length B) or raises the
TypeError/ValueError of docs/semantics.md ("Inputs and errors"), naming the
offending row.
"""

import math
import operator
import os

import numpy as np

from . import _core, _frameworks

U64_END = 1 << 64


# ---- the valid values of every parameter, defined once ----------------------------
# The checks below, their messages, and the fast path of _core.plain_filters (given
# the four filters' ranges by _core.set_filter_ranges, at the end of this module) all
# read these.  tokenpick.reference restates them on its own, as an oracle should.


class Rule:
    """The valid values of a parameter: numbers from lo to hi, each end open or
    closed; None for no bound (a real number must still be finite; lo None is
    only for a rule with no bound at all, a penalty's "any finite number");
    integers only if ``integer``.  ``text`` says it to a user, ``note`` adds why."""

    __slots__ = ("lo", "hi", "lo_open", "hi_open", "integer", "text")

    def __init__(self, lo, hi, *, lo_open=False, hi_open=False, integer=False, note=""):
        self.lo, self.hi, self.lo_open, self.hi_open = lo, hi, lo_open, hi_open
        self.integer = integer
        kind = "an integer" if integer else "a finite number" if hi is None else "a number"
        if lo is None:
            if hi is not None or integer:
                raise ValueError("lo=None is only for a finite number with no bound at all")
            self.text = kind
        elif hi is None:
            self.text = f"{kind} {'>' if lo_open else '>='} {_bound(lo)}"
        else:
            self.text = (
                f"{kind} in {'(' if lo_open else '['}{_bound(lo)}, "
                f"{_bound(hi)}{')' if hi_open else ']'}"
            )
        if note:
            self.text += f" ({note})"

    def holds(self, v):
        """Whether v, a number or (elementwise) an ndarray, is in range; NaN never is."""
        if isinstance(v, np.ndarray) and v.dtype.kind in "iu":
            return _int_in_range(v, self)
        if self.lo is None:
            ok = v > -math.inf
        else:
            ok = (v > self.lo) if self.lo_open else (v >= self.lo)
        if self.hi is None:
            return ok & (v < math.inf) if not self.integer else ok
        return ok & ((v < self.hi) if self.hi_open else (v <= self.hi))


def _bound(v):
    """A bound as a user reads it: 2**64, not 18446744073709551616."""
    if isinstance(v, int) and v >= 1 << 32 and v & (v - 1) == 0:
        return f"2**{v.bit_length() - 1}"
    return repr(v)


_FLOAT64, _INT64, _UINT64 = np.dtype(np.float64), np.dtype(np.int64), np.dtype(np.uint64)
TEMPERATURE = Rule(0, None, note="0 means greedy")
TOP_K = Rule(-1, None, integer=True, note="0 or -1 disables it")
TOP_P = Rule(0, 1, lo_open=True, note="1 disables it")
MIN_P = Rule(0, 1, note="0 disables it")
TOP_N_SIGMA = Rule(None, None, note="<= 0 disables it")
TYPICAL_P = Rule(0, 1, lo_open=True, note="1 disables it")
EPSILON = ETA = Rule(0, 1, hi_open=True, note="0 disables it")
XTC_THRESHOLD = Rule(0, 1)
XTC_PROBABILITY = Rule(0, 1, note="0 disables XTC")
# the orders of the filters (order=): tokenpick's own, and the samplers it
# reproduces; the filters each lacks (a ValueError when one is on)
ORDERS = {"tokenpick": 0, "hf": 0, "vllm": 1, "llama.cpp": 2}
LACKS = {
    "tokenpick": (),
    "hf": ("top_n_sigma", "xtc_probability"),
    "vllm": ("top_n_sigma", "typical_p", "epsilon", "eta", "xtc_probability"),
    "llama.cpp": ("epsilon", "eta"),
}
# when each of the filters that an order may lack is on in a row: its value above
# (1) or below (-1) the one that turns it off
ON = {
    "top_n_sigma": (0.0, 1),
    "typical_p": (1.0, -1),
    "epsilon": (0.0, 1),
    "eta": (0.0, 1),
    "xtc_probability": (0.0, 1),
}
# the filters on the listed kept set (the core lists it for them, and for llama.cpp's
# chain)
LISTING = ("typical_p", "epsilon", "eta", "xtc_probability")
UNIFORMS = Rule(0, 1, hi_open=True)
SEED = OFFSET = Rule(0, U64_END, hi_open=True, integer=True)
INDEX = Rule(0, 1 << 32, hi_open=True, integer=True)  # of a row's uniforms in one step
NUM_THREADS = Rule(1, None, integer=True)
# the logit processors' (tokenpick._processors)
REPETITION_PENALTY = Rule(0, None, lo_open=True, note="1 disables it")
ADDITIVE_PENALTY = Rule(None, None, note="0 disables it")  # frequency_ and presence_penalty
MIN_TOKENS = Rule(0, None, integer=True, note="0 disables it")


def _int_in_range(a, rule):
    """rule.holds for an integer ndarray, exact under numpy 1.x too (which would
    not compare a uint64 array with 2**64 or -1 exactly)."""
    info = np.iinfo(a.dtype)
    ok = np.ones(a.shape, bool)
    if rule.lo is not None and rule.lo > info.min:
        ok &= a > rule.lo if rule.lo_open else a >= rule.lo
    if rule.hi is not None and rule.hi <= info.max:
        ok &= a < rule.hi if rule.hi_open else a <= rule.hi
    return ok


def _bad_value(name, row, value, what):
    """The ValueError for a value that is not ``what``; row None for a scalar."""
    where = name if row is None else f"{name} for row {row}"
    return ValueError(f"{where} must be {what}; got {value!r}")


# ---- logits and outputs ------------------------------------------------------------


def as_logits(logits):
    """Return logits as an ndarray the kernels read in place: float32, float16, or the
    bits of bfloat16 (uint16), of shape (V,) or (B, V), each row one block of memory
    (_core.plain_logits).

    Such input in native byte order is used as it is, with no copy, a host tensor of
    another framework included (tokenpick._frameworks reads it, and (B, 1, V) as
    (B, V)); half precision whose rows are not each one block is copied as it is, C
    contiguous; any other real floating input is converted to a C-contiguous float32
    copy (values beyond float32's range become inf, which the checking pass then
    rejects).
    """
    if _core.plain_logits(logits):  # the common case, checked in one C call
        return logits
    a = _core.torch_rows(logits)  # the next most common: a torch tensor
    if a is not None:
        return a
    return rows_in_place(_frameworks.read_logits(logits, bfloat16_bits=True))


def rows_in_place(a):
    """Logits as _frameworks reads them (a real floating array, or bfloat16's bits), as
    the kernels read them in place: a itself where plain_logits takes it; else a copy,
    C-contiguous, in half precision for half precision, float32 for the rest."""
    if _core.plain_logits(a):
        return a
    if a.dtype.itemsize == 2:  # float16, or bfloat16's bits: kept in half precision
        return np.require(a, dtype=a.dtype.newbyteorder("="), requirements=["C", "A"])
    with np.errstate(over="ignore"):
        return np.require(a, dtype=np.float32, requirements=["C", "A"])


def as_float32(x):
    """Logits as as_logits gives them, in float32: x itself, or half precision widened
    exactly (by the kernels: a vectorized pass, where numpy's float16 conversion takes a
    scalar loop, 25 times longer)."""
    if x.dtype == np.float32:
        return x
    out = np.empty(x.shape, dtype=np.float32)
    _core.widen(np.ascontiguousarray(x), out)
    return out


def nrows(x):
    """The number of rows of logits of shape (V,) (one) or (B, V)."""
    return x.shape[0] if x.ndim == 2 else 1


def check_out(out, x):
    """Check ``out=`` (an ndarray of the shape of x, as tokenpick._frameworks.read_out gives
    it) and return x, copied if out overlaps it partly."""
    if out is None:
        return x
    if out.dtype != np.float32:
        raise TypeError(f"out must have dtype float32 (native byte order), got {out.dtype}")
    if out.shape != x.shape:
        raise ValueError(f"out has shape {out.shape}, expected {x.shape}")
    if not (out.flags.c_contiguous and out.flags.aligned):
        raise ValueError("out must be C-contiguous (and aligned)")
    if not out.flags.writeable:
        raise ValueError("out must be writable")
    same = out.__array_interface__["data"][0] == x.__array_interface__["data"][0]
    if not same and np.may_share_memory(out, x):
        x = x.copy()  # a partial overlap would let the kernels read what they wrote
    return x


# ---- per-row parameters ------------------------------------------------------------


def _shape_check(name, a, nrows):
    if a.ndim > 1:
        raise ValueError(f"{name} must be a scalar or 1-D, got {a.ndim}-D")
    if a.ndim == 1 and a.shape[0] != nrows:
        raise ValueError(f"{name} has length {a.shape[0]}, but logits has {nrows} row(s)")


def _fail(name, a, ok, what):
    """Raise ValueError naming the first row of a whose value is not ok."""
    if a.ndim == 0:
        raise _bad_value(name, None, a.item(), what)
    i = int(np.flatnonzero(~ok)[0])
    raise _bad_value(name, i, a.tolist()[i], what)


def float_rows(name, value, nrows, rule):
    """A float64 per-row parameter: a Python float, or a float64 array of shape (nrows,).

    Python numbers stay scalars (the core reads them as every row's value).  An int
    is read as the float it converts to, and one beyond float64's range as inf, so
    that a message shows the value checked ("got -1.0"), as the reference's does.
    """
    if type(value) is float or type(value) is int:  # the common case, kept cheap
        try:
            v = float(value)
        except OverflowError:  # an int beyond float64's range, of either sign
            v = math.inf
        if not rule.holds(v):
            raise _bad_value(name, None, v, rule.text)
        return v
    if type(value) is np.ndarray and value.dtype == _FLOAT64 and value.shape == (nrows,):
        good = rule.holds(value)  # a row's values, the Sampler's way: kept cheap too
        if not good.all():
            _fail(name, value, good, rule.text)
        return value
    if value is None:
        raise TypeError(f"{name} must be a number or a 1-D array, not None")
    a = np.asarray(value)
    if a.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be real numbers, got dtype {a.dtype}")
    _shape_check(name, a, nrows)
    a = a.astype(np.float64, copy=False)
    with np.errstate(invalid="ignore"):
        good = rule.holds(a)
    if not np.all(good):
        _fail(name, a, good, rule.text)
    return np.broadcast_to(a, (nrows,))


def _object_ints(name, a, allow_float):
    """Python integers from an object array (ints too large for int64, or mixed lists)."""
    items = a.reshape(-1).tolist()
    vals = []
    for i, v in enumerate(items):  # every type first: a TypeError before any ValueError
        where = f"{name}[{i}]" if a.ndim else name
        if isinstance(v, (bool, np.bool_)):
            raise TypeError(f"{where} must be an integer, got {v!r}")
        try:
            vals.append(operator.index(v))
        except TypeError:
            if not (allow_float and isinstance(v, (float, np.floating))):
                raise TypeError(f"{where} must be an integer, got {v!r}") from None
            vals.append(v)
    for i, v in enumerate(vals):
        if not isinstance(v, int):  # a float (Python's or numpy's) that was allowed
            if not (math.isfinite(v) and float(v).is_integer()):
                raise _bad_value(name, i if a.ndim else None, v, "a whole number")
            vals[i] = int(v)
    return np.array(vals, dtype=object).reshape(a.shape)


def int_rows(name, value, nrows, rule, allow_float=False):
    """An integer per-row parameter that rule allows, as an object or integer array.

    Lists are read exactly (numpy would turn [2**63, -1] into float64).
    Floats are accepted only if allow_float and only when integral.
    """
    if value is None:
        raise TypeError(f"{name} must be an integer or a 1-D array of integers, not None")
    if isinstance(value, (list, tuple)):
        a = np.array(value, dtype=object)
    else:
        a = np.asarray(value)
    kind = a.dtype.kind
    if kind not in "iuO" and not (kind == "f" and allow_float):
        raise TypeError(f"{name} must be integers, got dtype {a.dtype}")
    if kind == "O":
        a = _object_ints(name, a, allow_float)
    _shape_check(name, a, nrows)  # a wrong type is reported before a wrong shape
    if kind == "f":
        good = np.isfinite(a) & (a == np.floor(a))
        if not np.all(good):
            _fail(name, a, good, "a whole number")
    if kind == "O":
        good = np.array([rule.holds(v) for v in a.reshape(-1).tolist()]).reshape(a.shape)
    else:
        good = rule.holds(a)
    if not np.all(good):
        _fail(name, a, good, rule.text)
    return a


def uint64_rows(name, value, nrows, rule):
    """seed / offset: a Python int, or a uint64 array of shape (nrows,), as rule allows."""
    if type(value) is int and rule.holds(value):  # the common case, kept cheap
        return value
    if type(value) is np.ndarray and value.shape == (nrows,):  # a row's values, kept cheap
        if value.dtype == _UINT64:  # every uint64 is in [0, 2**64)
            return value
        if value.dtype == _INT64:
            good = value >= 0
            if not good.all():
                _fail(name, value, good, rule.text)
            return value.astype(np.uint64)
    a = int_rows(name, value, nrows, rule)
    return np.broadcast_to(a.astype(np.uint64), (nrows,))


def fresh_seeds(nrows):
    """Seeds from the operating system's entropy, one per row."""
    return np.frombuffer(os.urandom(8 * max(nrows, 1)), dtype=np.uint64)[:nrows]


def temperatures(value, nrows):
    return float_rows("temperature", value, nrows, TEMPERATURE)


def _top_k_rows(top_k, nrows, vocab):
    if type(top_k) is np.ndarray and top_k.dtype == _INT64 and top_k.shape == (nrows,):
        good = top_k >= TOP_K.lo  # a row's values, the Sampler's way: kept cheap too
        if not good.all():
            _fail("top_k", top_k, good, TOP_K.text)
        return np.where((top_k > 0) & (top_k < vocab), top_k, 0)
    k = int_rows("top_k", top_k, nrows, TOP_K, allow_float=True)
    if k.dtype.kind == "O":
        k = np.array([v if 0 < v < vocab else 0 for v in k.reshape(-1).tolist()], dtype=np.int64)
    else:
        k = np.where((k > 0) & (k < vocab), k, 0).astype(np.int64)
    return np.broadcast_to(k.reshape(-1) if k.ndim else k, (nrows,))


def filters(
    nrows,
    vocab,
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
    """The per-row filters the core takes, a tuple: temperature, top_k, top_p, min_p,
    top_n_sigma, typical_p, epsilon, eta, xtc_threshold, xtc (float64 but top_k int64,
    each a Python number or an array of shape (nrows,)), then the order's number and
    whether any row lists its kept set (the core's scratch for it).

    top_k values that disable the filter (0, -1, k >= V) all become 0.  xtc is
    xtc_probability until :func:`xtc_coins` turns it into 1.0 where XTC acts.
    """
    plain = _core.plain_filters(
        vocab, temperature, top_k, top_p, min_p, top_n_sigma, typical_p, epsilon, eta,
        xtc_threshold, xtc_probability, order,
    )  # fmt: skip
    if plain is not None:  # valid Python numbers, the common case, checked in one C call
        return plain
    t = temperatures(temperature, nrows)
    if type(top_k) is int and top_k >= TOP_K.lo:  # the common case, kept cheap
        k = top_k if 0 < top_k < vocab else 0
    else:
        k = _top_k_rows(top_k, nrows, vocab)
    p = float_rows("top_p", top_p, nrows, TOP_P)
    m = float_rows("min_p", min_p, nrows, MIN_P)
    s = float_rows("top_n_sigma", top_n_sigma, nrows, TOP_N_SIGMA)
    typ = float_rows("typical_p", typical_p, nrows, TYPICAL_P)
    eps = float_rows("epsilon", epsilon, nrows, EPSILON)
    e = float_rows("eta", eta, nrows, ETA)
    xt = float_rows("xtc_threshold", xtc_threshold, nrows, XTC_THRESHOLD)
    xp = float_rows("xtc_probability", xtc_probability, nrows, XTC_PROBABILITY)
    number = order_number(order)
    values = {"top_n_sigma": s, "typical_p": typ, "epsilon": eps, "eta": e, "xtc_probability": xp}
    on = {name: _any_row(values[name], *ON[name]) for name in ON}
    for name in LACKS[order]:
        if on[name]:
            raise ValueError(f"order={order!r} has no {name}: the sampler it follows lacks it")
    lists = number == ORDERS["llama.cpp"] or any(on[name] for name in LISTING)
    return t, k, p, m, s, typ, eps, e, xt, xp, number, bool(lists)


def _any_row(v, off, sign):
    """Whether a filter is on in some row: v above off (sign 1) or below it (sign -1),
    v a Python float or an array of the rows' values."""
    if type(v) is float:
        return v > off if sign > 0 else v < off
    return bool((v > off).any() if sign > 0 else (v < off).any())


def order_number(order):
    """The core's number of an order= name."""
    if not isinstance(order, str):
        raise TypeError(f"order must be a str, got {type(order).__name__}")
    try:
        return ORDERS[order]
    except KeyError:
        names = ", ".join(repr(o) for o in ORDERS)
        raise ValueError(f"order must be one of {names}; got {order!r}") from None


def tosses_coins(f):
    """Whether the filters f have an XTC probability strictly between 0 and 1."""
    xp = f[9]
    if type(xp) is float:
        return 0.0 < xp < 1.0
    return bool(np.any((np.asarray(xp) > 0) & (np.asarray(xp) < 1)))


def xtc_coins(f, nrows, seeds, offsets):
    """The filters f with XTC's probability replaced by whether it acts in each row:
    ``uniform(seed, offset, index=1) < xtc_probability``.  Probabilities 0 and 1 need no
    coin; others need the rows' seeds (None: a ValueError, as when uniforms are given)."""
    if not tosses_coins(f):
        return f
    xp = f[9]
    if seeds is None:
        raise ValueError(
            "xtc_probability between 0 and 1 needs seed (and offset): XTC's coin is "
            "uniform(seed, offset, index=1); uniforms= gives only the draw's"
        )
    u = np.empty(nrows, dtype=np.float64)
    _core.uniform(seeds, offsets, 1, u)
    return f[:9] + ((u < xp).astype(np.float64),) + f[10:]


def uniforms_or_seeds(nrows, seed, offset, uniforms):
    """``(uniforms, seeds, offsets)`` for sample: either the first or the other two is None."""
    if (
        uniforms is None
        and type(seed) is int
        and type(offset) is int
        and 0 <= seed < U64_END
        and 0 <= offset < U64_END
    ):  # SEED's and OFFSET's range
        return None, seed, offset  # the common case, kept cheap
    if uniforms is not None:
        if seed is not None:
            raise ValueError("give either seed or uniforms, not both")
        return float_rows("uniforms", uniforms, nrows, UNIFORMS), None, None
    offsets = uint64_rows("offset", offset, nrows, OFFSET)
    seeds = fresh_seeds(nrows) if seed is None else uint64_rows("seed", seed, nrows, SEED)
    return None, seeds, offsets


def integer(name, value):
    """A single integer argument (bools and floats are TypeErrors)."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None


def thread_limit(name, value):
    """A largest thread count (NUM_THREADS), as a Python int."""
    n = integer(name, value)
    if not NUM_THREADS.holds(n):
        raise _bad_value(name, None, n, NUM_THREADS.text)
    return n


def token_rows(name, value, nrows, vocab):
    """One token id in [0, V) per row: a Python int, or an int64 array of shape (nrows,)."""
    rule = Rule(0, vocab, hi_open=True, integer=True)
    rule.text = f"a token id in [0, V) = [0, {vocab})"
    if type(value) is int and rule.holds(value):  # the common case, kept cheap
        return value
    a = int_rows(name, value, nrows, rule)
    return np.broadcast_to(
        a.astype(np.int64).reshape(-1) if a.ndim else a.astype(np.int64), (nrows,)
    )


def top_logprobs_n(value, vocab):
    """top_logprobs' n: an integer in [1, V]."""
    n = integer("n", value)
    if not 1 <= n <= vocab:
        raise _bad_value("n", None, n, f"an integer in [1, V] = [1, {vocab}]")
    return n


# The filters in _core.plain_filters' order
_CORE_FILTERS = {
    "temperature": TEMPERATURE,
    "top_k": TOP_K,
    "top_p": TOP_P,
    "min_p": MIN_P,
    "top_n_sigma": TOP_N_SIGMA,
    "typical_p": TYPICAL_P,
    "epsilon": EPSILON,
    "eta": ETA,
    "xtc_threshold": XTC_THRESHOLD,
    "xtc_probability": XTC_PROBABILITY,
}


def _set_core_ranges():
    """Give _core.plain_filters the ranges of the filters, as the C doubles it compares,
    the orders with the filters each lacks, when a filter is on, and which list."""

    def bounds(rule):  # a missing bound is an infinity, excluded: a finite number
        lo_open = rule.lo_open if rule.lo is not None else True
        lo = float(rule.lo) if rule.lo is not None else -math.inf
        hi_open = rule.hi_open if rule.hi is not None else True
        hi = float(rule.hi) if rule.hi is not None else math.inf
        return lo, hi, lo_open, hi_open

    _core.set_filter_ranges(*(bounds(rule) for rule in _CORE_FILTERS.values()))
    place = {name: i for i, name in enumerate(_CORE_FILTERS)}
    _core.set_orders(
        [(name, number, [place[f] for f in LACKS[name]]) for name, number in ORDERS.items()],
        [(place[name], off, sign) for name, (off, sign) in ON.items()],
        [place[name] for name in LISTING],
        ORDERS["llama.cpp"],
    )


_set_core_ranges()
