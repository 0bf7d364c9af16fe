"""What a run prints and saves: the header, progress, the table and its legend,
the call-overhead, Python-threads and logit-processors sections, and the JSON
document."""

import json
import os
import platform
import sys

import numpy as np

import tokenpick

from .._config import usable_cores
from . import dtypes, peer_llama, peer_torch, peer_xgrammar
from .cases import (
    OVERHEAD_KIND,
    OVERHEAD_OFFSET,
    OVERHEAD_V,
    PENALTIES,
    POOL_BYTES,
    POOL_MAX_BATCHES,
    PROCESSOR_BIASES,
    PROCESSOR_KIND,
    PROCESSOR_NARROW,
    PROCESSOR_OUTPUT_LEN,
    PROCESSOR_PROMPT_LEN,
    PROCESSOR_ROWS,
    PROCESSOR_SAMPLING,
    PROCESSOR_ZIPF,
    PROCESSORS_ALL,
    PY_THREADS_COUNTS,
    PY_THREADS_REPEATS,
    PY_THREADS_V,
    SAMPLE_SEED,
    SCALING_MIN_BATCH,
)
from .dtypes import FLOAT32_NAME
from .timing import (
    BITMASK_INPLACE,
    FLOOR,
    ONE_THREAD,
    TOKENPICK,
    overhead_min_time,
    processors_absent,
)

# ----------------------------------------------------------------------------
# The header


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


def thread_source(threads):
    """Where tokenpick's thread count comes from: ``--threads``, the environment or its default."""
    if threads is not None:
        return f"--threads {threads}"
    if "TOKENPICK_NUM_THREADS" in os.environ:
        return f"TOKENPICK_NUM_THREADS={os.environ['TOKENPICK_NUM_THREADS']}"
    return "tokenpick's default"


def environment(settings, torch_info, llama_info, xgrammar_info=None):
    """Versions, SIMD path, thread settings and hardware, as a JSON-ready dict.

    ``config`` holds all of ``tokenpick.show_config(mode="dicts")``; ``torch``,
    ``llama_cpp`` and ``xgrammar`` are what the peers' setups said.
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
        "llama_cpp": llama_info,
        "xgrammar": xgrammar_info or {"absent": "not timed"},
        "cpu": cpu_model(),
        "cpus": usable_cores(),
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
    cap = f", capped by TOKENPICK_SIMD={env['simd_cap']}" if env["simd_cap"] else ""
    return "\n".join(
        [
            f"tokenpick {env['tokenpick']}, built with {describe(env['compiler'])}",
            f"  SIMD path: {describe(env['simd'])} "
            f"(available: {describe(env['simd_available'])}{cap})",
            f"  threads:   {describe(env['num_threads'])} (from {env['num_threads_from']})",
            f"numpy {env['numpy']}, {env['python']}",
            peer_torch.describe(env["torch"]),
            peer_llama.describe(env["llama_cpp"]),
            peer_xgrammar.describe(env["xgrammar"]),
            f"CPU: {env['cpu']} ({env['cpus']} usable CPUs, {env['machine']}, {env['system']})",
        ]
    )


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
        sys.stderr.write(f"\r\x1b[K{line}" if self.tty else line + "\n")
        sys.stderr.flush()

    def close(self):
        """Clear the progress line on a terminal."""
        if self.enabled and self.tty:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


# ----------------------------------------------------------------------------
# The table


def format_us(us):
    """Microseconds as ``0.69``, ``12.3`` or ``1,457``."""
    if us >= 1000:
        return f"{us:,.0f}"
    return f"{us:.2f}" if us < 10 else f"{us:.1f}"


def format_ratio(ratio, digits=1):
    """A ratio such as ``2.3x`` or ``1,250x`` (`digits` decimals below 100)."""
    if ratio is None:
        return "-"
    return f"{ratio:,.0f}x" if ratio >= 100 else f"{ratio:.{digits}f}x"


def cell(result, name, text, notes):
    """A table cell of peer `name`: `text`, ``n/a``, or if it raised ``error [n]``,
    its error added to `notes`."""
    error = result.timings[name].error
    if error is None:
        return text
    if error == "n/a":
        return error
    notes.append(
        f"{result.op.label}, {result.logits} logits, V={result.V}, "
        f"B={result.B}: {name} raised {error.splitlines()[0]}"
    )
    return f"error [{len(notes)}]"


def us_cell(result, name, notes):
    """The `cell` of peer `name`'s time per row."""
    us = result.us_per_row(name)
    return cell(result, name, format_us(us) if us is not None else "-", notes)


def ratio_cell(result, numerator, denominator, notes):
    """The `cell` of peer `numerator`'s time over `denominator`'s, blank where
    `numerator` was not timed."""
    if numerator not in result.timings:
        return ""
    return cell(result, numerator, format_ratio(result.ratio(numerator, denominator)), notes)


def timed_at_one_thread(results):
    """Whether some case of `results` was also timed at one thread."""
    return any(ONE_THREAD.name in r.timings for r in results)


def timed_in_float32(results):
    """Whether the cases of `results` were also timed on float32 values (``--dtype``)."""
    return any(FLOAT32_NAME in r.timings for r in results)


def table_rows(results, peers, notes):
    """The cells of the table; errors become ``error [n]`` with their text added to `notes`."""
    scaled = timed_at_one_thread(results)
    half = timed_in_float32(results)
    return [
        [
            r.op.label,
            r.logits,
            f"{r.V}",
            f"{r.B}",
            us_cell(r, TOKENPICK.name, notes),
            cell(r, FLOOR.name, format_ratio(r.ratio(TOKENPICK.name, FLOOR.name)), notes),
            *(
                [cell(r, FLOAT32_NAME, format_ratio(r.ratio(TOKENPICK.name, FLOAT32_NAME)), notes)]
                if half
                else []
            ),
            *([ratio_cell(r, ONE_THREAD.name, TOKENPICK.name, notes)] if scaled else []),
            *(ratio_cell(r, p.name, TOKENPICK.name, notes) for p in peers),
        ]
        for r in results
    ]


def dtype_legend(results, settings):
    """The legend's lines on ``--dtype``: how the rows are passed, and x float32."""
    dtype = settings.get("dtype", "float32")
    if dtype == "float32" or not timed_in_float32(results):
        return []
    return [
        f"dtype: the rows rounded to {dtype}, passed as {dtypes.describe(dtype)}; the floor "
        "and the peers that read float32 only get their float32 values",
        "x float32: tokenpick time / its time on the same values in float32, their repeats "
        "interleaved",
    ]


def format_table(headers, rows, left=2):
    """Align `rows` under `headers`: the first `left` columns left, the others right."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows)]

    def line(cells):
        return "  ".join(
            str(c).ljust(w) if i < left else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    return "\n".join([line(headers), line("-" * w for w in widths), *map(line, rows)])


def rows_phrase(max_rows):
    """``"all rows"``, ``"one row"`` or ``"the first 4 rows"``."""
    if max_rows is None:
        return "all rows"
    return "one row" if max_rows == 1 else f"the first {max_rows} rows"


def scaling_legend(results, settings):
    """The legend's line on "x 1 thread": what it is, or why it is not there."""
    if timed_at_one_thread(results):
        return (
            f"x 1 thread: tokenpick time with set_num_threads(1) / its time at "
            f"{tokenpick.get_num_threads()} threads, for B >= {SCALING_MIN_BATCH} "
            f"(their repeats interleaved)"
        )
    if max(settings["batches"]) < SCALING_MIN_BATCH:
        return (
            f"x 1 thread: timed for B >= {SCALING_MIN_BATCH} only "
            f"(--full, or --batch {SCALING_MIN_BATCH})"
        )
    return "x 1 thread: not timed, tokenpick runs 1 thread in this run (see --threads)"


def peer_legend(peer):
    """The legend's line on a peer's speedup column."""
    how = rows_phrase(peer.max_rows) + (f", {peer.note}" if peer.note else "")
    return (
        f"{peer.name} speedup: {peer.name} time / tokenpick time, per row ({peer.name} "
        f"timed on {how}, median of {peer.repeats} repeats)"
    )


def table_title(settings):
    """The line above the table: the logits it was timed on, synthetic or from files."""
    files = settings["files"]
    kinds = [label for label in settings["logits"] if label not in files]
    parts = [f"{', '.join(kinds)} (synthetic)"] if kinds else []
    parts += [
        f"{label}: the {entry['rows']} rows of {entry['path']} (V={entry['V']}), "
        f"in turn, cycled where the batches need more"
        for label, entry in files.items()
    ]
    return "Logits: " + "; ".join(parts)


def format_overhead(overhead, peers, settings, notes):
    """The call-overhead section: one row per call, us per call of every library."""
    names = [TOKENPICK.name, FLOOR.name, *(p.name for p in peers)]
    rows = [[r.op.label, *(us_cell(r, name, notes) for name in names)] for r in overhead]
    return "\n".join(
        [
            f"Call overhead: sample(x, seed={SAMPLE_SEED}, offset={OVERHEAD_OFFSET}) on one 1-D "
            f"float32 row, V={OVERHEAD_V}, {OVERHEAD_KIND} logits",
            "",
            format_table(["op", *(f"{name} us/call" for name in names)], rows, left=1),
            "",
            f"us/call: median time of one call, repeats as above, each of "
            f">= {overhead_min_time(settings):g} s of calls; {FLOOR.name}: np.max(x) of the row; "
            "others: the same sample call",
        ]
    )


def format_python_threads(sections):
    """The Python-threads section: calls per second at each thread count, and the gain."""
    counts = PY_THREADS_COUNTS
    rows = []
    for entry in sections:
        rates = entry["calls_per_second"]
        if entry["error"]:
            rows.append([entry["op"], *(["error"] * len(counts)), entry["error"]])
            continue
        rows.append(
            [
                entry["op"],
                *(f"{rates[n]:,.0f}" for n in counts),
                format_ratio(rates[counts[-1]] / rates[counts[0]]),
            ]
        )
    return "\n".join(
        [
            f"Python threads: each calls sample(x, seed={SAMPLE_SEED}) back to back on one 1-D "
            f"float32 row, V={PY_THREADS_V}, {OVERHEAD_KIND} logits; tokenpick's own threads: 1",
            "",
            format_table(
                [
                    "op",
                    *(f"{n} thread{'s' * (n > 1)} calls/s" for n in counts),
                    f"x {counts[0]} thread",
                ],
                rows,
                left=1,
            ),
            "",
            f"calls/s: all threads' calls per second, median of {PY_THREADS_REPEATS} repeats; "
            f"x {counts[0]} thread: {counts[-1]} threads' rate over one thread's (the GIL is "
            f"released in the kernels: close to {counts[-1]}x on {counts[-1]} free cores)",
        ]
    )


def format_results(results, overhead, peers, settings, python_threads=(), processors=()):
    """The table, its legend, the call-overhead, Python-threads and logit-processors
    sections and the errors met."""
    headers = [
        "op",
        "logits",
        "V",
        "B",
        "tokenpick us/row",
        "x floor",
        *(["x float32"] if timed_in_float32(results) else []),
        *(["x 1 thread"] if timed_at_one_thread(results) else []),
        *(f"{p.name} speedup" for p in peers),
    ]
    notes = []
    table = table_title(settings) + "\n" + format_table(headers, table_rows(results, peers, notes))
    legend = [
        "",
        f"us/row: median of {TOKENPICK.repeats} repeats of >= {settings['min_time']:g} s "
        f"of calls, divided by B; the calls go in turn through batches of fresh rows, "
        f">= {POOL_BYTES >> 20} MiB of logits per case (at most {POOL_MAX_BATCHES} batches)",
        f"x floor: tokenpick time / {FLOOR.name}(x, axis=-1) time on the same rows",
        *dtype_legend(results, settings),
        scaling_legend(results, settings),
        *map(peer_legend, peers),
        "",
        format_overhead(overhead, peers, settings, notes),
        *(["", format_python_threads(python_threads)] if python_threads else []),
        "",
        format_processors(processors, settings, notes),
    ]
    errors = ["", "errors:", *(f"  [{i}] {n}" for i, n in enumerate(notes, 1))] if notes else []
    return "\n".join([table, *legend, *errors])


# ----------------------------------------------------------------------------
# The logit-processors section


def processors_call():
    """The sample call of the logit-processors section, as text."""
    args = ", ".join(f"{k}={v}" for k, v in PROCESSOR_SAMPLING.items())
    return f"sample(x, {args}, <processors>)"


def processors_inputs():
    """What the processors of the section are, as JSON-ready text per part."""
    penalties = ", ".join(f"{k}={v}" for k, v in PENALTIES.items())
    return {
        "penalties": f"{penalties}; prompt_ids (B, {PROCESSOR_PROMPT_LEN}) and output_ids "
        f"(B, {PROCESSOR_OUTPUT_LEN}), int64, each row its own, ids drawn by a Zipf law of "
        f"exponent {PROCESSOR_ZIPF} (so that tokens recur)",
        "biases": f"logit_bias: one mapping for every row, {PROCESSOR_BIASES} tokens, "
        "about half of them negative, one -inf",
        "bitmask half": "token_bitmask (B, ceil(V/32)) int32 of random bits, about half the "
        "vocabulary allowed, each row its own",
        "bitmask narrow": f"token_bitmask (B, ceil(V/32)) int32 allowing {PROCESSOR_NARROW} "
        "tokens per row",
    }


def measured_cell(m, text, notes, where):
    """A cell of Measurement `m` (blank if None): `text`, ``n/a``, or if the call
    raised ``error [n]``, its error (``where: ...``) added to `notes`."""
    if m is None:
        return ""
    if m.error is None:
        return text
    if m.error == "n/a":
        return m.error
    notes.append(f"{where} raised {m.error.splitlines()[0]}")
    return f"error [{len(notes)}]"


def timed_cells(m, ratio, notes, where, digits=1):
    """A Measurement's two cells: its time per row and `ratio` (an error only in the
    first), with `digits` decimals."""
    if m is None or m.error is not None:
        return [measured_cell(m, "", notes, where), "n/a" if m and m.error == "n/a" else ""]
    return [format_us(m.us_per_row), format_ratio(ratio, digits)]


def processor_rows(processors, notes, with_torch):
    """The cells of the section's first table: one row per case and set of processors."""
    rows = []
    for r in processors:
        for row in PROCESSOR_ROWS:
            where = f"processors {row.label}, V={r.V}, B={r.B}: "
            m = r.sample[row.label]
            cells = [row.label, f"{r.V}", f"{r.B}"]
            cells += timed_cells(m, r.x_none(row.label), notes, where + "tokenpick", digits=2)
            if with_torch:
                torch = r.torch if row is PROCESSORS_ALL else None
                cells += timed_cells(torch, r.torch_speedup(), notes, where + "torch")
            rows.append(cells)
    return rows


def inplace_rows(processors, notes, with_xgrammar):
    """The cells of the in-place bitmask's table: one row per case."""
    rows = []
    for r in processors:
        where = f"{BITMASK_INPLACE}, V={r.V}, B={r.B}: "
        ours, theirs = r.inplace[TOKENPICK.name], r.inplace.get("xgrammar")
        cells = [f"{r.V}", f"{r.B}", timed_cells(ours, None, notes, where + "tokenpick")[0]]
        if with_xgrammar:
            cells += timed_cells(theirs, r.xgrammar_speedup(), notes, where + "xgrammar")
        rows.append(cells)
    return rows


def processors_legend(with_torch, settings):
    """The lines under the section's first table."""
    inputs = processors_inputs()
    legend = [
        f"us/row: median of {TOKENPICK.repeats} repeats of >= {settings['min_time']:g} s of "
        "calls, divided by B, the calls going in turn through batches of fresh rows, each "
        "batch with its own processors' arguments",
        f"penalties: {inputs['penalties']}",
        f"biases: {inputs['biases']}",
        f"bitmask half: {inputs['bitmask half']}; all: penalties + biases + bitmask half",
        f"bitmask {PROCESSOR_NARROW} tokens: {inputs['bitmask narrow']}",
        "x none: time / time of the same call without processors, their repeats interleaved "
        "(one of each row in turn)",
        "Sampler.step: a step of tokenpick.Sampler on the same rows, its B requests holding "
        "the processors (their tallies kept between steps; the outputs resumed with the same "
        "histories before each repeat, one token longer each step of it), x none against a "
        "step of requests without them",
    ]
    if with_torch:
        legend.append(
            "torch: the same step in PyTorch on the same rows, median of "
            f"{peer_torch.REPEATS} repeats: the bitmask unpacked with shifts and masked_fill, the "
            "biases with index_put_, vLLM's penalties on scatter_add_ counts, HF's top-k and "
            "top-p warpers, softmax and multinomial; speedup: its time / tokenpick's (all)"
        )
    return legend


def format_processors(processors, settings, notes):
    """The logit-processors section: tokenpick's sample call with and without the
    processors and PyTorch's pipeline, then the in-place bitmask against xgrammar."""
    absent = processors_absent(settings)
    if absent:
        return f"Logit processors: {absent}"
    with_torch = any(r.torch is not None for r in processors)
    with_xgrammar = any("xgrammar" in r.inplace for r in processors)
    headers = ["processors", "V", "B", "tokenpick us/row", "x none"]
    inplace_headers = ["V", "B", "tokenpick us/row"]
    if with_torch:
        headers += ["torch us/row", "torch speedup"]
    if with_xgrammar:
        inplace_headers += ["xgrammar us/row", "xgrammar speedup"]
        against = (
            " and xgrammar.apply_token_bitmask_inplace(x, bitmask) (its CPU kernel, one "
            "thread) on the same rows, their repeats interleaved"
        )
    else:
        against = " (xgrammar is not timed: see the header)"
    return "\n".join(
        [
            f"Logit processors: {processors_call()} on {PROCESSOR_KIND} logits, each row with "
            "its own history and bitmasks, as a server samples",
            "",
            format_table(headers, processor_rows(processors, notes, with_torch), left=1),
            "",
            *processors_legend(with_torch, settings),
            "",
            f"Bitmask in place: process_logits(x, token_bitmask=<bitmask half>, out=x){against}",
            "",
            format_table(inplace_headers, inplace_rows(processors, notes, with_xgrammar), left=0),
        ]
    )


def format_processors_alone(processors, settings):
    """The logit-processors section on its own (``--only-processors``), with its errors."""
    notes = []
    section = format_processors(processors, settings, notes)
    errors = ["", "errors:", *(f"  [{i}] {n}" for i, n in enumerate(notes, 1))] if notes else []
    return "\n".join([section, *errors])


def processors_json(settings, processors):
    """The logit-processors section as a JSON-ready dict."""
    absent = processors_absent(settings)
    if absent:
        return {"absent": absent}
    return {
        "call": processors_call(),
        "logits": PROCESSOR_KIND,
        "rows": {row.label: list(row.parts) for row in PROCESSOR_ROWS},
        "inputs": processors_inputs(),
        "cases": [r.to_json() for r in processors],
    }


# ----------------------------------------------------------------------------
# --json


def write_json(
    path,
    env,
    settings,
    results,
    overhead,
    peers,
    python_threads=(),
    processors=(),
    verify=(),
    filters=(),
    sampler=(),
):
    """Write the environment, the settings, every result, the call overhead, the
    Python threads' throughput, the logit-processors, the speculative-decoding, the
    filters and the Sampler sections to `path`."""
    one_thread = [ONE_THREAD] if timed_at_one_thread(results) else []
    document = {
        "environment": env,
        "settings": settings,
        "peers": [
            {"name": p.name, "repeats": p.repeats, "max_rows": p.max_rows, "threads": p.threads}
            for p in (TOKENPICK, *one_thread, FLOOR, *peers)
        ],
        "results": [r.to_json(peers) for r in results],
        "overhead": [r.to_json(peers) for r in overhead],
        "python_threads": list(python_threads),
        "processors": processors_json(settings, processors),
        "verify": [r.to_json() for r in verify],
        "filters": [r.to_json() for r in filters],
        "sampler": [r.to_json() for r in sampler],
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
