"""Garbage in, a clear exception out: Hypothesis throws random objects at every public
function and accepts only a result or ``ValueError`` / ``TypeError``.

Unlike test_compare.py, whose inputs are well-formed logits with valid or invalid rows,
this draws anything a server might pass on by mistake: arrays of any dtype (floats of
every width and byte order, integers, bool, complex, object, strings), of 0 to 3
dimensions with empty axes, non-contiguous, Fortran-ordered or read-only, filled with
NaN, +-inf, signed zeros, subnormals and float extremes; Python lists, scalars, None,
bytes; and for every parameter the same mix plus integers beyond 64 bits, per-row arrays
of the wrong length or rank, and ``out=`` buffers of any dtype, shape, layout and
writability.

For every drawn call:
  * tokenpick returns or raises ValueError / TypeError, never anything else and never a
    crash (a crash kills the test process, which pytest reports);
  * the reference (tokenpick.reference) raises the same error type, or also returns;
  * a raising call leaves the logits and ``out=`` byte for byte as they were;
  * a returning call gives results of the documented shape and dtype, tokens inside the
    vocabulary, and no NaN.
"""

import numpy as np
import pytest
from _dlpack import Bfloat16Rows, bfloat16_bits
from hypothesis import given, settings
from hypothesis import strategies as st

import tokenpick as tp
from tokenpick import reference as ref

ALLOWED = (ValueError, TypeError)
# Examples per test: 4x the profile's (conftest.py): 160 by default, 1000 with "thorough".
EXAMPLES = 4 * settings().max_examples

SPECIALS = (
    np.nan,
    np.inf,
    -np.inf,
    0.0,
    -0.0,
    1.0,
    -1.0,
    1e-45,
    -1e-45,
    1e-38,
    3.4028235e38,
    -3.4028235e38,
    1e39,
    -1e39,
    1e308,
    65504.0,
    65520.0,
    2.0**24 + 1,
)
FLOAT_DTYPES = ("<f2", ">f2", "<f4", ">f4", "<f8", ">f8")
OTHER_DTYPES = (
    "i1",
    "u1",
    "i4",
    "<i8",
    ">i8",
    "u8",
    "?",
    "c8",
    "c16",
    "O",
    "U3",
    "S3",
    "M8[s]",
    "m8[s]",
)
if hasattr(np, "longdouble") and np.dtype(np.longdouble).itemsize > 8:
    OTHER_DTYPES += ("g",)  # long double: no exact float64 or float32 image


@st.composite
def values(draw, n):
    """`n` float64 values: mostly ordinary, some special (NaN, +-inf, extremes)."""
    mode = draw(st.sampled_from(("normal", "mixed", "special", "ties")))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if mode == "normal":
        return rng.standard_normal(n) * draw(st.sampled_from((1.0, 10.0, 1e-30, 1e30)))
    if mode == "ties":
        return np.full(n, draw(st.sampled_from(SPECIALS)))
    out = rng.standard_normal(n)
    specials = np.array(SPECIALS)[rng.integers(len(SPECIALS), size=n)]
    frac = 0.2 if mode == "mixed" else 1.0
    pick = rng.random(n) < frac
    out[pick] = specials[pick]
    return out


@st.composite
def arrays(draw, shape=None, dtypes=FLOAT_DTYPES + OTHER_DTYPES, layout=True):
    """An ndarray of a drawn shape (0-3 dims, empty axes allowed), dtype and layout."""
    if shape is None:
        ndim = draw(st.integers(0, 3))
        shape = tuple(
            draw(st.lists(st.sampled_from((0, 1, 2, 3, 7, 33)), min_size=ndim, max_size=ndim))
        )
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    n = int(np.prod(shape))
    vals = draw(values(n))
    with np.errstate(all="ignore"):
        if dtype.kind in "iub":
            a = np.nan_to_num(vals, nan=0, posinf=0, neginf=0).clip(-100, 100).astype(dtype)
        elif dtype.kind in "USO" or dtype.kind in "Mm":
            a = np.nan_to_num(vals).clip(-100, 100).astype(np.int64).astype(dtype)
        else:
            a = vals.astype(dtype)
    a = a.reshape(shape)
    if layout and a.ndim:
        how = draw(st.sampled_from(("c", "c", "f", "strided", "readonly", "reversed")))
        if how == "f":
            a = np.asfortranarray(a)
        elif how == "strided":
            wide = np.repeat(a, 2, axis=-1)
            a = wide[..., ::2]
        elif how == "readonly":
            a = a.copy()
            a.flags.writeable = False
        elif how == "reversed":
            a = a[..., ::-1]
    return a


def logits_objects():
    """Anything passed as logits: mostly float arrays, sometimes other objects."""
    return st.one_of(
        arrays(dtypes=FLOAT_DTYPES),
        arrays(dtypes=FLOAT_DTYPES).map(lambda a: a.tolist()),
        arrays(dtypes=("<f4",)).map(lambda a: Bfloat16Rows(bfloat16_bits(a))),
        arrays(),
        st.sampled_from(
            (
                None,
                1.0,
                "logits",
                b"\x00\x01\x02\x03",
                [],
                [[]],
                [[1.0], [1.0, 2.0]],
                {"a": 1},
                object(),
                np.float32(2.0),
                float("nan"),
            )
        ),
    )


SCALARS = st.sampled_from(
    (
        None,
        True,
        False,
        0,
        1,
        2,
        -1,
        -2,
        3,
        50,
        2**31,
        2**63,
        2**64 - 1,
        2**64,
        2**100,
        -(2**63),
        0.0,
        -0.0,
        0.5,
        0.9,
        1.0,
        1.5,
        2.0,
        1e-300,
        1e-45,
        1e39,
        1e300,
        float("nan"),
        float("inf"),
        float("-inf"),
        1 + 0j,
        1j,
        "1",
        "",
        b"1",
        [],
        [1],
        np.float16(0.5),
        np.float32(0.9),
        np.float64(2.0),
        np.int8(-1),
        np.uint64(2**64 - 1),
        np.int64(5),
        np.bool_(True),
        np.longdouble(0.5),
        (0.5,),
        object(),
    )
)


def params():
    """Any value for a parameter: a scalar of any type, or a per-row array or list."""
    return st.one_of(
        SCALARS,
        SCALARS,
        arrays(
            shape=None, dtypes=("<f8", "<f4", ">f8", "<i8", "u8", "?", "O", "c16"), layout=False
        ),
        st.lists(SCALARS, max_size=4),
    )


def outs():
    return st.one_of(st.none(), st.none(), arrays(), SCALARS)


IDS = st.integers(-3, 40)  # ids around a small vocabulary: padding, in range, beyond


def processor_values(name):
    """Any value for a logit processor's argument: plausible forms with wrong entries,
    wrong forms, and the mix of params()."""
    if name == "logit_bias":
        keys = st.one_of(IDS, st.sampled_from((True, 1.5, "3", None, 2**70, np.int32(2))))
        mapping = st.dictionaries(keys, SCALARS, max_size=4)
        return st.one_of(mapping, st.lists(st.one_of(st.none(), mapping), max_size=4), params())
    if name == "token_bitmask":
        words = ("<i4", "<u4", ">i4", "<i8", "u1", "?", "<f4")
        return st.one_of(arrays(shape=None, dtypes=words, layout=True), params())
    if name in ("prompt_ids", "output_ids", "stop_ids"):
        ints = ("<i8", "<i4", ">i8", "u1", "u8", "<f8", "?", "O")
        return st.one_of(
            arrays(shape=None, dtypes=ints, layout=True),
            st.lists(IDS, max_size=6),
            st.lists(st.lists(IDS, max_size=4), max_size=4),
            params(),
        )
    return params()


PROCESSORS = (
    "token_bitmask",
    "logit_bias",
    "prompt_ids",
    "output_ids",
    "repetition_penalty",
    "frequency_penalty",
    "presence_penalty",
    "min_tokens",
    "stop_ids",
)


# Each public function with the keyword arguments it takes.
SIGNATURES = {
    "softmax": ("temperature", "out"),
    "log_softmax": ("temperature", "out"),
    "logsumexp": ("temperature",),
    "greedy": (),
    "mask": ("temperature", "top_k", "top_p", "min_p", *PROCESSORS, "out"),
    "top_k_mask": ("top_k", "out"),
    "top_p_mask": ("top_p", "temperature", "out"),
    "min_p_mask": ("min_p", "temperature", "out"),
    "filtered_probs": ("temperature", "top_k", "top_p", "min_p", *PROCESSORS, "out"),
    "sample": (
        "temperature",
        "top_k",
        "top_p",
        "min_p",
        *PROCESSORS,
        "seed",
        "offset",
        "uniforms",
        "return_logprobs",
        "num_threads",
    ),
    "top_logprobs": ("n", "temperature"),
    "process_logits": (*PROCESSORS, "out"),
    "token_logprobs": ("tokens", "temperature"),
}
REQUIRED = {
    "top_k_mask": "top_k",
    "top_p_mask": "top_p",
    "min_p_mask": "min_p",
    "top_logprobs": "n",
    "token_logprobs": "tokens",
}


@st.composite
def calls(draw, name):
    """(logits, kwargs) for one call of `name`: each parameter left out or drawn."""
    logits = draw(logits_objects())
    kwargs = {}
    for p in SIGNATURES[name]:
        if p != REQUIRED.get(name) and draw(st.booleans()):
            continue
        if p in PROCESSORS and draw(st.booleans()):
            continue  # each processor drawn a quarter of the time
        if p == "out":
            kwargs[p] = draw(outs())
        elif p in PROCESSORS:
            kwargs[p] = draw(processor_values(p))
        elif p == "return_logprobs":
            kwargs[p] = draw(st.booleans())
        else:
            kwargs[p] = draw(params())
    if name == "sample" and "uniforms" not in kwargs and "seed" not in kwargs:
        kwargs["seed"] = 0  # seed=None would draw fresh OS seeds: no result to compare
    return logits, kwargs


def snapshot(obj):
    """Bytes and flags of an ndarray (to show a raising call left it alone), else None."""
    if isinstance(obj, np.ndarray) and obj.dtype.kind != "O":
        return obj.tobytes(order="A"), obj.flags.writeable
    return None


def check_result(name, logits, kwargs, result):
    """The documented shape and dtype, tokens inside the vocabulary, no NaN."""
    x = np.asarray(logits)
    B = x.shape[0] if x.ndim >= 2 else None  # (B, V), or (B, 1, V) read as (B, V)
    V = x.shape[-1]
    rows = () if B is None else (B,)
    if name in (
        "softmax",
        "log_softmax",
        "process_logits",
        "mask",
        "top_k_mask",
        "top_p_mask",
        "min_p_mask",
        "filtered_probs",
    ):
        assert result.dtype == np.float32 and result.shape == x.shape, (result.dtype, result.shape)
        assert not np.isnan(result).any(), f"{name} returned NaN"
        if kwargs.get("out") is not None:
            assert result is kwargs["out"], "out= given but another array returned"
    elif name in ("logsumexp", "token_logprobs"):
        r = np.asarray(result)
        assert r.shape == rows and not np.isnan(r).any(), (r.shape, r)
    elif name in ("greedy", "sample"):
        tokens = result[0] if isinstance(result, tuple) else result
        t = np.asarray(tokens)
        assert t.dtype == np.int64 and t.shape == rows, (t.dtype, t.shape)
        assert ((t >= 0) & (t < V)).all(), f"{name}: token outside [0, {V}): {t}"
        if isinstance(result, tuple):
            lp = np.asarray(result[1])
            assert lp.dtype == np.float32 and lp.shape == rows and not np.isnan(lp).any()
            assert (lp <= 0).all(), f"a log-probability above 0: {lp}"
    elif name == "top_logprobs":
        ids, lps = result
        n = ids.shape[-1]
        assert ids.dtype == np.int64 and lps.dtype == np.float32
        assert ids.shape == rows + (n,) == lps.shape
        assert ((ids >= 0) & (ids < V)).all() and not np.isnan(lps).any()


def run(mod, name, logits, kwargs):
    try:
        return "ok", getattr(mod, name)(logits, **kwargs)
    except ALLOWED as exc:
        return type(exc), exc


def fuzz_one(name, logits, kwargs):
    out = kwargs.get("out")
    # The reference first, on the very objects (a copy of out= would lose its layout);
    # whatever it wrote into out= is then put back.
    saved = out.copy(order="K") if isinstance(out, np.ndarray) else None
    want, want_value = run(ref, name, logits, kwargs)
    if want == "ok" and saved is not None and out.flags.writeable:
        np.copyto(out, saved)
    before, out_before = snapshot(logits), snapshot(out)
    try:
        got, value = run(tp, name, logits, kwargs)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(
            f"tokenpick.{name} raised {type(exc).__name__}: {exc} "
            "(only ValueError or TypeError are allowed)"
        )
    if got == "ok":
        assert want == "ok", (
            f"tokenpick.{name} returned but the reference raised {want.__name__}: {want_value}"
        )
        check_result(name, logits, kwargs, value)
    else:
        assert want == got, f"tokenpick.{name} raised {got.__name__}({value}), the reference " + (
            "returned" if want == "ok" else f"raised {want.__name__}({want_value})"
        )
        assert str(value), "an exception without a message"
        assert snapshot(logits) == before, "a raising call changed the logits"
        assert snapshot(out) == out_before, "a raising call wrote into out="


@pytest.mark.parametrize("name", sorted(SIGNATURES))
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_garbage_in_clear_error_out(name, data):
    logits, kwargs = data.draw(calls(name), label="call")
    fuzz_one(name, logits, kwargs)


@settings(max_examples=EXAMPLES)
@given(
    out=outs(),
    name=st.sampled_from(("softmax", "log_softmax", "mask", "filtered_probs")),
    shape=st.sampled_from(((3, 7), (7,), (0, 7))),
)
def test_garbage_out_with_good_logits(out, name, shape):
    """Good logits with any ``out=``: most draws reach the output checks."""
    logits = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    fuzz_one(name, logits, {"out": out})


@settings(max_examples=EXAMPLES)
@given(seed=params(), offset=params())
def test_garbage_in_uniform(seed, offset):
    try:
        got = tp.uniform(seed, offset)
    except ALLOWED as exc:
        with pytest.raises(type(exc)):
            ref.uniform(seed, offset)
        return
    want = ref.uniform(seed, offset)
    np.testing.assert_array_equal(got, want)
    assert ((np.asarray(got) >= 0) & (np.asarray(got) < 1)).all()


@settings(max_examples=EXAMPLES // 2)
@given(n=SCALARS)
def test_garbage_in_set_num_threads(n):
    before = tp.get_num_threads()
    try:
        tp.set_num_threads(n)
    except ALLOWED:
        assert tp.get_num_threads() == before, "a rejected count changed the setting"
    else:
        assert tp.get_num_threads() == n
    finally:
        tp.set_num_threads(before)
