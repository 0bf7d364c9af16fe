"""Randomness: Philox known answers, ``uniform`` == ``reference.uniform``, tokens that
depend only on (row, seed, offset) -- never on the batch, the position or the threads --
and statistical tests of the draws with a stated false-failure probability.

Statistical tests use fixed seeds, so they are deterministic; the probability that a
correct implementation fails them, over the choice of those seeds, is stated per test and
is below 1e-9 for the whole module (each chi-square test uses the 1 - 1e-10 quantile and
there are fewer than ten of them).
"""

import threading

import _arrays
import _compare as C
import numpy as np
import pytest
from scipy import stats

import tokenpick as tp
from tokenpick import reference as ref

EDGES = [0, 1, 2, 2**31, 2**32 - 1, 2**32, 2**32 + 1, 2**63 - 1, 2**63, 2**64 - 2, 2**64 - 1]


# ----------------------------------------------------------------------------
# uniform


def test_uniform_known_answer():
    # Random123: key (0, 0), counter (0, 0, 0, 0) -> 6627e8d5 e169c58d bc57ac4c 9b00dbd8
    assert float(tp.uniform(0, 0)) == ((0x6627E8D5 | (0xE169C58D << 32)) >> 11) * 2.0**-53


@pytest.mark.parametrize("seed", EDGES)
def test_uniform_matches_reference_at_the_edges(seed):
    for offset in EDGES:
        got = tp.uniform(seed, offset)
        want = ref.uniform(seed, offset)
        assert float(got) == float(want), f"uniform({seed}, {offset}) = {got!r}, want {want!r}"
        assert np.ndim(got) == 0 and np.asarray(got).dtype == np.float64


def test_uniform_index_is_counter_word_two(rng):
    """index j is Philox's counter word 2: index 0 is the draw's uniform; every index
    matches the reference, broadcast against seeds and offsets; out of [0, 2**32) is an
    error on both sides."""
    seeds = rng.integers(0, 2**64, size=50, dtype=np.uint64)
    offsets = rng.integers(0, 2**64, size=50, dtype=np.uint64)
    assert np.array_equal(tp.uniform(seeds, offsets, 0), tp.uniform(seeds, offsets))
    for index in (1, 2, 5, 2**31, 2**32 - 1):
        got = tp.uniform(seeds, offsets, index)
        assert np.array_equal(got, ref.uniform(seeds, offsets, index)), index
        assert not np.array_equal(got, tp.uniform(seeds, offsets)), "another stream"
    indices = np.arange(50) % 7
    assert np.array_equal(tp.uniform(seeds, offsets, indices), ref.uniform(seeds, offsets, indices))
    assert float(tp.uniform(3, 4, 2)) == float(ref.uniform(3, 4, 2))
    for bad in (-1, 2**32, 1.5):
        for mod in (tp, ref):
            with pytest.raises((ValueError, TypeError)) as err:
                mod.uniform(3, 4, bad)
            assert "index" in str(err.value)


def test_uniform_matches_reference_on_many_seeds_and_offsets(rng):
    seeds = rng.integers(0, 2**64, size=400, dtype=np.uint64)
    offsets = rng.integers(0, 2**64, size=400, dtype=np.uint64)
    offsets[:100] = np.arange(100)  # consecutive decoding steps
    got = tp.uniform(seeds, offsets)
    assert got.dtype == np.float64 and got.shape == (400,)
    want = ref.uniform(seeds, offsets)
    bad = np.nonzero(got != want)[0]
    assert not bad.size, (
        f"uniform differs at seed {seeds[bad[0]]}, offset {offsets[bad[0]]}: "
        f"{got[bad[0]]!r} vs {want[bad[0]]!r}"
    )
    # array forms broadcast and give the scalar answers
    assert tp.uniform(seeds[:5], 7).tolist() == [float(tp.uniform(int(s), 7)) for s in seeds[:5]]
    assert tp.uniform(3, offsets[:5]).tolist() == [
        float(tp.uniform(3, int(o))) for o in offsets[:5]
    ]


@pytest.mark.parametrize("form", ["list", "object", "int64", "uint64", "numpy-scalar"])
def test_uniform_integer_forms(form):
    seeds = [0, 1, 2**32, 2**62] if form == "int64" else [0, 1, 2**32, 2**64 - 1]
    want = ref.uniform(np.array(seeds, dtype=np.uint64), 9)
    if form == "list":
        got = tp.uniform(seeds, 9)
    elif form == "object":
        got = tp.uniform(np.array(seeds, dtype=object), 9)
    elif form == "int64":
        got = tp.uniform(np.array(seeds, dtype=np.int64), 9)
    elif form == "uint64":
        got = tp.uniform(np.array(seeds, dtype=np.uint64), np.uint64(9))
    else:
        got = np.array([tp.uniform(np.uint64(s), np.int16(9)) for s in seeds])
    np.testing.assert_array_equal(got, want)


def test_uniform_is_uniform():
    """Chi-square of 200_000 uniforms (seeds 0.., offsets 0..3) in 64 equal bins.
    False-failure probability 1e-10."""
    seeds = np.repeat(np.arange(50_000, dtype=np.uint64), 4)
    offsets = np.tile(np.arange(4, dtype=np.uint64), 50_000)
    u = tp.uniform(seeds, offsets)
    assert u.min() >= 0.0 and u.max() < 1.0
    counts = np.bincount((u * 64).astype(np.int64), minlength=64)
    stat = float(((counts - u.size / 64) ** 2 / (u.size / 64)).sum())
    crit = stats.chi2.isf(1e-10, 63)
    assert stat < crit, f"chi-square {stat:.1f} >= {crit:.1f} (df 63): {counts}"


# ----------------------------------------------------------------------------
# tokens depend on (row, seed, offset) only


def _batch(seed, B=48, V=1536):
    kinds = tuple(_arrays.ROW_KINDS[i % len(_arrays.ROW_KINDS)] for i in range(B))
    return _arrays.build(
        _arrays.Recipe(
            seed=seed,
            V=V,
            kinds=kinds,
            per_row=True,
            temperature=_arrays.TEMPERATURES,
            top_k=_arrays.TOP_KS,
            top_p=_arrays.TOP_PS,
            min_p=_arrays.MIN_PS,
            seed_choice=("rand", 0, 2**64 - 1),
            offset_choice=("rand", 0, 5, 2**32),
        )
    )


def _sample_rows(case, rows, **extra):
    kw = dict(
        temperature=case.temperature[rows],
        top_k=case.top_k[rows],
        top_p=case.top_p[rows],
        min_p=case.min_p[rows],
        seed=case.seed[rows],
        offset=case.offset[rows],
    )
    return tp.sample(np.ascontiguousarray(case.x32[rows]), **kw, **extra, return_logprobs=True)


@pytest.fixture
def restore_threads():
    n = tp.get_num_threads()
    yield
    tp.set_num_threads(n)


def test_tokens_do_not_depend_on_batch_order_size_or_threads(simd_path, seed, restore_threads):
    case = _batch(seed)
    B = case.B
    all_rows = np.arange(B)
    tok, lp = _sample_rows(case, all_rows)
    perm = np.random.default_rng(seed).permutation(B)
    ptok, plp = _sample_rows(case, perm)
    np.testing.assert_array_equal(ptok, tok[perm], err_msg="tokens depend on the batch order")
    np.testing.assert_array_equal(plp, lp[perm], err_msg="logprobs depend on the batch order")
    for b in range(0, B, 5):
        one_tok, one_lp = _sample_rows(case, np.array([b]))
        assert one_tok[0] == tok[b] and one_lp[0] == lp[b], f"row {b} alone differs"
        single = tp.sample(
            case.x32[b],
            temperature=case.T[b],
            top_k=case.K[b],
            top_p=case.P[b],
            min_p=case.M[b],
            seed=int(case.seed[b]),
            offset=int(case.offset[b]),
            return_logprobs=True,
        )
        assert int(single[0]) == tok[b] and float(single[1]) == lp[b], f"row {b} as 1-D differs"
    half = all_rows[::2]
    htok, hlp = _sample_rows(case, half)
    np.testing.assert_array_equal(htok, tok[half])
    for n in (1, 2, 3, None):
        ntok, nlp = _sample_rows(case, all_rows, num_threads=n)
        np.testing.assert_array_equal(ntok, tok, err_msg=f"num_threads={n} changes the tokens")
        np.testing.assert_array_equal(nlp, lp, err_msg=f"num_threads={n} changes the logprobs")
    for n in (1, 2, 4):
        tp.set_num_threads(n)
        assert tp.get_num_threads() == n
        ntok, nlp = _sample_rows(case, all_rows)
        np.testing.assert_array_equal(ntok, tok, err_msg=f"set_num_threads({n}) changes the tokens")
        np.testing.assert_array_equal(nlp, lp)


def test_other_results_are_bitwise_identical_for_any_thread_count(simd_path, seed, restore_threads):
    case = _batch(seed, B=64)
    kw = case.filters()
    results = {}
    for n in (1, 2, 3):
        tp.set_num_threads(n)
        results[n] = [
            tp.softmax(case.x32, case.temperature),
            tp.log_softmax(case.x32, case.temperature),
            tp.logsumexp(case.x32, case.temperature),
            tp.greedy(case.x32),
            tp.mask(case.x32, **kw),
            tp.filtered_probs(case.x32, **kw),
            *tp.top_logprobs(case.x32, 9, case.temperature),
        ]
    for n in (2, 3):
        for i, (a, b) in enumerate(zip(results[1], results[n])):
            np.testing.assert_array_equal(a, b, err_msg=f"result {i} differs with {n} threads")


def test_seed_and_offset_reproduce_and_equal_explicit_uniforms(simd_path, seed):
    case = _batch(seed)
    kw = case.filters()
    tok1, lp1 = tp.sample(case.x32, **kw, seed=case.seed, offset=case.offset, return_logprobs=True)
    tok2, lp2 = tp.sample(case.x32, **kw, seed=case.seed, offset=case.offset, return_logprobs=True)
    np.testing.assert_array_equal(tok1, tok2)
    np.testing.assert_array_equal(lp1, lp2)
    u = tp.uniform(case.seed, case.offset)
    tok3, lp3 = tp.sample(case.x32, **kw, uniforms=u, return_logprobs=True)
    np.testing.assert_array_equal(
        tok1, tok3, err_msg="seed/offset must act as uniforms=uniform(seed, offset)"
    )
    np.testing.assert_array_equal(lp1, lp3)
    # a scalar seed and offset are shared by every row
    s, o = 2**64 - 1, 2**32
    tok4 = tp.sample(case.x32, **kw, seed=s, offset=o)
    tok5 = tp.sample(case.x32, **kw, uniforms=np.full(case.B, tp.uniform(s, o)))
    np.testing.assert_array_equal(tok4, tok5)


def test_offset_advances_the_stream():
    x = np.zeros(1536, dtype=np.float32)  # uniform over 1536 tokens
    toks = [int(tp.sample(x, seed=12345, offset=step)) for step in range(40)]
    # each token equals the reference's draw for that step
    assert toks == [int(ref.sample(x, seed=12345, offset=step)) for step in range(40)]
    # P(<= 20 distinct in 40 uniform draws from 1536) < 1e-30 for a working generator
    assert len(set(toks)) > 20, toks


def test_seed_none_draws_fresh_seeds():
    """seed=None: 20 single-row draws from a uniform 1536-token distribution, and a 64-row
    batch of them.  All equal with probability 1536**-19 < 1e-60 (and 1536**-63)."""
    x = np.zeros(1536, dtype=np.float32)
    draws = {int(tp.sample(x)) for _ in range(20)}
    assert len(draws) > 1, f"seed=None gave the same token 20 times: {draws}"
    batch = tp.sample(np.zeros((64, 1536), dtype=np.float32), seed=None)
    assert len(set(batch.tolist())) > 1, "seed=None gave every row of a batch the same seed"
    again = tp.sample(np.zeros((64, 1536), dtype=np.float32))
    assert not np.array_equal(batch, again)


# ----------------------------------------------------------------------------
# distributions

CHI2_SETTINGS = [
    ("flat-T1", "flat", 11, dict()),
    ("peaked-T0.7-topk5", "peaked", 97, dict(temperature=0.7, top_k=5)),
    ("flat-topp0.8-T1.3", "flat", 97, dict(temperature=1.3, top_p=0.8)),
    ("peaked-minp0.02", "peaked", 97, dict(min_p=0.02, temperature=2.0)),
    ("all-filters", "flat", 1536, dict(temperature=0.8, top_k=50, top_p=0.9, min_p=0.05)),
    ("ties-topk-boundary", "ties", 97, dict(top_k=3, temperature=1.5)),
    ("masked", "masked", 97, dict(temperature=1.0)),
]


def _merge_cells(observed, expected, minimum=5.0):
    """Cells with expectation < minimum are pooled; a pool still below it joins the
    smallest remaining cell."""
    small = expected < minimum
    obs, exp = list(observed[~small]), list(expected[~small])
    if small.any():
        o, e = observed[small].sum(), expected[small].sum()
        if e < minimum and exp:
            i = int(np.argmin(exp))
            obs[i] += o
            exp[i] += e
        else:
            obs.append(o)
            exp.append(e)
    return np.array(obs, dtype=np.float64), np.array(exp, dtype=np.float64)


@pytest.mark.parametrize("name, kind, V, kw", CHI2_SETTINGS, ids=[s[0] for s in CHI2_SETTINGS])
def test_draw_frequencies_chi_square(simd_path, name, kind, V, kw):
    """200_000 draws (50_000 for V = 1536, where top-k 50 leaves 50 cells) with seeds
    10**6.. and offsets 0..4 against reference.filtered_probs;
    the critical value is chi2.isf(1e-10, df): false-failure probability 1e-10 per setting
    (seven settings: 7e-10).  Tokens of probability 0 must never be drawn (exact)."""
    case = _arrays.build(_arrays.Recipe(seed=2024 + V, V=V, kinds=(kind,), layout="1d"))
    x = case.x32[0]
    assert not C.kept_ambiguous(
        x,
        kw.get("temperature", 1.0),
        kw.get("top_k", 0),
        kw.get("top_p", 1.0),
        kw.get("min_p", 0.0),
    ), "choose a setting whose kept set is unambiguous"
    p = ref.filtered_probs(x, **kw)
    N, chunk = (200_000, 25_000) if V < 1000 else (50_000, 10_000)
    counts = np.zeros(V, dtype=np.int64)
    rows = np.broadcast_to(x, (chunk, V)).copy()
    for start in range(0, N, chunk):
        i = np.arange(start, start + chunk, dtype=np.uint64)
        toks = tp.sample(rows, **kw, seed=10**6 + i // 5, offset=i % 5)
        counts += np.bincount(toks, minlength=V)
    never = np.nonzero((p == 0) & (counts > 0))[0]
    assert not never.size, (
        f"tokens of probability 0 were drawn: {never[:10]} ({counts[never[:10]]} times)"
    )
    obs, exp = _merge_cells(counts[p > 0], N * p[p > 0])
    df = obs.size - 1
    if df == 0:
        assert obs[0] == N
        return
    stat = float(((obs - exp) ** 2 / exp).sum())
    crit = stats.chi2.isf(1e-10, df)
    worst = np.argsort(-((obs - exp) ** 2 / exp))[:5]
    assert stat < crit, (
        f"{name}: chi-square {stat:.1f} >= {crit:.1f} (df {df}); worst cells "
        f"observed {obs[worst]} expected {np.round(exp[worst], 1)}"
    )


@pytest.mark.parametrize("name, kind, V, kw", CHI2_SETTINGS, ids=[s[0] for s in CHI2_SETTINGS])
def test_stratified_uniforms_reproduce_filtered_probs(simd_path, name, kind, V, kw):
    """With u = (i + 0.5) / N the count of each token is N * p within 2 (deterministic)."""
    case = _arrays.build(_arrays.Recipe(seed=77 + V, V=V, kinds=(kind,), layout="1d"))
    x = case.x32[0]
    p = ref.filtered_probs(x, **kw)
    N = 100_000 if V < 1000 else 20_000
    toks = tp.sample(np.broadcast_to(x, (N, V)), **kw, uniforms=(np.arange(N) + 0.5) / N)
    counts = np.bincount(toks, minlength=V)
    off = np.nonzero(np.abs(counts - N * p) > 2)[0]
    assert not off.size, (
        f"{name}: tokens {off[:8]} drawn {counts[off[:8]]} times, want {N * p[off[:8]]}"
    )


# ----------------------------------------------------------------------------
# threads from Python (fork() is in test_threads.py)


def test_concurrent_calls_from_python_threads(simd_path, seed):
    case = _batch(seed, B=32)
    kw = case.filters()
    want_tok = tp.sample(case.x32, **kw, seed=case.seed, offset=case.offset)
    want_p = tp.filtered_probs(case.x32, **kw)
    errors = []

    def worker():
        try:
            for _ in range(20):
                if not np.array_equal(
                    tp.sample(case.x32, **kw, seed=case.seed, offset=case.offset), want_tok
                ):
                    errors.append("sample")
                if not np.array_equal(tp.filtered_probs(case.x32, **kw), want_p, equal_nan=True):
                    errors.append("filtered_probs")
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a thread calling tokenpick hung"
    assert not errors, f"concurrent calls gave different results: {errors[:5]}"
