"""Every error of docs/semantics.md "Inputs and errors", for every public function, as a table.

Each row: a function, the arguments that are wrong, the error type docs/semantics.md
requires and, for per-row values, the row index the message must name.  For each: the
package raises that type, the reference raises the same error (type and message), the
message states a range as a user writes it (2**64, not its 20 digits), and a raising call
leaves ``out=`` (a sentinel-filled buffer) and an in-place input (``out=logits``) as they
were.
"""

import re
import sys

import numpy as np
import pytest

import tokenpick as tp
from tokenpick import reference as ref

B, V, BAD = 6, 9, 4  # the bad row is row 4 of 6; 4 appears nowhere else in a message

OUT_FUNCS = (
    "softmax",
    "log_softmax",
    "mask",
    "top_k_mask",
    "top_p_mask",
    "min_p_mask",
    "filtered_probs",
)
LOGITS_FUNCS = OUT_FUNCS + ("logsumexp", "greedy", "sample", "top_logprobs")
BASE = {  # a valid call of each function, to which a row of the table adds one mistake
    "softmax": {},
    "log_softmax": {},
    "logsumexp": {},
    "greedy": {},
    "mask": {"top_k": 3, "top_p": 0.9, "min_p": 0.01},
    "top_k_mask": {"top_k": 3},
    "top_p_mask": {"top_p": 0.9},
    "min_p_mask": {"min_p": 0.1},
    "filtered_probs": {"top_k": 3, "top_p": 0.9, "min_p": 0.01},
    "sample": {"seed": 7, "top_k": 3},
    "top_logprobs": {"n": 2},
}
PARAMS = {  # which functions take which parameter
    "temperature": (
        "softmax",
        "log_softmax",
        "logsumexp",
        "mask",
        "top_p_mask",
        "min_p_mask",
        "filtered_probs",
        "sample",
        "top_logprobs",
    ),
    "top_k": ("mask", "top_k_mask", "filtered_probs", "sample"),
    "top_p": ("mask", "top_p_mask", "filtered_probs", "sample"),
    "min_p": ("mask", "min_p_mask", "filtered_probs", "sample"),
    "seed": ("sample",),
    "offset": ("sample",),
    "uniforms": ("sample",),
    "num_threads": ("sample",),
    "n": ("top_logprobs",),
}


def good_logits(rows=B):
    rng = np.random.default_rng(1234)
    return rng.standard_normal((rows, V)).astype(np.float32)


def with_row(value_fn, dtype=np.float32):
    def make():
        x = good_logits().astype(dtype)
        value_fn(x[BAD])
        return x

    return make


def _set(idx, value):
    def f(row):
        row[idx] = value

    return f


def per_row(value, good, dtype=None):
    a = [good] * B
    a[BAD] = value
    return np.array(a, dtype=dtype) if dtype is not None else np.array(a)


# (id, logits factory, error type, row index the message must name or None)
BAD_LOGITS = [
    ("int32", lambda: np.arange(B * V, dtype=np.int32).reshape(B, V), TypeError, None),
    ("int64", lambda: np.arange(B * V, dtype=np.int64).reshape(B, V), TypeError, None),
    ("uint8", lambda: np.ones((B, V), dtype=np.uint8), TypeError, None),
    ("bool", lambda: np.ones((B, V), dtype=bool), TypeError, None),
    ("complex64", lambda: good_logits().astype(np.complex64), TypeError, None),
    ("complex128", lambda: good_logits().astype(np.complex128), TypeError, None),
    ("object", lambda: good_logits().astype(object), TypeError, None),
    ("None", lambda: None, TypeError, None),
    ("str", lambda: "hello", TypeError, None),
    ("list-of-ints", lambda: [[1, 2, 3], [4, 5, 6]], TypeError, None),
    ("nan", with_row(_set(3, np.nan)), ValueError, BAD),
    ("+inf", with_row(_set(0, np.inf)), ValueError, BAD),
    ("all--inf", with_row(_set(slice(None), -np.inf)), ValueError, BAD),
    ("nan-float64", with_row(_set(2, np.nan), np.float64), ValueError, BAD),
    ("float64-beyond-float32", with_row(_set(5, 1e39), np.float64), ValueError, BAD),
    ("float16-inf", with_row(_set(1, np.inf), np.float16), ValueError, BAD),
    (
        "nan-strided",
        lambda: np.repeat(with_row(_set(7, np.nan))(), 2, axis=1)[:, ::2],
        ValueError,
        BAD,
    ),
    ("nan-1d", lambda: np.array([0.0, np.nan, 1.0], dtype=np.float32), ValueError, 0),
    ("all--inf-1d", lambda: np.full(3, -np.inf, dtype=np.float32), ValueError, 0),
    ("ndim0", lambda: np.float32(1.0), ValueError, None),
    ("ndim0-array", lambda: np.array(1.0, dtype=np.float32), ValueError, None),
    ("ndim3", lambda: np.zeros((2, 3, 4), dtype=np.float32), ValueError, None),
    ("V=0-1d", lambda: np.zeros(0, dtype=np.float32), ValueError, None),
    ("V=0-2d", lambda: np.zeros((3, 0), dtype=np.float32), ValueError, None),
    ("V=0-B=0", lambda: np.zeros((0, 0), dtype=np.float32), ValueError, None),
]

BAD_PARAMS = {  # parameter -> [(id, value, error type, row index)]
    "temperature": [
        ("negative", -1.0, ValueError, None),
        ("nan", np.nan, ValueError, None),
        ("inf", np.inf, ValueError, None),
        ("-inf", -np.inf, ValueError, None),
        ("per-row-negative", per_row(-0.5, 1.0), ValueError, BAD),
        ("per-row-nan", per_row(np.nan, 1.0), ValueError, BAD),
        ("per-row-list", per_row(-0.5, 1.0).tolist(), ValueError, BAD),
        ("length", np.ones(B - 1), ValueError, None),
        ("2d", np.ones((B, 1)), ValueError, None),
        ("str", "1.0", TypeError, None),
        ("bool", True, TypeError, None),
        ("None", None, TypeError, None),
        ("complex", 1 + 1j, TypeError, None),
        ("bool-array", np.ones(B, dtype=bool), TypeError, None),
    ],
    "top_k": [
        ("-2", -2, ValueError, None),
        ("2.5", 2.5, ValueError, None),
        ("nan", np.nan, ValueError, None),
        ("inf", np.inf, ValueError, None),
        ("-2**64", -(2**64), ValueError, None),
        ("per-row-negative", per_row(-5, 3), ValueError, BAD),
        ("per-row-fraction", per_row(1.5, 3.0), ValueError, BAD),
        ("per-row-list", per_row(-5, 3).tolist(), ValueError, BAD),
        ("length", np.full(B + 1, 3), ValueError, None),
        ("bool", True, TypeError, None),
        ("str", "3", TypeError, None),
        ("None", None, TypeError, None),
        ("complex", 3j, TypeError, None),
    ],
    "top_p": [
        ("0", 0.0, ValueError, None),
        ("negative", -0.1, ValueError, None),
        ("above-1", 1.1, ValueError, None),
        ("nan", np.nan, ValueError, None),
        ("inf", np.inf, ValueError, None),
        ("per-row", per_row(0.0, 0.9), ValueError, BAD),
        ("length", np.full(B - 1, 0.9), ValueError, None),
        ("bool", True, TypeError, None),
        ("str", "0.5", TypeError, None),
        ("None", None, TypeError, None),
    ],
    "min_p": [
        ("negative", -0.1, ValueError, None),
        ("above-1", 1.1, ValueError, None),
        ("nan", np.nan, ValueError, None),
        ("inf", np.inf, ValueError, None),
        ("per-row", per_row(1.5, 0.1), ValueError, BAD),
        ("length", np.full(2, 0.1), ValueError, None),
        ("bool", False, TypeError, None),
        ("str", "0.1", TypeError, None),
        ("None", None, TypeError, None),
    ],
    "seed": [
        ("negative", -1, ValueError, None),
        ("2**64", 2**64, ValueError, None),
        ("float", 1.0, TypeError, None),
        ("float-fraction", 1.5, TypeError, None),
        ("bool", True, TypeError, None),
        ("str", "1", TypeError, None),
        ("per-row-negative", per_row(-1, 5, np.int64), ValueError, BAD),
        ("per-row-too-big", per_row(2**64, 5, object), ValueError, BAD),
        ("per-row-list-negative", per_row(-1, 5, object).tolist(), ValueError, BAD),
        ("per-row-list-float", per_row(1.0, 5, object).tolist(), TypeError, None),
        ("float-array", np.ones(B), TypeError, None),
        ("length", np.arange(B - 1), ValueError, None),
    ],
    "offset": [
        ("negative", -1, ValueError, None),
        ("2**64", 2**64, ValueError, None),
        ("float", 1.0, TypeError, None),
        ("bool", True, TypeError, None),
        ("str", "1", TypeError, None),
        ("None", None, TypeError, None),
        ("per-row-negative", per_row(-3, 5, np.int64), ValueError, BAD),
        ("per-row-list-too-big", per_row(2**64, 5, object).tolist(), ValueError, BAD),
        ("length", np.arange(B + 2), ValueError, None),
    ],
    "uniforms": [
        ("negative", -0.1, ValueError, None),
        ("1.0", 1.0, ValueError, None),
        ("nan", np.nan, ValueError, None),
        ("inf", np.inf, ValueError, None),
        ("per-row", per_row(1.0, 0.5), ValueError, BAD),
        ("length", np.full(B - 1, 0.5), ValueError, None),
        ("bool", True, TypeError, None),
        ("str", "0.5", TypeError, None),
    ],
    "num_threads": [
        ("0", 0, ValueError, None),
        ("negative", -1, ValueError, None),
        ("float", 1.5, TypeError, None),
        ("str", "2", TypeError, None),
        ("bool", True, TypeError, None),
    ],
    "n": [
        ("0", 0, ValueError, None),
        ("V+1", V + 1, ValueError, None),
        ("negative", -1, ValueError, None),
        ("float", 1.5, TypeError, None),
        ("bool", True, TypeError, None),
        ("None", None, TypeError, None),
        ("str", "2", TypeError, None),
    ],
}


def _call(mod, name, logits, kwargs):
    kwargs = dict(kwargs)
    if name == "sample" and "uniforms" in kwargs:
        kwargs.pop("seed", None)
    return getattr(mod, name)(logits, **kwargs)


def _cases():
    for name in LOGITS_FUNCS:
        for cid, make, exc, row in BAD_LOGITS:
            yield pytest.param(name, make, {}, exc, row, id=f"{name}-logits-{cid}")
    for pname, bads in BAD_PARAMS.items():
        for name in PARAMS[pname]:
            for cid, value, exc, row in bads:
                yield pytest.param(
                    name, good_logits, {pname: value}, exc, row, id=f"{name}-{pname}-{cid}"
                )
    yield pytest.param(
        "sample",
        good_logits,
        {"seed": 3, "uniforms": np.full(B, 0.5)},
        ValueError,
        None,
        id="sample-seed-and-uniforms",
    )
    yield pytest.param(
        "sample",
        good_logits,
        {"seed": 3, "uniforms": 0.5},
        ValueError,
        None,
        id="sample-seed-and-uniforms-scalar",
    )


def _message_names_row(message, row):
    return re.search(rf"(?<![\d.]){row}(?![\d.])", message) is not None


def _check_message(got, want):
    """The package's message is the reference's, and what it says of the valid values
    (before "; got" and the value given) has no number a user must count digits of."""
    assert str(got) == str(want), f"tokenpick: {got!r}; the reference: {want!r}"
    rule = str(got).split("; got ")[0]
    assert not re.search(r"\d{7,}", rule), f"a range a user cannot read: {got!r}"


@pytest.mark.parametrize("name, make, extra, exc, row", list(_cases()))
def test_error(name, make, extra, exc, row):
    kwargs = {**BASE[name], **extra}
    if "uniforms" in extra:
        kwargs.pop("seed", None) if "seed" not in extra else None
    logits = make()
    snapshot = np.array(logits, copy=True) if isinstance(logits, np.ndarray) else None

    with pytest.raises(Exception) as want:
        ref_kwargs = dict(kwargs)
        getattr(ref, name)(logits, **ref_kwargs)
    with pytest.raises(Exception) as got:
        getattr(tp, name)(logits, **kwargs)
    assert want.type is exc, (
        f"the reference raised {want.type.__name__}({want.value}), docs/semantics.md says "
        f"{exc.__name__}"
    )
    assert got.type is exc, (
        f"tokenpick.{name} raised {got.type.__name__}({got.value}); docs/semantics.md (and "
        f"the reference) say {exc.__name__}"
    )
    _check_message(got.value, want.value)
    if row is not None:
        assert _message_names_row(str(got.value), row), (
            f"the message should name row {row}: {got.value!r}"
        )
    if snapshot is not None:
        np.testing.assert_array_equal(logits, snapshot, err_msg="a raising call changed its input")

    # The same mistake with out= given: out and an in-place input stay as they were.
    if (
        name in OUT_FUNCS
        and isinstance(logits, np.ndarray)
        and logits.dtype == np.float32
        and logits.ndim in (1, 2)
        and logits.shape[-1] > 0
    ):
        out = np.full(logits.shape, 123.25, dtype=np.float32)
        with pytest.raises(exc):
            getattr(tp, name)(logits, **kwargs, out=out)
        assert (out == 123.25).all(), f"a raising call wrote into out=: {out}"
        if logits.flags.c_contiguous and logits.flags.writeable:
            inplace = logits.copy()
            before = inplace.copy()
            with pytest.raises(exc):
                getattr(tp, name)(inplace, **kwargs, out=inplace)
            np.testing.assert_array_equal(
                inplace, before, err_msg="a raising in-place call changed the logits"
            )


# ----------------------------------------------------------------------------
# out=


def _bad_outs(shape):
    ro = np.zeros(shape, dtype=np.float32)
    ro.flags.writeable = False
    wide = np.zeros(shape[:-1] + (2 * shape[-1],), dtype=np.float32)
    return [
        ("float64", np.zeros(shape), TypeError),
        ("float16", np.zeros(shape, dtype=np.float16), TypeError),
        ("int32", np.zeros(shape, dtype=np.int32), TypeError),
        ("list", np.zeros(shape).tolist(), TypeError),
        ("scalar", 5, TypeError),
        ("shape-rows", np.zeros((shape[0] + 1,) + shape[1:], dtype=np.float32), ValueError),
        ("shape-vocab", np.zeros(shape[:-1] + (shape[-1] - 1,), dtype=np.float32), ValueError),
        ("shape-ndim", np.zeros((1,) + shape, dtype=np.float32), ValueError),
        ("strided", wide[..., ::2], ValueError),
        ("fortran", np.asfortranarray(np.zeros(shape, dtype=np.float32)), ValueError),
        ("readonly", ro, ValueError),
    ]


@pytest.mark.parametrize("ndim", [1, 2])
@pytest.mark.parametrize("name", OUT_FUNCS)
def test_out_errors(name, ndim):
    logits = good_logits() if ndim == 2 else good_logits()[0]
    before = logits.copy()
    for cid, out, exc in _bad_outs(logits.shape):
        if cid == "fortran" and ndim == 1:
            continue  # a 1-D array is always both C and Fortran contiguous
        snapshot = np.array(out, copy=True)
        with pytest.raises(Exception) as want:
            getattr(ref, name)(logits, **BASE[name], out=out)
        with pytest.raises(Exception) as got:
            getattr(tp, name)(logits, **BASE[name], out=out)
        assert want.type is exc, f"{cid}: the reference raised {want.type.__name__}({want.value})"
        assert got.type is exc, (
            f"out={cid}: tokenpick.{name} raised {got.type.__name__}({got.value}), "
            f"want {exc.__name__}"
        )
        _check_message(got.value, want.value)
        np.testing.assert_array_equal(
            np.asarray(out), snapshot, err_msg=f"out={cid}: a raising call wrote into out"
        )
    np.testing.assert_array_equal(logits, before)


# ----------------------------------------------------------------------------
# uniform(seed, offset)

UNIFORM_ERRORS = [
    ("seed-negative", (-1,), ValueError),
    ("seed-2**64", (2**64,), ValueError),
    ("seed-float", (1.0,), TypeError),
    ("seed-bool", (True,), TypeError),
    ("seed-None", (None,), TypeError),
    ("seed-str", ("1",), TypeError),
    ("seed-2d", (np.zeros((2, 2), dtype=np.int64),), ValueError),
    ("seed-array-negative", (np.array([1, -1]),), ValueError),
    ("offset-negative", (1, -1), ValueError),
    ("offset-2**64", (1, 2**64), ValueError),
    ("offset-float", (1, 2.0), TypeError),
    ("offset-None", (1, None), TypeError),
    ("lengths", (np.arange(3), np.arange(2)), ValueError),
]


@pytest.mark.parametrize("args, exc", [pytest.param(a, e, id=i) for i, a, e in UNIFORM_ERRORS])
def test_uniform_errors(args, exc):
    with pytest.raises(Exception) as want:
        ref.uniform(*args)
    with pytest.raises(Exception) as got:
        tp.uniform(*args)
    assert want.type is exc, f"the reference raised {want.type.__name__}({want.value})"
    assert got.type is exc, f"tokenpick.uniform raised {got.type.__name__}({got.value})"
    _check_message(got.value, want.value)


# ----------------------------------------------------------------------------
# threads


@pytest.mark.parametrize(
    "n, exc", [(0, ValueError), (-1, ValueError), (1.5, TypeError), ("2", TypeError)]
)
def test_set_num_threads_errors(n, exc):
    before = tp.get_num_threads()
    with pytest.raises(exc):
        tp.set_num_threads(n)
    assert tp.get_num_threads() == before


def test_valid_edge_values_are_accepted():
    """The boundaries of each range are valid (a check off by one would reject them)."""
    x = good_logits()
    tp.sample(x, temperature=0.0, top_k=-1, top_p=1.0, min_p=1.0, seed=0, offset=0)
    tp.sample(x, top_k=2**63, top_p=1e-300, min_p=0.0, seed=2**64 - 1, offset=2**64 - 1)
    for k in (2**64, 2**100, [2**70] * B, np.full(B, 1e300)):  # k >= V: top-k is off
        for mod in (tp, ref):
            assert mod.sample(x, top_k=k, seed=3).tolist() == mod.sample(x, seed=3).tolist()
    tp.sample(
        x,
        top_k=np.full(B, 2.0),
        seed=np.full(B, 2**64 - 1, dtype=np.uint64),
        offset=np.array([2**64 - 1] * B, dtype=object),
    )
    tp.sample(x, uniforms=np.zeros(B), num_threads=1)
    tp.sample(x, uniforms=np.full(B, 1 - 2**-53), num_threads=64)
    tp.sample(x, seed=[0, 1, 2, 3, 4, 2**64 - 1], offset=[2**64 - 1, 0, 0, 0, 0, 0])
    tp.top_logprobs(x, V)
    tp.top_logprobs(x, 1, temperature=np.zeros(B))
    tp.uniform(2**64 - 1, 2**64 - 1)
    tp.uniform(np.uint64(5), np.int8(3))
    tp.softmax(x, temperature=np.float32(2.0))
    tp.softmax(x, temperature=2)  # an int temperature is a real number
    tp.softmax(x, temperature=[1.0] * B)


def test_odd_objects_raise_type_or_value_errors():
    """Objects numpy cannot make sense of raise TypeError or ValueError, never crash; an
    object whose own conversion fails (``__array__`` raising) gives TypeError, with the
    object's exception as the cause."""

    class Weird:
        def __array__(self, *a, **k):
            raise RuntimeError("no")

    for bad in (Weird(), object(), {1: 2}, [[1.0, 2.0], [3.0]], b"\x00\x01"):
        for mod in (tp, ref):
            with pytest.raises((TypeError, ValueError)):
                mod.softmax(bad)
            with pytest.raises((TypeError, ValueError)):
                mod.sample(bad, seed=1)
    with pytest.raises(TypeError) as info:
        tp.greedy(Weird())
    assert isinstance(info.value.__cause__, RuntimeError)
    assert sys.getrefcount(None) > 0


# ----------------------------------------------------------------------------
# an empty batch still checks its parameters

EMPTY_BATCH_BAD = [
    dict(temperature=np.inf),
    dict(temperature=-1.0),
    dict(top_p=2.0),
    dict(min_p=-1.0),
    dict(top_k=-5),
    dict(seed=-1),
    dict(offset=2**64),
    dict(uniforms=1.5),
]


@pytest.mark.parametrize("kwargs", EMPTY_BATCH_BAD, ids=lambda k: "-".join(map(str, k.items())))
@pytest.mark.parametrize("impl", ["tokenpick", "reference"])
def test_empty_batch_still_rejects_invalid_scalars(impl, kwargs):
    mod = tp if impl == "tokenpick" else ref
    with pytest.raises(ValueError):
        mod.sample(np.zeros((0, 5), dtype=np.float32), **kwargs)
