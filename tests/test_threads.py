"""Threads: large batches (spread over worker threads) still match the reference, every
kernel releases the GIL while it runs, several Python threads calling at once get the
serial results, and the package works in a child after ``fork()``.  (Thread-count
invariance of the tokens is in test_random.py.)"""

import os
import subprocess
import sys
import textwrap
import threading
import time

import _arrays
import _compare as C
import numpy as np
import pytest

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
    kinds = _arrays.ROW_KINDS * 9  # 9 rows of every kind
    case = _arrays.build(
        _arrays.Recipe(
            seed=4242 + threads,
            V=97,
            kinds=kinds,
            per_row=True,
            temperature=_arrays.TEMPERATURES,
            top_k=_arrays.TOP_KS,
            top_p=_arrays.TOP_PS,
            min_p=_arrays.MIN_PS,
            n_top=6,
            use_uniforms=threads == 2,
            uniform=_arrays.UNIFORM_CHOICES,
        )
    )
    for check in C.CHECKS.values():
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
def test_kernels_release_the_gil(name, restore_threads):
    """A Python thread keeps running while a kernel works: it records time stamps in a
    loop; some must fall in the middle half of a kernel call (none can if the GIL is held,
    since the argument checks at either end are a sliver of a call on 32 x 131072).  The
    kernels run on the calling thread alone, so that a second core is there for the
    spinner whatever else the machine runs (with the kernels on every core, a loaded
    machine could leave it no turn within a call)."""
    tp.set_num_threads(1)
    x = np.random.default_rng(3).standard_normal((32, 131072)).astype(np.float32)
    out = np.empty_like(x)
    GIL_CALLS[name](x, out)
    stamps = []
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            stamps.append(time.perf_counter())

    def inside(windows):
        s = np.array(stamps)
        return [int(((s > a + (b - a) / 4) & (s < b - (b - a) / 4)).sum()) for a, b in windows]

    spinner = threading.Thread(target=spin)
    spinner.start()
    windows = []
    try:  # 8 calls, and 8 more while none shows a stamp (a loaded machine), up to 64
        while len(windows) < 64 and not (windows and max(inside(windows)) > 0):
            for _ in range(8):
                t0 = time.perf_counter()
                GIL_CALLS[name](x, out)
                t1 = time.perf_counter()
                windows.append((t0, t1))
    finally:
        stop.set()
        spinner.join()
    assert max(inside(windows)) > 0, (
        f"{name}: no Python thread ran during any of {len(windows)} calls (stamps in the "
        f"middle half of each call: {inside(windows)}); the GIL seems held while the kernel runs"
    )


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


def test_thread_count_pays_off(restore_threads):
    """The default spreads rows only where a thread pays: never for one row or a small
    batch, and for a read-only pass (greedy) only from about 2M logits per thread."""
    tp.set_num_threads(2)
    count = _threads.thread_count
    assert count(1, 262144) == 1 and count(8, 1000) == 1
    assert count(64, 32000) == 2 and count(8, 128256) == 2
    read_only = _threads.MIN_LOGITS_PER_THREAD_READ_ONLY
    assert count(64, 32000, per_thread=read_only) == 1
    assert count(64, 128256, per_thread=read_only) == 2
    assert count(64, 128256, num_threads=1) == 1
    assert count(3, 10**6, num_threads=8) == 3  # never more threads than rows


# ----------------------------------------------------------------------------
# Several Python threads at once: exactly the serial results, every function.

CONCURRENT_CALLS = {
    **_arrays.typical_calls(tp),
    "sample-per-row-seeds": lambda x: tp.sample(x, top_k=50, seed=np.arange(len(x)), offset=5),
    "sample-top-p-flat": lambda x: tp.sample(-np.abs(x), top_p=0.9, seed=3),
}


def _equal(a, b):
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    return all(np.array_equal(u, v, equal_nan=True) for u, v in zip(a, b))


@pytest.mark.parametrize("inner_threads", [1, 2])
def test_python_threads_calling_at_once_get_the_serial_results(restore_threads, inner_threads):
    """Four Python threads run every function, interleaved, on batches big enough to use
    tokenpick's own workers too (inner_threads=2); each result equals the serial one."""
    tp.set_num_threads(inner_threads)
    rng = np.random.default_rng(77)
    batches = [
        rng.standard_normal((B, V)).astype(np.float32) * s
        for B, V, s in ((1, 50_000, 3.0), (8, 32_000, 1.0), (24, 12_000, 8.0))
    ]
    want = {
        (name, i): call(x) for name, call in CONCURRENT_CALLS.items() for i, x in enumerate(batches)
    }
    errors, barrier = [], threading.Barrier(4)

    def worker(k):
        order = list(want)
        np.random.default_rng(k).shuffle(order)
        barrier.wait()
        for _ in range(3):
            for name, i in order:
                try:
                    got = CONCURRENT_CALLS[name](batches[i])
                except Exception as exc:  # noqa: BLE001
                    errors.append(f"{name}: {exc!r}")
                    continue
                if not _equal(got, want[name, i]):
                    errors.append(f"{name} on batch {i} differs from the serial result")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not any(t.is_alive() for t in threads), "a thread calling tokenpick hung"
    assert not errors, errors[:5]


# ----------------------------------------------------------------------------
# fork()

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
FORK_X = np.random.default_rng(5).standard_normal((64, 4096)).astype(np.float32)


def _fork_sample():
    return tp.sample(FORK_X, seed=np.arange(64), top_p=0.9, num_threads=2)


def _run_in_forked_child(check, timeout=60):
    """Fork; the child runs check() (True: exit 0, False: 1, raised: 3); fail unless it
    exits 0 within `timeout` seconds (a child that hangs is killed: not fork-safe)."""
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            code = 0 if check() else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("tokenpick hung in a forked child (thread pool not fork-safe)")
        time.sleep(0.02)
    assert os.WIFEXITED(status), f"the forked child died: status {status}"
    code = os.WEXITSTATUS(status)
    assert code == 0, "in the forked child, tokenpick " + {
        1: "gave different results",
        3: "raised",
    }.get(code, f"exited {code}")


@needs_fork
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork with threads
def test_usable_after_fork_once_the_pool_ran(restore_threads):
    want = _fork_sample()  # the worker threads exist now
    _run_in_forked_child(lambda: np.array_equal(_fork_sample(), want))
    _run_in_forked_child(lambda: all(np.array_equal(_fork_sample(), want) for _ in range(5)))


@needs_fork
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_usable_after_fork_while_other_threads_are_inside_calls(restore_threads):
    """fork() while Python threads are in the middle of threaded calls (the pool busy, its
    lock perhaps held): the child still gets the results."""
    want = _fork_sample()
    stop = threading.Event()

    def busy():
        while not stop.is_set():
            _fork_sample()

    threads = [threading.Thread(target=busy) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for _ in range(5):
            time.sleep(0.01)
            _run_in_forked_child(lambda: np.array_equal(_fork_sample(), want))
    finally:
        stop.set()
        for t in threads:
            t.join(60)


@needs_fork
def test_usable_after_fork_in_a_process_that_never_used_it(tmp_path):
    """A fresh interpreter imports tokenpick and forks before any pool exists; the child
    and the parent both sample, with threads, and agree with each other."""
    script = textwrap.dedent("""
        import os, sys
        import numpy as np
        import tokenpick as tp
        x = np.random.default_rng(5).standard_normal((64, 4096)).astype(np.float32)
        pid = os.fork()
        got = tp.sample(x, seed=np.arange(64), top_p=0.9, num_threads=2)
        if pid == 0:
            np.save(sys.argv[1], got)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        assert np.array_equal(np.load(sys.argv[1]), got), "child and parent differ"
        print("ok")
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "child.npy")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


@needs_fork
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_multiprocessing_fork_workers_get_the_parent_results(restore_threads):
    import multiprocessing

    want = _fork_sample()
    with multiprocessing.get_context("fork").Pool(2) as pool:
        try:
            results = pool.map_async(_fork_sample_in_worker, range(4)).get(timeout=60)
        except multiprocessing.TimeoutError:
            pytest.fail("tokenpick hung in a forked multiprocessing worker")
    assert all(np.array_equal(r, want) for r in results)


def _fork_sample_in_worker(_):
    return _fork_sample()
