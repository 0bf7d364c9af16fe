"""Logits in float16 and bfloat16 are read in place by kernels of their own element type,
which widen each value exactly as they load it: every result is bit for bit that of the
float32 copy of the logits, on every SIMD path, and no copy of the rows is made.

The differential tests against the reference run on both types too (the ``f16`` and
``bf16`` layouts of tests/_arrays.py, in test_compare.py and test_processors.py); here:
every value of each type through every kernel, the vector widths' tails, the logit
processors at a big vocabulary (top-k's block route reads the half row through the allow
bits), the memory a call allocates, and torch tensors of every kind the fast path meets.
bfloat16 comes as a framework hands it over: through DLPack (tests/_dlpack.py), numpy having
no bfloat16 of its own.
"""

import re
import tracemalloc

import _arrays
import numpy as np
import pytest
from _dlpack import Bfloat16Rows, bfloat16_bits

import tokenpick as tp
from tokenpick import reference as ref

DTYPES = ("float16", "bfloat16")
CALLS = {
    **_arrays.typical_calls(tp),
    "token_logprobs": lambda x: tp.token_logprobs(x, 0, 0.9),
    "process_logits": lambda x: tp.process_logits(x, logit_bias={0: 1.5}, presence_penalty=0.5),
    "mask min_p": lambda x: tp.mask(x, min_p=0.1, temperature=2.0),
    "sample greedy": lambda x: tp.sample(x, temperature=0.0, return_logprobs=True),
    "sample T": lambda x: tp.sample(x, temperature=0.6, seed=4, return_logprobs=True),
}


def half(x32, dtype):
    """(the logits in dtype as a caller hands them over, their float32 values)."""
    if dtype == "float16":
        with np.errstate(over="ignore"):
            h = x32.astype(np.float16)
        return h, h.astype(np.float32)
    rows = Bfloat16Rows(bfloat16_bits(x32))
    return rows, np.asarray(rows)


def same(got, want, what):
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    for g, w in zip(got, want):
        g, w = np.asarray(g), np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape, (what, g.dtype, g.shape, w.shape)
        assert np.array_equal(g, w, equal_nan=True), f"{what}: {g} != {w}"


def agree(call, h, w, what):
    """call(h) and call(w) agree: the same results, bitwise, or the same error."""
    try:
        want = call(w)
    except ValueError as exc:
        with pytest.raises(ValueError, match=re.escape(str(exc))):
            call(h)
        return
    same(call(h), want, what)


def every_value(dtype):
    """Every finite value of dtype once, as float32, shuffled (bfloat16: every pattern of
    16 bits whose exponent is not all ones; float16 likewise)."""
    bits = np.arange(65536, dtype=np.uint32)
    if dtype == "float16":
        v = bits.astype(np.uint16).view(np.float16).astype(np.float32)
    else:
        v = (bits << 16).view(np.float32)
    v = v[np.isfinite(v)]
    return np.random.default_rng(7).permutation(v)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_value_through_every_kernel(simd_path, dtype):
    """A row holding every finite value of the type, and short rows cut from it at every
    length around the vector widths (the tails the kernels widen one at a time), give
    what their float32 copies give."""
    v = every_value(dtype)
    rows = [v[None, :]] + [v[None, s : s + n] for s, n in ((0, 1), (3, 7), (5, 17), (9, 33))]
    rows.append(np.stack([v[100:165], v[200:265], v[300:365]]))  # B = 3, V = 65
    for x32 in rows:
        h, w = half(x32, dtype)
        assert np.array_equal(w, x32), "the values are the type's own"
        for name, call in CALLS.items():
            agree(call, h, w, f"{name} of {x32.shape} {dtype} rows")


@pytest.mark.parametrize("dtype", DTYPES)
def test_routes_of_a_big_vocabulary(simd_path, dtype):
    """At V = 128256, peaked, flat and tied rows (the block, probe, band and histogram
    routes of top-k and top-p, which read the row again after the checking pass) give the
    float32 copy's results."""
    rng = np.random.default_rng(11)
    V = 128256
    peaked = (rng.standard_normal(V) * 2.5).astype(np.float32)
    peaked[rng.integers(V, size=40)] += 14
    flat = rng.standard_normal(V).astype(np.float32) * 0.3
    ties = np.round(rng.standard_normal(V) * 2).astype(np.float32)
    masked = peaked.copy()
    masked[rng.random(V) < 0.7] = -np.inf
    h, w = half(np.stack([peaked, flat, ties, masked]), dtype)
    for kw in (
        dict(top_k=50),
        dict(top_k=3000),
        dict(top_k=20000),
        dict(top_p=0.9),
        dict(top_p=0.5, temperature=2.0),
        dict(top_k=50, top_p=0.9, min_p=0.05),
        dict(min_p=0.02),
    ):
        same(
            tp.sample(h, **kw, seed=3, return_logprobs=True),
            tp.sample(w, **kw, seed=3, return_logprobs=True),
            f"sample {kw}",
        )
        same(tp.mask(h, **kw), tp.mask(w, **kw), f"mask {kw}")
        same(tp.filtered_probs(h, **kw), tp.filtered_probs(w, **kw), f"filtered_probs {kw}")
    same(tp.top_logprobs(h, 20), tp.top_logprobs(w, 20), "top_logprobs 20")
    same(tp.top_logprobs(h, 200), tp.top_logprobs(w, 200), "top_logprobs 200")


@pytest.mark.parametrize("dtype", DTYPES)
def test_processors_on_half_rows(simd_path, dtype):
    """The logit processors read a half row in its own type (the processed checking pass,
    top-k's block route through the allow bits, the patches' logits) and give the float32
    copy's results, at a big vocabulary and a small one."""
    rng = np.random.default_rng(5)
    for V, B in ((128256, 3), (77, 4)):
        x = (rng.standard_normal((B, V)) * 3).astype(np.float32)
        x[:, rng.integers(V, size=min(V, 30))] += 10
        words = -(-V // 32)
        bits = rng.random((B, 32 * words)) < 0.5
        bits[:, np.argsort(-x[0])[:20]] = False  # the top banned by the grammar
        kw = dict(
            token_bitmask=np.packbits(bits, axis=-1, bitorder="little").view("<u4"),
            logit_bias={int(i): 25.0 for i in rng.choice(V, 3, replace=False)},
            output_ids=rng.integers(V, size=(B, 200)),
            prompt_ids=rng.integers(V, size=(B, 50)),
            repetition_penalty=1.3,
            frequency_penalty=0.4,
        )
        h, w = half(x, dtype)
        for f in (dict(top_k=50), dict(top_k=50, top_p=0.9), dict(top_p=0.8), dict(temperature=0)):
            same(
                tp.sample(h, **f, **kw, seed=9, return_logprobs=True),
                tp.sample(w, **f, **kw, seed=9, return_logprobs=True),
                f"sample {f}, V={V}",
            )
            same(tp.mask(h, **f, **kw), tp.mask(w, **f, **kw), f"mask {f}, V={V}")
        same(tp.process_logits(h, **kw), tp.process_logits(w, **kw), f"process_logits V={V}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_half_rows_are_not_copied(dtype):
    """A call on half rows allocates nothing proportional to V: less than the rows
    themselves (a float32 copy would take twice as much)."""
    x = (np.random.default_rng(2).standard_normal((4, 50000)) * 3).astype(np.float32)
    h, _ = half(x, dtype)
    nbytes = x.size * 2
    out = np.empty(x.shape, dtype=np.float32)
    calls = [
        lambda: tp.sample(h, top_k=50, top_p=0.9, seed=1),
        lambda: tp.sample(h, temperature=0.7, seed=1),
        lambda: tp.softmax(h, out=out),
        lambda: tp.mask(h, top_p=0.9, out=out),
        lambda: tp.top_logprobs(h, 5),
        lambda: tp.sample(h, top_k=50, logit_bias={3: 2.0}, output_ids=[[1, 2, 2]] * 4, seed=1),
    ]
    for call in calls:
        call()  # warm: the thread's scratch, made once
        tracemalloc.start()
        try:
            call()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < nbytes // 2, f"{peak} bytes allocated for {nbytes} bytes of rows: a copy?"


def test_torch_tensors_of_every_kind(rng):
    """torch's bfloat16 and float16 tensors are read in place by the short way (a view of
    their memory), contiguous or not, with grad, as a last position; a tensor of uint16
    integers is refused as integers are, never read as the bits of bfloat16; a tensor
    with the negative bit set is read by its values."""
    torch = pytest.importorskip("torch")
    x = (rng.standard_normal((3, 5, 300)) * 3).astype(np.float32)
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        t = torch.from_numpy(x).to(dtype)
        w = t.float().numpy()
        last = t[:, -1, :]  # rows apart, read in place
        view = tp._core.torch_rows(last)
        assert view is not None and view.ctypes.data == last.data_ptr()
        for obj, want, what in (
            (last, w[:, -1, :], "last position"),
            (t[:, -1:, :], w[:, -1:, :], "(B, 1, V)"),
            (t[0].T.contiguous().T, w[0], "columns apart: copied"),
            (t[:, 2, :].clone().requires_grad_(True), w[:, 2, :], "requires grad"),
            (t[1, 1], w[1, 1], "one row"),
        ):
            for name, call in CALLS.items():
                same(call(obj), call(np.ascontiguousarray(want)), f"{name}: {dtype} {what}")
    ints = torch.from_numpy(np.arange(12, dtype=np.uint16).reshape(2, 6))
    assert tp._core.torch_rows(ints) is None
    with pytest.raises(TypeError, match="real floating-point"):
        tp.softmax(ints)
    for sparse in (torch.from_numpy(x[0, 0]).to_sparse(), torch.from_numpy(x[0]).to_sparse()):
        for mod in (tp, ref):
            with pytest.raises(TypeError):
                mod.softmax(sparse)
    neg = torch._neg_view(torch.from_numpy(x[0]))
    assert neg.is_neg()
    same(tp.softmax(neg), tp.softmax(-x[0]), "negative bit")


@pytest.mark.parametrize("dtype", DTYPES)
def test_rows_apart_and_odd_layouts(simd_path, dtype):
    """Half rows a whole number of elements apart are read in place; other layouts of half
    precision (columns apart, the other byte order) are copied in their own type first;
    either way the results are the float32 copy's."""
    x = (np.random.default_rng(3).standard_normal((3, 4, 257)) * 2).astype(np.float32)
    if dtype == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        full = x.astype(ml_dtypes.bfloat16)
    else:
        full = x.astype(np.float16)
    w = full.astype(np.float32)
    cases = [
        (full[:, -1, :], w[:, -1, :]),
        (full[:, :, ::2][:, 0], w[:, :, ::2][:, 0]),
        (full[0].T.copy().T, w[0]),
    ]
    if dtype == "float16":
        cases.append((full[:, 1, :].astype(">f2"), w[:, 1, :]))
    for obj, want in cases:
        for name, call in CALLS.items():
            same(call(obj), call(np.ascontiguousarray(want)), f"{name} of {dtype}")
