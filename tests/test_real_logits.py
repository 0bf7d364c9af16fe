"""Real logits against the reference: the three rows of SmolLM2-135M-Instruct in
tests/data/smollm2_logits.npy (a peaked, a middling and a flat one; how they were made:
tests/data/README.md) through mask, filtered_probs and sample, for each filter and
temperature in every order that has the filter, and in float16 and bfloat16.

The pass rules are tests/_compare.py's.  Top-k, top-p, min-p and top-n-sigma in
tokenpick's order go through its checkers, docs/semantics.md's tolerances (kept sets
between the bounds of ``kept_bounds``, probabilities within 1e-5 relative, tokens and
log-probabilities the reference's but where the draw is on a boundary).  The filters
after min-p and every setting of the other orders go through ``compare_filters``, whose
rows on a boundary are left out there: at most one of the three here, whose kept set must
then be the reference's at a nudged parameter.  A filter an order lacks
raises ValueError on both sides.
"""

import itertools
import os

import _arrays
import _compare as C
import numpy as np
import pytest
from _dlpack import Bfloat16Rows, bfloat16_bits

import tokenpick as tp
from tokenpick import reference as ref

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "smollm2_logits.npy")
ROWS = np.load(DATA)  # committed with the tests: a missing file is an error, never a skip
KINDS = ("smollm2 peaked", "smollm2 middling", "smollm2 flat")

FILTERS = {
    "none": {},
    "top_k=1": {"top_k": 1},
    "top_k=40": {"top_k": 40},
    "top_k=50": {"top_k": 50},
    "top_p=0.9": {"top_p": 0.9},
    "top_p=0.95": {"top_p": 0.95},
    "min_p=0.05": {"min_p": 0.05},
    "top_n_sigma=1": {"top_n_sigma": 1.0},
    "typical_p=0.9": {"typical_p": 0.9},
    "epsilon=3e-4": {"epsilon": 3e-4},
    "eta=3e-4": {"eta": 3e-4},
    "k50,p0.9,min_p0.05": {"top_k": 50, "top_p": 0.9, "min_p": 0.05},
    "k40,typical0.9,p0.95,min_p0.05": {
        "top_k": 40,
        "typical_p": 0.9,
        "top_p": 0.95,
        "min_p": 0.05,
    },
    "all": {
        "top_n_sigma": 1.0,
        "top_k": 50,
        "top_p": 0.95,
        "min_p": 0.05,
        "typical_p": 0.9,
        "epsilon": 3e-4,
        "eta": 3e-4,
    },
}
TEMPERATURES = (0.0, 0.7, 1.0, 1.5)
ORDERS = ("tokenpick", "hf", "vllm", "llama.cpp")
# the filters each order's sampler lacks (docs/semantics.md); XTC is not tried here
LACKS = {
    "tokenpick": (),
    "hf": ("top_n_sigma",),
    "vllm": ("top_n_sigma", "typical_p", "epsilon", "eta"),
    "llama.cpp": ("epsilon", "eta"),
}
BOUNDED = {"top_k", "top_p", "min_p", "top_n_sigma"}  # the filters kept_bounds follows
SEED = 2025


def lacks(order, name):
    return any(filter_ in FILTERS[name] for filter_ in LACKS[order])


HAS = [(o, n) for o, n in itertools.product(ORDERS, FILTERS) if not lacks(o, n)]
LACKING = [(o, n) for o, n in itertools.product(ORDERS, FILTERS) if lacks(o, n)]


def real_case(logits, values, temperature, top_k=0, top_p=1.0, min_p=0.0, top_n_sigma=0.0):
    """The tests/_arrays.py Case of the rows (`logits` as passed, `values` their float32
    values), one setting for every row, row b drawing at (SEED, b)."""
    B, V = values.shape
    return _arrays.Case(
        recipe=_arrays.Recipe(seed=SEED, V=V, kinds=KINDS[:B]),
        logits=logits,
        x32=values,
        was_1d=False,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        min_p=min_p,
        top_n_sigma=top_n_sigma,
        seed=SEED,
        offset=np.arange(B, dtype=np.uint64),
        uniforms=None,
        T=[temperature] * B,
        K=[top_k] * B,
        P=[top_p] * B,
        M=[min_p] * B,
        N=[top_n_sigma] * B,
        U=[float(ref.uniform(SEED, b)) for b in range(B)],
        n_top=1,
    )


def check(order, name, temperature, logits=ROWS, values=ROWS):
    """mask, filtered_probs and sample of the rows against the reference, by the rule
    that follows the setting."""
    filters = FILTERS[name]
    if order == "tokenpick" and set(filters) <= BOUNDED:
        case = real_case(logits, values, temperature, **filters)
        for function in ("mask", "filtered_probs", "sample"):
            C.CHECKS[function](tp, ref, case)
        return
    f = {**filters, "temperature": temperature, "order": order}
    skipped = C.compare_filters(tp, ref, logits, f, seed=SEED, values=values)
    assert len(skipped) <= 1, f"rows {skipped} of {len(values)} on a boundary: {f}"
    kept = np.isfinite(tp.mask(logits, **f))
    for b in skipped:  # the package's kept set is the reference's at a nudged parameter
        sets = C.nudged_kept(ref, values[b], f)
        assert any(np.array_equal(kept[b], k) for k in sets), (
            f"row {b} ({KINDS[b]}) on a boundary: the package keeps {int(kept[b].sum())} "
            f"tokens, the reference {[int(k.sum()) for k in sets]} as nudged; {f}"
        )


def test_the_rows_differ():
    """A confident next token, a flat row and one between, as tests/data/README.md says."""
    assert ROWS.shape == (3, 49152) and ROWS.dtype == np.float32, (ROWS.shape, ROWS.dtype)
    assert np.isfinite(ROWS).all()
    probs = ref.softmax(ROWS).astype(np.float64)
    entropy = -(probs * ref.log_softmax(ROWS)).sum(axis=1)
    top = probs.max(axis=1)
    assert top[0] > 0.99 and entropy[0] < 0.05, (top, entropy)
    assert 0.3 < top[1] < 0.9 and 1.0 < entropy[1] < 4.0, (top, entropy)
    assert top[2] < 0.3 and entropy[2] > 5.0, (top, entropy)


@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("order,name", HAS, ids=[f"{o}-{n}" for o, n in HAS])
def test_matches_reference(order, name, temperature):
    check(order, name, temperature)


@pytest.mark.parametrize("order,name", LACKING, ids=[f"{o}-{n}" for o, n in LACKING])
def test_orders_refuse_filters_they_lack(order, name):
    f = {**FILTERS[name], "order": order}
    for module in (tp, ref):
        for call in (module.mask, module.filtered_probs):
            with pytest.raises(ValueError, match=f"order='{order}' has no"):
                call(ROWS, **f)
        with pytest.raises(ValueError, match=f"order='{order}' has no"):
            module.sample(ROWS, **f, seed=SEED)


@pytest.mark.parametrize("order", ORDERS)
def test_every_simd_path(simd_path, order):
    """The settings of one temperature on each SIMD path (the test above: the one chosen
    at import)."""
    for o, name in HAS:
        if o == order:
            check(order, name, 0.7)


def half(rows, dtype):
    """(the rows in dtype as a caller passes them, their float32 values); bfloat16 as a
    framework hands it over, through DLPack (numpy has none)."""
    if dtype == "float16":
        h = rows.astype(np.float16)
        return h, h.astype(np.float32)
    h = Bfloat16Rows(bfloat16_bits(rows))
    return h, np.asarray(h)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("order,name", HAS, ids=[f"{o}-{n}" for o, n in HAS])
def test_half_rows_match_reference(order, name, dtype):
    """The rows rounded to float16 or bfloat16 (at the top of the row, many logits then
    tie), against the reference on their float32 values."""
    logits, values = half(ROWS, dtype)
    check(order, name, 1.0, logits, values)


def framework_bfloat16(kind):
    """(the rows as a bfloat16 torch tensor or ml_dtypes array, their float32 values as
    that library widens them), or a skip without the library."""
    if kind == "torch":
        torch = pytest.importorskip("torch")
        t = torch.from_numpy(ROWS).to(torch.bfloat16)
        return t, t.float().numpy()
    ml_dtypes = pytest.importorskip("ml_dtypes")
    a = ROWS.astype(ml_dtypes.bfloat16)
    return a, a.astype(np.float32)


@pytest.mark.parametrize("kind", ["torch", "ml_dtypes"])
def test_framework_bfloat16_reads_as_its_values(kind):
    """A torch or ml_dtypes bfloat16 array of the rows gives, bit for bit, what their
    float32 values give (those are checked against the reference above)."""
    logits, values = framework_bfloat16(kind)
    for order, name in HAS:
        f = {**FILTERS[name], "temperature": 0.7, "order": order}
        for function in (tp.mask, tp.filtered_probs):
            np.testing.assert_array_equal(function(logits, **f), function(values, **f))
        offsets = np.arange(len(ROWS))
        got = tp.sample(logits, **f, seed=SEED, offset=offsets, return_logprobs=True)
        want = tp.sample(values, **f, seed=SEED, offset=offsets, return_logprobs=True)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
