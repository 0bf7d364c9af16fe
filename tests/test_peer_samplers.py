"""tokenpick's kept sets against the peers' own samplers, run live on generated rows.

* ``order="hf"`` against HF transformers' logits warpers, chained in the order
  ``generate()`` builds them (temperature, top-k, top-p, min-p, typical, epsilon, eta).
* ``order="llama.cpp"`` against llama.cpp's samplers through llama-cpp-python's ctypes
  binding (top-n-sigma, top-k, typical, top-p, min-p, XTC; no model needed).

A row whose kept set sits at a boundary is not compared: the peer's answer there
depends on float rounding, not on semantics.  A row counts as at a boundary when the
peer's kept set changes with any probability-type parameter nudged by a relative
``NUDGE`` either way; and, since float32 rounding of typical's entropy can reorder two
nearly equidistant tokens on either side of it (which no nudge of p notices), when HF's
warpers disagree with themselves in float64, or llama.cpp's chain changes its mind on
the logits scaled by 1 -/+ NUDGE.  Every test asserts that most rows (``MIN_COMPARED``)
were compared, and reports the counts.  Each test skips when its peer is not installed.
"""

import ctypes

import numpy as np
import pytest

import tokenpick as tp

NUDGE = 1e-4
MIN_COMPARED = 0.8
VOCABS = (50, 1000, 32000)
ROWS = 16


def make_rows(seed, vocab):
    """ROWS float32 rows of normal logits times a per-row scale, every third peaked.

    At V=32000 the scale starts higher: a flatter row leaves ~1e-5 of the mass per
    token at a top-p/typical boundary, below float32 summation error, so every such
    row would be (rightly) skipped as at a boundary."""
    rng = np.random.default_rng([seed, vocab])
    low, high = (1.0, 5.0) if vocab <= 1000 else (5.0, 8.0)
    rows = rng.standard_normal((ROWS, vocab)) * rng.uniform(low, high, (ROWS, 1))
    rows[::3, rng.integers(vocab)] += 8.0
    return rows.astype(np.float32)


def nudged(params, keys, inactive):
    """`params` with each active key of `keys` scaled by 1 -/+ NUDGE, one at a time."""
    for key in keys:
        if key in params and params[key] != inactive[key]:
            for factor in (1 - NUDGE, 1 + NUDGE):
                yield {**params, key: params[key] * factor}


def case_id(params):
    return ",".join(f"{k}={v}" for k, v in params.items())


def check_counts(name, compared, skipped, trimmed, disagreements):
    total = compared + skipped
    msg = (
        f"{name}: {compared - len(disagreements)}/{compared} compared rows agree "
        f"({skipped} of {total} skipped at a boundary; the peer dropped tokens in "
        f"{trimmed}); first disagreements: {disagreements[:3]}"
    )
    assert not disagreements, msg
    assert compared >= MIN_COMPARED * total, msg


# ---------------------------------------------------------------- HF transformers

HF_CASES = [
    dict(temperature=0.7),
    dict(top_k=50),
    dict(top_p=0.9),
    dict(min_p=0.05),
    dict(typical_p=0.9),
    dict(epsilon=3e-4),
    dict(eta=1e-3),
    dict(temperature=0.7, top_k=50, top_p=0.9, typical_p=0.9, epsilon=3e-4, eta=1e-3, min_p=0.05),
    dict(temperature=1.5, top_p=0.8, min_p=0.1, eta=3e-4),
]
HF_OFF = dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, typical_p=1.0, epsilon=0.0, eta=0.0)
HF_PROBS = ("top_p", "typical_p", "min_p", "epsilon", "eta")


def hf_scores(rows, params, dtype="float32"):
    """HF's warpers for `params`, chained in generate()'s order, applied to `rows`."""
    import torch
    from transformers.generation import logits_process as lp

    p = {**HF_OFF, **params}
    chain = [
        (p["temperature"] != 1.0, lambda: lp.TemperatureLogitsWarper(p["temperature"])),
        (p["top_k"] > 0, lambda: lp.TopKLogitsWarper(top_k=p["top_k"])),
        (p["top_p"] < 1.0, lambda: lp.TopPLogitsWarper(top_p=p["top_p"])),
        (p["min_p"] > 0.0, lambda: lp.MinPLogitsWarper(min_p=p["min_p"])),
        (p["typical_p"] < 1.0, lambda: lp.TypicalLogitsWarper(mass=p["typical_p"])),
        (p["epsilon"] > 0.0, lambda: lp.EpsilonLogitsWarper(epsilon=p["epsilon"])),
        (p["eta"] > 0.0, lambda: lp.EtaLogitsWarper(epsilon=p["eta"], device="cpu")),
    ]
    scores = torch.from_numpy(rows.astype(dtype))
    input_ids = torch.zeros((rows.shape[0], 1), dtype=torch.long)
    for active, make in chain:
        if active:
            scores = make()(input_ids, scores)
    return scores.numpy()


@pytest.mark.parametrize("params", HF_CASES, ids=case_id)
def test_hf_warpers(params):
    """order="hf" keeps exactly what HF's chain keeps, returns the unscaled logits there,
    and filtered_probs is the softmax of HF's (temperature-divided) output."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import torch

    compared = skipped = trimmed = 0
    bad = []
    for vocab in VOCABS:
        rows = make_rows(1, vocab)
        hf = hf_scores(rows, params)
        kept = np.isfinite(hf)
        at_boundary = (np.isfinite(hf_scores(rows, params, "float64")) != kept).any(1)
        for q in nudged(params, HF_PROBS, HF_OFF):
            at_boundary |= (np.isfinite(hf_scores(rows, q)) != kept).any(1)
        ours = tp.mask(rows, order="hf", **params)
        probs = tp.filtered_probs(rows, order="hf", **params)
        hf_probs = torch.softmax(torch.from_numpy(hf).double(), -1).numpy()
        skipped += int(at_boundary.sum())
        for i in np.flatnonzero(~at_boundary):
            compared += 1
            trimmed += int(not kept[i].all())
            same_set = np.array_equal(np.isfinite(ours[i]), kept[i])
            unscaled = np.array_equal(ours[i][kept[i]], rows[i][kept[i]])
            err = float(np.abs(probs[i] - hf_probs[i]).max())
            if not (same_set and unscaled and err <= 1e-5):
                n_hf, n_tp = int(kept[i].sum()), int(np.isfinite(ours[i]).sum())
                bad.append(dict(V=vocab, row=int(i), kept=(n_hf, n_tp), unscaled=unscaled, err=err))
    check_counts(f"hf {params}", compared, skipped, trimmed, bad)


# ---------------------------------------------------------------- llama.cpp

LLAMA_CASES = [
    dict(top_n_sigma=1.5),
    dict(top_k=40),
    dict(typical_p=0.95),
    dict(top_p=0.9),
    dict(min_p=0.05),
    dict(xtc_threshold=0.1),
    dict(top_k=40, typical_p=0.95, top_p=0.9, min_p=0.05, xtc_threshold=0.1),
]
LLAMA_OFF = dict(top_n_sigma=0.0, top_k=0, typical_p=1.0, top_p=1.0, min_p=0.0, xtc_threshold=None)
LLAMA_PROBS = ("top_n_sigma", "typical_p", "top_p", "min_p", "xtc_threshold")
TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])


def llama_chain(lc, params):
    """llama.cpp's default chain for `params` (min_keep 1, XTC always on, fixed seed)."""
    p = {**LLAMA_OFF, **params}
    xtc = p["xtc_threshold"]
    chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
    for active, make, args in [
        (p["top_n_sigma"] > 0, lc.llama_sampler_init_top_n_sigma, (p["top_n_sigma"],)),
        (p["top_k"] > 0, lc.llama_sampler_init_top_k, (p["top_k"],)),
        (p["typical_p"] < 1.0, lc.llama_sampler_init_typical, (p["typical_p"], 1)),
        (p["top_p"] < 1.0, lc.llama_sampler_init_top_p, (p["top_p"], 1)),
        (p["min_p"] > 0.0, lc.llama_sampler_init_min_p, (p["min_p"], 1)),
        (xtc is not None, lc.llama_sampler_init_xtc, (1.0, xtc, 1, 7)),
    ]:
        if active:
            lc.llama_sampler_chain_add(chain, make(*args))  # the chain owns it from here
    return chain


def llama_kept(rows, params):
    """The ids llama.cpp's default chain (for `params`) keeps, as a boolean mask."""
    import llama_cpp.llama_cpp as lc

    assert ctypes.sizeof(lc.llama_token_data) == TOKEN_DATA.itemsize
    kept = np.zeros(rows.shape, bool)
    for b, row in enumerate(rows):
        chain = llama_chain(lc, params)
        buf = (lc.llama_token_data * row.size)()
        view = np.frombuffer(buf, dtype=TOKEN_DATA)
        view["id"], view["logit"], view["p"] = np.arange(row.size), row, 0.0
        cands = lc.llama_token_data_array(
            data=ctypes.cast(buf, ctypes.POINTER(lc.llama_token_data)),
            size=row.size,
            selected=-1,
            sorted=False,
        )
        lc.llama_sampler_apply(chain, ctypes.byref(cands))
        # Samplers drop tokens by shrinking size, advancing data (XTC), or -inf (top-n-sigma).
        start = (ctypes.addressof(cands.data.contents) - ctypes.addressof(buf)) // view.itemsize
        left = view[start : start + cands.size]
        kept[b, left["id"][np.isfinite(left["logit"])]] = True
        lc.llama_sampler_free(chain)
    return kept


def tp_llama(rows, params):
    extra = dict(xtc_probability=1.0, seed=0) if "xtc_threshold" in params else {}
    return tp.mask(rows, order="llama.cpp", **params, **extra)


@pytest.mark.parametrize("params", LLAMA_CASES, ids=case_id)
def test_llama_cpp_chain(params):
    """order="llama.cpp" keeps exactly the ids llama.cpp's chain keeps, on rows without ties."""
    pytest.importorskip("llama_cpp")
    compared = skipped = trimmed = 0
    bad = []
    for vocab in VOCABS:
        rows = make_rows(2, vocab)
        kept = llama_kept(rows, params)
        at_boundary = np.zeros(len(rows), bool)
        for q in nudged(params, LLAMA_PROBS, LLAMA_OFF):
            at_boundary |= (llama_kept(rows, q) != kept).any(1)
        for factor in (1 - NUDGE, 1 + NUDGE):
            at_boundary |= (llama_kept(rows * np.float32(factor), params) != kept).any(1)
        ours = np.isfinite(tp_llama(rows, params))
        skipped += int(at_boundary.sum())
        for i in np.flatnonzero(~at_boundary):
            compared += 1
            trimmed += int(not kept[i].all())
            if not np.array_equal(ours[i], kept[i]):
                only_tp = np.flatnonzero(ours[i] & ~kept[i])[:5].tolist()
                only_llama = np.flatnonzero(kept[i] & ~ours[i])[:5].tolist()
                bad.append(dict(V=vocab, row=int(i), only_tp=only_tp, only_llama=only_llama))
    check_counts(f"llama.cpp {params}", compared, skipped, trimmed, bad)


@pytest.mark.parametrize("k", [3, 5, 7])
def test_llama_cpp_top_k_through_a_tie(k):
    """k cuts through a group of equal logits: llama.cpp keeps exactly k (which of the tied
    ids depends on its unstable sort, so ids are not compared); tokenpick keeps exactly k,
    the tie group's lowest ids."""
    pytest.importorskip("llama_cpp")
    rng = np.random.default_rng(k)
    row = rng.standard_normal(64).astype(np.float32) - 5.0
    above = np.array([7, 40])  # two tokens above the tie
    tied = np.array([3, 11, 20, 31, 44, 60])  # six tokens tied at 1.5
    row[above], row[tied] = (4.0, 3.0), 1.5
    llama = llama_kept(row[None], dict(top_k=k))[0]
    ours = np.isfinite(tp_llama(row[None], dict(top_k=k))[0])
    assert llama.sum() == k, f"llama.cpp kept {np.flatnonzero(llama)}"
    assert llama[above].all() and set(np.flatnonzero(llama)) <= set(above) | set(tied)
    want = np.zeros(64, bool)
    want[above] = True
    want[tied[: k - len(above)]] = True
    assert np.array_equal(ours, want), f"tokenpick kept {np.flatnonzero(ours)}"
