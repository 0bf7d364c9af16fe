"""Timing: peers, the autorange-and-median loop, interleaved repeats, and the
four sections of a run (the table's cases, the call overhead, Python threads,
the logit processors)."""

import contextlib
import functools
import statistics
import threading
import time
import timeit
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np

import tokenpick

from .. import reference
from . import dtypes
from .cases import (
    KEPT_NONE,
    OPS,
    OVERHEAD_KIND,
    OVERHEAD_MIN_TIME,
    OVERHEAD_OPS,
    OVERHEAD_V,
    PROCESSOR_ROWS,
    PROCESSOR_SAMPLING,
    PROCESSORS_ALL,
    PROCESSORS_NONE,
    PY_THREADS_COUNTS,
    PY_THREADS_MIN_TIME,
    PY_THREADS_OPS,
    PY_THREADS_REPEATS,
    PY_THREADS_V,
    SCALING_MIN_BATCH,
    Op,
    cases,
    make_logits,
    make_pool,
    processor_cases,
    processor_pool,
    source_label,
)


@dataclass(frozen=True)
class Peer:
    """Something timed on the same logits as tokenpick.

    Attributes
    ----------
    name : str
        Name shown in the table and the JSON results.
    bind : callable
        ``bind(op, logits)`` returns a function of no arguments that does `op`
        on every row of the float32 ``(B, V)`` (or ``(V,)``) `logits`.
        Conversions that a caller would make once belong in `bind`, outside
        the timing.  It raises NotImplementedError for an operation the peer lacks.
    repeats : int
        Number of timed repeats; the median is kept.
    max_rows : int or None
        Time only this many leading rows (for slow peers); None for all.
    threads : int or None
        ``tokenpick.set_num_threads(threads)`` while it is timed, the run's
        count restored afterwards; None to time at the run's count.
    note : str
        How it is timed, for the table's legend, if not as tokenpick is.
    float32_only : bool
        It reads float32 only: with ``--dtype``, it gets the rows' float32 values.
    """

    name: str
    bind: Callable
    repeats: int
    max_rows: int | None = None
    threads: int | None = None
    note: str = ""
    float32_only: bool = False


# the rows of the processors section that time a Sampler step (x none: against KEPT_NONE)
_KEPT_LABELS = frozenset(row.label for row in PROCESSOR_ROWS if row.kept)


def bind_api(module):
    """A `Peer.bind` calling ``module.<op.func>(logits, **op.kwargs)``: tokenpick
    and its reference share names and signatures."""

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


def scaling_peers(B):
    """``[ONE_THREAD]`` if a batch of `B` rows is also timed at one thread (B >=
    `SCALING_MIN_BATCH` in a run of more than one thread), else ``[]``."""
    return [ONE_THREAD] if B >= SCALING_MIN_BATCH and tokenpick.get_num_threads() > 1 else []


@dataclass
class Measurement:
    """The timing of one peer on one case, or why there is none.

    `us_per_row` is the median time of one call in microseconds divided by
    `rows`; `loops` calls make a repeat.  `error` is ``"Type: message"`` if
    the call raised, ``"n/a"`` if the peer lacks the operation.
    """

    us_per_row: float | None = None
    rows: int = 0
    loops: int = 0
    repeats: int = 0
    error: str | None = None


def autorange(timer, min_time):
    """How many loops of `timer` take at least `min_time` seconds: the 1, 2, 5,
    10, 20, 50, ... search of ``timeit.Timer.autorange``, whose own target is
    fixed at 0.2 s (a smaller one keeps the quick run quick)."""
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
    """Time `peer` doing `op` on each batch of `pool` in turn (a 1-D row counts as
    one row; a slow peer gets only `Peer.max_rows` leading rows of the first).
    A failing operation is recorded, never raised.  Returns a `Measurement`."""
    return measure_interleaved([peer], op, pool, min_time)[peer.name]


def _failed(exc, rows):
    """The Measurement of a call that raised `exc`."""
    if isinstance(exc, NotImplementedError):
        return Measurement(rows=rows, error="n/a")
    return Measurement(rows=rows, error=f"{type(exc).__name__}: {exc}")


def measure_interleaved(peers, op, pool, min_time):
    """`measure` for each of `peers`, with their repeats taken in turn: one of
    each, then the next (`measure_calls`).  Returns a dict: peer name -> `Measurement`."""
    lines = []
    for peer in peers:
        batches = pool
        if peer.max_rows is not None:
            batches = [pool[0] if pool[0].ndim == 1 else pool[0][: peer.max_rows]]
        lines.append(
            Calls(
                peer.name,
                functools.partial(_bind_batches, peer, op, batches),
                rows=1 if batches[0].ndim == 1 else len(batches[0]),
                repeats=peer.repeats,
                threads=peer.threads,
            )
        )
    return measure_calls(lines, min_time)


def _bind_batches(peer, op, batches):
    """`peer`'s calls doing `op` on each of `batches`."""
    return [peer.bind(op, batch) for batch in batches]


@dataclass(frozen=True)
class Calls:
    """One line of calls for `measure_calls`: a loop calls each function that
    ``bind()`` returns once, in turn; each call does `rows` rows.  `reset`, if
    given, is called before each timed repeat, outside the timing (calls that
    change state, such as a Sampler's steps, then start each repeat alike)."""

    name: str
    bind: Callable
    rows: int
    repeats: int
    threads: int | None = None
    reset: Callable | None = None


def measure_calls(lines, min_time):
    """Time each of `lines` (`Calls`), their repeats taken in turn: one of each,
    then the next, each at its own thread count.

    A change in the machine's speed while they are timed (another process taking
    a core, a clock change) then weighs on all alike, so that the ratio of their
    times is not skewed by when each happened to run: tokenpick at two thread
    counts, or one call with and without logit processors.  A line whose calls
    raise is recorded, never raised.  Returns a dict: name -> `Measurement`.
    """
    timed, results = [], {}
    for line in lines:
        try:
            with tokenpick_threads(line.threads):
                fns = line.bind()
                timer = calls_timer(fns)
                loops = autorange(timer, min_time)
        except Exception as exc:  # report it in the table, keep benchmarking
            results[line.name] = _failed(exc, line.rows)
            continue
        timed.append((line, timer, loops, len(fns), []))
    for r in range(max((line.repeats for line, *_ in timed), default=0)):
        for line, timer, loops, _, seconds in timed:
            if r < line.repeats and line.name not in results:
                try:
                    with tokenpick_threads(line.threads):
                        if line.reset is not None:
                            line.reset()
                        seconds.append(timer.timeit(loops))
                except Exception as exc:
                    results[line.name] = _failed(exc, line.rows)
    for line, _, loops, calls, seconds in timed:
        if line.name not in results:
            per_call = statistics.median(seconds) / (loops * calls)
            results[line.name] = Measurement(
                per_call * 1e6 / line.rows, line.rows, loops, line.repeats
            )
    return results


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
        top, bottom = self.us_per_row(numerator), self.us_per_row(denominator)
        if top is None or bottom is None or bottom == 0:
            return None
        return top / bottom

    def failed(self):
        """Whether some call raised."""
        return any(m.error not in (None, "n/a") for m in self.timings.values())

    def to_json(self, peers):
        """The result as a JSON-ready dict."""
        return {
            "op": self.op.label,
            "func": self.op.func,
            "kwargs": self.op.kwargs,
            "logits": self.logits,
            "V": self.V,
            "B": self.B,
            "timings": {name: asdict(m) for name, m in self.timings.items()},
            "x_floor": self.ratio(TOKENPICK.name, FLOOR.name),
            "x_1_thread": self.ratio(ONE_THREAD.name, TOKENPICK.name),
            "x_float32": self.ratio(TOKENPICK.name, dtypes.FLOAT32_NAME),
            "speedup": {p.name: self.ratio(p.name, TOKENPICK.name) for p in peers},
        }


# ----------------------------------------------------------------------------
# The sections of a run


def time_case(op, kind, pool, peers, min_time, cache, progress, dtype="float32"):
    """Time tokenpick (also at one thread for a large batch, the two interleaved),
    the floor and every peer doing `op` on each batch of `pool` in turn; with a
    `dtype` other than float32, on the rows rounded to it (`dtypes`), and tokenpick
    on their float32 values too, the two interleaved.

    Each peer's timing is one step of `progress`.  A measurement of a peer
    limited to the leading rows is looked up in, or added to, `cache`: those
    rows are the same for every B (see `cases.make_pool`).  Returns a `Result`.
    """
    logits = pool[0]
    V = logits.shape[-1]
    B = 1 if logits.ndim == 1 else len(logits)
    rows_text = f"B={B}" if logits.ndim == 2 else "one 1-D row"
    timings = {}
    main, scaling, floor = TOKENPICK, scaling_peers(B), FLOOR
    if dtype != "float32":
        main = dtypes.on_rows(TOKENPICK, dtype)
        scaling = [
            *(dtypes.on_rows(p, dtype) for p in scaling),
            dtypes.on_widened(TOKENPICK, dtype, dtypes.FLOAT32_NAME),
        ]
        floor = dtypes.on_widened(FLOOR, dtype)
        peers = [
            dtypes.on_widened(p, dtype) if p.float32_only else dtypes.on_rows(p, dtype)
            for p in peers
        ]
    for peer in (main, *scaling, floor, *peers):
        rows = B if peer.max_rows is None else min(B, peer.max_rows)
        key = (peer.name, op.label, kind, V, rows)
        if peer is main and scaling:  # timed with the scaling peers, in turn
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


def run_cases(settings, sources, peers, progress):
    """Time every operation on every case of the run (`cases.cases`): a list of `Result`."""
    cache = {}
    return [
        time_case(
            op,
            source_label(source),
            make_pool(source, V, B),
            peers,
            settings["min_time"],
            cache,
            progress,
            settings.get("dtype", "float32"),
        )
        for V, B, source in cases(settings, sources)
        for op in OPS
    ]


def overhead_min_time(settings):
    """A repeat of the call overhead: `OVERHEAD_MIN_TIME`, or ``--min-time`` if less."""
    return min(settings["min_time"], OVERHEAD_MIN_TIME)


def time_overhead(settings, peers, progress):
    """Time the calls of `OVERHEAD_OPS` on one 1-D row of `OVERHEAD_V` logits."""
    row = make_logits(OVERHEAD_KIND, OVERHEAD_V, 1)[0]
    return [
        time_case(op, OVERHEAD_KIND, [row], peers, overhead_min_time(settings), {}, progress)
        for op in OVERHEAD_OPS
    ]


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
    """Throughput of `PY_THREADS_OPS` made by 1 and 2 Python threads at once, tokenpick's
    own threads set to one: per op a dict of its label, V, and the calls per second
    (median of the repeats) per thread count, or the error met."""
    row = make_logits(OVERHEAD_KIND, PY_THREADS_V, 1)[0]
    min_time = min(settings["min_time"], PY_THREADS_MIN_TIME)
    sections = []
    for op in PY_THREADS_OPS:
        call = functools.partial(getattr(tokenpick, op.func), row, **op.kwargs)
        entry = {
            "op": op.label,
            "V": PY_THREADS_V,
            "logits": OVERHEAD_KIND,
            "calls_per_second": {},
            "error": None,
        }
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


def count_steps(settings, sources, peers):
    """Number of timings of the run: one per peer (with tokenpick, at one thread too
    for a large batch, and the floor) and case, the two other sections' included."""
    half = settings.get("dtype", "float32") != "float32"  # tokenpick on float32 values too
    main = sum(
        len(OPS) * (2 + half + len(scaling_peers(B)) + len(peers))
        for _, B, _ in cases(settings, sources)
    )
    return (
        main + len(OVERHEAD_OPS) * (2 + len(peers)) + len(PY_THREADS_OPS) * len(PY_THREADS_COUNTS)
    )


# ----------------------------------------------------------------------------
# The logit-processors section

BITMASK_INPLACE = "bitmask in place"  # the label of process_logits(x, token_bitmask, out=x)


def processors_absent(settings):
    """Why the logit-processors section is not timed (``--no-processors``), or
    None if it is."""
    if settings["processors"] is None:
        return "not timed (--no-processors)"
    return None


@dataclass
class ProcessorsResult:
    """All measurements of one case (V, B) of the logit-processors section.

    `sample` maps the label of each `cases.PROCESSOR_ROWS` row to tokenpick's
    `Measurement`, their repeats interleaved; `torch` is PyTorch's with every
    processor (None if not timed); `inplace` maps ``"tokenpick"`` and, if timed,
    ``"xgrammar"`` to the in-place bitmask's, their repeats interleaved.
    """

    V: int
    B: int
    sample: dict
    torch: Measurement | None
    inplace: dict

    def x_none(self, label):
        """Time of row `label` over the time of the same call without processors, or None
        (a Sampler's step over its step without them)."""
        none = KEPT_NONE if label in _KEPT_LABELS else PROCESSORS_NONE
        return _ratio(self.sample.get(label), self.sample.get(none.label))

    def torch_speedup(self):
        """PyTorch's time over tokenpick's, both with every processor, or None."""
        return _ratio(self.torch, self.sample.get(PROCESSORS_ALL.label))

    def xgrammar_speedup(self):
        """xgrammar's time over tokenpick's for the in-place bitmask, or None."""
        return _ratio(self.inplace.get("xgrammar"), self.inplace.get(TOKENPICK.name))

    def measurements(self):
        """Every measurement of the case."""
        torch = [] if self.torch is None else [self.torch]
        return [*self.sample.values(), *torch, *self.inplace.values()]

    def failed(self):
        """Whether some call raised."""
        return any(m.error not in (None, "n/a") for m in self.measurements())

    def to_json(self):
        """The case as a JSON-ready dict."""
        return {
            "V": self.V,
            "B": self.B,
            "sample": {
                label: {**asdict(m), "x_none": self.x_none(label)}
                for label, m in self.sample.items()
            },
            "torch": asdict(self.torch) if self.torch else None,
            "torch_speedup": self.torch_speedup(),
            "bitmask_inplace": {name: asdict(m) for name, m in self.inplace.items()},
            "xgrammar_speedup": self.xgrammar_speedup(),
        }


def _ratio(top, bottom):
    """``top.us_per_row / bottom.us_per_row`` of two Measurements, or None."""
    if top is None or bottom is None or top.us_per_row is None or not bottom.us_per_row:
        return None
    return top.us_per_row / bottom.us_per_row


def _bind_each(peer, ops, batches):
    """`peer`'s calls doing ``ops[j]`` on ``batches[j]``, for each j."""
    return [peer.bind(op, batch) for op, batch in zip(ops, batches)]


def _calls(name, peer, ops, batches):
    """The `Calls` of `peer` doing ``ops[j]`` on ``batches[j]`` in turn, shown as `name`."""
    return Calls(
        name,
        functools.partial(_bind_each, peer, ops, batches),
        rows=len(batches[0]),
        repeats=peer.repeats,
        threads=peer.threads,
    )


def sample_ops(row, inputs):
    """The sample call of `row` (a `cases.ProcessorRow`) for each batch's `inputs`
    (a Sampler's step for a kept row: `bind_step`)."""
    return [
        Op(row.label, "step" if row.kept else "sample",
           {**PROCESSOR_SAMPLING, **batch.kwargs(row.parts)})
        for batch in inputs
    ]  # fmt: skip


def bind_step(op, logits):
    """For a kept row of the processors section: a ``tokenpick.Sampler`` whose B
    requests hold `op`'s processors for the rows of `logits` (each its penalties,
    prompt and bias, and its output so far, resumed), and a call of its step on them
    with the op's bitmask.  Each step adds a token to every output."""
    kw = dict(op.kwargs)
    bitmask = kw.pop("token_bitmask", None)
    kw.pop("offset")
    seed = kw.pop("seed")
    prompts, outputs = kw.pop("prompt_ids", None), kw.pop("output_ids", None)
    B = logits.shape[0]
    sampler = tokenpick.Sampler(logits.shape[1])
    for i in range(B):
        rows = {} if prompts is None else {"prompt_ids": prompts[i], "output_ids": outputs[i]}
        sampler.add(i, **kw, **rows, seed=seed + i)
    return functools.partial(sampler.step, logits, list(range(B)), token_bitmask=bitmask)


class KeptSteps:
    """The `Calls` of a kept row: `bind_step`'s Sampler steps on each batch, their
    requests made anew (their histories as they started) before each repeat, so that
    the repeats' outputs grow by a few tokens, not by every step of the run."""

    def __init__(self, name, ops, batches):
        self.ops, self.batches = ops, batches
        self.reset()
        self.line = Calls(name, self.bind, len(batches[0]), TOKENPICK.repeats, reset=self.reset)

    def reset(self):
        self.steps = [bind_step(op, x) for op, x in zip(self.ops, self.batches)]

    def bind(self):
        return [functools.partial(self.step, j) for j in range(len(self.batches))]

    def step(self, j):
        return self.steps[j]()


def processor_lines(inputs, pool):
    """The `Calls` of every row of the processors section (`cases.PROCESSOR_ROWS`)."""
    return [
        KeptSteps(row.label, sample_ops(row, inputs), pool).line
        if row.kept
        else _calls(row.label, TOKENPICK, sample_ops(row, inputs), pool)
        for row in PROCESSOR_ROWS
    ]


def time_processor_case(V, B, torch_peer, xgrammar_peer, min_time, progress):
    """Time one case of the logit-processors section: a `ProcessorsResult`.

    tokenpick's sample call without and with each set of processors, their
    repeats interleaved; PyTorch's pipeline with every processor; then, on a copy
    of the rows (they are masked in place), ``process_logits(x, token_bitmask=half,
    out=x)`` and xgrammar's in-place bitmask, interleaved.  Masking rows already
    masked by the same bitmask is the same work again, so every repeat does the
    same.  Three steps of `progress` (two without PyTorch).
    """
    pool, inputs = processor_pool(V, B)
    where = f"V={V}, B={B}"
    progress.step(f"tokenpick, rows interleaved: sample with and without processors, {where}")
    sample = measure_calls(processor_lines(inputs, pool), min_time)
    torch = None
    if torch_peer is not None:
        progress.step(f"{torch_peer.name}: sample with every processor, {where}")
        ops = sample_ops(PROCESSORS_ALL, inputs)
        torch = measure_calls([_calls(torch_peer.name, torch_peer, ops, pool)], min_time)
        torch = torch[torch_peer.name]
    masked = [batch.copy() for batch in pool]
    ops = [
        Op(BITMASK_INPLACE, "process_logits", {"token_bitmask": batch.half_bitmask, "out": x})
        for batch, x in zip(inputs, masked)
    ]
    peers = [TOKENPICK, *([xgrammar_peer] if xgrammar_peer is not None else [])]
    progress.step(f"{', '.join(p.name for p in peers)} interleaved: {BITMASK_INPLACE}, {where}")
    inplace = measure_calls([_calls(p.name, p, ops, masked) for p in peers], min_time)
    return ProcessorsResult(V, B, sample, torch, inplace)


def time_processors(settings, torch_peer, xgrammar_peer, progress):
    """Time every case of the logit-processors section (`cases.processor_cases`):
    a list of `ProcessorsResult`, empty if the section is not timed."""
    if processors_absent(settings):
        return []
    return [
        time_processor_case(V, B, torch_peer, xgrammar_peer, settings["min_time"], progress)
        for V, B in processor_cases(settings)
    ]


def count_processor_steps(settings, torch_peer):
    """Number of timings of the logit-processors section (`time_processor_case`)."""
    if processors_absent(settings):
        return 0
    return len(list(processor_cases(settings))) * (3 if torch_peer is not None else 2)
