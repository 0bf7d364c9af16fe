"""Known answers for the semantics of docs/semantics.md, worked by hand, checked on both the
reference and the package (``impl`` is parametrized: ``-k reference`` runs the reference half).

The inputs are chosen so that no answer sits on a tolerance boundary.
"""

import math

import numpy as np
import pytest

NEG = -np.inf

# the float64 oracle overflows, by design, at extreme temperatures
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")


@pytest.fixture(params=["reference", "tokenpick"])
def impl(request):
    if request.param == "reference":
        from tokenpick import reference

        return reference
    import tokenpick

    return tokenpick


def f32(*values):
    return np.array(values, dtype=np.float32)


def logs(*probs):
    return np.log(np.array(probs, dtype=np.float64)).astype(np.float32)


def kept(masked):
    return np.nonzero(np.isfinite(np.asarray(masked)))[0].tolist()


# ----------------------------------------------------------------------------
# greedy, softmax, log_softmax, logsumexp


def test_greedy_lowest_index_on_ties(impl):
    assert int(impl.greedy(f32(1, 3, 3, 2))) == 1
    assert impl.greedy(
        np.array([[1, 3, 3, 2], [5, 0, 5, 5], [NEG, -7, NEG, -9]], dtype=np.float32)
    ).tolist() == [1, 0, 1]


def test_greedy_ties_far_apart_in_long_rows(impl, simd_path):
    # The first of equal maxima wins wherever the row puts them: at the ends, a few
    # thousand tokens apart, or in every position of a row of one value.
    V = 3 * 4096 + 5
    rows = np.zeros((5, V), dtype=np.float32)
    rows[0, [V - 1]] = 2.0
    rows[1, [4095, 4096, V - 1]] = 2.0
    rows[2, [4097, 2 * 4096, V - 2]] = 2.0
    rows[3, [5, V - 3]] = 2.0
    rows[3, 9000] = 1.5
    rows[4, :] = -3.0
    assert impl.greedy(rows).tolist() == [V - 1, 4095, 4097, 5, 0]


def test_greedy_float32_rounding_creates_ties(impl):
    # 1 + 2**-30 and 1 are different float64 numbers but the same float32: a tie.
    x = np.array([1.0, 1.0 + 2.0**-30], dtype=np.float64)
    assert int(impl.greedy(x)) == 0


def test_greedy_subnormals_are_not_flushed(impl):
    # 1e-45 (a float32 subnormal) > 0 > -1e-45: flushing denormals to zero would give 0.
    assert int(impl.greedy(f32(0.0, -1e-45, 1e-45))) == 2


def test_softmax_known_values(impl):
    np.testing.assert_allclose(impl.softmax(logs(0.25, 0.75)), [0.25, 0.75], rtol=1e-6)
    # temperature 2 on doubled logits gives the same distribution
    x = (2 * np.log(np.array([0.1, 0.2, 0.7]))).astype(np.float32)
    np.testing.assert_allclose(impl.softmax(x, temperature=2.0), [0.1, 0.2, 0.7], rtol=1e-6)
    np.testing.assert_allclose(impl.softmax(f32(1000, 1000, NEG)), [0.5, 0.5, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(impl.softmax(f32(1e38, -1e38)), [1.0, 0.0])


def test_temperature_zero_is_one_hot_at_the_first_max(impl):
    x = f32(1, 3, 3, NEG)
    np.testing.assert_array_equal(impl.softmax(x, temperature=0.0), [0, 1, 0, 0])
    np.testing.assert_array_equal(impl.log_softmax(x, temperature=0.0), [NEG, 0, NEG, NEG])
    np.testing.assert_array_equal(
        impl.filtered_probs(x, temperature=0.0, top_k=3, top_p=0.5, min_p=0.5), [0, 1, 0, 0]
    )
    assert kept(impl.mask(x, temperature=0.0, top_k=3)) == [1]
    tok, lp = impl.sample(x, temperature=0.0, uniforms=0.999, return_logprobs=True)
    assert int(tok) == 1 and float(lp) == 0.0


@pytest.mark.parametrize("T", [1e-45, 1e-300, 2.2250738585072014e-308, 1e-310, 5e-324])
def test_tiny_temperatures_approach_greedy(impl, T):
    """T > 0 however small (float64 subnormals included) is the T -> 0+ limit."""
    x = f32(1, 0, -1, NEG, 1)
    np.testing.assert_allclose(impl.softmax(x, temperature=T), [0.5, 0, 0, 0, 0.5], atol=1e-30)
    np.testing.assert_allclose(
        impl.log_softmax(x, temperature=T)[[0, 4]], [-math.log(2)] * 2, rtol=1e-6
    )
    assert float(impl.logsumexp(x, temperature=T)) > 3.4e38  # inf in float32
    assert kept(impl.top_p_mask(x, 0.5, temperature=T)) == [0, 4]
    assert kept(impl.min_p_mask(x, 0.5, temperature=T)) == [0, 4]
    np.testing.assert_allclose(
        impl.filtered_probs(x, temperature=T, top_p=0.9), [0.5, 0, 0, 0, 0.5], atol=1e-30
    )
    tok, lp = impl.sample(x, temperature=T, uniforms=0.7, return_logprobs=True)
    assert int(tok) == 4 and float(lp) == pytest.approx(-math.log(2), rel=1e-6)


@pytest.mark.parametrize("T", [1e39, 1e300, 1.7e308])
def test_huge_temperatures_approach_uniform(impl, T):
    """T beyond float32's range still divides: nearly uniform, and -inf stays impossible."""
    x = f32(1, NEG, -1, 0)
    np.testing.assert_allclose(impl.softmax(x, temperature=T), [1 / 3, 0, 1 / 3, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(
        impl.log_softmax(x, temperature=T),
        [-math.log(3), NEG, -math.log(3), -math.log(3)],
        rtol=1e-6,
    )
    assert float(impl.logsumexp(x, temperature=T)) == pytest.approx(math.log(3), rel=1e-6)
    assert kept(impl.min_p_mask(x, 0.9, temperature=T)) == [0, 2, 3]
    assert int(impl.sample(x, temperature=T, uniforms=0.5)) == 2


def test_per_row_temperature(impl):
    x = np.array([[0, math.log(3)], [0, 2 * math.log(3)], [5, 1]], dtype=np.float32)
    got = impl.softmax(x, temperature=np.array([1.0, 2.0, 0.0]))
    np.testing.assert_allclose(got, [[0.25, 0.75], [0.25, 0.75], [1.0, 0.0]], rtol=1e-6)


def test_log_softmax_known_values(impl):
    np.testing.assert_allclose(
        impl.log_softmax(logs(0.25, 0.75)), [math.log(0.25), math.log(0.75)], rtol=1e-6
    )
    got = impl.log_softmax(f32(0, -1e30))  # nothing underflows in the log domain
    np.testing.assert_allclose(got, [0.0, -1e30], rtol=1e-6, atol=1e-6)


def test_logsumexp_known_values(impl):
    assert float(impl.logsumexp(f32(0, 0))) == pytest.approx(math.log(2), rel=1e-6)
    assert float(impl.logsumexp(f32(1000, 1000))) == pytest.approx(1000 + math.log(2), rel=1e-6)
    assert float(impl.logsumexp(f32(3, NEG), temperature=2.0)) == pytest.approx(1.5, rel=1e-6)
    got = impl.logsumexp(
        np.array([[1, 0], [-1, -2], [0, 0], [0, -1]], dtype=np.float32), temperature=0.0
    )  # the T -> 0+ limit
    np.testing.assert_allclose(got, [np.inf, NEG, math.log(2), 0.0], rtol=1e-6)


# ----------------------------------------------------------------------------
# top-k, top-p, min-p and their order


def test_top_k_keeps_ties_at_the_boundary(impl):
    x = f32(1, 2, 2, 3)
    assert kept(impl.top_k_mask(x, 2)) == [1, 2, 3]
    assert kept(impl.top_k_mask(x, 1)) == [3]
    assert kept(impl.top_k_mask(f32(3, 3, 1), 1)) == [0, 1]
    assert kept(impl.top_k_mask(x, 2.0)) == [1, 2, 3]  # integral floats are accepted
    np.testing.assert_array_equal(impl.top_k_mask(x, 2), f32(NEG, 2, 2, 3))


@pytest.mark.parametrize("k", [0, -1, 4, 5, 2**40])
def test_top_k_disabled(impl, k):
    x = f32(1, 2, 2, 3)
    np.testing.assert_array_equal(impl.top_k_mask(x, k), x)


def test_top_p_nucleus(impl):
    x = logs(0.2, 0.5, 0.3)
    assert kept(impl.top_p_mask(x, 0.4)) == [1]
    assert kept(impl.top_p_mask(x, 0.6)) == [1, 2]  # the token crossing p is kept
    assert kept(impl.top_p_mask(x, 0.85)) == [0, 1, 2]
    assert kept(impl.top_p_mask(x, 1e-9)) == [1]
    assert kept(impl.top_p_mask(x, 1.0)) == [0, 1, 2]
    # temperature is applied first: T = 0.5 squares the odds: 0.04 : 0.25 : 0.09
    assert kept(impl.top_p_mask(x, 0.6, temperature=0.5)) == [1]  # 0.25 / 0.38 = 0.66


def test_top_p_keeps_ties_and_ignores_token_order(impl):
    assert kept(impl.top_p_mask(f32(1, 1, 1, 0), 0.1)) == [0, 1, 2]
    x = logs(0.1, 0.2, 0.3, 0.4)
    base = set(kept(impl.top_p_mask(x, 0.65)))
    assert base == {2, 3}
    perm = np.array([3, 0, 2, 1])
    assert {int(perm[i]) for i in kept(impl.top_p_mask(x[perm], 0.65))} == base


def test_min_p(impl):
    x = f32(0, -1, -2)
    assert kept(impl.min_p_mask(x, math.exp(-1.5))) == [0, 1]
    assert kept(impl.min_p_mask(x, math.exp(-1.5), temperature=2.0)) == [0, 1, 2]
    assert kept(impl.min_p_mask(f32(0, 0, -1), 1.0)) == [0, 1]
    assert kept(impl.min_p_mask(x, 0.0)) == [0, 1, 2]
    # a bound below float32's range still counts: log(1e-300) = -690.8
    assert kept(impl.min_p_mask(f32(0, -700, -600), 1e-300)) == [0, 2]


def test_top_k_of_a_large_share_of_long_rows(simd_path):
    # k beyond the small-k shortcut on rows longer than the candidate list: the
    # k-th largest comes from a band that a strided sample brackets, or, when the
    # sample misleads (the decoy row: every sampled token far below the rest),
    # from the radix select.  Kept: every token >= the k-th largest, ties included.
    import tokenpick

    rng = np.random.default_rng(11)
    V = 40_000
    flat = rng.standard_normal(V).astype(np.float32)
    decoy = flat.copy()
    decoy[:: V // 4096] = -40.0
    ties = np.round(flat * 4) / 4
    masked = flat.copy()
    masked[rng.random(V) < 0.4] = NEG
    rising = np.sort(flat)
    for x in (flat, decoy, ties, masked, rising):
        for k in (V // 16 + 1, V // 3, V // 2 + 7, V - 5):
            kth = np.sort(x)[::-1][k - 1]
            want = np.nonzero((x >= kth) & (x > NEG))[0].tolist()  # -inf stays -inf
            assert kept(tokenpick.top_k_mask(x, k)) == want, k
            assert kept(tokenpick.mask(x[None], top_k=k)[0]) == want, k


def test_top_k_of_a_few_on_long_rows(simd_path):
    # small k on long rows goes by block maxima: the k-th largest of the
    # blocks' maxima bounds the row's from below, and only blocks reaching it
    # are gathered.  Rows where that bound is loose (the top in one block),
    # tied (blocks sharing one max), mostly -inf (fewer finite blocks than k),
    # sorted either way, and lengths that leave a short last block.
    import tokenpick

    rng = np.random.default_rng(12)
    for V in (20_000, 32_000, 70_001, 131_072):
        flat = rng.standard_normal(V).astype(np.float32)
        clumped = flat.copy()
        clumped[V // 3 : V // 3 + 200] += 10.0  # the top 200 in a few adjacent blocks
        tail = flat.copy()
        tail[-7:] += 10.0  # the largest in the short last block
        ties = np.round(flat * 2) / 2
        plateau = np.minimum(flat, np.float32(1.0))  # ~16% of tokens tie at the max
        sparse = np.full(V, NEG, dtype=np.float32)
        sparse[rng.choice(V, 30, replace=False)] = rng.standard_normal(30)
        rising = np.sort(flat)
        for x in (flat, clumped, tail, ties, plateau, sparse, rising, rising[::-1].copy()):
            for k in (1, 2, 17, 50, 100, V // 300):
                kth = np.sort(x)[::-1][k - 1]
                want = np.nonzero((x >= kth) & (x > NEG))[0].tolist()
                assert kept(tokenpick.top_k_mask(x, k)) == want, (V, k)
                assert kept(tokenpick.mask(x[None], top_k=k)[0]) == want, (V, k)
                # with out=, every row is checked before any is written, by a
                # pass that leaves no block maxima: top-k finds them itself
                out = np.empty((1, V), dtype=np.float32)
                tokenpick.mask(x[None], top_k=k, out=out)
                assert kept(out[0]) == want, (V, k)


def test_sample_is_the_same_whichever_pass_found_the_block_maxima(simd_path):
    # a row checked right before use hands top-k its block maxima from that
    # pass; a batch checked up front (out= given) does not: the same rows must
    # give the same bits either way, and the same as one row at a time
    import tokenpick

    rng = np.random.default_rng(13)
    x = (2.0 * rng.standard_normal((6, 128_256))).astype(np.float32)
    x[:, rng.choice(128_256, 300, replace=False)] += 12.0
    for k in (1, 50, 400):
        want = tokenpick.filtered_probs(x, temperature=0.8, top_k=k)
        out = np.empty_like(x)
        tokenpick.filtered_probs(x, temperature=0.8, top_k=k, out=out)
        assert np.array_equal(out, want), k
        for i in range(len(x)):
            assert np.array_equal(
                tokenpick.filtered_probs(x[i], temperature=0.8, top_k=k), want[i]
            ), (k, i)


def _top_p_sample_positions(V):
    """The tokens top-p's probe of a row of V reads (csrc/rows/gather.c:
    probe_size, probe_lines): lines of 16, spread evenly."""
    m = min(V // 16, 4096)
    runs = (m - m % 16) // 16
    starts = np.arange(runs) * (V // runs)
    return (starts[:, None] + np.arange(16)).ravel()


def test_top_p_when_the_sample_misleads(simd_path):
    # top-p estimates the row's mass and the nucleus boundary from a sample,
    # then checks the estimates against the exact mass of its one pass.  A
    # flat row whose sampled tokens are raised misleads the sample about both:
    # the band around the estimated boundary misses it, the band is tried
    # again with the exact mass (and misses again, the sample being what it
    # is), and the histogram over the whole row finds the boundary.  The kept
    # set and the draw must be the reference's all the same.
    import tokenpick
    from tokenpick import reference

    rng = np.random.default_rng(14)
    V = 131_072
    x = rng.standard_normal(V)
    x[_top_p_sample_positions(V)] += 2.5
    x = x.astype(np.float32)
    for T, p in ((0.8, 0.9), (1.0, 0.5), (0.4, 0.95)):
        want = kept(reference.top_p_mask(x, p, temperature=T))
        assert kept(tokenpick.top_p_mask(x, p, temperature=T)) == want, (T, p)
        u = rng.random(4)
        got = tokenpick.sample(np.tile(x, (4, 1)), temperature=T, top_p=p, uniforms=u)
        ref = reference.sample(np.tile(x, (4, 1)), temperature=T, top_p=p, uniforms=u)
        assert got.tolist() == ref.tolist(), (T, p)


def test_top_k_on_short_rows(simd_path):
    # k from 17 to 64 of up to 1024 logits goes by bisection on integer keys
    # that order like the floats: -0.0 and +0.0 are one value, -inf and the
    # extremes of float32 sort where they belong, and ties at the k-th
    # largest are all kept.  Powers of two from the subnormals to the largest
    # defeat its splits by value, so that its splits by key finish the search.
    import tokenpick

    rng = np.random.default_rng(15)
    big = np.finfo(np.float32).max
    tiny = np.finfo(np.float32).smallest_subnormal
    for V in (17, 64, 100, 513, 1000, 1024):
        flat = rng.standard_normal(V).astype(np.float32)
        zeros = rng.choice(f32(-0.0, 0.0, tiny, -tiny, 1.0, -1.0), V)
        extremes = rng.choice(f32(-big, big, -1e-38, 1e-38, 0.0, NEG), V)
        extremes[0] = big  # not all -inf
        ties = np.round(flat * 2) / 2
        masked = np.where(rng.random(V) < 0.5, NEG, flat).astype(np.float32)
        masked[0] = 0.0
        powers = np.ldexp(rng.choice(f32(-1.0, 1.0), V), rng.integers(-149, 128, V))
        powers = powers.astype(np.float32)
        for x in (
            flat,
            zeros,
            extremes,
            ties,
            masked,
            powers,
            np.sort(flat),
            np.sort(flat)[::-1].copy(),
        ):
            for k in {17, 18, 50, 64, V}:
                if k > V:
                    continue
                kth = np.sort(x)[::-1][k - 1]
                want = np.nonzero((x >= kth) & (x > NEG))[0].tolist()
                assert kept(tokenpick.top_k_mask(x, k)) == want, (V, k)


def test_top_p_among_many_candidates(simd_path):
    # more than 512 candidates (a flat row's nucleus, or top-k's survivors)
    # are selected by a quickselect by mass: ties at the boundary stay
    # together, tokens of no probability (-inf, or underflowed at a low
    # temperature) never count, and the kept set is the reference's
    import _compare as C

    import tokenpick
    from tokenpick import reference

    rng = np.random.default_rng(16)
    for V in (600, 3000, 20_000):
        flat = rng.standard_normal(V).astype(np.float32)
        ties = (np.round(flat * 8) / 8).astype(np.float32)
        plateau = np.minimum(flat, np.float32(0.5))
        masked = np.where(rng.random(V) < 0.3, NEG, flat).astype(np.float32)
        wide = flat * np.float32(300.0)  # at T = 0.3 most tokens underflow to 0
        for x in (flat, ties, plateau, masked, wide):
            for T, k, p in ((1.0, 0, 0.9), (0.3, 0, 0.5), (2.0, 0, 0.99), (1.0, 700, 0.8)):
                got = np.isfinite(tokenpick.mask(x, temperature=T, top_k=k, top_p=p))
                strict, loose = C.kept_bounds(x, T, k, p, 0.0)
                assert not (strict & ~got).any() and not (got & ~loose).any(), (V, T, k, p)
                want = np.isfinite(reference.mask(x, temperature=T, top_k=k, top_p=p))
                if not (strict != loose).any():
                    assert np.array_equal(got, want), (V, T, k, p)


def test_filter_order_top_k_then_top_p_on_the_renormalized_distribution(impl):
    x = logs(0.4, 0.3, 0.2, 0.1)
    assert kept(impl.mask(x, top_p=0.5)) == [0, 1]
    # after top-k 2: 4/7, 3/7, and 4/7 >= 0.5
    assert kept(impl.mask(x, top_k=2, top_p=0.5)) == [0]
    # min-p is relative to the max probability, whatever top-p did
    assert kept(impl.mask(x, top_p=0.95, min_p=0.6)) == [0, 1]
    np.testing.assert_allclose(impl.filtered_probs(x, top_k=2), [4 / 7, 3 / 7, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(
        impl.filtered_probs(x, top_k=3, min_p=0.6), [4 / 7, 3 / 7, 0, 0], rtol=1e-6
    )


def test_per_row_filters(impl):
    x = np.tile(logs(0.4, 0.3, 0.2, 0.1), (3, 1))
    got = impl.mask(x, top_k=np.array([1, 2, 0]), top_p=np.array([1.0, 1.0, 0.5]))
    assert [kept(r) for r in got] == [[0], [0, 1], [0, 1]]


def test_mask_does_not_divide_by_temperature(impl):
    x = f32(2, 1, NEG)
    np.testing.assert_array_equal(impl.mask(x, temperature=7.0), x)


# ----------------------------------------------------------------------------
# the draw


@pytest.mark.parametrize(
    "u, token", [(0.0, 0), (0.1, 0), (0.3, 1), (0.49, 1), (0.75, 2), (1 - 2**-53, 2)]
)
def test_draw_inverts_the_running_sum_in_token_order(impl, u, token):
    x = logs(0.25, 0.25, 0.5)
    assert int(impl.sample(x, uniforms=u)) == token
    tok, lp = impl.sample(x, uniforms=u, return_logprobs=True)
    assert int(tok) == token
    assert float(lp) == pytest.approx(math.log([0.25, 0.25, 0.5][token]), rel=1e-6)


@pytest.mark.parametrize("u", [0.0, 0.5, 1 - 2**-53])
def test_probability_zero_is_never_drawn(impl, u):
    assert int(impl.sample(f32(NEG, 0, NEG, NEG), uniforms=u)) == 1
    x = logs(0.5, 0.3, 0.2)
    assert int(impl.sample(x, top_k=1, uniforms=u)) == 0
    assert int(impl.sample(f32(0, 0, -200), uniforms=u, top_k=2)) in (0, 1)


def test_sampled_logprob_is_under_the_filtered_distribution(impl):
    x = logs(0.4, 0.3, 0.2, 0.1)
    tok, lp = impl.sample(x, top_k=2, uniforms=0.9, return_logprobs=True)
    assert int(tok) == 1
    assert float(lp) == pytest.approx(math.log(3 / 7), rel=1e-6)


def test_batch_draws_use_their_own_rows_and_uniforms(impl):
    x = np.array([logs(0.25, 0.25, 0.5), logs(0.5, 0.5, 1e-9), logs(1e-9, 0.5, 0.5)])
    got = impl.sample(x, uniforms=np.array([0.3, 0.7, 0.2]))
    assert got.tolist() == [1, 1, 1]
    assert got.dtype == np.int64


# ----------------------------------------------------------------------------
# top_logprobs, uniform, shapes


def test_top_logprobs_known(impl):
    ids, vals = impl.top_logprobs(f32(1, 3, 3, 2), 3)
    assert ids.tolist() == [1, 2, 3]
    lse = math.log(math.e + 2 * math.e**3 + math.e**2)
    np.testing.assert_allclose(vals, [3 - lse, 3 - lse, 2 - lse], rtol=1e-6)
    ids, vals = impl.top_logprobs(f32(1, 3, 3, 2), 3, temperature=0.0)
    assert ids.tolist() == [1, 0, 2]
    np.testing.assert_array_equal(vals, [0.0, NEG, NEG])
    ids, vals = impl.top_logprobs(np.array([[NEG, 0, NEG]], dtype=np.float32), 3)
    assert ids.tolist() == [[1, 0, 2]]
    np.testing.assert_array_equal(vals, [[0.0, NEG, NEG]])


def test_uniform_known_answer(impl):
    # Random123 known answer: key (0, 0), counter 0 -> 6627e8d5 e169c58d ...
    want = ((0x6627E8D5 | (0xE169C58D << 32)) >> 11) * 2.0**-53
    assert float(impl.uniform(0, 0)) == want
    assert float(impl.uniform(0)) == want


def test_scalar_shapes_for_1d_logits(impl):
    x = f32(0, 1, 2)
    for r in (impl.greedy(x), impl.sample(x, seed=1), impl.logsumexp(x)):
        assert np.ndim(r) == 0
    tok, lp = impl.sample(x, seed=1, return_logprobs=True)
    assert np.ndim(tok) == 0 and np.ndim(lp) == 0
    assert impl.softmax(x).shape == (3,)
    ids, vals = impl.top_logprobs(x, 2)
    assert ids.shape == (2,) and vals.shape == (2,)


def test_empty_batch(impl):
    x = np.zeros((0, 7), dtype=np.float32)
    assert impl.softmax(x).shape == (0, 7)
    assert impl.log_softmax(x).shape == (0, 7)
    assert impl.mask(x, top_k=2).shape == (0, 7)
    assert impl.filtered_probs(x, top_p=0.5).shape == (0, 7)
    assert impl.logsumexp(x).shape == (0,)
    assert impl.greedy(x).shape == (0,)
    assert impl.sample(x, seed=3).shape == (0,)
    assert impl.sample(x, uniforms=np.zeros(0)).shape == (0,)
    tok, lp = impl.sample(x, seed=3, return_logprobs=True)
    assert tok.shape == (0,) and lp.shape == (0,)
    ids, vals = impl.top_logprobs(x, 2)
    assert ids.shape == (0, 2) and vals.shape == (0, 2)


def test_vocabulary_of_one(impl):
    x = f32(-3.5)
    np.testing.assert_array_equal(impl.softmax(x), [1.0])
    np.testing.assert_array_equal(impl.log_softmax(x), [0.0])
    assert float(impl.logsumexp(x)) == pytest.approx(-3.5)
    assert int(impl.sample(x, top_p=1e-9, min_p=1.0, top_k=1, seed=5)) == 0
