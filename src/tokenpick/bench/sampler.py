"""The Sampler section of ``python -m tokenpick bench``: what a decoding loop's step
costs through ``tokenpick.Sampler`` beyond the ``sample`` call it makes.

B requests with mixed arguments (temperature, top-k, top-p and min-p varying from
request to request, each its own seed) step on the same rows, interleaved with the one
``tokenpick.sample`` call that does the same sampling (the same per-row arguments,
seeds and offsets); the difference is the Sampler's own work per step: finding the
requests, their offsets, appending the tokens, checking for EOS, stop ids and
max_new_tokens.  Both run on one thread, so that the difference is not lost in the
threads' scheduling.
"""

import functools
from dataclasses import asdict, dataclass

import numpy as np

import tokenpick

from . import timing
from .cases import DATA_SEED, peaked_row

SAMPLER_GRIDS = {
    "quick": {"vocabs": [128256], "batches": [64]},
    "full": {"vocabs": [32000, 128256], "batches": [8, 64]},
}


def sampler_absent(settings):
    """Why the section is not timed, or None if it is."""
    return "not timed (--no-sampler)" if settings.get("sampler") is None else None


def sampler_cases(settings):
    grid = settings["sampler"]
    return [(V, B) for V in grid["vocabs"] for B in grid["batches"]]


def mixed_arguments(B):
    """Each request's arguments: a server's mix, the same for every run."""
    rng = np.random.default_rng(DATA_SEED + B)
    return [
        {
            "seed": int(rng.integers(2**63)),
            "temperature": float(rng.choice([0.6, 0.8, 1.0, 1.2])),
            "top_k": int(rng.choice([0, 40, 50])),
            "top_p": float(rng.choice([0.9, 0.95, 1.0])),
            "min_p": float(rng.choice([0.0, 0.05])),
        }
        for _ in range(B)
    ]


def _step(rows, arguments):
    """The Sampler's line: its B requests, then a step on the rows per call."""
    sampler = tokenpick.Sampler(rows.shape[1], num_threads=1)
    for i, a in enumerate(arguments):
        sampler.add(i, **a)
    return [functools.partial(sampler.step, rows, list(range(len(arguments))))]


def _sample(rows, arguments):
    """The same sampling in one sample call, its arguments in the forms the Sampler
    passes (a value all requests share as a scalar; one request's seed and offset as
    ints), its offsets advancing by one a call as the Sampler's do (the offset moves
    the draw, whose cost on an unfiltered row depends on where it lands)."""
    columns = {}
    for k in arguments[0]:
        values = np.array([a[k] for a in arguments])
        columns[k] = values[0].item() if (values == values[0]).all() else values
    seeds = columns.pop("seed")
    offsets = np.zeros(len(arguments), dtype=np.int64)
    if len(arguments) == 1:

        def call():
            tokenpick.sample(rows, **columns, seed=seeds, offset=int(offsets[0]), num_threads=1)
            offsets.__iadd__(1)

    else:
        seeds = np.asarray(seeds, dtype=np.uint64)

        def call():
            tokenpick.sample(rows, **columns, seed=seeds, offset=offsets, num_threads=1)
            offsets.__iadd__(1)

    return [call]


@dataclass
class SamplerResult:
    """One case (V, B): the step's and the sample call's Measurements."""

    V: int
    B: int
    timings: dict

    def per_call(self, name):
        m = self.timings.get(name)
        return m.us_per_row * m.rows if m and m.us_per_row else None

    def overhead(self):
        step, sample = self.per_call("step"), self.per_call("sample")
        return None if step is None or sample is None else step - sample

    def failed(self):
        return any(m.error not in (None, "n/a") for m in self.timings.values())

    def to_json(self):
        return {
            "V": self.V,
            "B": self.B,
            "timings": {name: asdict(m) for name, m in self.timings.items()},
            "overhead_us_per_step": self.overhead(),
        }


def time_sampler(settings, progress):
    """Every case of the section: a list of `SamplerResult`, empty if not timed."""
    if sampler_absent(settings):
        return []
    results = []
    for V, B in sampler_cases(settings):
        progress.step(f"sampler: B={B} mixed requests, V={V}")
        rng = np.random.default_rng(DATA_SEED + 3 * V + B)
        rows = np.stack([peaked_row(rng, V) for _ in range(B)])
        arguments = mixed_arguments(B)
        lines = [
            timing.Calls("step", functools.partial(_step, rows, arguments), B, 9),
            timing.Calls("sample", functools.partial(_sample, rows, arguments), B, 9),
        ]
        results.append(SamplerResult(V, B, timing.measure_calls(lines, settings["min_time"])))
    return results


def count_sampler_steps(settings):
    return 0 if sampler_absent(settings) else len(sampler_cases(settings))


def format_sampler(results):
    """The section's table and legend (a line saying why when not timed)."""
    if not results:
        return "Sampler: not timed (--no-sampler)"
    from .report import format_table  # noqa: PLC0415 - no cycle at import

    headers = ["requests", "V", "step us", "sample us", "Sampler's own us/step"]
    rows = []
    for r in results:
        step, sample, own = r.per_call("step"), r.per_call("sample"), r.overhead()
        rows.append(
            [
                f"{r.B} mixed",
                str(r.V),
                f"{step:,.1f}" if step else r.timings["step"].error,
                f"{sample:,.1f}" if sample else r.timings["sample"].error,
                f"{own:,.1f}" if own is not None else "-",
            ]
        )
    legend = [
        "",
        "Sampler: Sampler.step on B requests with mixed temperature, top_k, top_p and min_p, "
        "one thread",
        "sample us: the one tokenpick.sample call doing the same sampling, interleaved",
        "Sampler's own us/step: step - sample, the loop's bookkeeping (medians of 9 repeats; "
        "the machine's noise is in it too)",
    ]
    return "\n".join([format_table(headers, rows), *legend])
