"""Benchmark tokenpick against its floor and its peers on synthetic logits.

``python -m tokenpick bench`` prints a header (versions of tokenpick, numpy,
Python and PyTorch, the SIMD path, the thread settings, the CPU), then times
the operations of tokenpick's speed targets on built-in logits and prints one
table row per (operation, logits, V, B):

* tokenpick us/row: median wall time of one call, divided by the rows;
* x floor: that time over ``np.max(x, axis=-1)`` on the same rows, the
  cost of merely reading them (the speed targets are stated in this ratio);
* x 1 thread, only for B >= 64 (``--full``, or ``--batch 64``): tokenpick's
  time with ``tokenpick.set_num_threads(1)`` over its time at the run's
  thread count, the throughput its threads add (SPEC.md: >= 1.7 with two),
  the repeats of the two counts interleaved; blank for smaller B, and not
  timed at all when the run has one thread (the legend says so);
* <peer> speedup: a peer's time per row over tokenpick's.  The peers are

  - ``reference``: ``tokenpick.reference``, the pure-numpy oracle; being
    slow, it is timed on one row with fewer repeats (its cost per row does
    not depend on B);
  - ``torch``, when PyTorch can be imported: HF-transformers-style warpers
    written here in torch (temperature, top-k, top-p, min-p, in tokenpick's
    order), ``torch.softmax`` and ``torch.multinomial`` with a seeded
    ``torch.Generator``; greedy is ``torch.argmax``, softmax is
    ``torch.softmax(x / T)``.  It is timed on the whole batch in one call, as
    tokenpick is, with its threads set to tokenpick's and, unless the
    environment says otherwise, ``OMP_WAIT_POLICY=PASSIVE``, so that its idle
    threads block as tokenpick's do.  ``--no-torch`` skips it.

After the table, a section on call overhead (SPEC.md: <= 3 us) times
``tokenpick.sample(x, seed=..., offset=...)`` on one 1-D float32 row of
V = 256 peaked logits, at temperature 0.8 alone and with top-k 50, top-p 0.9
and min-p 0.05, in us per call, next to ``np.max`` of that row and the same
call of each peer.  Its repeats last 0.01 s (less if ``--min-time`` is less),
so that it takes about a second.

Last, a section on Python threads: one, then two Python threads each call
``tokenpick.sample`` back to back on one 1-D row of V = 128256 peaked logits
(tokenpick's own threads: one), and the calls per second of all of them are
compared; since the kernels release the GIL on rows this long, two threads
should reach close to twice the throughput of one on two cores.

Two kinds of logits are generated with a fixed seed, row by row, so that the
first rows of a batch are the same for every B:

* ``peaked``: LM-like, ``2 * N(0, 1)`` plus a Zipf-like boost on a few hundred
  tokens, so that a handful of tokens hold most of the mass;
* ``flat``: ``N(0, 1)``, whose top-p nucleus holds most of the vocabulary.

Every call gets rows it has not just seen: a case's rows come in a pool of
batches of at least `POOL_BYTES` of logits in all (at most
`POOL_MAX_BATCHES` batches), and each timed loop goes through the whole
pool.  Calls on the same rows over and over would let the CPU's branch
predictor learn where their kept tokens lie, which hides the cost of finding
them (on this project's development machine, top-k 50 on one row
of 32000 logits took half the time it takes on fresh rows); a server never
sees the same logits twice.  The pool is small enough to stay in a
server-class L3 cache, as the output of the model's last layer would.  The
slow reference is timed on the pool's first row; the call overhead and the
Python threads sections call one row, as they measure fixed costs.

Timing follows ``timeit``: the number of loops is found by the 1, 2, 5, 10, ...
search of ``timeit.Timer.autorange``, then the median of several repeats of
that many loops is kept.  The default run is quick (V = 128256, B = 1 and 8);
``--full`` covers V in {32000, 128256, 262144} and B in {1, 8, 64}.

``--plot FILE.png`` also draws the time per row against V, one panel per
operation and kind of logits, at the smallest B of the run; it needs
matplotlib (``pip install "tokenpick[plot]"``).
"""

import argparse
import contextlib
import functools
import json
import math
import os
import platform
import statistics
import sys
import threading
import time
import timeit
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np

import tokenpick

from . import reference

SUMMARY = "time tokenpick against np.max (the floor), the numpy reference and PyTorch"

QUICK_VOCABS = (128256,)
QUICK_BATCHES = (1, 8)
FULL_VOCABS = (32000, 128256, 262144)
FULL_BATCHES = (1, 8, 64)
LOGIT_KINDS = ("peaked", "flat")
QUICK_MIN_TIME = 0.02  # seconds per repeat; 0.2 is timeit.Timer.autorange's own
FULL_MIN_TIME = 0.2
SCALING_MIN_BATCH = 64  # from this B on, tokenpick is also timed at one thread
OVERHEAD_V = 256  # the call-overhead section: one 1-D row of this many logits
OVERHEAD_KIND = "peaked"
OVERHEAD_OFFSET = 7  # the decoding step passed as `offset`
OVERHEAD_MIN_TIME = 0.01  # its --min-time, unless --min-time is less

PY_THREADS_V = 128256  # the Python-threads section: one 1-D row of this many logits
PY_THREADS_COUNTS = (1, 2)
PY_THREADS_REPEATS = 5  # repeats of each count, interleaved
PY_THREADS_MIN_TIME = 0.1  # seconds per repeat, unless --min-time is less

# The logits of one case, in as many batches as make up at least this many
# bytes, which the timed loops cycle through (see the module docstring), but
# no more batches than POOL_MAX_BATCHES (short rows would need thousands)
POOL_BYTES = 8 << 20
POOL_MAX_BATCHES = 64

DATA_SEED = 20240601
SAMPLE_SEED = 1234
PEAKED_HEAD = 300  # tokens boosted in "peaked" logits
PLOT_HINT = 'error: --plot needs matplotlib; install it with: pip install "tokenpick[plot]"'


# ----------------------------------------------------------------------------
# Logits

def peaked_row(rng, V):
    """One LM-like row: ``2 * N(0, 1)``, plus ``18 - 2.5 log(rank)`` on a few hundred tokens.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of randomness.
    V : int
        Vocabulary size.

    Returns
    -------
    numpy.ndarray
        float32 array of shape ``(V,)``.
    """
    x = 2.0 * rng.standard_normal(V)
    n = min(PEAKED_HEAD, V)
    head = rng.choice(V, size=n, replace=False)
    x[head] += 18.0 - 2.5 * np.log(np.arange(1, n + 1))
    return x.astype(np.float32)


def flat_row(rng, V):
    """One row of N(0, 1) logits, as float32 of shape ``(V,)``."""
    return rng.standard_normal(V, dtype=np.float32)


ROW_GENERATORS = {"peaked": peaked_row, "flat": flat_row}


def make_logits(kind, V, B):
    """Generate a ``(B, V)`` float32 batch of logits of the given kind.

    Row ``i`` depends only on ``(kind, V, i)``, so a batch's first rows are the
    same whatever B is: timings of the first rows can be shared across B.

    Parameters
    ----------
    kind : {"peaked", "flat"}
        Which generator to use.
    V, B : int
        Vocabulary size and number of rows.

    Returns
    -------
    numpy.ndarray
        C-contiguous float32 array of shape ``(B, V)``.
    """
    generate = ROW_GENERATORS[kind]
    return np.stack([generate(np.random.default_rng([DATA_SEED, i]), V) for i in range(B)])


def make_pool(kind, V, B):
    """The batches of one case: ``(B, V)`` float32 arrays of distinct rows,
    enough of them to hold `POOL_BYTES` (at most `POOL_MAX_BATCHES`), the
    first being ``make_logits(kind, V, B)``.

    Returns
    -------
    list of numpy.ndarray
    """
    count = min(POOL_MAX_BATCHES, max(1, -(-POOL_BYTES // (4 * B * V))))
    rows = make_logits(kind, V, B * count)
    return [rows[j * B:(j + 1) * B] for j in range(count)]


# ----------------------------------------------------------------------------
# Operations and the peers that run them

@dataclass(frozen=True)
class Op:
    """One benchmarked operation: a public function of tokenpick and its arguments.

    Attributes
    ----------
    label : str
        Name shown in the table.
    func : str
        Name of the function in tokenpick's public API (and in its reference).
    kwargs : dict
        Keyword arguments passed along with the logits.
    """

    label: str
    func: str
    kwargs: dict = field(default_factory=dict)


_SAMPLING = {"temperature": 0.8, "seed": SAMPLE_SEED}

SAMPLE_T = Op("sample T=0.8", "sample", _SAMPLING)
SAMPLE_P = Op("sample top_p=0.9", "sample", {**_SAMPLING, "top_p": 0.9})
SAMPLE_ALL = Op("sample k=50 p=0.9 min_p=0.05", "sample",
                {**_SAMPLING, "top_k": 50, "top_p": 0.9, "min_p": 0.05})

OPS = (
    Op("greedy", "greedy"),
    Op("softmax", "softmax"),
    SAMPLE_T,
    Op("sample top_k=50", "sample", {**_SAMPLING, "top_k": 50}),
    SAMPLE_P,
    SAMPLE_ALL,
)

# The call-overhead section's calls: as a generation loop makes them, seed and step
OVERHEAD_OPS = tuple(replace(op, kwargs={**op.kwargs, "offset": OVERHEAD_OFFSET})
                     for op in (SAMPLE_T, SAMPLE_ALL))


# The Python-threads section's calls
PY_THREADS_OPS = (SAMPLE_T, SAMPLE_P)


@dataclass(frozen=True)
class Peer:
    """Something timed on the same logits as tokenpick.

    Attributes
    ----------
    name : str
        Name shown in the table and the JSON results.
    bind : callable
        ``bind(op, logits)`` returns a function of no arguments that does `op`
        on every row of the float32 ``(B, V)`` `logits`.  Conversions (to
        another library's tensors, say) belong in `bind`, outside the timing.
        It raises NotImplementedError for an operation the peer lacks.
    repeats : int
        Number of timed repeats; the median is kept.
    max_rows : int or None
        Time only this many leading rows (for slow peers); None for all.
    threads : int or None
        ``tokenpick.set_num_threads(threads)`` while it is timed, the run's
        count restored afterwards; None to time at the run's count.
    """

    name: str
    bind: Callable
    repeats: int
    max_rows: int | None = None
    threads: int | None = None


def bind_api(module):
    """Return a `Peer.bind` calling ``module.<op.func>(logits, **op.kwargs)``.

    Works for tokenpick and for ``tokenpick.reference``, which share names
    and signatures.
    """
    def bind(op, logits):
        return functools.partial(getattr(module, op.func), logits, **op.kwargs)
    return bind


def bind_floor(op, logits):
    """A `Peer.bind` for the floor: one read-only pass, ``np.max(logits, axis=-1)``."""
    return functools.partial(np.max, logits, axis=-1)


TOKENPICK = Peer("tokenpick", bind_api(tokenpick), repeats=7)
FLOOR = Peer("np.max", bind_floor, repeats=7)
REFERENCE = Peer("reference", bind_api(reference), repeats=3, max_rows=1)
ONE_THREAD = replace(TOKENPICK, name="tokenpick 1 thread", threads=1)


def comparison_peers(args, torch):
    """The peers given a speedup column, in table order.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed options (``--no-reference``).
    torch : module or None
        PyTorch, already set up by `setup_torch`, or None to leave it out.
    """
    peers = [] if args.no_reference else [REFERENCE]
    if torch is not None:
        peers.append(Peer("torch", bind_torch(torch), repeats=5))
    return peers


def scaling_peers(B):
    """``[ONE_THREAD]`` if a batch of `B` rows is also timed at one thread, else ``[]``.

    It is, for B >= `SCALING_MIN_BATCH` when the run has more than one thread.
    """
    return [ONE_THREAD] if B >= SCALING_MIN_BATCH and tokenpick.get_num_threads() > 1 else []


# ----------------------------------------------------------------------------
# The PyTorch peer: HF-transformers-style warpers, written here in torch

def setup_torch(args):
    """Import PyTorch for its peer and give it tokenpick's thread count.

    Call it after ``--threads`` is applied.  Unless the environment already
    sets ``OMP_WAIT_POLICY``, it is set to ``PASSIVE`` before the import (the
    OpenMP runtime reads it when torch loads it): torch's idle threads then
    block, as tokenpick's do, instead of spinning, which on a machine with few
    or shared cores can stall a call by milliseconds.

    Returns
    -------
    torch : module or None
        PyTorch, or None when it is not to be timed.
    info : dict
        JSON-ready: its ``version``, ``num_threads`` and ``omp_wait_policy``,
        or why it is ``absent``.
    """
    if args.no_torch:
        return None, {"absent": "not timed (--no-torch)"}
    policy = os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch
    except (ImportError, OSError) as exc:  # OSError: an install whose libraries do not load
        return None, {"absent": f"absent ({type(exc).__name__}: {exc}), so no torch column"}
    torch.set_num_threads(tokenpick.get_num_threads())
    return torch, {"version": torch.__version__, "num_threads": torch.get_num_threads(),
                   "omp_wait_policy": policy}


def bind_torch(torch):
    """Return a `Peer.bind` for PyTorch.

    The logits become a tensor sharing their memory (``torch.from_numpy``)
    outside the timing; the call then does `op` on the whole batch.
    """
    builders = {"greedy": torch_greedy, "softmax": torch_softmax, "sample": torch_sample}

    def bind(op, logits):
        if op.func not in builders:
            raise NotImplementedError(op.func)
        return builders[op.func](torch, torch.from_numpy(logits), **op.kwargs)
    return bind


def torch_greedy(torch, x):
    """The call of `tokenpick.greedy` in torch: ``torch.argmax(x, dim=-1)``."""
    return functools.partial(torch.argmax, x, dim=-1)


def torch_softmax(torch, x, temperature=1.0):
    """The call of `tokenpick.softmax` in torch: ``torch.softmax(x / T, dim=-1)``."""
    return lambda: torch.softmax(torch_temperature(x, temperature), dim=-1)


def torch_sample(torch, x, *, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed, offset=0):
    """The call of `tokenpick.sample` in torch: the warpers, ``torch.softmax``, then
    ``torch.multinomial(probs, 1)`` with a ``torch.Generator`` seeded with `seed`.

    `offset`, a position in tokenpick's stream, has no use here: the generator
    is seeded once, outside the timing, and its stream simply goes on.
    """
    generator = torch.Generator().manual_seed(seed)

    def call():
        probs = torch.softmax(torch_warped(x, temperature, top_k, top_p, min_p), dim=-1)
        return torch.multinomial(probs, 1, generator=generator)
    return call


def torch_warped(x, temperature, top_k, top_p, min_p):
    """Logits through the HF-style warpers that the parameters enable.

    The order is tokenpick's (SPEC.md), which is also HF transformers': temperature,
    top-k, top-p on the distribution left by top-k, then min-p, so that both
    libraries do the same work.
    """
    scores = torch_temperature(x, temperature)
    if top_k > 0:
        scores = torch_top_k(scores, top_k)
    if top_p < 1.0:
        scores = torch_top_p(scores, top_p)
    if min_p > 0.0:
        scores = torch_min_p(scores, min_p)
    return scores


def torch_temperature(x, temperature):
    """HF's temperature warper, ``x / T``; as in HF, none at all for T = 1."""
    return x if temperature == 1.0 else x / temperature


def torch_top_k(scores, k):
    """HF's top-k warper: ``-inf`` below the k-th largest score (ties with it are kept)."""
    kth = scores.topk(min(k, scores.shape[-1]), dim=-1).values[..., -1:]
    return scores.masked_fill(scores < kth, -math.inf)


def torch_top_p(scores, p):
    """HF's top-p warper: sort ascending, remove the tokens whose cumulative
    probability is ``<= 1 - p`` (never the most likely one), scatter back."""
    ascending, order = scores.sort(dim=-1)
    remove = ascending.softmax(dim=-1).cumsum(dim=-1) <= 1.0 - p
    remove[..., -1] = False
    return scores.masked_fill(remove.scatter(-1, order, remove), -math.inf)


def torch_min_p(scores, m):
    """HF's min-p warper: remove the tokens whose probability is below ``m`` times the largest."""
    probs = scores.softmax(dim=-1)
    return scores.masked_fill(probs < m * probs.amax(dim=-1, keepdim=True), -math.inf)


# ----------------------------------------------------------------------------
# Timing

@dataclass
class Measurement:
    """The timing of one peer on one case, or why there is none.

    Attributes
    ----------
    us_per_row : float or None
        Median time of one call in microseconds, divided by `rows`.
    rows : int
        Number of rows in the timed call.
    loops : int
        Calls per repeat.
    repeats : int
        Number of repeats.
    error : str or None
        ``"ExceptionType: message"`` if the call raised, ``"n/a"`` if the peer
        does not have the operation.
    """

    us_per_row: float | None = None
    rows: int = 0
    loops: int = 0
    repeats: int = 0
    error: str | None = None


def autorange(timer, min_time):
    """Find how many loops take at least `min_time` seconds.

    The 1, 2, 5, 10, 20, 50, ... search of ``timeit.Timer.autorange``, whose
    own target is fixed at 0.2 s; a smaller one keeps the quick run quick.

    Parameters
    ----------
    timer : timeit.Timer
        The timer of the statement.
    min_time : float
        Target duration of one repeat, in seconds.

    Returns
    -------
    int
        The number of loops.
    """
    scale = 1
    while True:
        for step in (1, 2, 5):
            loops = scale * step
            if timer.timeit(loops) >= min_time:
                return loops
        scale *= 10


def calls_timer(fns):
    """A ``timeit.Timer`` whose loop calls each of the functions `fns` once, in turn."""
    def every():
        for fn in fns:
            fn()
    return timeit.Timer(fns[0] if len(fns) == 1 else every)


@contextlib.contextmanager
def tokenpick_threads(n):
    """Run the block with ``tokenpick.set_num_threads(n)``, then restore the count
    it had; with `n` None, leave it alone."""
    if n is None:
        yield
        return
    previous = tokenpick.get_num_threads()
    tokenpick.set_num_threads(n)
    try:
        yield
    finally:
        tokenpick.set_num_threads(previous)


def measure(peer, op, pool, min_time):
    """Time `peer` doing `op` on each batch of `pool` in turn, at the peer's
    thread count.

    The batches are ``(B, V)`` arrays, or 1-D rows, which count as one row;
    a slow peer (`Peer.max_rows`) gets only the leading rows of the first.
    Never raises for a failing operation: the error is recorded instead
    ("n/a" for an operation the peer lacks).

    Returns
    -------
    Measurement
    """
    return measure_interleaved([peer], op, pool, min_time)[peer.name]


def _failed(exc, rows):
    """The Measurement of a call that raised `exc`."""
    if isinstance(exc, NotImplementedError):
        return Measurement(rows=rows, error="n/a")
    return Measurement(rows=rows, error=f"{type(exc).__name__}: {exc}")


def measure_interleaved(peers, op, pool, min_time):
    """`measure` for each of `peers`, with their repeats taken in turn: one
    repeat of each, then the next.

    For tokenpick at different thread counts: a change in the machine's
    speed while they are timed (another process taking a core for a while,
    a clock change) then weighs on them alike, so that the ratio of their
    times, the throughput that threads add, is not skewed by when each
    happened to run.

    Returns
    -------
    dict
        Peer name -> Measurement.
    """
    timed, results = [], {}
    for peer in peers:
        batches = pool
        if peer.max_rows is not None:
            batches = [pool[0] if pool[0].ndim == 1 else pool[0][:peer.max_rows]]
        rows = 1 if batches[0].ndim == 1 else len(batches[0])
        try:
            with tokenpick_threads(peer.threads):
                timer = calls_timer([peer.bind(op, batch) for batch in batches])
                loops = autorange(timer, min_time)
        except Exception as exc:  # report it in the table, keep benchmarking
            results[peer.name] = _failed(exc, rows)
            continue
        timed.append((peer, timer, loops, rows, len(batches), []))
    for r in range(max((peer.repeats for peer, *_ in timed), default=0)):
        for peer, timer, loops, rows, _, seconds in timed:
            if r < peer.repeats and peer.name not in results:
                try:
                    with tokenpick_threads(peer.threads):
                        seconds.append(timer.timeit(loops))
                except Exception as exc:
                    results[peer.name] = _failed(exc, rows)
    for peer, _, loops, rows, calls, seconds in timed:
        if peer.name not in results:
            per_call = statistics.median(seconds) / (loops * calls)
            results[peer.name] = Measurement(per_call * 1e6 / rows, rows, loops, peer.repeats)
    return results


# ----------------------------------------------------------------------------
# Cases and results

@dataclass
class Result:
    """All measurements of one case: an operation on one batch of logits."""

    op: Op
    logits: str
    V: int
    B: int
    timings: dict  # peer name -> Measurement

    def us_per_row(self, name):
        """Time per row of peer `name`, or None if it was not timed or raised."""
        return self.timings[name].us_per_row if name in self.timings else None

    def ratio(self, numerator, denominator):
        """Time of peer `numerator` over time of peer `denominator`, or None."""
        top = self.us_per_row(numerator)
        bottom = self.us_per_row(denominator)
        if top is None or bottom is None or bottom == 0:
            return None
        return top / bottom

    def to_json(self, peers):
        """The result as a JSON-ready dict."""
        return {
            "op": self.op.label, "func": self.op.func, "kwargs": self.op.kwargs,
            "logits": self.logits, "V": self.V, "B": self.B,
            "timings": {name: asdict(m) for name, m in self.timings.items()},
            "x_floor": self.ratio(TOKENPICK.name, FLOOR.name),
            "x_1_thread": self.ratio(ONE_THREAD.name, TOKENPICK.name),
            "speedup": {p.name: self.ratio(p.name, TOKENPICK.name) for p in peers},
        }


class Progress:
    """Progress of a run on stderr: one updated line on a terminal, else one line per step."""

    def __init__(self, total, enabled):
        self.total = total
        self.done = 0
        self.enabled = enabled
        self.tty = sys.stderr.isatty()

    def step(self, text):
        """Announce the next step."""
        self.done += 1
        if not self.enabled:
            return
        line = f"[{self.done:>{len(str(self.total))}}/{self.total}] {text}"
        if self.tty:
            sys.stderr.write(f"\r\x1b[K{line}")
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def close(self):
        """Clear the progress line on a terminal."""
        if self.enabled and self.tty:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def batches(settings):
    """Yield ``(kind, pool)`` for every case's logits of the run (see `make_pool`)."""
    for V in settings["vocabs"]:
        for B in settings["batches"]:
            for kind in settings["logits"]:
                yield kind, make_pool(kind, V, B)


def time_case(op, kind, pool, peers, min_time, cache, progress):
    """Time tokenpick (also at one thread for a large batch, see `scaling_peers`),
    the floor and every peer doing `op` on each batch of `pool` in turn: ``(B, V)``
    batches or 1-D rows.

    Each peer's timing is one step of `progress`.  A measurement of a peer
    limited to the leading rows is looked up in, or added to, `cache`: those
    rows are the same for every B (see `make_logits`).

    Returns
    -------
    Result
    """
    logits = pool[0]
    V = logits.shape[-1]
    B = 1 if logits.ndim == 1 else len(logits)
    rows_text = f"B={B}" if logits.ndim == 2 else "one 1-D row"
    timings = {}
    scaling = scaling_peers(B)
    for peer in (TOKENPICK, *scaling, FLOOR, *peers):
        rows = B if peer.max_rows is None else min(B, peer.max_rows)
        key = (peer.name, op.label, kind, V, rows)
        if peer is TOKENPICK and scaling:  # timed with the scaling peers, in turn
            names = ", ".join(p.name for p in (peer, *scaling))
            progress.step(f"{names} interleaved: {op.label}, {kind} logits, V={V}, {rows_text}")
            together = measure_interleaved([peer, *scaling], op, pool, min_time)
            for name, measurement in together.items():
                cache[(name, *key[1:])] = measurement
        else:
            progress.step(f"{peer.name}: {op.label}, {kind} logits, V={V}, {rows_text}")
        if key not in cache:
            cache[key] = measure(peer, op, pool, min_time)
        timings[peer.name] = cache[key]
    return Result(op, kind, V, B, timings)


def run_cases(settings, peers, progress):
    """Time every operation on every batch of logits of the run.

    Returns
    -------
    list of Result
    """
    cache = {}
    return [time_case(op, kind, pool, peers, settings["min_time"], cache, progress)
            for kind, pool in batches(settings) for op in OPS]


def overhead_min_time(settings):
    """How long a repeat of the call overhead lasts: `OVERHEAD_MIN_TIME`, or
    ``--min-time`` if that is less."""
    return min(settings["min_time"], OVERHEAD_MIN_TIME)


def time_overhead(settings, peers, progress):
    """Time the calls of `OVERHEAD_OPS` on one 1-D row of `OVERHEAD_V` logits.

    Returns
    -------
    list of Result
    """
    row = make_logits(OVERHEAD_KIND, OVERHEAD_V, 1)[0]
    return [time_case(op, OVERHEAD_KIND, [row], peers, overhead_min_time(settings), {}, progress)
            for op in OVERHEAD_OPS]


def calls_per_second(call, threads, calls):
    """Calls per second of `threads` Python threads each making `calls` calls of `call`,
    from the moment they are released together until the last one ends."""
    start = threading.Barrier(threads + 1)
    errors = []

    def worker():
        start.wait()
        try:
            for _ in range(calls):
                call()
        except Exception as exc:  # noqa: BLE001 -- reported by the caller
            errors.append(exc)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for w in workers:
        w.start()
    start.wait()
    began = time.perf_counter()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise errors[0]
    return threads * calls / elapsed


def time_python_threads(settings, progress):
    """Throughput of `PY_THREADS_OPS` made by 1 and 2 Python threads at once.

    Returns
    -------
    list of dict
        Per op: its label, V, and calls per second (median of repeats) per
        thread count, or the error met.
    """
    row = make_logits(OVERHEAD_KIND, PY_THREADS_V, 1)[0]
    min_time = min(settings["min_time"], PY_THREADS_MIN_TIME)
    sections = []
    for op in PY_THREADS_OPS:
        call = functools.partial(getattr(tokenpick, op.func), row, **op.kwargs)
        entry = {"op": op.label, "V": PY_THREADS_V, "logits": OVERHEAD_KIND,
                 "calls_per_second": {}, "error": None}
        try:
            with tokenpick_threads(1):
                calls = max(10, autorange(timeit.Timer(call), min_time))
                rates = {n: [] for n in PY_THREADS_COUNTS}
                for _ in range(PY_THREADS_REPEATS):
                    for n in PY_THREADS_COUNTS:
                        rates[n].append(calls_per_second(call, n, calls))
        except Exception as exc:  # noqa: BLE001 -- shown in the section
            entry["error"] = f"{type(exc).__name__}: {exc}"
        else:
            entry["calls_per_second"] = {n: statistics.median(r) for n, r in rates.items()}
        for n in PY_THREADS_COUNTS:
            progress.step(f"{op.label}, {n} Python thread(s)")
        sections.append(entry)
    return sections


def count_steps(settings, peers):
    """Number of timings of the run: one per peer (with tokenpick, at one thread
    too for a large batch, and the floor) and case, the call overhead's and the
    Python threads' included."""
    cases_per_batch = len(settings["vocabs"]) * len(settings["logits"]) * len(OPS)
    main = sum(cases_per_batch * (2 + len(scaling_peers(B)) + len(peers))
               for B in settings["batches"])
    return (main + len(OVERHEAD_OPS) * (2 + len(peers))
            + len(PY_THREADS_OPS) * len(PY_THREADS_COUNTS))


# ----------------------------------------------------------------------------
# The environment

def cpu_model():
    """The CPU's model name, from /proc/cpuinfo where there is one."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def usable_cpus():
    """Number of CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def thread_source(threads):
    """Where tokenpick's thread count comes from: ``--threads``, the environment or its default."""
    if threads is not None:
        return f"--threads {threads}"
    if "TOKENPICK_NUM_THREADS" in os.environ:
        return f"TOKENPICK_NUM_THREADS={os.environ['TOKENPICK_NUM_THREADS']}"
    return "tokenpick's default"


def environment(settings, torch_info):
    """Versions, SIMD path, thread settings and hardware, as a JSON-ready dict.

    ``config`` holds all of ``tokenpick.show_config(mode="dicts")``; ``torch``
    is `torch_info`, from `setup_torch`.
    """
    try:
        config = tokenpick.show_config(mode="dicts")
    except Exception as exc:  # a benchmark of a broken build still says what it ran
        config = {"error": f"{type(exc).__name__}: {exc}"}
    return {
        "tokenpick": config.get("version", getattr(tokenpick, "__version__", "unknown")),
        "simd": config.get("simd"),
        "simd_available": config.get("simd_available"),
        "simd_cap": os.environ.get("TOKENPICK_SIMD"),
        "num_threads": config.get("num_threads"),
        "num_threads_from": thread_source(settings["threads"]),
        "compiler": config.get("compiler"),
        "numpy": np.__version__,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "torch": torch_info,
        "cpu": cpu_model(),
        "cpus": usable_cpus(),
        "machine": platform.machine(),
        "system": platform.system(),
        "config": config,
    }


def describe(value):
    """A compact one-line rendering of a show_config value (str, number, dict or list)."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={describe(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(describe(v) for v in value)
    return str(value)


def format_torch(info):
    """The header's line on PyTorch: its version and threads, or why it is absent."""
    if "version" in info:
        return (f"torch {info['version']}, {info['num_threads']} threads (set to tokenpick's), "
                f"OMP_WAIT_POLICY={info['omp_wait_policy']}")
    return f"torch: {info['absent']}"


def format_environment(env):
    """The header printed before the table."""
    cap = f", capped by TOKENPICK_SIMD={env['simd_cap']}" if env["simd_cap"] else ""
    return "\n".join([
        f"tokenpick {env['tokenpick']}, built with {describe(env['compiler'])}",
        f"  SIMD path: {describe(env['simd'])} "
        f"(available: {describe(env['simd_available'])}{cap})",
        f"  threads:   {describe(env['num_threads'])} (from {env['num_threads_from']})",
        f"numpy {env['numpy']}, {env['python']}",
        format_torch(env["torch"]),
        f"CPU: {env['cpu']} ({env['cpus']} usable CPUs, {env['machine']}, {env['system']})",
    ])


# ----------------------------------------------------------------------------
# The table

def format_us(us):
    """Microseconds as ``0.69``, ``12.3`` or ``1,457``."""
    if us >= 1000:
        return f"{us:,.0f}"
    return f"{us:.2f}" if us < 10 else f"{us:.1f}"


def format_ratio(ratio):
    """A ratio such as ``2.3x`` or ``1,250x``."""
    if ratio is None:
        return "-"
    return f"{ratio:,.0f}x" if ratio >= 100 else f"{ratio:.1f}x"


def cell(result, name, text, notes):
    """A table cell of peer `name`: `text`, ``n/a``, or if it raised ``error [n]``,
    its error added to `notes`."""
    error = result.timings[name].error
    if error is None:
        return text
    if error == "n/a":
        return error
    notes.append(f"{result.op.label}, {result.logits} logits, V={result.V}, "
                 f"B={result.B}: {name} raised {error.splitlines()[0]}")
    return f"error [{len(notes)}]"


def us_cell(result, name, notes):
    """The `cell` of peer `name`'s time per row."""
    us = result.us_per_row(name)
    return cell(result, name, format_us(us) if us is not None else "-", notes)


def scaling_cell(result, notes):
    """The `cell` of "x 1 thread", blank where tokenpick was not timed at one thread."""
    if ONE_THREAD.name not in result.timings:
        return ""
    return cell(result, ONE_THREAD.name,
                format_ratio(result.ratio(ONE_THREAD.name, TOKENPICK.name)), notes)


def timed_at_one_thread(results):
    """Whether some case of `results` was also timed at one thread."""
    return any(ONE_THREAD.name in r.timings for r in results)


def table_rows(results, peers, notes):
    """The cells of the table; errors become ``error [n]`` with their text added to `notes`."""
    scaled = timed_at_one_thread(results)
    return [[
        r.op.label, r.logits, f"{r.V}", f"{r.B}",
        us_cell(r, TOKENPICK.name, notes),
        cell(r, FLOOR.name, format_ratio(r.ratio(TOKENPICK.name, FLOOR.name)), notes),
        *([scaling_cell(r, notes)] if scaled else []),
        *(cell(r, p.name, format_ratio(r.ratio(p.name, TOKENPICK.name)), notes) for p in peers),
    ] for r in results]


def format_table(headers, rows, left=2):
    """Align `rows` under `headers`: the first `left` columns left, the others right."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows)]

    def line(cells):
        return "  ".join(str(c).ljust(w) if i < left else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(headers), line("-" * w for w in widths), *map(line, rows)])


def rows_phrase(max_rows):
    """``"all rows"``, ``"one row"`` or ``"the first 4 rows"``."""
    if max_rows is None:
        return "all rows"
    return "one row" if max_rows == 1 else f"the first {max_rows} rows"


def scaling_legend(results, settings):
    """The legend's line on "x 1 thread": what it is, or why it is not there."""
    if timed_at_one_thread(results):
        return (f"x 1 thread: tokenpick time with set_num_threads(1) / its time at "
                f"{tokenpick.get_num_threads()} threads, for B >= {SCALING_MIN_BATCH} "
                f"(their repeats interleaved)")
    if max(settings["batches"]) < SCALING_MIN_BATCH:
        return (f"x 1 thread: timed for B >= {SCALING_MIN_BATCH} only "
                f"(--full, or --batch {SCALING_MIN_BATCH})")
    return "x 1 thread: not timed, tokenpick runs 1 thread in this run (see --threads)"


def format_overhead(overhead, peers, settings, notes):
    """The call-overhead section: one row per call, us per call of every library."""
    names = [TOKENPICK.name, FLOOR.name, *(p.name for p in peers)]
    rows = [[r.op.label, *(us_cell(r, name, notes) for name in names)] for r in overhead]
    return "\n".join([
        f"Call overhead: sample(x, seed={SAMPLE_SEED}, offset={OVERHEAD_OFFSET}) on one 1-D "
        f"float32 row, V={OVERHEAD_V}, {OVERHEAD_KIND} logits",
        "",
        format_table(["op", *(f"{name} us/call" for name in names)], rows, left=1),
        "",
        f"us/call: median time of one call, repeats as above, each of "
        f">= {overhead_min_time(settings):g} s of calls; {FLOOR.name}: np.max(x) of the row; "
        "others: the same sample call",
    ])


def format_python_threads(sections):
    """The Python-threads section: calls per second at each thread count, and the gain."""
    counts = PY_THREADS_COUNTS
    rows = []
    for entry in sections:
        rates = entry["calls_per_second"]
        if entry["error"]:
            rows.append([entry["op"], *(["error"] * len(counts)), entry["error"]])
            continue
        rows.append([entry["op"], *(f"{rates[n]:,.0f}" for n in counts),
                     format_ratio(rates[counts[-1]] / rates[counts[0]])])
    return "\n".join([
        f"Python threads: each calls sample(x, seed={SAMPLE_SEED}) back to back on one 1-D "
        f"float32 row, V={PY_THREADS_V}, {OVERHEAD_KIND} logits; tokenpick's own threads: 1",
        "",
        format_table(["op", *(f"{n} thread{'s' * (n > 1)} calls/s" for n in counts),
                      f"x {counts[0]} thread"], rows, left=1),
        "",
        f"calls/s: all threads' calls per second, median of {PY_THREADS_REPEATS} repeats; "
        f"x {counts[0]} thread: {counts[-1]} threads' rate over one thread's (the GIL is "
        f"released in the kernels: close to {counts[-1]}x on {counts[-1]} free cores)",
    ])


def format_results(results, overhead, peers, settings, python_threads=()):
    """The table, its legend, the call-overhead and Python-threads sections and the
    errors met."""
    headers = ["op", "logits", "V", "B", "tokenpick us/row", "x floor",
               *(["x 1 thread"] if timed_at_one_thread(results) else []),
               *(f"{p.name} speedup" for p in peers)]
    notes = []
    table = format_table(headers, table_rows(results, peers, notes))
    legend = [
        "",
        f"us/row: median of {TOKENPICK.repeats} repeats of >= {settings['min_time']:g} s "
        f"of calls, divided by B; the calls go in turn through batches of fresh rows, "
        f">= {POOL_BYTES >> 20} MiB of logits per case (at most {POOL_MAX_BATCHES} batches)",
        f"x floor: tokenpick time / {FLOOR.name}(x, axis=-1) time on the same rows",
        scaling_legend(results, settings),
        *(f"{p.name} speedup: {p.name} time / tokenpick time, per row ({p.name} "
          f"timed on {rows_phrase(p.max_rows)}, median of {p.repeats} repeats)"
          for p in peers),
        "",
        format_overhead(overhead, peers, settings, notes),
        *(["", format_python_threads(python_threads)] if python_threads else []),
    ]
    errors = ["", "errors:", *(f"  [{i}] {n}" for i, n in enumerate(notes, 1))] if notes else []
    return "\n".join([table, *legend, *errors])


# ----------------------------------------------------------------------------
# The plot

def agg_figure_factory():
    """A function making matplotlib figures drawn by the Agg backend.

    Raises ImportError without matplotlib: `run` calls it before timing anything.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def new_figure(**kwargs):
        figure = Figure(**kwargs)
        FigureCanvasAgg(figure)
        return figure
    return new_figure


def plot_panel(ax, results, peers):
    """Time per row against V for every library on one operation and kind of logits."""
    results = sorted(results, key=lambda r: r.V)
    vocabs = [r.V for r in results]
    for name in (TOKENPICK.name, *(p.name for p in peers), FLOOR.name):
        times = [r.timings[name].us_per_row for r in results]
        style = {"linestyle": "--", "color": "0.4"} if name == FLOOR.name else {}
        ax.plot(vocabs, [math.nan if t is None else t for t in times], marker="o", label=name,
                **style)
    ax.set(xscale="log", yscale="log")
    ax.set_xticks(vocabs, [f"{v:,}" for v in vocabs])
    ax.set_xticks([], minor=True)


def write_plot(path, new_figure, results, peers):
    """Save to `path` a PNG grid of `plot_panel`: operations by kinds of logits,
    at the smallest B of `results`."""
    B = min(r.B for r in results)
    kinds = list(dict.fromkeys(r.logits for r in results))
    figure = new_figure(figsize=(4.5 * len(kinds), 2.6 * len(OPS)), layout="constrained")
    axes = figure.subplots(len(OPS), len(kinds), squeeze=False, sharex=True)
    for row, op in zip(axes, OPS):
        for ax, kind in zip(row, kinds):
            plot_panel(ax, [r for r in results if (r.op, r.logits, r.B) == (op, kind, B)], peers)
            ax.set_title(f"{op.label}, {kind} logits", fontsize="medium")
    axes[0][0].legend(fontsize="small")
    figure.supxlabel("V (vocabulary size)")
    figure.supylabel("us per row (log scale)")
    figure.suptitle(f"tokenpick and its peers: time per row at B={B}, the smallest B of the run")
    figure.savefig(path, format="png", dpi=100)


# ----------------------------------------------------------------------------
# The command line

def positive_int(text):
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def positive_float(text):
    """argparse type: a finite number > 0."""
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def configure_parser(parser):
    """Add the benchmark's options to an argparse parser."""
    parser.add_argument("--full", action="store_true",
                        help="V in {32000, 128256, 262144} and B in {1, 8, 64} "
                             "(default: V=128256, B in {1, 8})")
    parser.add_argument("--vocab", "-V", type=positive_int, nargs="+", metavar="V",
                        help="vocabulary sizes to run (overrides the default or --full)")
    parser.add_argument("--batch", "-B", type=positive_int, nargs="+", metavar="B",
                        help="batch sizes to run (overrides the default or --full); from "
                             f"B={SCALING_MIN_BATCH} on, tokenpick is also timed at one thread")
    parser.add_argument("--logits", nargs="+", choices=LOGIT_KINDS, default=list(LOGIT_KINDS),
                        help="kinds of synthetic logits (default: both)")
    parser.add_argument("--threads", type=positive_int, metavar="N",
                        help="tokenpick.set_num_threads(N) before timing (default: its own)")
    parser.add_argument("--min-time", type=positive_float, metavar="SECONDS",
                        help=f"minimum duration of one timed repeat (default: {QUICK_MIN_TIME}, "
                             f"with --full {FULL_MIN_TIME}, as timeit's autorange)")
    parser.add_argument("--no-reference", action="store_true",
                        help="do not time the (slow) numpy reference")
    parser.add_argument("--no-torch", action="store_true",
                        help="do not time PyTorch (timed by default when it can be imported)")
    parser.add_argument("--json", metavar="FILE", help="also write all results to FILE as JSON")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="also draw time per row against V at the smallest B to FILE.png "
                             '(needs matplotlib: pip install "tokenpick[plot]")')
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    parser.epilog = ("Exit status 1 if some call raised (the table and --json say which) or "
                     "a file could not be written; 2 for a bad command line, or --plot "
                     "without matplotlib.")
    return parser


def settings_from(args):
    """The run's settings, from the parsed options."""
    full = args.full
    return {
        "vocabs": list(args.vocab or (FULL_VOCABS if full else QUICK_VOCABS)),
        "batches": list(args.batch or (FULL_BATCHES if full else QUICK_BATCHES)),
        "logits": list(dict.fromkeys(args.logits)),
        "min_time": args.min_time or (FULL_MIN_TIME if full else QUICK_MIN_TIME),
        "threads": args.threads,
    }


def write_json(path, env, settings, results, overhead, peers, python_threads=()):
    """Write the environment, the settings, every result, the call overhead and the
    Python threads' throughput to `path`."""
    one_thread = [ONE_THREAD] if timed_at_one_thread(results) else []
    document = {
        "environment": env,
        "settings": settings,
        "peers": [{"name": p.name, "repeats": p.repeats, "max_rows": p.max_rows,
                   "threads": p.threads}
                  for p in (TOKENPICK, *one_thread, FLOOR, *peers)],
        "results": [r.to_json(peers) for r in results],
        "overhead": [r.to_json(peers) for r in overhead],
        "python_threads": list(python_threads),
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1, default=str)
        f.write("\n")


def save(what, write, path, *args):
    """Call ``write(path, *args)`` and say so; return whether it worked (an OSError is reported)."""
    try:
        write(path, *args)
    except OSError as exc:
        print(f"error: cannot write {path}: {exc}", file=sys.stderr)
        return False
    print(f"\n{what} written to {path}")
    return True


def timed_results(settings, peers, quiet):
    """Run every case, then the call overhead's and the Python threads', with progress
    on stderr unless `quiet`.

    Returns
    -------
    results, overhead : list of Result
    python_threads : list of dict (see `time_python_threads`)
    """
    progress = Progress(count_steps(settings, peers), enabled=not quiet)
    try:
        return (run_cases(settings, peers, progress), time_overhead(settings, peers, progress),
                time_python_threads(settings, progress))
    finally:
        progress.close()


def run(args):
    """Run the benchmark for parsed options.

    Returns
    -------
    int
        Exit status: 0; 1 if some call raised (the table says which) or an
        output file could not be written; 2 if ``--plot`` is given without
        matplotlib (found out before anything is timed).
    """
    settings = settings_from(args)
    try:
        new_figure = agg_figure_factory() if args.plot else None
    except ImportError:
        print(PLOT_HINT, file=sys.stderr)
        return 2
    if settings["threads"] is not None:
        tokenpick.set_num_threads(settings["threads"])
    torch, torch_info = setup_torch(args)
    peers = comparison_peers(args, torch)
    env = environment(settings, torch_info)
    print(format_environment(env), end="\n\n", flush=True)

    results, overhead, python_threads = timed_results(settings, peers, args.quiet)
    print(format_results(results, overhead, peers, settings, python_threads))
    written = True
    if args.json:
        written = save("results", write_json, args.json, env, settings, results, overhead,
                       peers, python_threads) and written
    if args.plot:
        written = save("plot", write_plot, args.plot, new_figure, results, peers) and written
    raised = any(failed(r) for r in results + overhead) or any(
        entry["error"] for entry in python_threads)
    return 0 if written and not raised else 1


def failed(result):
    """Whether some call of `result` raised."""
    return any(m.error not in (None, "n/a") for m in result.timings.values())


def main(argv=None):
    """Entry point of ``python -m tokenpick bench``.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.
    """
    parser = configure_parser(argparse.ArgumentParser(
        prog="python -m tokenpick bench", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter))
    return run(parser.parse_args(argv))
