"""The filters after min-p (typical, epsilon, eta, XTC) and the orders of other samplers
(``order="hf" | "vllm" | "llama.cpp"``), against the reference on generated rows, on
every SIMD path: kept sets equal, probabilities close, tokens equal, except on rows
whose kept set sits on a boundary (found by nudging each threshold-like parameter by a
relative 3e-6 in the reference: a row whose kept set moves is left out, and the tests
check that few are)."""

import numpy as np
import pytest
from _compare import compare_filters

import tokenpick as tp
from tokenpick import reference as ref

# (name, filters): each new filter alone, with the filters of Part 1, and every order
CONFIGS = [
    ("typical", dict(typical_p=0.6)),
    ("typical-hot", dict(typical_p=0.3, temperature=2.0)),
    ("typical-topk", dict(typical_p=0.9, top_k=50, top_p=0.95)),
    ("epsilon", dict(epsilon=3e-3)),
    ("eta", dict(eta=0.02, temperature=0.7)),
    ("xtc", dict(xtc_threshold=0.05, xtc_probability=1.0)),
    (
        "all",
        dict(
            top_k=200,
            top_p=0.95,
            min_p=0.01,
            typical_p=0.9,
            epsilon=1e-4,
            eta=1e-3,
            xtc_threshold=0.1,
            xtc_probability=1.0,
            temperature=0.8,
        ),
    ),  # fmt: skip
    ("hf", dict(order="hf", top_k=30, top_p=0.8, typical_p=0.8, epsilon=1e-3, eta=1e-3)),
    ("vllm", dict(order="vllm", top_k=40, top_p=0.7, min_p=0.1, temperature=1.3)),
    (
        "llama",
        dict(
            order="llama.cpp",
            top_k=40,
            top_p=0.9,
            min_p=0.05,
            typical_p=0.95,
            xtc_threshold=0.1,
            xtc_probability=1.0,
            temperature=0.8,
        ),
    ),  # fmt: skip
    ("llama-sigma", dict(order="llama.cpp", top_n_sigma=1.5, top_p=0.8)),
    ("llama-no-topk", dict(order="llama.cpp", top_p=0.5, typical_p=0.7)),
    ("llama-greedy", dict(order="llama.cpp", temperature=0.0, typical_p=0.5)),
    (
        "llama-xtc-greedy",
        dict(order="llama.cpp", temperature=0.0, xtc_threshold=0.02, xtc_probability=1.0),
    ),  # fmt: skip
]


def rows(rng, B, V):
    """B rows of kinds real rows have: spread logits, a peaked one, a few -inf, ties."""
    x = rng.standard_normal((B, V)) * rng.uniform(0.5, 4.0, size=(B, 1))
    x[0, rng.integers(V)] += 12.0  # one token dominates
    if B > 2:
        x[1, rng.choice(V, size=max(1, V // 7), replace=False)] = -np.inf
    if B > 3:
        x[2] = np.round(x[2] * 2) / 2  # many ties
    return x.astype(np.float32)


@pytest.mark.parametrize("V", [13, 1000, 40000])
@pytest.mark.parametrize("name,f", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_matches_reference(simd_path, seed, name, f, V):
    rng = np.random.default_rng(seed)
    x = rows(rng, 6, V)
    skipped = len(compare_filters(tp, ref, x, f))
    assert skipped <= 2, f"{skipped} of 6 rows on a boundary"


WIDE = [
    dict(typical_p=0.6),
    dict(epsilon=1e-5),
    dict(eta=1e-6, top_p=0.7),
    dict(order="llama.cpp", top_p=0.9, min_p=0.2),
    dict(order="llama.cpp", typical_p=0.8),
]


@pytest.mark.parametrize("f", WIDE)
def test_kept_sets_past_the_workspace(simd_path, seed, f):
    """Rows whose kept set has more tokens than the workspace lists (16384) go through
    the filter's spill: flat rows of 60000 tokens."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((4, 60000)) * 0.3).astype(np.float32)
    # a token's mass is small here: boundaries come closer
    assert len(compare_filters(tp, ref, x, f)) <= 3
    assert np.isfinite(tp.mask(x, **f)).sum(axis=1).min() > 16384


def test_with_processors(simd_path, seed):
    """The new filters see the processed logits, on rows with and without top-k's
    block route."""
    rng = np.random.default_rng(seed)
    x = rows(rng, 5, 5000)
    proc = dict(logit_bias={3: 5.0, 7: -np.inf}, output_ids=[[1, 2, 3, 3]] * 5,
                repetition_penalty=1.3, presence_penalty=0.5)  # fmt: skip
    for _, f in CONFIGS:
        g = {**f, **proc}
        np.testing.assert_array_equal(np.isfinite(tp.mask(x, **g)), np.isfinite(ref.mask(x, **g)))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_rows_as_their_float32_copy(simd_path, seed, dtype):
    """Half precision read in place gives, bit for bit, the float32 copy's results."""
    from _dlpack import Bfloat16Rows

    rng = np.random.default_rng(seed)
    x = rows(rng, 4, 3000)
    if dtype == "float16":
        half, x32 = x.astype(np.float16), x.astype(np.float16).astype(np.float32)
    else:
        bits = (x.view(np.uint32) >> 16).astype(np.uint16)
        half, x32 = Bfloat16Rows(bits), (bits.astype(np.uint32) << 16).view(np.float32)
    for _, f in CONFIGS:
        np.testing.assert_array_equal(tp.filtered_probs(half, **f), tp.filtered_probs(x32, **f))
        np.testing.assert_array_equal(tp.sample(half, **f, seed=1), tp.sample(x32, **f, seed=1))


def test_rows_do_not_depend_on_their_batch_or_threads(seed):
    rng = np.random.default_rng(seed)
    x = rows(rng, 16, 20000)
    f = dict(CONFIGS[6][1])
    one = [int(tp.sample(x[b], **f, seed=5, offset=b)) for b in range(16)]
    for threads in (1, 2, 4):
        got = tp.sample(x, **f, seed=5, offset=np.arange(16), num_threads=threads)
        assert got.tolist() == one


@pytest.mark.parametrize("V", [997, 1024, 1100, 4096 * 3 + 17, 128256])
@pytest.mark.parametrize("top_k", [0, 2])
def test_top_n_sigma_cut_whichever_pass_sums_it(simd_path, seed, V, top_k):
    """The checking pass sums top-n-sigma's moments as it reads a row where the outputs
    are the call's own; with out=, the rows are checked first and the moments summed on
    their own.  The cut must be the same float either way: each row holds a run of
    consecutive floats across the bound, so that a cut one ulp off changes the kept set
    (and a -inf in one row sends its tiles down the masked sums).  top_k=2 is V // 2."""
    rng = np.random.default_rng(seed)
    x = rows(rng, 4, V) + np.float32(10.0)  # the bound away from 0, where ulps are tiny
    x[1, rng.integers(0, V, 5)] = -np.inf
    n, runs = 1.5, []
    for b in range(4):
        at, centre = rng.choice(V, 17, replace=False), None
        for _ in range(30):  # the run moves the bound a little: placed again about it
            finite = x[b][np.isfinite(x[b])].astype(np.float64)
            bound = np.float32(finite.max() - n * finite.std())
            if bound == centre:
                break
            centre, run = bound, [bound]
            for _ in range(8):
                run.insert(0, np.nextafter(run[0], np.float32(-np.inf)))
                run.append(np.nextafter(run[-1], np.float32(np.inf)))
            x[b, at] = run
        runs.append(at)
    f = dict(top_n_sigma=n, top_k=V // 2 if top_k else 0, temperature=0.9)
    own = tp.mask(x, **f)
    for b in range(4):  # the cut falls inside the run
        assert 0 < np.isfinite(own[b, runs[b]]).sum() < 17
    np.testing.assert_array_equal(tp.mask(x, **f, out=np.empty_like(x)), own)
    for b in range(4):
        np.testing.assert_array_equal(tp.mask(x[b], **f), own[b])


def test_xtc_coin(seed):
    """XTC acts where uniform(seed, offset, index=1) < xtc_probability, and only there."""
    rng = np.random.default_rng(seed)
    x = np.tile(np.log(np.float32([0.4, 0.3, 0.2, 0.1])), (64, 1))
    offsets = np.arange(64, dtype=np.uint64)
    got = tp.mask(x, xtc_threshold=0.15, xtc_probability=0.5, seed=9, offset=offsets)
    acts = tp.uniform(9, offsets, index=1) < 0.5
    assert 10 < acts.sum() < 54
    np.testing.assert_array_equal(np.isinf(got[:, 0]), acts)
    np.testing.assert_array_equal(np.isfinite(got[:, 2]), np.ones(64, bool))  # least likely above
    ref_got = ref.mask(x, xtc_threshold=0.15, xtc_probability=0.5, seed=9, offset=offsets)
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(ref_got))
    tokens = tp.sample(x, xtc_threshold=0.15, xtc_probability=0.5, seed=9, offset=offsets)
    assert not np.isin(tokens[acts], [0, 1]).any()
    del rng


def test_verify_with_the_new_filters(seed):
    """verify's positions are filtered as sample's rows, XTC's coin at position k being
    the one of step offset + k."""
    rng = np.random.default_rng(seed)
    B, K, V = 4, 3, 300
    logits = (rng.standard_normal((B, K + 1, V)) * 2).astype(np.float32)
    drafts = rng.integers(0, V, size=(B, K))
    drafts[:, 0] = logits[:, 0].argmax(axis=1)
    for _, f in CONFIGS:
        g = {**f, "xtc_probability": 0.5} if f.get("xtc_probability") else f
        got = tp.verify(logits, drafts, **g, seed=3, offset=10)
        want = ref.verify(logits, drafts, **g, seed=3, offset=10)
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(got[0], want[0])


def test_llama_top_k_keeps_exactly_k_lowest_ids_first():
    x = np.float32([1, 3, 3, 3, 2, 3, 0])
    kept = np.isfinite(tp.mask(x, top_k=2, order="llama.cpp"))
    assert kept.tolist() == [False, True, True, False, False, False, False]
    assert np.isfinite(tp.mask(x, top_k=2)).sum() == 4  # tokenpick keeps the ties


def test_typical_may_drop_the_most_likely():
    """Typical keeps what is near the entropy, which a dominant token is not."""
    x = np.log(np.float32([0.3] + [0.7 / 40] * 40))
    kept = np.isfinite(tp.mask(x, typical_p=0.4))
    assert not kept[0] and kept[1:].sum() > 10
    assert np.isfinite(ref.mask(x, typical_p=0.4)).tolist() == kept.tolist()


@pytest.mark.parametrize("V", [300, 4000, 9000])
@pytest.mark.parametrize(
    "f",
    [
        dict(temperature=0.8, typical_p=0.9999999),
        dict(order="llama.cpp", temperature=0.8, top_p=0.9999999),
        dict(order="llama.cpp", typical_p=0.9999999),
    ],
)
def test_a_selection_by_mass_never_keeps_what_has_none(simd_path, V, f):
    """Where rounding leaves the listed mass short of the target (p next to 1), the
    selection stops at the least token of positive probability: a token whose
    probability underflows to 0 is not kept, on short lists (the quickselect) as on long
    ones (the radix select), as in the reference."""
    for seed in range(4):
        rng = np.random.default_rng(seed)
        x = np.round(rng.normal(0, 3, V)).astype(np.float32)
        x[: V // 3] = -120.0  # exp((-120 - max) / T) is 0 in float32
        assert not np.isfinite(ref.mask(x, **f))[: V // 3].any()
        kept = np.isfinite(tp.mask(x, **f))
        assert not kept[: V // 3].any(), (seed, int(kept[: V // 3].sum()))
        assert kept[V // 3 :].sum() > V // 3


@pytest.mark.parametrize("mod", [tp, ref], ids=["tokenpick", "reference"])
def test_errors(mod):
    x = np.zeros((2, 10), np.float32)
    for kw, err in [
        (dict(order="torch"), ValueError),
        (dict(order=1), TypeError),
        (dict(order="hf", top_n_sigma=1.0), ValueError),
        (dict(order="hf", xtc_probability=1.0), ValueError),
        (dict(order="vllm", typical_p=0.5), ValueError),
        (dict(order="llama.cpp", epsilon=0.1), ValueError),
        (dict(order="llama.cpp", eta=0.1), ValueError),
        (dict(typical_p=0.0), ValueError),
        (dict(typical_p=1.5), ValueError),
        (dict(epsilon=1.0), ValueError),
        (dict(eta=-0.1), ValueError),
        (dict(eta=float("nan")), ValueError),
        (dict(xtc_threshold=1.5), ValueError),
        (dict(xtc_probability=[0.5, 2.0]), ValueError),
        (dict(xtc_probability=0.5), ValueError),  # mask: a coin needs seed
    ]:
        with pytest.raises(err):
            mod.mask(x, **kw)
    with pytest.raises(ValueError, match="seed"):
        mod.sample(x, xtc_probability=0.5, uniforms=[0.1, 0.2])
    # a filter off in every row is no error, whatever the order
    mod.mask(x, order="vllm", typical_p=1.0, xtc_probability=0.0)
