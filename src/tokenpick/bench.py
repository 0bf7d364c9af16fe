"""Benchmark tokenpick against its floor and its peers on synthetic logits.

``python -m tokenpick bench`` times the operations of tokenpick's speed targets
on built-in logits and prints one table row per (operation, logits, V, B):

* tokenpick us/row: median wall time of one call, divided by the rows;
* x floor: that time over ``np.max(x, axis=-1)`` on the same rows, the
  cost of merely reading them (the speed targets are stated in this ratio);
* <peer> speedup: a peer's time per row over tokenpick's.  The peer is
  ``tokenpick.reference``, the pure-numpy oracle; being slow, it is timed
  on one row with fewer repeats (its cost per row does not depend on B).

Two kinds of logits are generated with a fixed seed, row by row, so that the
first rows of a batch are the same for every B:

* ``peaked``: LM-like, ``2 * N(0, 1)`` plus a Zipf-like boost on a few hundred
  tokens, so that a handful of tokens hold most of the mass;
* ``flat``: ``N(0, 1)``, whose top-p nucleus holds most of the vocabulary.

Timing follows ``timeit``: the number of loops is found by the 1, 2, 5, 10, ...
search of ``timeit.Timer.autorange``, then the median of several repeats of
that many loops is kept.  The default run is quick (V = 128256, B = 1 and 8);
``--full`` covers V in {32000, 128256, 262144} and B in {1, 8, 64}.
"""

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import timeit
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

import tokenpick

from . import reference

SUMMARY = "time tokenpick against np.max (the floor) and the numpy reference"

QUICK_VOCABS = (128256,)
QUICK_BATCHES = (1, 8)
FULL_VOCABS = (32000, 128256, 262144)
FULL_BATCHES = (1, 8, 64)
LOGIT_KINDS = ("peaked", "flat")
QUICK_MIN_TIME = 0.02  # seconds per repeat; 0.2 is timeit.Timer.autorange's own
FULL_MIN_TIME = 0.2

DATA_SEED = 20240601
SAMPLE_SEED = 1234
PEAKED_HEAD = 300  # tokens boosted in "peaked" logits


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

OPS = (
    Op("greedy", "greedy"),
    Op("softmax", "softmax"),
    Op("sample T=0.8", "sample", _SAMPLING),
    Op("sample top_k=50", "sample", {**_SAMPLING, "top_k": 50}),
    Op("sample top_p=0.9", "sample", {**_SAMPLING, "top_p": 0.9}),
    Op("sample k=50 p=0.9 min_p=0.05", "sample",
       {**_SAMPLING, "top_k": 50, "top_p": 0.9, "min_p": 0.05}),
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
        on every row of the float32 ``(B, V)`` `logits`.  Conversions (to
        another library's tensors, say) belong in `bind`, outside the timing.
        It raises NotImplementedError for an operation the peer lacks.
    repeats : int
        Number of timed repeats; the median is kept.
    max_rows : int or None
        Time only this many leading rows (for slow peers); None for all.
    """

    name: str
    bind: Callable
    repeats: int
    max_rows: int | None = None


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


def comparison_peers(args):
    """The peers given a speedup column, in table order.

    Another library (PyTorch with HF-style warpers and ``torch.multinomial``,
    say) joins the benchmark as one more `Peer` here: its ``bind`` converts the
    logits once and returns the call, and its threads are pinned to tokenpick's.
    """
    return [] if args.no_reference else [REFERENCE]


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


def median_time(fn, repeats, min_time):
    """Median seconds per call of `fn` over `repeats` repeats, and the loops per repeat."""
    timer = timeit.Timer(fn)
    loops = autorange(timer, min_time)
    return statistics.median(timer.repeat(repeats, loops)) / loops, loops


def measure(peer, op, logits, min_time):
    """Time `peer` doing `op` on `logits` (its leading rows for a slow peer).

    Never raises for a failing operation: the error is recorded instead.

    Returns
    -------
    Measurement
    """
    rows = logits if peer.max_rows is None else logits[:peer.max_rows]
    try:
        seconds, loops = median_time(peer.bind(op, rows), peer.repeats, min_time)
    except NotImplementedError:
        return Measurement(rows=len(rows), error="n/a")
    except Exception as exc:  # report it in the table, keep benchmarking
        return Measurement(rows=len(rows), error=f"{type(exc).__name__}: {exc}")
    return Measurement(seconds * 1e6 / len(rows), len(rows), loops, peer.repeats)


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

    def ratio(self, numerator, denominator):
        """Time of peer `numerator` over time of peer `denominator`, or None."""
        top = self.timings[numerator].us_per_row
        bottom = self.timings[denominator].us_per_row
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
    """Yield ``(kind, logits)`` for every batch of logits of the run."""
    for V in settings["vocabs"]:
        for B in settings["batches"]:
            for kind in settings["logits"]:
                yield kind, make_logits(kind, V, B)


def time_case(op, kind, logits, peers, min_time, cache):
    """Time tokenpick, the floor and every peer doing `op` on `logits`.

    A measurement of a peer limited to the leading rows is looked up in, or
    added to, `cache`: those rows are the same for every B (see `make_logits`).

    Returns
    -------
    Result
    """
    B, V = logits.shape
    timings = {}
    for peer in (TOKENPICK, FLOOR, *peers):
        rows = B if peer.max_rows is None else min(B, peer.max_rows)
        key = (peer.name, op.label, kind, V, rows)
        if key not in cache:
            cache[key] = measure(peer, op, logits, min_time)
        timings[peer.name] = cache[key]
    return Result(op, kind, V, B, timings)


def run_cases(settings, peers, progress):
    """Time every operation on every batch of logits of the run.

    Returns
    -------
    list of Result
    """
    cache = {}
    results = []
    for kind, logits in batches(settings):
        B, V = logits.shape
        for op in OPS:
            progress.step(f"{op.label}, {kind} logits, V={V}, B={B}")
            results.append(time_case(op, kind, logits, peers, settings["min_time"], cache))
    return results


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


def environment():
    """Versions, SIMD path, thread settings and hardware, as a JSON-ready dict.

    ``config`` holds all of ``tokenpick.show_config(mode="dicts")``.
    """
    try:
        config = tokenpick.show_config(mode="dicts")
    except Exception as exc:  # a benchmark of a broken build still says what it ran
        config = {"error": f"{type(exc).__name__}: {exc}"}
    return {
        "tokenpick": config.get("version", getattr(tokenpick, "__version__", "unknown")),
        "simd": config.get("simd"),
        "simd_available": config.get("simd_available"),
        "num_threads": config.get("num_threads"),
        "compiler": config.get("compiler"),
        "numpy": np.__version__,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
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


def format_environment(env):
    """The header printed before the table."""
    return "\n".join([
        f"tokenpick {env['tokenpick']}, built with {describe(env['compiler'])}",
        f"  SIMD path: {describe(env['simd'])} (available: {describe(env['simd_available'])})",
        f"  threads:   {describe(env['num_threads'])}",
        f"numpy {env['numpy']}, {env['python']}",
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


def table_rows(results, peers, notes):
    """The cells of the table; errors become ``error [n]`` with their text added to `notes`."""
    def cell(result, name, text):
        error = result.timings[name].error
        if error is None:
            return text
        if error == "n/a":
            return error
        notes.append(f"{result.op.label}, {result.logits} logits, V={result.V}, "
                     f"B={result.B}: {name} raised {error.splitlines()[0]}")
        return f"error [{len(notes)}]"

    rows = []
    for r in results:
        tp = r.timings[TOKENPICK.name].us_per_row
        rows.append([
            r.op.label, r.logits, f"{r.V}", f"{r.B}",
            cell(r, TOKENPICK.name, format_us(tp) if tp is not None else "-"),
            cell(r, FLOOR.name, format_ratio(r.ratio(TOKENPICK.name, FLOOR.name))),
            *(cell(r, p.name, format_ratio(r.ratio(p.name, TOKENPICK.name))) for p in peers),
        ])
    return rows


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


def format_results(results, peers, settings):
    """The table, its legend and the errors met."""
    headers = ["op", "logits", "V", "B", "tokenpick us/row", "x floor",
               *(f"{p.name} speedup" for p in peers)]
    notes = []
    table = format_table(headers, table_rows(results, peers, notes))
    legend = [
        "",
        f"us/row: median of {TOKENPICK.repeats} repeats of >= {settings['min_time']:g} s "
        "of calls, divided by B",
        f"x floor: tokenpick time / {FLOOR.name}(x, axis=-1) time on the same rows",
        *(f"{p.name} speedup: {p.name} time / tokenpick time, per row ({p.name} "
          f"timed on {rows_phrase(p.max_rows)}, median of {p.repeats} repeats)"
          for p in peers),
    ]
    errors = ["", "errors:", *(f"  [{i}] {n}" for i, n in enumerate(notes, 1))] if notes else []
    return "\n".join([table, *legend, *errors])


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
                        help="batch sizes to run (overrides the default or --full)")
    parser.add_argument("--logits", nargs="+", choices=LOGIT_KINDS, default=list(LOGIT_KINDS),
                        help="kinds of synthetic logits (default: both)")
    parser.add_argument("--threads", type=positive_int, metavar="N",
                        help="tokenpick.set_num_threads(N) before timing (default: its own)")
    parser.add_argument("--min-time", type=positive_float, metavar="SECONDS",
                        help=f"minimum duration of one timed repeat (default: {QUICK_MIN_TIME}, "
                             f"with --full {FULL_MIN_TIME}, as timeit's autorange)")
    parser.add_argument("--no-reference", action="store_true",
                        help="do not time the (slow) numpy reference")
    parser.add_argument("--json", metavar="FILE", help="also write all results to FILE as JSON")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    parser.epilog = "Exit status 1 if some call raised; the table and --json say which."
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


def write_json(path, env, settings, results, peers):
    """Write the environment, the settings and every result to `path`."""
    document = {
        "environment": env,
        "settings": settings,
        "peers": [{"name": p.name, "repeats": p.repeats, "max_rows": p.max_rows}
                  for p in (TOKENPICK, FLOOR, *peers)],
        "results": [r.to_json(peers) for r in results],
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1, default=str)
        f.write("\n")


def run(args):
    """Run the benchmark for parsed options.

    Returns
    -------
    int
        Exit status: 0, or 1 if some call raised (the table says which) or
        the JSON file could not be written.
    """
    settings = settings_from(args)
    if settings["threads"] is not None:
        tokenpick.set_num_threads(settings["threads"])
    peers = comparison_peers(args)
    env = environment()
    print(format_environment(env), end="\n\n", flush=True)

    total = len(settings["vocabs"]) * len(settings["batches"]) * len(settings["logits"]) * len(OPS)
    progress = Progress(total, enabled=not args.quiet)
    try:
        results = run_cases(settings, peers, progress)
    finally:
        progress.close()
    print(format_results(results, peers, settings))
    if args.json:
        try:
            write_json(args.json, env, settings, results, peers)
        except OSError as exc:
            print(f"error: cannot write {args.json}: {exc}", file=sys.stderr)
            return 1
        print(f"\nresults written to {args.json}")
    return 1 if any(failed(r) for r in results) else 0


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
