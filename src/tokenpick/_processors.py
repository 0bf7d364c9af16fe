"""The logit processors' arguments, checked and converted once for the compiled core.

``prepare`` takes the nine processor keywords of ``process_logits`` (and of ``sample``,
``filtered_probs``, ``mask``) and returns a ``Plan``: flat arrays (CSR) the core can read
without touching a Python object, or None when no processor is on.  It raises exactly the
errors of ``tokenpick.reference`` (type and message), checked in the same order: the
arguments in the order of the signature, each its type, then its shape, then its values,
row by row.

It runs on every sampling call of a server, so each argument has a fast path for the forms
servers pass (a padded 2-D id array, a list of B id arrays, a dict of int -> float, Python
numbers), with one vectorized check over all the ids; only when that check finds a problem,
or the input takes an unusual form, does the exact path run, which restates the reference's
rules row by row (each row still checked by numpy, never a Python loop over its tokens,
except for object arrays, which hold Python ints).  The two paths accept the same inputs and
give the same plan.
"""

import numbers
import operator
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from . import _core, _frameworks
from . import _params as P

_INT64_MAX = (1 << 63) - 1
_KEPT_IDS = (None,) * 9  # a kept Plan's bias, prompt, output and stop id fields (kept has them)
_PADDING = -1  # "no token" in every list of ids; kept in the plan, skipped by the core
_min, _max = np.minimum.reduce, np.maximum.reduce

# dtypes whose 1-D arrays np.concatenate joins into a signed integer array without loss
# (uint64 would promote to float64 beside a signed dtype; byte-swapped ones take the exact path)
_JOINABLE = frozenset(
    np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32)
)
_NDARRAY, _ONE = {np.ndarray}, {1}
_ndim, _dtype = operator.attrgetter("ndim"), operator.attrgetter("dtype")
# the types of logit_bias keys and values that np.fromiter converts exactly (or, for a
# Python int beyond int64 or float64, refuses with OverflowError: then the exact path runs)
_FAST_KEYS = frozenset((int, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16))
_FAST_BIASES = frozenset((float, int, np.float64, np.float32, np.float16))


class Plan(NamedTuple):
    """What the core reads; every array C-contiguous, native byte order.

    Rows: an array of R rows serves the logits' rows with R == nrows, or every row alike
    with R == 1.  A CSR pair ``(ids, starts)`` holds row r's entries in
    ``ids[starts[r]:starts[r + 1]]``; ids may hold -1 (padding, no token), every other id is
    in [0, V).  The id and bias arrays are the plan's own; the bitmask and the per-row
    arrays may be (read-only) views of the caller's arrays.
    """

    bitmask: object  # None, or uint32 (R, W)
    bias_ids: object  # None, or int64 ids in [0, V)
    bias_vals: object  # None, or float64, finite or -inf
    bias_starts: object  # None, or int64 (R + 1,)
    prompt_ids: object
    prompt_starts: object
    output_ids: object
    output_starts: object
    stop_ids: object
    stop_starts: object
    repetition_penalty: object  # float, or float64 (nrows,)
    frequency_penalty: object
    presence_penalty: object
    min_tokens: object  # int, or int64 (nrows,); values >= 0 (beyond int64: its maximum)
    # None, or (a _core.KeptStore, int64 (nrows,) slots): each row's biases, history and
    # stop ids kept by a decoding loop (tokenpick.Sampler), the id fields then None
    kept: object = None


def prepare(
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
    *,
    plain=True,
):
    """Check the processor arguments; return a Plan (or, from the plain path, a tuple of
    its fields, which the core reads alike), or None when no processor is on.

    No processor is on, as in the reference, when the bitmask, the biases, the prompt, the
    output and the stop ids are all None; the other arguments are still checked first.
    ``nrows`` is the logits' number of rows (1 for 1-D logits, ``was_1d``), ``V`` the
    vocabulary size.
    """
    if (
        token_bitmask is None
        and logit_bias is None
        and prompt_ids is None
        and output_ids is None
        and stop_ids is None
        and type(min_tokens) is int
        and min_tokens == 0
        and (type(repetition_penalty) is float or type(repetition_penalty) is int)
        and repetition_penalty == 1.0
        and (type(frequency_penalty) is float or type(frequency_penalty) is int)
        and frequency_penalty == 0.0
        and (type(presence_penalty) is float or type(presence_penalty) is int)
        and presence_penalty == 0.0
    ):
        return None  # every argument at its default: nothing to check, nothing to do
    plan = (
        None
        if not plain
        else _core.plain_plan(
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
        )
    )
    if plan is not None:  # the plain forms, checked in one C call (their ids by the core)
        return plan  # Plan's fields as a tuple: a Plan would cost a quarter of a microsecond
    bitmask = _bitmask(token_bitmask, nrows)
    bias_ids, bias_vals, bias_starts = _biases(logit_bias, nrows, V)
    prompt, prompt_starts = _id_rows("prompt_ids", prompt_ids, nrows, V, was_1d, False)
    output, output_starts = _id_rows("output_ids", output_ids, nrows, V, was_1d, False)
    rep = _penalty("repetition_penalty", repetition_penalty, nrows, P.REPETITION_PENALTY)
    freq = _penalty("frequency_penalty", frequency_penalty, nrows, P.ADDITIVE_PENALTY)
    pres = _penalty("presence_penalty", presence_penalty, nrows, P.ADDITIVE_PENALTY)
    mint = _min_tokens(min_tokens, nrows)
    stop, stop_starts = _id_rows("stop_ids", stop_ids, nrows, V, was_1d, True)
    if stop_ids is None and (mint > 0 if type(mint) is int else bool((mint > 0).any())):
        raise ValueError("min_tokens > 0 needs stop_ids: the ids it bans until then")
    if (
        token_bitmask is None
        and logit_bias is None
        and prompt_ids is None
        and output_ids is None
        and stop_ids is None
    ):
        return None  # nothing to ban, bias or penalize: the logits go on as they are
    return Plan(
        bitmask,
        bias_ids,
        bias_vals,
        bias_starts,
        prompt,
        prompt_starts,
        output,
        output_starts,
        stop,
        stop_starts,
        rep,
        freq,
        pres,
        mint,
    )


def kept_plan(
    nrows,
    token_bitmask,
    repetition_penalty,
    frequency_penalty,
    presence_penalty,
    min_tokens,
    kept=None,
):
    """The Plan of rows whose biases, history and stop ids a decoding loop keeps
    (tokenpick.Sampler: `kept` is its KeptStore's ``rows(slots)``), with this step's
    bitmask, checked here, and the rows' penalties and min_tokens, checked when the
    requests were added (floats and ints, or float64 and int64 arrays of the rows)."""
    if token_bitmask is not None and not _core.plain_words(token_bitmask, nrows):
        token_bitmask = _bitmask(token_bitmask, nrows)
    # Plan's fields as a tuple, as from the plain path: no biases, histories or stop ids
    return (token_bitmask, *_KEPT_IDS, repetition_penalty, frequency_penalty,
            presence_penalty, min_tokens, kept)  # fmt: skip


def _bitmask(value, nrows):
    """uint32 (R, W) words, R == nrows or 1 (every row); the input's own memory if it is
    already native and C-contiguous (int32 is the same bits, read as uint32)."""
    if value is None:
        return None
    a = value if type(value) is np.ndarray else _frameworks.as_array("token_bitmask", value)
    dt = a.dtype
    if dt.kind not in "iu" or dt.itemsize != 4:
        raise TypeError(f"token_bitmask must be int32 or uint32, got dtype {dt}")
    if a.ndim == 1:
        a = a.reshape(1, a.shape[0])
    elif a.ndim != 2:
        raise ValueError(f"token_bitmask must be 1-D (W,) or 2-D (B, W), got {a.ndim}-D")
    elif a.shape[0] != nrows:
        raise ValueError(f"token_bitmask has {a.shape[0]} rows, but logits has {nrows} row(s)")
    if not dt.isnative:
        a = a.astype(dt.newbyteorder("="))  # the words' values, in this machine's order
    return np.ascontiguousarray(a).view(np.uint32)


# ---- logit_bias --------------------------------------------------------------------


def _biases(value, nrows, V):
    """(ids int64, biases float64, starts int64): one segment for every row (a mapping) or
    one per row (a list of mappings or None); (None, None, None) when value is None."""
    if value is None:
        return None, None, None
    if type(value) is dict or isinstance(value, Mapping):
        ids, vals = _bias_entries("logit_bias", value, V)
        return ids, vals, np.array((0, ids.shape[0]), dtype=np.int64)
    if not isinstance(value, (list, tuple)):
        raise TypeError(
            "logit_bias must be a mapping {token_id: bias} (every row) or a list of B such "
            f"mappings or None, got {type(value).__name__}"
        )
    if len(value) != nrows:
        raise ValueError(f"logit_bias has {len(value)} mappings, but logits has {nrows} row(s)")
    for i, m in enumerate(value):  # every row's type before any row's entries
        if m is not None and type(m) is not dict and not isinstance(m, Mapping):
            raise TypeError(
                f"logit_bias for row {i} must be a mapping {{token_id: bias}} or None, "
                f"got {type(m).__name__}"
            )
    parts = [_bias_entries(f"logit_bias for row {i}", m, V) for i, m in enumerate(value)]
    starts = _starts([p[0].shape[0] for p in parts], len(parts))
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.float64), starts
    ids = np.concatenate([p[0] for p in parts])
    return ids, np.concatenate([p[1] for p in parts]), starts


def _bias_entries(where, mapping, V):
    """One mapping's (ids int64, biases float64), ids in [0, V), biases finite or -inf.

    A dict of Python ints to floats (the common case) is converted by np.fromiter and
    checked at once; anything else, or any problem, goes item by item as the reference
    does, so that the first bad item (in the mapping's order) is the one reported.
    """
    if mapping is None:  # no biases for this row
        return np.empty(0, np.int64), np.empty(0, np.float64)
    if type(mapping) is dict:
        n = len(mapping)
        if n == 0:
            return np.empty(0, np.int64), np.empty(0, np.float64)
        keys, vals = mapping.keys(), mapping.values()
        if set(map(type, keys)) <= _FAST_KEYS and set(map(type, vals)) <= _FAST_BIASES:
            try:
                ids = np.fromiter(keys, np.int64, n)
                biases = np.fromiter(vals, np.float64, n)
            except (OverflowError, TypeError, ValueError):  # an int beyond int64 or float64
                pass
            else:
                # every id in [0, V), and no bias +inf or NaN: then their sum is neither
                # (a sum that overflows to +inf sends a good mapping the exact way: harmless)
                if n < 64:  # for a few entries, Python's builtins beat numpy's calls
                    ok = min(keys) >= 0 and max(keys) < V
                    total = sum(vals)
                else:
                    ok = _min(ids) >= 0 and _max(ids) < V
                    total = float(np.add.reduce(biases))
                if ok and total == total and total != np.inf:
                    return ids, biases
    return _bias_entries_exact(where, mapping, V)


def _bias_entries_exact(where, mapping, V):
    """_bias_entries item by item: each key's and value's type, then each id and bias."""
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
        if b != b or b == np.inf:
            raise ValueError(f"{where}: the bias of token {k} must be finite or -inf; got {b}")
    return np.array(ids, dtype=np.int64), np.array(vals, dtype=np.float64)


# ---- prompt_ids, output_ids, stop_ids -----------------------------------------------


def _starts(lengths, n):
    """CSR row starts (int64, n + 1) for n rows of these lengths (an iterable)."""
    starts = np.empty(n + 1, dtype=np.int64)
    starts[0] = 0
    np.cumsum(np.fromiter(lengths, np.int64, n), out=starts[1:])
    return starts


def _padded_starts(nrows, L):
    """CSR row starts for nrows rows of L ids each."""
    if L == 0:
        return np.zeros(nrows + 1, dtype=np.int64)
    return np.arange(0, (nrows + 1) * L, L, dtype=np.int64)


def _one_row(ids):
    """The CSR of one list of ids that serves every row."""
    return ids, np.array((0, ids.shape[0]), dtype=np.int64)


def _checked_copy(a, V):
    """A C-contiguous int64 copy of the integer ids a, or None if an id is not -1 or in [0, V).

    A copy, never a view of the caller's array: the core indexes by these ids with the GIL
    released, and another thread writing to the caller's array meanwhile must not be able
    to put an id under it that was never checked.  So the copy is what is checked.
    """
    if a.dtype.kind == "u":  # checked as unsigned, so that 2**64 - 1 cannot pass for -1
        c = a.astype(np.uint64, order="C")
        return c.view(np.int64) if c.size == 0 or _max(c, axis=None) < V else None
    c = a.astype(np.int64, order="C")
    return c if _ids_ok(c, V) else None


def _ids_ok(a, V):
    """Whether every id of the integer array a is -1 (padding) or in [0, V).

    Two reductions over the ids, the ufuncs' own (ndarray.min/max add a Python layer).
    """
    if a.size == 0:
        return True
    if _max(a, axis=None) >= V:
        return False
    return a.dtype.kind == "u" or _min(a, axis=None) >= _PADDING


def _id_rows(name, value, nrows, V, was_1d, shared):
    """(ids, starts), the CSR of each row's ids (padding kept), or (None, None).

    The accepted forms are the reference's (``_id_rows``): a 2-D integer array (B, L)
    padded with -1, or a sequence of B 1-D lists, one list per row; a single 1-D list
    serves every row, for 1-D logits and, where ``shared`` (stop_ids), for 2-D logits.
    """
    if value is None:
        return None, None
    tv = type(value)
    if tv is np.ndarray and value.dtype.kind in "iu":
        if value.ndim == 2 and value.shape[0] == nrows:
            ids = _checked_copy(value, V)  # padded (B, L): the ids as they stand, -1 and all
            if ids is not None:
                return ids.reshape(-1), _padded_starts(nrows, value.shape[1])
        elif value.ndim == 1 and (was_1d or shared):
            ids = _checked_copy(value, V)
            if ids is not None:
                return _one_row(ids)
    elif (tv is list or tv is tuple) and value:
        if type(value[0]) is np.ndarray:
            # B 1-D integer arrays (ragged rows): one join and one check for all of them
            if (
                len(value) == nrows
                and set(map(type, value)) == _NDARRAY
                and set(map(_ndim, value)) == _ONE
                and set(map(_dtype, value)) <= _JOINABLE
            ):
                ids = np.concatenate(value)
                if _ids_ok(ids, V):
                    return ids.astype(np.int64, copy=False), _starts(map(len, value), nrows)
        elif was_1d or shared:
            # one list of Python ints: numpy's conversion, as the reference's
            try:
                a = np.asarray(value)
            except Exception:  # ragged or odd: the exact path says what the reference says
                a = None
            if a is not None and a.ndim == 1 and a.dtype.kind in "iu" and _ids_ok(a, V):
                # a 1-D integer array: every item was a scalar, as the reference requires
                return _one_row(np.ascontiguousarray(a, dtype=np.int64))  # a is ours
    return _id_rows_exact(name, value, nrows, V, was_1d, shared)


def _id_rows_exact(name, value, nrows, V, was_1d, shared):
    """_id_rows, following the reference's checks step by step."""
    if isinstance(value, np.ndarray) and value.dtype.kind == "O":
        value = value.tolist()  # an array of arrays is a sequence of rows
    if isinstance(value, (list, tuple)):
        if (was_1d or shared) and all(np.ndim(e) == 0 for e in value):
            return _one_row(_id_array(name, value, V))
        if len(value) != nrows:
            raise ValueError(f"{name} has {len(value)} rows, but logits has {nrows} row(s)")
        rows = [_id_array(f"{name} row {i}", e, V) for i, e in enumerate(value)]
        ids = np.concatenate(rows) if rows else np.empty(0, np.int64)
        return ids, _starts(map(len, rows), len(rows))
    a = value if type(value) is np.ndarray else _frameworks.as_array(name, value)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer token ids, got dtype {a.dtype}")
    if a.ndim == 1 and (was_1d or shared):
        return _one_row(_id_array(name, a, V))
    if a.ndim != 2:
        if was_1d:
            one = "a 1-D list of ids"
        elif shared:
            one = "a 1-D list of ids (every row), a 2-D (B, L) array padded with -1, or B 1-D lists"
        else:
            one = "a 2-D (B, L) array padded with -1, or B 1-D lists"
        raise ValueError(f"{name} must be {one}; got a {a.ndim}-D array")
    if a.shape[0] != nrows:
        raise ValueError(f"{name} has {a.shape[0]} rows, but logits has {nrows} row(s)")
    ids = _checked_copy(a, V)
    if ids is None:
        for i, r in enumerate(a):  # the first row with a bad id raises
            _id_array(f"{name} row {i}", r, V)
    return ids.reshape(-1), _padded_starts(nrows, a.shape[1])


def _id_array(where, value, V):
    """One list of ids as int64 (padding kept): integers, each -1 or in [0, V)."""
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
            return np.array(items, dtype=np.int64)
    elif a.dtype.kind not in "iu":
        raise TypeError(f"{where} must hold integer token ids, got dtype {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"{where} must be a 1-D list of ids, got {a.ndim}-D")
    ids = _checked_copy(a, V)
    if ids is None:
        bad = a >= V if a.dtype.kind == "u" else (a < _PADDING) | (a >= V)
        raise _bad_id(where, a[bad][0].item(), V)
    return ids


def _bad_id(where, v, V):
    return ValueError(f"{where} holds {v}, not a token id in [0, V) = [0, {V}) nor -1 (padding)")


# ---- penalties and min_tokens --------------------------------------------------------


def _penalty(name, value, nrows, rule):
    """A float, or a C-contiguous float64 (nrows,) array; _params.float_rows' checks."""
    got = P.float_rows(name, value, nrows, rule)
    if type(got) is float:
        return got
    if np.ndim(value) == 0:  # a numpy scalar or 0-d array: every row's value
        return float(np.asarray(value, dtype=np.float64))
    return np.ascontiguousarray(got, dtype=np.float64)


def _min_tokens(value, nrows):
    """An int, or an int64 (nrows,) array, each >= 0 (values beyond int64 become its
    maximum: no output is that long).  Integers only: a float is a TypeError, as for seed.
    """
    name = "min_tokens"
    if type(value) is int:  # the common case, kept cheap
        if value >= 0:
            return min(value, _INT64_MAX)
        raise ValueError(f"{name} must be {P.MIN_TOKENS.text}; got {value!r}")
    if value is None:
        raise TypeError(f"{name} must be an integer or a 1-D array of integers, not None")
    # types first (every item of an object array), then the shape, then the values
    a = np.array(value, dtype=object) if isinstance(value, (list, tuple)) else np.asarray(value)
    kind = a.dtype.kind
    if kind == "f":
        raise TypeError(f"{name} must be integers, got dtype {a.dtype}")
    if kind == "O":
        for i, v in enumerate(a.reshape(-1).tolist()):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{name}[{i}] must be an integer, got {v!r}")
    elif kind not in "iu":
        raise TypeError(f"{name} must be integers, got dtype {a.dtype}")
    if a.ndim > 1:
        raise ValueError(f"{name} must be a scalar or 1-D, got {a.ndim}-D")
    if a.ndim == 1 and a.shape[0] != nrows:
        raise ValueError(f"{name} has length {a.shape[0]}, but logits has {nrows} row(s)")
    if kind == "O":
        vals = [int(v) for v in a.reshape(-1).tolist()]
        bad = [i for i, v in enumerate(vals) if v < 0]
        if bad:
            _fail_min_tokens(a, bad[0], vals[bad[0]])
        if a.ndim == 0:
            return min(vals[0], _INT64_MAX)
        return np.array([min(v, _INT64_MAX) for v in vals], dtype=np.int64)
    if kind == "i":
        neg = a < 0
        if neg.any():
            i = int(np.argmax(neg.reshape(-1)))
            _fail_min_tokens(a, i, a.reshape(-1)[i].item())
    if a.ndim == 0:
        return min(a.item(), _INT64_MAX)
    if kind == "u" and a.dtype.itemsize == 8:
        a = np.minimum(a, np.uint64(_INT64_MAX))
    return np.ascontiguousarray(a, dtype=np.int64)


def _fail_min_tokens(a, i, v):
    where = "min_tokens" if a.ndim == 0 else f"min_tokens for row {i}"
    raise ValueError(f"{where} must be {P.MIN_TOKENS.text}; got {v!r}")


def explain(nrows, V, was_1d, *arguments):
    """Raise the error of processor arguments whose plain Plan the core found
    ids out of range in (_core.StrayIds): ``arguments`` are prepare's, checked
    the general way this time."""
    prepare(nrows, V, was_1d, *arguments, plain=False)
    raise ValueError("an id of the processor arguments changed while the call read it")
