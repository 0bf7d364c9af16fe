"""Inputs are never modified; float32 C-contiguous input is used in place, without a copy;
``out=`` is filled and returned (the same object), and may be the input itself; results
hold no stray references."""

import sys
import tracemalloc
import weakref

import _arrays
import numpy as np
import pytest
from _dlpack import capsule as make_capsule

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
        "bfloat16": torch.from_numpy(x.copy()).to(torch.bfloat16),
        "requires-grad": torch.from_numpy(x.copy()).requires_grad_(True),
    }
    for kind, t in tensors.items():
        base = x
        if kind in ("float16", "bfloat16"):  # their values, widened exactly
            base = t.to(torch.float32).numpy()
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
    # Tensors with no memory on the host, or not of reals: TypeError.
    for bad in (torch.zeros(2, 3, device="meta"), t.to(torch.int64)):
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
    ns = [0, 0.0, -2, 1.5, float("inf"), float("nan"), True]
    off = (1.0, 0.0, 0.0, 0.1, 0.0, "tokenpick")  # typical_p, epsilon, eta, xtc's two, order
    typicals = [1, 1.0, 0.5, 0, 1e-300, float("nan")]
    epsilons = [0, 0.0, 0.5, 1.0, -0.0]
    xtcs = [0, 0.0, 0.3, 1, 1.0, 1.5]
    cases = [(t, k, p, m, n) + off for t, k, p, m, n in itertools.product(temps, ks, ps, ms, ns)]
    cases += [
        (0.7, 5, 0.9, 0.0, 0.0, y, e, e, xt, xp, "tokenpick")
        for y, e, xt, xp in itertools.product(typicals, epsilons, xtcs, xtcs)
    ]
    taken = 0
    for args in cases:
        plain = _core.plain_filters(V, *args)
        if plain is None:
            continue
        taken += 1
        assert [type(v) for v in plain] == [float, int] + [float] * 8 + [int, bool], args
        arrays = [np.asarray([v]) for v in args[:-1]]
        general = P.filters(1, V, *arrays, args[-1])
        got = tuple(np.asarray(g).reshape(-1)[0].item() for g in general)
        assert plain == got, args
    assert taken > 100
    # every order, with each filter on or off, as the long way takes it (or rejects it)
    # (top_n_sigma is off at 0 and below)
    for order, sigma_off in itertools.product(
        ("tokenpick", "hf", "vllm", "llama.cpp", "torch"), (0.0, -2.0)
    ):
        for on in itertools.product([False, True], repeat=5):
            args = (0.7, 5, 0.9, 0.0, 1.5 if on[0] else sigma_off, 0.5 if on[1] else 1.0,
                    0.1 if on[2] else 0.0, 0.1 if on[3] else 0.0, 0.1, 1.0 if on[4] else 0.0,
                    order)  # fmt: skip
            plain = _core.plain_filters(V, *args)
            try:
                general = P.filters(1, V, *[np.asarray([v]) for v in args[:-1]], order)
            except ValueError:
                assert plain is None, args
                continue
            assert plain == tuple(np.asarray(g).reshape(-1)[0].item() for g in general), args
    # a coin to toss takes the long way
    assert (
        _core.plain_filters(V, 1.0, 0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.1, 0.5, "tokenpick") is None
    )


def test_the_short_way_takes_its_ranges_from_the_rules():
    # The valid values of the filters are defined once (tokenpick._params's
    # rules); _core.plain_filters is given them at import.  At each end of each range,
    # and a float's step either side of it, it accepts exactly what the rule allows.
    from tokenpick import _core
    from tokenpick import _params as P

    plain = dict(
        temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, top_n_sigma=0.0, typical_p=1.0,
        epsilon=0.0, eta=0.0, xtc_threshold=0.1, xtc_probability=0.0, order="tokenpick",
    )  # fmt: skip
    for name, rule in (
        ("temperature", P.TEMPERATURE),
        ("top_k", P.TOP_K),
        ("top_p", P.TOP_P),
        ("min_p", P.MIN_P),
        ("top_n_sigma", P.TOP_N_SIGMA),
        ("typical_p", P.TYPICAL_P),
        ("epsilon", P.EPSILON),
        ("eta", P.ETA),
        ("xtc_threshold", P.XTC_THRESHOLD),
        ("xtc_probability", P.XTC_PROBABILITY),
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
            coin = name == "xtc_probability" and 0 < v < 1  # a coin to toss: the long way
            assert got == (bool(rule.holds(v)) and not coin), (name, v, got)


# ---- DLPack, bfloat16 and (B, 1, V) ----------------------------------------------------


class Producer:
    """A tensor of another framework as DLPack sees it: only ``__dlpack__`` and
    ``__dlpack_device__``, over a numpy array's memory (numpy >= 2 exports DLPack 1.0
    capsules when asked; ``versioned=False`` answers as a producer older than that)."""

    def __init__(self, a, versioned=True):
        self._a = a
        self._versioned = versioned

    def __dlpack__(self, **kwargs):
        if not self._versioned and kwargs:
            raise TypeError("__dlpack__() got an unexpected keyword argument")
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


@pytest.mark.parametrize("versioned", [True, False])
def test_dlpack_producers_are_read_in_place(rng, versioned):
    """A DLPack producer's float32 rows are read over its memory (no copy) and give the
    numpy array's results; the producer's array is released once the call is done (the
    capsule's deleter ran once: its reference count is back)."""
    x = logits(rng, B=3, V=67)
    held = sys.getrefcount(x)
    view = tp._core.dlpack_array(Producer(x, versioned), "logits")[0]
    assert np.shares_memory(view, x) and view.dtype == np.float32
    del view
    assert sys.getrefcount(x) == held, "the DLPack tensor was not released"
    for name, call in FOREIGN_CALLS.items():
        _same(call(Producer(x, versioned)), call(x), f"{name} of a DLPack producer")
    assert sys.getrefcount(x) == held
    for mod in (tp, ref):
        _same(mod.softmax(Producer(x[:, ::2], versioned)), mod.softmax(x[:, ::2]), "strided")


class CapsuleProducer:
    def __init__(self, capsule):
        self._capsule = capsule

    def __dlpack__(self, **kwargs):
        return self._capsule


@pytest.mark.parametrize("versioned", [True, False])
def test_dlpack_capsules_by_hand(rng, versioned):
    """bfloat16 (DLPack code 4) is read as its float32 widening, exactly; the deleter is
    called exactly once, when tokenpick is done; a tensor on a GPU is a TypeError naming
    the device, and its capsule is left to its producer (the deleter is not called)."""
    x = logits(rng, B=2, V=40)
    bits = (x.view(np.uint32) >> 16).astype(np.uint16)  # bfloat16 by truncation
    widened = (bits.astype(np.uint32) << 16).view(np.float32)
    deleted = []
    capsule, keep = make_capsule(bits, bits.shape, 4, 16, deleted=deleted, versioned=versioned)
    got = tp.sample(CapsuleProducer(capsule), top_k=10, seed=5)
    assert deleted == [1], "the deleter runs once, after the call"
    assert np.array_equal(got, tp.sample(widened, top_k=10, seed=5))

    deleted = []
    capsule, keep = make_capsule(x, x.shape, 2, 32, 2, deleted=deleted, versioned=versioned)
    for mod in (tp, ref):
        with pytest.raises(TypeError, match="CUDA device"):
            mod.softmax(CapsuleProducer(capsule))
    assert deleted == [], "a capsule not taken is its producer's to free"

    deleted = []
    ints = np.arange(6, dtype=np.int16).reshape(2, 3)
    capsule, keep = make_capsule(ints, ints.shape, 0, 16, deleted=deleted, versioned=versioned)
    with pytest.raises(TypeError, match="real floating-point"):
        tp.softmax(CapsuleProducer(capsule))
    assert deleted == [1], "an int tensor is read, then refused: released once"


def test_ml_dtypes_bfloat16_arrays_read_as_their_widening(rng):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = logits(rng, B=3, V=71).astype(ml_dtypes.bfloat16)
    widened = x.astype(np.float32)
    for name, call in FOREIGN_CALLS.items():
        _same(call(x), call(widened), f"{name} of ml_dtypes bfloat16")
    _same(ref.softmax(x), ref.softmax(widened), "the reference")


ELEMENTWISE = ("softmax", "log_softmax", "mask", "filtered_probs")


def test_last_position_logits_read_as_rows(rng):
    """(B, 1, V) logits, a model's last position, give the (B, V) results, in (B, 1, V)
    where the result follows the logits element by element (out= of either shape); any
    other 3-D shape is a ValueError saying what is expected, the same from the reference."""
    x = logits(rng, B=3, V=53)
    x3 = x[:, None, :]
    for name, call in FOREIGN_CALLS.items():
        got, want = call(x3), call(x)
        if name in ELEMENTWISE:
            assert np.asarray(got).shape == x3.shape, name
            got = np.asarray(got).reshape(x.shape)
        _same(got, want, f"{name} of (B, 1, V)")
    for shape in (x.shape, x3.shape):
        out = np.empty(shape, dtype=np.float32)
        assert tp.softmax(x3, 0.7, out=out) is out
        assert np.array_equal(out.reshape(x.shape), tp.softmax(x, 0.7))
    assert ref.softmax(x3).shape == x3.shape
    assert tp.process_logits(x3, logit_bias={1: 1.0}).shape == x3.shape
    bad = np.zeros((3, 2, 53), dtype=np.float32)
    for mod in (tp, ref):
        with pytest.raises(ValueError, match=r"3-D \(B, 1, V\) as a model's last position"):
            mod.softmax(bad)


def test_out_may_be_a_torch_tensor(rng):
    """out= takes a float32 host tensor, written in place and returned as given; one that
    requires grad, or of another dtype, is refused before anything is written."""
    torch = pytest.importorskip("torch")
    x = logits(rng, B=3, V=64)
    for name in ELEMENTWISE:
        out = torch.full(x.shape, 7.0)
        call = OUT_CALLS[name]
        assert call(x, out=out) is out
        assert np.array_equal(out.numpy(), call(x)), name
    out3 = torch.zeros(3, 1, 64)
    assert tp.softmax(torch.from_numpy(x)[:, None, :], out=out3) is out3
    for bad, error in (
        (torch.zeros(x.shape, requires_grad=True), ValueError),
        (torch.zeros(x.shape, dtype=torch.bfloat16), TypeError),
        (torch.zeros(x.shape, dtype=torch.float64), TypeError),
    ):
        before = bad.detach().clone()
        with pytest.raises(error):
            tp.softmax(x, out=bad)
        assert torch.equal(bad.detach(), before), "nothing written before the error"


def test_torch_float32_tensors_are_not_copied(rng):
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(logits(rng, B=2, V=300))
    x = tp._core.torch_rows(t)
    assert x is not None and np.shares_memory(x, t.numpy())
    tracemalloc.start()
    try:
        tp.sample(t, top_k=5, seed=1)  # warm
        before = tracemalloc.get_traced_memory()[0]
        tp.sample(t, top_k=5, seed=1)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < t.numel() * 4 // 2, f"{grown} bytes allocated: a copy of the rows?"


def test_rows_apart_are_read_in_place(rng):
    """Rows each one block of memory but not next to each other (the last position of a
    (B, L, V) array, rows in reverse order, one row broadcast to every row) are read where
    they are, without a copy, and give the results of their contiguous copy."""
    x = logits(rng, B=4, V=83)
    seq = np.zeros((4, 3, 83), dtype=np.float32)
    seq[:, -1, :] = x
    views = {
        "last position (B, V)": seq[:, -1, :],
        "last position (B, 1, V)": seq[:, -1:, :],
        "reversed rows": x[::-1],
        "one row broadcast": np.broadcast_to(x[1], x.shape),
    }
    for kind, v in views.items():
        want_x = np.ascontiguousarray(v).reshape(-1, 83)
        if v.ndim == 2:
            assert tp._core.plain_logits(v), kind
        for name, call in FOREIGN_CALLS.items():
            got = call(v)
            if name in ELEMENTWISE:
                got = np.asarray(got).reshape(want_x.shape)
            _same(got, call(want_x), f"{name} of {kind}")
    tracemalloc.start()
    try:
        v = seq[:, -1, :]
        tp.softmax(v, out=np.empty(v.shape, dtype=np.float32))  # warm
        before = tracemalloc.get_traced_memory()[0]
        tp.mask(v, top_k=5, out=np.empty(v.shape, dtype=np.float32))
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < v.nbytes, f"{grown} bytes allocated: a copy of the rows?"


def test_half_precision_widens_exactly(simd_path):
    """Every float16 and bfloat16 value widens to the float32 numpy gives (NaNs stay NaN;
    their payloads may differ, as every NaN is refused), on every SIMD path, at every
    length and alignment around the vector widths."""
    from tokenpick import _params

    bits = np.arange(65536, dtype=np.uint16)
    for bfloat16 in (False, True):
        want = (
            (bits.astype(np.uint32) << 16).view(np.float32)
            if bfloat16
            else bits.view(np.float16).astype(np.float32)
        )
        got = _params.as_float32(bits if bfloat16 else bits.view(np.float16))
        nan = np.isnan(want)
        assert np.array_equal(got.view(np.uint32)[~nan], want.view(np.uint32)[~nan])
        assert np.isnan(got[nan]).all()
        for start in (0, 1, 7):
            for n in (0, 1, 15, 16, 17, 33, 100):
                part = bits[30000 + start : 30000 + start + n]
                part = _params.as_float32(part if bfloat16 else part.view(np.float16))
                assert np.array_equal(part, got[30000 + start : 30000 + start + n])


def test_float16_logits_give_their_widened_results(simd_path, rng):
    x = logits(rng, B=3, V=301).astype(np.float16)
    widened = x.astype(np.float32)
    for name, call in FOREIGN_CALLS.items():
        _same(call(x), call(widened), f"{name} of float16 logits")


def test_jax_arrays_read_through_dlpack(rng):
    """JAX arrays on the CPU (float32, bfloat16, a last position) give the results of
    their values as numpy float32; as out= they are refused: JAX arrays are immutable."""
    jnp = pytest.importorskip("jax.numpy")
    x = logits(rng, B=3, V=90)
    j = jnp.asarray(x)
    assert np.shares_memory(tp._core.dlpack_array(j, "logits")[0], np.asarray(j))
    for name, call in FOREIGN_CALLS.items():
        _same(call(j), call(x), f"{name} of a JAX array")
        b = j.astype(jnp.bfloat16)
        _same(call(b), call(np.asarray(b.astype(jnp.float32))), f"{name} of JAX bfloat16")
    assert tp.softmax(j[:, None, :]).shape == (3, 1, 90)
    out = jnp.zeros(x.shape, dtype=jnp.float32)
    for mod in (tp, ref):
        with pytest.raises(ValueError, match="immutable"):
            mod.softmax(x, out=out)
    assert not np.asarray(out).any(), "nothing written"
