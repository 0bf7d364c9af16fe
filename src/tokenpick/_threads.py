"""Rows of one call spread over threads: the standard library's pool, no OpenMP.

The kernels release the GIL (``sample`` keeps it only for calls under 8192
logits, far too short to spread over threads), so ``concurrent.futures``
threads run them in parallel.  Idle workers block on the pool's queue (they
never spin), a call with one row, or too little work, never wakes a thread,
and the calling thread works through the rows with them.  Rows are
independent and each is computed the same way wherever it runs, so results
are bitwise identical for any thread count.  After ``fork()`` the child starts with no pool and
makes a fresh one when it first needs it.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from . import _config

# Logits per thread below which another thread costs more than it saves
# (waking a worker costs tens of microseconds; a row of 128k logits takes
# tens to hundreds).
MIN_LOGITS_PER_THREAD = 1 << 17
# The same for a read-only pass (greedy), which does so little per logit
# that below about 2M logits a second thread made it slower, not faster
# (benchmark, B=64: 0.9x at V=32000, 1.4x at V=128256).
MIN_LOGITS_PER_THREAD_READ_ONLY = 1 << 21

_lock = threading.Lock()
_pool = None
_pool_workers = 0


def _workers(count):
    """A pool with at least ``count`` workers.

    A smaller pool is replaced, not shut down: another thread may be about to
    submit to it.  Once nobody holds it, its idle workers exit by themselves.
    """
    global _pool, _pool_workers
    with _lock:
        if _pool is None or _pool_workers < count:
            _pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="tokenpick")
            _pool_workers = count
        return _pool


def _forget_pool_after_fork():
    global _lock, _pool, _pool_workers
    _lock = threading.Lock()
    _pool = None  # its threads do not exist in the child
    _pool_workers = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def thread_count(nrows, vocab, num_threads=None, per_thread=MIN_LOGITS_PER_THREAD):
    """How many threads a call of nrows rows of vocab logits uses, each given
    at least `per_thread` logits."""
    work_threads = (nrows * vocab) // per_thread
    if work_threads < 2:  # the common case of one short call, decided cheaply
        return 1
    limit = _config.get_num_threads() if num_threads is None else num_threads
    return max(1, min(limit, nrows, work_threads))


# Ranges of rows per thread in a call: more than one, so that a thread that
# is slowed (by another process on its core, or by slower rows) takes fewer
# of them while the others take more; few enough that handing one out (a lock
# and a call into the core, a few microseconds) stays far below its work.
RANGES_PER_THREAD = 4


def run_rows(kernel, threads, nrows, *args):
    """Call ``kernel(*args, start, stop)`` over row ranges covering [0, nrows),
    on ``threads`` threads, the calling thread among them: each takes the next
    range not yet taken until none is left.

    Every range runs to its end; if some raised, the exception of the first
    such range (the one with the lowest rows) is raised, so an error names
    the same row whatever the thread count.  An interrupt (KeyboardInterrupt,
    SystemExit) stops the handing out of ranges and is raised once the ranges
    under way are done.
    """
    count = min(nrows, threads * RANGES_PER_THREAD)
    bounds = [nrows * r // count for r in range(count + 1)]
    taken = [0]
    take = threading.Lock()
    errors = {}
    interrupts = []

    def stop():  # no more ranges handed out
        with take:
            taken[0] = count

    def work():
        while True:
            with take:
                r = taken[0]
                taken[0] = r + 1
            if r >= count:
                return
            try:
                kernel(*args, bounds[r], bounds[r + 1])
            except Exception as exc:  # re-raised below, once every range is done
                errors[r] = exc
            except BaseException as exc:  # KeyboardInterrupt, SystemExit: stop early
                interrupts.append(exc)
                stop()
                return

    pool = _workers(threads - 1)
    others = [pool.submit(work) for _ in range(threads - 1)]
    try:
        work()
    finally:
        stop()
        for future in others:  # one that has not started has taken no range
            if not future.cancel():
                future.result()
    if interrupts:
        raise interrupts[0]
    if errors:
        raise errors[min(errors)]
