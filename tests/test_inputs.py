"""Inputs are never modified; float32 C-contiguous input is used in place, without a copy;
``out=`` is filled and returned (the same object), and may be the input itself; results
hold no stray references."""

import sys
import tracemalloc
import weakref

import _arrays
import numpy as np
import pytest

import tokenpick as tp
from tokenpick import reference as ref

OUT_CALLS = {
    "softmax": lambda x, **o: tp.softmax(x, np.full(x.shape[0], 0.7) if x.ndim == 2 else 0.7, **o),
    "log_softmax": lambda x, **o: tp.log_softmax(x, 1.3, **o),
    "mask": lambda x, **o: tp.mask(x, temperature=0.8, top_k=40, top_p=0.9, min_p=0.01, **o),
    "top_k_mask": lambda x, **o: tp.top_k_mask(x, 5, **o),
    "top_p_mask": lambda x, **o: tp.top_p_mask(x, 0.5, temperature=2.0, **o),
    "min_p_mask": lambda x, **o: tp.min_p_mask(x, 0.2, temperature=0.5, **o),
    "filtered_probs": lambda x, **o: tp.filtered_probs(
        x, temperature=0.9, top_k=50, top_p=0.95, min_p=0.02, **o
    ),
}


def logits(rng, B=5, V=97):
    case = _arrays.build(
        _arrays.Recipe(
            seed=int(rng.integers(2**32)),
            V=V,
            kinds=("peaked", "masked", "ties", "flat", "huge")[:B],
        )
    )
    return case.x32


@pytest.mark.parametrize("ndim", [1, 2])
@pytest.mark.parametrize("name", sorted(OUT_CALLS))
def test_out_is_filled_and_returned(simd_path, rng, name, ndim):
    x = logits(rng)
    if ndim == 1:
        x = x[0].copy()
    want = OUT_CALLS[name](x)
    out = np.full(x.shape, np.nan, dtype=np.float32)
    got = OUT_CALLS[name](x, out=out)
    assert got is out, f"{name}(out=out) must return out itself, got a {type(got).__name__}"
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("ndim", [1, 2])
@pytest.mark.parametrize("name", sorted(OUT_CALLS))
def test_out_may_be_the_input(simd_path, rng, name, ndim):
    x = logits(rng)
    if ndim == 1:
        x = x[2].copy()
    want = OUT_CALLS[name](x)
    y = x.copy()
    got = OUT_CALLS[name](y, out=y)
    assert got is y
    np.testing.assert_array_equal(y, want, err_msg=f"{name}(x, out=x) differs from {name}(x)")


def test_inputs_and_parameter_arrays_are_not_modified(simd_path, rng):
    x = logits(rng)
    B = x.shape[0]
    params = dict(
        temperature=np.linspace(0.0, 2.0, B),
        top_k=np.arange(B) * 3,
        top_p=np.linspace(0.3, 1.0, B),
        min_p=np.linspace(0.0, 0.2, B),
    )
    seeds = np.arange(B, dtype=np.uint64) * (2**61)
    offsets = np.arange(B, dtype=np.int64)
    uniforms = np.linspace(0.0, 0.99, B)
    everything = [x, *params.values(), seeds, offsets, uniforms]
    before = [a.copy() for a in everything]
    tp.softmax(x, params["temperature"])
    tp.log_softmax(x, params["temperature"])
    tp.logsumexp(x, params["temperature"])
    tp.greedy(x)
    tp.mask(x, **params)
    tp.filtered_probs(x, **params)
    tp.sample(x, **params, seed=seeds, offset=offsets, return_logprobs=True)
    tp.sample(x, **params, uniforms=uniforms)
    tp.top_logprobs(x, 7, params["temperature"])
    tp.uniform(seeds, offsets)
    for a, b in zip(everything, before):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype


NO_COPY_CALLS = {
    "greedy": lambda x, o: tp.greedy(x),
    "logsumexp": lambda x, o: tp.logsumexp(x),
    "sample": lambda x, o: tp.sample(x, top_k=50, top_p=0.9, seed=1),
    "sample-uniforms": lambda x, o: tp.sample(x, uniforms=0.5, return_logprobs=True),
    "softmax-out": lambda x, o: tp.softmax(x, out=o),
    "mask-out": lambda x, o: tp.mask(x, top_p=0.9, out=o),
    "filtered_probs-out": lambda x, o: tp.filtered_probs(x, min_p=0.1, out=o),
    "top_logprobs": lambda x, o: tp.top_logprobs(x, 5),
}


@pytest.mark.parametrize("name", sorted(NO_COPY_CALLS))
def test_float32_c_contiguous_input_is_not_copied(rng, name):
    """numpy reports its allocations to tracemalloc: a copy of the (16, 131072) float32
    input would make the peak reach its 8 MiB; bookkeeping stays far below half of it."""
    x = rng.standard_normal((16, 131072)).astype(np.float32)
    out = np.empty_like(x)
    NO_COPY_CALLS[name](x, out)  # warm up (lazy imports, caches)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        NO_COPY_CALLS[name](x, out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - base < x.nbytes // 2, (
        f"{name}: {peak - base} bytes allocated during the call for a {x.nbytes}-byte "
        f"float32 C-contiguous input: it looks copied"
    )


def test_results_are_not_kept_alive_and_inputs_not_leaked(rng):
    """A leak check: results are freed when dropped; the input's and out's reference counts
    return to where they were, also after raising calls."""
    x = logits(rng)
    out = np.empty_like(x)
    bad = x.copy()
    bad[1, 3] = np.nan
    calls = [
        lambda: tp.softmax(x),
        lambda: tp.log_softmax(x, 0.5),
        lambda: tp.logsumexp(x),
        lambda: tp.greedy(x),
        lambda: tp.mask(x, top_k=3),
        lambda: tp.filtered_probs(x, top_p=0.5),
        lambda: tp.sample(x, seed=3, return_logprobs=True),
        lambda: tp.top_logprobs(x, 3),
        lambda: tp.uniform(np.arange(4), 2),
        lambda: tp.softmax(x, out=out),
    ]
    rc_x, rc_out = sys.getrefcount(x), sys.getrefcount(out)
    for call in calls:
        for _ in range(50):
            r = call()
        parts = r if isinstance(r, tuple) else (r,)
        refs = [weakref.ref(p) for p in parts if isinstance(p, np.ndarray) and p is not out]
        del r, parts
        assert all(w() is None for w in refs), "a result is still referenced after being dropped"
    for _ in range(50):
        for call in (
            lambda: tp.softmax(bad),
            lambda: tp.sample(bad, seed=1),
            lambda: tp.softmax(x, out=bad[:, ::2]),
            lambda: tp.sample(x, seed=-1),
            lambda: tp.filtered_probs(x, top_p=2.0, out=out),
        ):
            try:
                call()
            except (TypeError, ValueError):
                pass
    assert sys.getrefcount(x) == rc_x, "the input's reference count grew"
    assert sys.getrefcount(out) == rc_out, "out's reference count grew"


def test_float64_memory_does_not_grow(rng):
    """Converted inputs (float64 -> float32 copies) are freed: repeated calls do not grow
    the traced memory."""
    x = rng.standard_normal((8, 4096))
    for _ in range(5):
        tp.sample(x, seed=1)
    tracemalloc.start()
    try:
        for _ in range(20):
            tp.sample(x, seed=1)
            tp.softmax(x[:, ::2])
        first, _ = tracemalloc.get_traced_memory()
        for _ in range(200):
            tp.sample(x, seed=1)
            tp.softmax(x[:, ::2])
        second, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert second - first < x.nbytes, f"traced memory grew by {second - first} bytes"


# ----------------------------------------------------------------------------
# Arrays of other libraries: the buffer protocol, __array__, __array_interface__, PyTorch.


class ArrayLike:
    """An object numpy knows only through ``__array__`` (as pandas or JAX arrays are)."""

    def __init__(self, a):
        self._a = a

    def __array__(self, dtype=None, copy=None):
        return self._a if dtype is None else self._a.astype(dtype)


class InterfaceOnly:
    """An object exposing only ``__array_interface__`` (as older libraries do)."""

    def __init__(self, a):
        self._a = a
        self.__array_interface__ = a.__array_interface__


def _foreign(x):
    """(id, object) pairs holding the values of the float32 array x, each of another kind."""
    import array as pyarray

    flat = pyarray.array("f", x.ravel().tolist())
    yield "memoryview", memoryview(x)
    yield "memoryview-readonly", memoryview(x).toreadonly()
    yield "memoryview-of-array.array", memoryview(flat).cast("B").cast("f", x.shape)
    yield "__array__", ArrayLike(x)
    yield "__array__-float64", ArrayLike(x.astype(np.float64))
    yield "__array_interface__", InterfaceOnly(x)
    yield "nested-lists", x.tolist()
    yield "tuple-of-arrays", tuple(x)
    yield "numpy-matrix-like-subclass", x.view(type("Sub", (np.ndarray,), {}))
    if x.shape[0] == 1:
        yield "array.array-1d", flat


FOREIGN_CALLS = _arrays.typical_calls(tp)


def _same(got, want, what):
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    for g, w in zip(got, want):
        g, w = np.asarray(g), np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape, (what, g.dtype, g.shape)
        assert np.array_equal(g, w), f"{what}: {g} != {w}"


@pytest.mark.parametrize("B", [1, 3])
def test_other_array_kinds_give_the_float32_results(rng, B):
    x = logits(rng, B=B, V=61)
    if B == 1:
        x = x[0].copy()  # also the 1-D form
    for kind, obj in _foreign(x):
        for name, call in FOREIGN_CALLS.items():
            _same(call(obj), call(x), f"{name} of a {kind}")


def test_torch_tensors_give_the_float32_results(rng):
    torch = pytest.importorskip("torch")
    x = logits(rng, B=4, V=101)
    tensors = {
        "float32": torch.from_numpy(x.copy()),
        "float64": torch.from_numpy(x.astype(np.float64)),
        "float16": torch.from_numpy(x.astype(np.float16)),
        "transposed-view": torch.from_numpy(np.ascontiguousarray(x.T)).T,
        "row-slice": torch.from_numpy(np.repeat(x, 2, axis=0))[::2],
    }
    for kind, t in tensors.items():
        base = np.asarray(t, dtype=np.float32) if kind == "float16" else x
        for name, call in FOREIGN_CALLS.items():
            _same(call(t), call(base), f"{name} of a torch {kind} tensor")
    t = torch.from_numpy(x.copy())
    probs = tp.softmax(t)
    assert isinstance(probs, np.ndarray), "results are numpy arrays whatever the input"
    out = np.empty(x.shape, dtype=np.float32)
    assert tp.softmax(t, out=out) is out
    torch_out = torch.empty(x.shape, dtype=torch.float32)
    with pytest.raises(TypeError):  # out= must be a numpy array; nothing written
        tp.softmax(t, out=torch_out.tolist())
    # Tensors numpy cannot read: TypeError, as for any object that is not an array of reals.
    for bad in (
        t.to(torch.bfloat16),
        t.clone().requires_grad_(True),
        torch.zeros(2, 3, device="meta"),
        t.to(torch.int64),
    ):
        for mod in (tp, ref):
            with pytest.raises(TypeError):
                mod.softmax(bad)
            with pytest.raises(TypeError):
                mod.sample(bad, seed=1)


def test_scalar_filters_take_the_short_way_only_where_the_long_one_agrees():
    # Python numbers in range are checked in one C call (_core.plain_filters);
    # whatever it accepts must convert as the general path converts the same
    # values given as arrays, and whatever it declines is left to that path
    import itertools

    from tokenpick import _core
    from tokenpick import _params as P

    V = 50
    temps = [0, 0.0, -0.0, 0.5, 3, 2**62, 1e308, float("inf"), float("nan"), -1, True]
    ks = [-2, -1, 0, 1, 49, 50, 2**63 - 1, 2**63, 2**64, True, 3.0]
    ps = [0, 0.0, 1e-300, 0.9, 1, 1.0, 1.5, float("nan"), False]
    ms = [0, 0.0, 0.05, 1, 1.0, 1.01, -0.0, float("nan")]
    taken = 0
    for t, k, p, m in itertools.product(temps, ks, ps, ms):
        plain = _core.plain_filters(V, t, k, p, m)
        if plain is None:
            continue
        taken += 1
        assert [type(v) for v in plain] == [float, int, float, float], (t, k, p, m)
        arrays = [np.asarray([v]) for v in (t, k, p, m)]
        general = P.filters(1, V, *arrays)
        assert plain == tuple(np.asarray(g).reshape(-1)[0].item() for g in general), (t, k, p, m)
    assert taken > 100


def test_the_short_way_takes_its_ranges_from_the_rules():
    # The valid values of the four filters are defined once (tokenpick._params's
    # rules); _core.plain_filters is given them at import.  At each end of each range,
    # and a float's step either side of it, it accepts exactly what the rule allows.
    from tokenpick import _core
    from tokenpick import _params as P

    plain = dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0)
    for name, rule in (
        ("temperature", P.TEMPERATURE),
        ("top_k", P.TOP_K),
        ("top_p", P.TOP_P),
        ("min_p", P.MIN_P),
    ):
        ends = [e for e in (rule.lo, rule.hi) if e is not None]
        values = [v for e in ends for v in (e, np.nextafter(e, -np.inf), np.nextafter(e, np.inf))]
        values += [np.inf, -np.inf, np.nan, 1e300, -1e300]
        if rule.integer:
            values = [int(v) for v in values if np.isfinite(v) and v == int(v)]
            values += [v + d for v in values for d in (-1, 1)] + [2**63 - 1, -(2**63)]
            values = [v for v in values if -(2**63) <= v < 2**63]  # beyond: the long way
        for v in values:
            v = v if rule.integer else float(v)
            got = _core.plain_filters(50, **{**plain, name: v}) is not None
            assert got == bool(rule.holds(v)), (name, v, got)
