"""The command line of ``python -m tokenpick bench``: options, settings, the run."""

import argparse
import os
import sys

import tokenpick

from . import dtypes, filters, plot, report, sampler, timing, verify
from .cases import (
    GRIDS,
    LOGIT_KINDS,
    PROCESSOR_GRIDS,
    SCALING_MIN_BATCH,
    SavedRows,
    logits_source,
    source_label,
)
from .dtypes import DTYPES
from .peer_llama import setup_llama
from .peer_torch import setup_torch
from .peer_xgrammar import setup_xgrammar

SUMMARY = (
    "time tokenpick against np.max (the floor), the numpy reference, PyTorch, llama.cpp "
    "and xgrammar"
)


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
    quick, full = GRIDS["quick"], GRIDS["full"]
    proc_quick, proc_full = PROCESSOR_GRIDS["quick"], PROCESSOR_GRIDS["full"]

    def braced(values):
        return "{" + ", ".join(map(str, values)) + "}"

    parser.add_argument(
        "--full",
        action="store_true",
        help=f"V in {braced(full['vocabs'])} and B in {braced(full['batches'])}, "
        f"the logit processors at V in {braced(proc_full['vocabs'])} and B in "
        f"{braced(proc_full['batches'])} (default: V in {braced(quick['vocabs'])}, B in "
        f"{braced(quick['batches'])}; the processors at V in "
        f"{braced(proc_quick['vocabs'])}, B in {braced(proc_quick['batches'])})",
    )
    parser.add_argument(
        "--vocab",
        "-V",
        type=positive_int,
        nargs="+",
        metavar="V",
        help="vocabulary sizes of the synthetic logits (overrides the default or --full, "
        "for the logit processors too)",
    )
    parser.add_argument(
        "--batch",
        "-B",
        type=positive_int,
        nargs="+",
        metavar="B",
        help="batch sizes to run (overrides the default or --full, for the logit "
        f"processors too); from B={SCALING_MIN_BATCH} on, tokenpick is also timed at "
        "one thread",
    )
    parser.add_argument(
        "--logits",
        nargs="+",
        type=logits_source,
        action=LogitsAction,
        default=list(LOGIT_KINDS),
        metavar="KIND|FILE.npy",
        help=f"kinds of synthetic logits ({', '.join(LOGIT_KINDS)}; default: "
        "both) and/or .npy files of rows saved from a model, (B, V) or "
        "(V,) floats, timed at their own V and labelled by the file's stem",
    )
    parser.add_argument(
        "--dtype",
        choices=DTYPES,
        default="float32",
        help="the table's logits in this dtype, as a server passes them (torch tensors when "
        "torch can be imported, else numpy arrays; bfloat16 then needs ml_dtypes), beside "
        "tokenpick on the same values in float32 (x float32); the other sections stay "
        "float32 (default: float32)",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="tokenpick.set_num_threads(N) before timing (default: its own)",
    )
    parser.add_argument(
        "--min-time",
        type=positive_float,
        metavar="SECONDS",
        help="minimum duration of one timed repeat (default: "
        f"{quick['min_time']}, with --full {full['min_time']}, as "
        "timeit's autorange)",
    )
    parser.add_argument(
        "--no-reference", action="store_true", help="do not time the (slow) numpy reference"
    )
    parser.add_argument(
        "--no-torch",
        action="store_true",
        help="do not time PyTorch (timed by default when it can be imported)",
    )
    parser.add_argument(
        "--no-llama",
        action="store_true",
        help="do not time llama.cpp's sampler chain (timed by default when "
        "llama-cpp-python can be imported)",
    )
    parser.add_argument(
        "--no-processors",
        action="store_true",
        help="do not time the logit-processors section (sample with a history's "
        "penalties, logit biases and grammar bitmasks)",
    )
    parser.add_argument(
        "--only-processors",
        action="store_true",
        help="time the logit-processors section alone (its grid: --full's, or --vocab and --batch)",
    )
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="do not time the speculative-decoding section (verify of K=4 drafts against "
        "sample on the same rows and against PyTorch)",
    )
    parser.add_argument(
        "--only-verify",
        action="store_true",
        help="time the speculative-decoding section alone (its grid: --full's, or --vocab "
        "and --batch)",
    )
    parser.add_argument(
        "--no-filters",
        action="store_true",
        help="do not time the filters section (each filter and order= against the base "
        "call, HF's warpers and llama.cpp's chain)",
    )
    parser.add_argument(
        "--only-filters",
        action="store_true",
        help="time the filters section alone (its grid: --full's, or --vocab and --batch)",
    )
    parser.add_argument(
        "--no-sampler",
        action="store_true",
        help="do not time the Sampler section (a decoding loop's step against the sample "
        "call it makes)",
    )
    parser.add_argument(
        "--only-sampler",
        action="store_true",
        help="time the Sampler section alone (its grid: --full's, or --vocab and --batch)",
    )
    parser.add_argument(
        "--no-xgrammar",
        action="store_true",
        help="do not time xgrammar's in-place bitmask in the logit-processors section "
        "(timed by default when xgrammar can be imported)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write all results to FILE as JSON")
    parser.add_argument(
        "--plot",
        metavar="FILE.png",
        help="also draw time per row against V at the smallest B to FILE.png "
        '(needs matplotlib: pip install "tokenpick[plot]")',
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    parser.epilog = (
        "Exit status 1 if some call raised (the table and --json say which) or "
        "a file could not be written; 2 for a bad command line (a bad --logits "
        "file included), --plot without matplotlib, or --dtype bfloat16 with neither "
        "torch nor ml_dtypes."
    )
    return parser


class LogitsAction(argparse.Action):
    """``--logits``: its sources of logits, each once; two that differ but share a
    label (``a/rows.npy`` and ``b/rows.npy``) are a bad command line."""

    def __call__(self, parser, namespace, values, option_string=None):
        by_label = {}
        for source in values:
            label = source_label(source)
            same = by_label.setdefault(label, source)
            if _identity(same) != _identity(source):
                raise argparse.ArgumentError(
                    self, f"two kinds of logits would be labelled {label!r}: rename a file"
                )
        setattr(namespace, self.dest, list(by_label.values()))


def _identity(source):
    """What makes two sources of logits the same: the kind's name, or the file."""
    return os.path.realpath(source.path) if isinstance(source, SavedRows) else source


def settings_from(args):
    """The run's settings (JSON-ready), from the parsed options."""
    grid = GRIDS["full" if args.full else "quick"]
    processors = PROCESSOR_GRIDS["full" if args.full else "quick"]
    spec = verify.VERIFY_GRIDS["full" if args.full else "quick"]
    kept = filters.FILTER_GRIDS["full" if args.full else "quick"]
    stepped = sampler.SAMPLER_GRIDS["full" if args.full else "quick"]
    alone = alone_section(args)
    sources = args.logits
    return {
        "vocabs": list(args.vocab or grid["vocabs"]),
        "batches": list(args.batch or grid["batches"]),
        "logits": [source_label(s) for s in sources],
        "files": {s.label: s.describe() for s in sources if isinstance(s, SavedRows)},
        "min_time": args.min_time or grid["min_time"],
        "dtype": args.dtype,
        "threads": args.threads,
        "processors": None
        if args.no_processors or args.only_verify or args.only_filters or args.only_sampler
        else {
            "vocabs": list(args.vocab or processors["vocabs"]),
            "batches": list(args.batch or processors["batches"]),
        },
        "verify": None
        if args.no_verify or args.only_processors or args.only_filters or args.only_sampler
        else {
            "vocabs": list(args.vocab or spec["vocabs"]),
            "batches": list(args.batch or spec["batches"]),
        },
        "filters": None
        if args.no_filters or (alone and not args.only_filters)
        else {
            "vocabs": list(args.vocab or kept["vocabs"]),
            "batches": list(args.batch or kept["batches"]),
        },
        "sampler": None
        if args.no_sampler or (alone and not args.only_sampler)
        else {
            "vocabs": list(args.vocab or stepped["vocabs"]),
            "batches": list(args.batch or stepped["batches"]),
        },
    }


def timed_results(settings, sources, peers, processor_peers, quiet):
    """Run every case, then the call overhead's, the Python threads' and the logit
    processors' (`processor_peers`: PyTorch's and xgrammar's peers, or None), with
    progress on stderr unless `quiet`: ``(results, overhead, python_threads, processors)``."""
    torch_peer, xgrammar_peer = processor_peers
    steps = timing.count_steps(settings, sources, peers)
    steps += timing.count_processor_steps(settings, torch_peer)
    progress = report.Progress(steps, enabled=not quiet)
    try:
        return (
            timing.run_cases(settings, sources, peers, progress),
            timing.time_overhead(settings, peers, progress),
            timing.time_python_threads(settings, progress),
            timing.time_processors(settings, torch_peer, xgrammar_peer, progress),
        )
    finally:
        progress.close()


def run(args):
    """Run the benchmark for parsed options; return the exit status: 0; 1 if some call
    raised (the table says which) or an output file could not be written; 2 if
    ``--plot`` is given without matplotlib (found out before anything is timed)."""
    sources = args.logits
    settings = settings_from(args)
    why = dtypes.check(args.dtype)
    if why is not None:
        print(why, file=sys.stderr)
        return 2
    try:
        new_figure = plot.agg_figure_factory() if args.plot else None
    except ImportError:
        print(plot.HINT, file=sys.stderr)
        return 2
    if settings["threads"] is not None:
        tokenpick.set_num_threads(settings["threads"])
    torch_peer, torch_info = setup_torch(args)  # first: it sets OMP_WAIT_POLICY
    llama_peer, llama_info = (
        (None, {"absent": "not timed (--only-processors, --only-verify or --only-sampler)"})
        if args.only_processors or args.only_verify or args.only_sampler
        else setup_llama(args)
    )
    if timing.processors_absent(settings):
        xgrammar_peer, xgrammar_info = None, {"absent": "not timed (no logit-processors section)"}
    else:
        xgrammar_peer, xgrammar_info = setup_xgrammar(args)
    peers = [
        *([] if args.no_reference else [timing.REFERENCE]),
        *(p for p in (torch_peer, llama_peer) if p is not None),
    ]
    env = report.environment(settings, torch_info, llama_info, xgrammar_info)
    print(report.format_environment(env), end="\n\n", flush=True)

    speculative, kept_sets, stepped = [], [], []
    if args.only_sampler:
        results, overhead, python_threads, peers, processors = [], [], [], [], []
        stepped = _time_sampler(settings, args)
        print(sampler.format_sampler(stepped))
    elif args.only_filters:
        results, overhead, python_threads, peers, processors = [], [], [], [], []
        kept_sets = _time_filters(settings, args)
        print(filters.format_filters(kept_sets))
    elif args.only_verify:
        results, overhead, python_threads, peers, processors = [], [], [], [], []
        progress = report.Progress(verify.count_verify_steps(settings), enabled=not args.quiet)
        try:
            speculative = verify.time_verify(settings, torch_peer, progress)
        finally:
            progress.close()
        print(verify.format_verify(speculative))
    elif args.only_processors:
        results, overhead, python_threads, peers = [], [], [], []
        progress = report.Progress(
            timing.count_processor_steps(settings, torch_peer), enabled=not args.quiet
        )
        try:
            processors = timing.time_processors(settings, torch_peer, xgrammar_peer, progress)
        finally:
            progress.close()
        print(report.format_processors_alone(processors, settings))
    else:
        results, overhead, python_threads, processors = timed_results(
            settings, sources, peers, (torch_peer, xgrammar_peer), args.quiet
        )
        print(report.format_results(results, overhead, peers, settings, python_threads, processors))
        progress = report.Progress(verify.count_verify_steps(settings), enabled=not args.quiet)
        try:
            speculative = verify.time_verify(settings, torch_peer, progress)
        finally:
            progress.close()
        print("\n" + verify.format_verify(speculative))
        kept_sets = _time_filters(settings, args)
        print("\n" + filters.format_filters(kept_sets))
        stepped = _time_sampler(settings, args)
        print("\n" + sampler.format_sampler(stepped))
    written = True
    if args.json:
        written = (
            report.save(
                "results",
                report.write_json,
                args.json,
                env,
                settings,
                results,
                overhead,
                peers,
                python_threads,
                processors,
                speculative,
                kept_sets,
                stepped,
            )
            and written
        )
    if args.plot and not alone_section(args):
        written = (
            report.save("plot", plot.write_plot, args.plot, new_figure, results, peers) and written
        )
    everything = results + overhead + processors + speculative + kept_sets + stepped
    raised = any(r.failed() for r in everything) or any(entry["error"] for entry in python_threads)
    return 0 if written and not raised else 1


def alone_section(args):
    """Whether one section is timed alone (--only-...)."""
    return args.only_processors or args.only_verify or args.only_filters or args.only_sampler


def _time_sampler(settings, args):
    """The Sampler section, its progress on stderr."""
    progress = report.Progress(sampler.count_sampler_steps(settings), enabled=not args.quiet)
    try:
        return sampler.time_sampler(settings, progress)
    finally:
        progress.close()


def _time_filters(settings, args):
    """The filters section (with HF's and llama.cpp's peers unless --no-torch and
    --no-llama say otherwise), its progress on stderr."""
    progress = report.Progress(filters.count_filter_steps(settings), enabled=not args.quiet)
    try:
        return filters.time_filters(settings, progress, args.no_torch, args.no_llama)
    finally:
        progress.close()


def main(argv=None):
    """Entry point of ``python -m tokenpick bench``: parse `argv` (default:
    ``sys.argv[1:]``), run, return the exit status."""
    from . import __doc__ as description

    parser = configure_parser(
        argparse.ArgumentParser(
            prog="python -m tokenpick bench",
            description=description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    return run(parser.parse_args(argv))
