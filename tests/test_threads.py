"""Threads: large batches (spread over worker threads) still match the reference, and
every kernel releases the GIL while it runs.  (Thread-count invariance, concurrent calls
and fork() are in test_random.py.)"""

import threading
import time

import numpy as np
import pytest

import _arrays
import _compare as C
import tokenpick as tp
from tokenpick import _threads
from tokenpick import reference as ref


@pytest.fixture
def restore_threads():
    n = tp.get_num_threads()
    yield
    tp.set_num_threads(n)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_large_batch_matches_reference(simd_path, restore_threads, threads):
    tp.set_num_threads(threads)
    kinds = _arrays.ROW_KINDS * 9                    # 9 rows of every kind
    case = _arrays.build(_arrays.Recipe(
        seed=4242 + threads, V=97, kinds=kinds, per_row=True,
        temperature=_arrays.TEMPERATURES, top_k=_arrays.TOP_KS, top_p=_arrays.TOP_PS,
        min_p=_arrays.MIN_PS, n_top=6, use_uniforms=threads == 2,
        uniform=_arrays.UNIFORM_CHOICES))
    for name, check in C.CHECKS.items():
        check(tp, ref, case)


GIL_CALLS = {
    "softmax": lambda x, out: tp.softmax(x, out=out),
    "log_softmax": lambda x, out: tp.log_softmax(x, 0.7, out=out),
    "logsumexp": lambda x, out: tp.logsumexp(x),
    "greedy": lambda x, out: tp.greedy(x),
    "mask": lambda x, out: tp.mask(x, top_k=50, top_p=0.9, out=out),
    "filtered_probs": lambda x, out: tp.filtered_probs(x, top_p=0.95, min_p=0.01, out=out),
    "sample": lambda x, out: tp.sample(x, top_p=0.9, seed=1),
    "top_logprobs": lambda x, out: tp.top_logprobs(x, 20),
}


@pytest.mark.parametrize("name", sorted(GIL_CALLS))
def test_kernels_release_the_gil(name):
    """A Python thread keeps running while a kernel works: it records time stamps in a
    loop; some must fall in the middle half of a kernel call (none can if the GIL is held,
    since the argument checks at either end are a sliver of a call on 32 x 131072)."""
    x = np.random.default_rng(3).standard_normal((32, 131072)).astype(np.float32)
    out = np.empty_like(x)
    GIL_CALLS[name](x, out)
    stamps = []
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            stamps.append(time.perf_counter())

    spinner = threading.Thread(target=spin)
    spinner.start()
    windows = []
    try:
        while len(windows) < 8:
            t0 = time.perf_counter()
            GIL_CALLS[name](x, out)
            t1 = time.perf_counter()
            windows.append((t0, t1))
    finally:
        stop.set()
        spinner.join()
    s = np.array(stamps)
    inside = [int(((s > a + (b - a) / 4) & (s < b - (b - a) / 4)).sum()) for a, b in windows]
    assert max(inside) > 0, (
        f"{name}: no Python thread ran during any of 8 calls (stamps in the middle half of "
        f"each call: {inside}); the GIL seems held while the kernel runs")


BAD_ROW_CALLS = {
    "sample": lambda x, out: tp.sample(x, top_p=0.9, seed=1),
    "softmax": lambda x, out: tp.softmax(x),
    "softmax out=": lambda x, out: tp.softmax(x, out=out),
    "mask in place": lambda x, out: tp.mask(x, top_k=5, out=x),
    "logsumexp": lambda x, out: tp.logsumexp(x),
    "top_logprobs": lambda x, out: tp.top_logprobs(x, 3),
}


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("bad_rows", [(40,), (10, 50), (0, 63), (63,)])
@pytest.mark.parametrize("name", list(BAD_ROW_CALLS))
def test_bad_rows_raise_the_first_whatever_the_threads(restore_threads, threads, bad_rows, name):
    """Each thread checks its own rows when the outputs are the call's own;
    the error still names the lowest bad row, and a caller's buffers stay as
    they were (they are checked whole before any thread starts)."""
    tp.set_num_threads(threads)
    rng = np.random.default_rng(sum(bad_rows))
    x = rng.standard_normal((64, 8192)).astype(np.float32)  # enough work for 3 threads
    for i, row in enumerate(bad_rows):
        x[row, 100 + i] = np.nan if i % 2 == 0 else np.inf
    kept = x.copy()
    out = np.full_like(x, 7.0)
    with pytest.raises(ValueError, match=f"row {bad_rows[0]} "):
        BAD_ROW_CALLS[name](x, out)
    np.testing.assert_array_equal(x, kept)
    assert np.all(out == 7.0)


def test_calls_from_several_threads_while_the_pool_grows(restore_threads):
    # Python threads call at once while this thread keeps changing the
    # thread count and forgetting the pool, so that pools are replaced by
    # larger ones under the callers' feet: no call may find its pool shut
    # down, and every result is the one-thread result.
    x = np.random.default_rng(9).standard_normal((8, 1 << 16)).astype(np.float32)
    tp.set_num_threads(1)
    want = tp.sample(x, top_p=0.9, seed=5)
    errors, results = [], []
    done = threading.Event()

    def caller():
        try:
            while not done.is_set():
                results.append(tp.sample(x, top_p=0.9, seed=5))
        except BaseException as exc:  # reported below
            errors.append(exc)

    callers = [threading.Thread(target=caller) for _ in range(4)]
    for t in callers:
        t.start()
    try:
        for step in range(200):
            tp.set_num_threads(2 + step % 3)
            if step % 3 == 0:
                _threads._pool = None
            time.sleep(0.001)
    finally:
        done.set()
        for t in callers:
            t.join()
    assert not errors, errors
    assert results
    for got in results:
        np.testing.assert_array_equal(got, want)
