"""Inputs are never modified; float32 C-contiguous input is used in place, without a copy;
``out=`` is filled and returned (the same object), and may be the input itself; results
hold no stray references."""

import sys
import tracemalloc
import weakref

import numpy as np
import pytest

import _arrays
import tokenpick as tp

OUT_CALLS = {
    "softmax": lambda x, **o: tp.softmax(x, np.full(x.shape[0], 0.7) if x.ndim == 2 else 0.7, **o),
    "log_softmax": lambda x, **o: tp.log_softmax(x, 1.3, **o),
    "mask": lambda x, **o: tp.mask(x, temperature=0.8, top_k=40, top_p=0.9, min_p=0.01, **o),
    "top_k_mask": lambda x, **o: tp.top_k_mask(x, 5, **o),
    "top_p_mask": lambda x, **o: tp.top_p_mask(x, 0.5, temperature=2.0, **o),
    "min_p_mask": lambda x, **o: tp.min_p_mask(x, 0.2, temperature=0.5, **o),
    "filtered_probs": lambda x, **o: tp.filtered_probs(x, temperature=0.9, top_k=50, top_p=0.95,
                                                       min_p=0.02, **o),
}


def logits(rng, B=5, V=97):
    case = _arrays.build(_arrays.Recipe(seed=int(rng.integers(2 ** 32)), V=V,
                                        kinds=("peaked", "masked", "ties", "flat", "huge")[:B]))
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
    params = dict(temperature=np.linspace(0.0, 2.0, B), top_k=np.arange(B) * 3,
                  top_p=np.linspace(0.3, 1.0, B), min_p=np.linspace(0.0, 0.2, B))
    seeds = np.arange(B, dtype=np.uint64) * (2 ** 61)
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
    NO_COPY_CALLS[name](x, out)     # warm up (lazy imports, caches)
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
        f"float32 C-contiguous input: it looks copied")


def test_results_are_not_kept_alive_and_inputs_not_leaked(rng):
    """A leak check: results are freed when dropped; the input's and out's reference counts
    return to where they were, also after raising calls."""
    x = logits(rng)
    out = np.empty_like(x)
    bad = x.copy()
    bad[1, 3] = np.nan
    calls = [
        lambda: tp.softmax(x), lambda: tp.log_softmax(x, 0.5), lambda: tp.logsumexp(x),
        lambda: tp.greedy(x), lambda: tp.mask(x, top_k=3), lambda: tp.filtered_probs(x, top_p=0.5),
        lambda: tp.sample(x, seed=3, return_logprobs=True), lambda: tp.top_logprobs(x, 3),
        lambda: tp.uniform(np.arange(4), 2), lambda: tp.softmax(x, out=out),
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
        for call in (lambda: tp.softmax(bad), lambda: tp.sample(bad, seed=1),
                     lambda: tp.softmax(x, out=bad[:, ::2]), lambda: tp.sample(x, seed=-1),
                     lambda: tp.filtered_probs(x, top_p=2.0, out=out)):
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
