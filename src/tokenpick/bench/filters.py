"""The filters section of ``python -m tokenpick bench``: each filter beyond top-k, top-p
and min-p (top-n-sigma, typical, epsilon, eta, XTC) added to ``sample(T=0.8, top_k=50,
top_p=0.9)``, and each ``order=`` with the filters of its sampler, against that base
call on the same rows (their repeats interleaved), and against the peers doing the same:
HF transformers' own warpers in torch (then ``torch.multinomial``), and llama.cpp's own
sampler chain through llama-cpp-python (one row at a time on one thread, each row
copied into its ``llama_token_data`` first, as its sampling step does).  tokenpick runs
on one thread here, as the llama.cpp chain does.
"""

import functools
from dataclasses import asdict, dataclass

import numpy as np

import tokenpick

from . import timing
from .cases import DATA_SEED, SAMPLE_SEED, peaked_row

FILTER_GRIDS = {
    "quick": {"vocabs": [128256], "batches": [1]},
    "full": {"vocabs": [32000, 128256], "batches": [1, 8]},
}
POOL_ROWS = 16  # rows per case, taken in batches of B in turn
BASE = {"temperature": 0.8, "top_k": 50, "top_p": 0.9}
# (label, tokenpick's arguments, peers that do the same: "hf" and/or "llama.cpp")
FILTER_OPS = (
    ("base: T=0.8 top_k=50 top_p=0.9", BASE, ("hf",)),
    ("+ top_n_sigma=1", {**BASE, "top_n_sigma": 1.0}, ()),
    ("+ typical_p=0.9", {**BASE, "typical_p": 0.9}, ("hf",)),
    ("+ epsilon=3e-4", {**BASE, "epsilon": 3e-4}, ("hf",)),
    ("+ eta=1e-3", {**BASE, "eta": 1e-3}, ("hf",)),
    ("+ xtc 0.1, p=1", {**BASE, "xtc_threshold": 0.1, "xtc_probability": 1.0}, ()),
    ("typical_p=0.9 alone", {"temperature": 0.8, "typical_p": 0.9}, ("hf",)),
    (
        'order="hf": + min_p typical epsilon eta',
        {**BASE, "min_p": 0.02, "typical_p": 0.95, "epsilon": 1e-4, "eta": 1e-4, "order": "hf"},
        ("hf",),
    ),
    ('order="vllm": + min_p=0.05', {**BASE, "min_p": 0.05, "order": "vllm"}, ()),
    (
        'order="llama.cpp": its defaults (k=40 p=0.95 min_p=0.05)',
        {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05, "order": "llama.cpp"},
        ("llama.cpp",),
    ),
    (
        'order="llama.cpp": + n_sigma typical xtc',
        {
            "temperature": 0.8,
            "top_k": 40,
            "top_p": 0.95,
            "min_p": 0.05,
            "top_n_sigma": 2.0,
            "typical_p": 0.95,
            "xtc_threshold": 0.1,
            "xtc_probability": 1.0,
            "order": "llama.cpp",
        },  # fmt: skip
        ("llama.cpp",),
    ),
)


def filters_absent(settings):
    """Why the section is not timed, or None if it is."""
    return "not timed (--no-filters)" if settings.get("filters") is None else None


def filter_cases(settings):
    grid = settings["filters"]
    return [(V, B) for V in grid["vocabs"] for B in grid["batches"]]


def filter_pool(V, B):
    """The case's batches: POOL_ROWS peaked rows, in batches of B."""
    rng = np.random.default_rng(DATA_SEED + 2 * V + B)
    rows = np.stack([peaked_row(rng, V) for _ in range(max(POOL_ROWS, B))])
    return [rows[i : i + B] for i in range(0, len(rows) - B + 1, B)]


def _tokenpick(pool, kwargs):
    return [
        functools.partial(tokenpick.sample, x, seed=SAMPLE_SEED, num_threads=1, **kwargs)
        for x in pool
    ]


def hf_warpers(kwargs):
    """HF transformers' warpers for tokenpick's arguments, in ``generate``'s order."""
    from transformers.generation import logits_process as lp  # noqa: PLC0415 - a peer

    warpers = []
    if kwargs.get("temperature", 1.0) != 1.0:
        warpers.append(lp.TemperatureLogitsWarper(kwargs["temperature"]))
    if kwargs.get("top_k", 0) > 0:
        warpers.append(lp.TopKLogitsWarper(kwargs["top_k"]))
    if kwargs.get("top_p", 1.0) < 1.0:
        warpers.append(lp.TopPLogitsWarper(kwargs["top_p"]))
    if kwargs.get("min_p", 0.0) > 0.0:
        warpers.append(lp.MinPLogitsWarper(kwargs["min_p"]))
    if kwargs.get("typical_p", 1.0) < 1.0:
        warpers.append(lp.TypicalLogitsWarper(kwargs["typical_p"]))
    if kwargs.get("epsilon", 0.0) > 0.0:
        warpers.append(lp.EpsilonLogitsWarper(kwargs["epsilon"]))
    if kwargs.get("eta", 0.0) > 0.0:
        warpers.append(lp.EtaLogitsWarper(kwargs["eta"], device="cpu"))
    return warpers


def _hf(torch, pool, kwargs):
    warpers = hf_warpers(kwargs)
    generator = torch.Generator().manual_seed(SAMPLE_SEED)

    def call(x):
        scores = x
        for w in warpers:
            scores = w(None, scores)
        return torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=generator)

    return [functools.partial(call, torch.from_numpy(x)) for x in pool]


def llama_samplers(lib, kwargs):
    """llama.cpp's default chain for tokenpick's arguments (order="llama.cpp")."""
    keep = 1
    chain = []
    if kwargs.get("top_n_sigma", 0.0) > 0.0:
        chain.append(lib.llama_sampler_init_top_n_sigma(kwargs["top_n_sigma"]))
    if kwargs.get("top_k", 0) > 0:
        chain.append(lib.llama_sampler_init_top_k(kwargs["top_k"]))
    if kwargs.get("typical_p", 1.0) < 1.0:
        chain.append(lib.llama_sampler_init_typical(kwargs["typical_p"], keep))
    if kwargs.get("top_p", 1.0) < 1.0:
        chain.append(lib.llama_sampler_init_top_p(kwargs["top_p"], keep))
    if kwargs.get("min_p", 0.0) > 0.0:
        chain.append(lib.llama_sampler_init_min_p(kwargs["min_p"], keep))
    if kwargs.get("xtc_probability", 0.0) > 0.0:
        chain.append(
            lib.llama_sampler_init_xtc(
                kwargs["xtc_probability"], kwargs["xtc_threshold"], keep, SAMPLE_SEED
            )
        )
    chain.append(lib.llama_sampler_init_temp(kwargs.get("temperature", 1.0)))
    chain.append(lib.llama_sampler_init_dist(SAMPLE_SEED))
    return chain


def _llama(lib, pool, kwargs):
    from .peer_llama import ChainOnRows  # noqa: PLC0415 - only with the peer

    return [ChainOnRows(lib, llama_samplers(lib, kwargs), x) for x in pool]


@dataclass
class FilterResult:
    """One case (op, V, B): Measurements of tokenpick's call, the base call's, and the
    peers' where timed."""

    op: str
    V: int
    B: int
    timings: dict

    def ratio(self, top, bottom):
        return timing._ratio(self.timings.get(top), self.timings.get(bottom))

    def failed(self):
        return any(m.error not in (None, "n/a") for m in self.timings.values())

    def to_json(self):
        return {
            "op": self.op,
            "V": self.V,
            "B": self.B,
            "timings": {name: asdict(m) for name, m in self.timings.items()},
            "x_base": self.ratio("tokenpick", "base"),
            "hf_speedup": self.ratio("hf", "tokenpick"),
            "llama_speedup": self.ratio("llama.cpp", "tokenpick"),
        }


def _peers(no_torch, no_llama):
    """The peers importable here (and not turned off): name -> how to bind a line of
    calls."""
    peers = {}
    try:
        if no_torch:
            raise ImportError("--no-torch")
        import torch  # noqa: PLC0415 - optional peers
        import transformers  # noqa: F401, PLC0415

        peers["hf"] = functools.partial(_hf, torch)
    except ImportError:
        pass
    try:
        if no_llama:
            raise ImportError("--no-llama")
        from llama_cpp import llama_cpp as lib  # noqa: PLC0415

        peers["llama.cpp"] = functools.partial(_llama, lib)
    except (ImportError, OSError):
        pass
    return peers


def time_filters(settings, progress, no_torch=False, no_llama=False):
    """Every case of the section: a list of `FilterResult`, empty if not timed."""
    if filters_absent(settings):
        return []
    peers = _peers(no_torch, no_llama)
    results = []
    for V, B in filter_cases(settings):
        pool = filter_pool(V, B)
        for label, kwargs, peer_names in FILTER_OPS:
            progress.step(f"filters: {label}, V={V}, B={B}")
            lines = [
                timing.Calls("tokenpick", functools.partial(_tokenpick, pool, kwargs), B, 7),
                timing.Calls("base", functools.partial(_tokenpick, pool, BASE), B, 7),
            ]
            for name in peer_names:
                if name in peers:
                    bind = functools.partial(peers[name], pool, kwargs)
                    lines.append(timing.Calls(name, bind, B, 5))
            results.append(
                FilterResult(label, V, B, timing.measure_calls(lines, settings["min_time"]))
            )
    return results


def count_filter_steps(settings):
    if filters_absent(settings):
        return 0
    return len(filter_cases(settings)) * len(FILTER_OPS)


def format_filters(results):
    """The section's table and legend (a line saying why when not timed)."""
    if not results:
        return "Filters and orders: not timed (--no-filters)"
    from .report import format_ratio, format_table, format_us  # noqa: PLC0415 - no cycle at import

    peers = [p for p in ("hf", "llama.cpp") if any(p in r.timings for r in results)]
    names = {"hf": "HF speedup", "llama.cpp": "llama.cpp speedup"}
    headers = ["op", "V", "B", "tokenpick us/row", "x base", *(names[p] for p in peers)]
    rows = []
    for r in results:
        m = r.timings.get("tokenpick")
        rows.append(
            [
                r.op,
                str(r.V),
                str(r.B),
                format_us(m.us_per_row) if m and m.us_per_row else (m.error if m else "-"),
                format_ratio(r.ratio("tokenpick", "base")),
                *(format_ratio(r.ratio(p, "tokenpick")) if p in r.timings else "-" for p in peers),
            ]
        )
    legend = [
        "",
        "Filters and orders: tokenpick.sample with the op's filters, one thread, on peaked rows",
        "x base: its time / sample(T=0.8, top_k=50, top_p=0.9) on the same rows, interleaved",
        *(
            ["HF speedup: HF transformers' warpers in torch, then torch.multinomial / tokenpick"]
            if "hf" in peers
            else []
        ),
        *(
            [
                "llama.cpp speedup: llama.cpp's sampler chain (its order; one row at a time, one "
                "thread, each row copied into llama_token_data first) / tokenpick"
            ]
            if "llama.cpp" in peers
            else []
        ),
        "(-: the peer has no such pipeline, or is not installed)",
    ]
    return "\n".join([format_table(headers, rows), *legend])
