"""``verify`` (speculative decoding) against ``tokenpick.reference.verify``, its edge cases,
and its exactness shown statistically.

* Differential: generated target logits (tests/_arrays.py's row kinds, float32, float16 and
  bfloat16, every SIMD path), drafts that are the argmax, a likely token or any token,
  draft distributions or none, mixed ``num_draft``, filters and ``T == 0`` rows in one
  call, the logit processors with the drafts counted as output and a bitmask per
  position.  With the same uniforms the tokens and acceptance counts are equal, but where
  the reference's own numbers put a decision within 1e-6 of its boundary (a float32 kernel
  may fall either side); log-probabilities within 1e-5.
* Edge cases of the issue: q(d) == 0, p == q, drafts out of range, ``num_draft == 0``
  (``sample``'s token and log-probability, bitwise), every emitted id in [0, V).
* Exactness: over 200,000 independent rows the first emitted token's law is p_0 and the
  law of the number of accepted drafts is the theory's, by chi-square tests whose
  threshold (p = 1e-10 each, 4 tests) bounds the false-failure probability below 1e-9.
"""

import tracemalloc

import _arrays
import _compare as C
import numpy as np
import pytest
from _dlpack import Bfloat16Rows, bfloat16_bits
from scipy import stats

import tokenpick as tp
from tokenpick import reference as ref

KINDS = ("peaked", "flat", "ties", "masked", "one_left", "offset", "decoy")


def target_case(rng, B, K, V, dtype="float32"):
    """(target_logits as handed over, their float32 values (B, K+1, V))."""
    x = np.stack(
        [
            np.stack(
                [_arrays.make_row(rng, KINDS[rng.integers(len(KINDS))], V) for _ in range(K + 1)]
            )
            for _ in range(B)
        ]
    )
    if dtype == "float16":
        with np.errstate(over="ignore"):
            h = x.astype(np.float16)
        return h, h.astype(np.float32)
    if dtype == "bfloat16":
        rows = Bfloat16Rows(bfloat16_bits(x))
        return rows, np.asarray(rows)
    x32 = x.astype(np.float32)
    return x32, x32


def drafts_for(rng, x32):
    """Draft tokens: per position the argmax, one of the five largest, or any token."""
    B, npos, V = x32.shape
    d = rng.integers(V, size=(B, npos - 1))
    top = np.argsort(-x32[:, :-1], axis=-1, kind="stable")[..., : min(5, V)]
    pick = rng.random((B, npos - 1))
    d = np.where(pick < 0.4, top[..., 0], d)
    choice = top[
        np.arange(B)[:, None],
        np.arange(npos - 1)[None],
        rng.integers(top.shape[-1], size=(B, npos - 1)),
    ]
    return np.where((pick >= 0.4) & (pick < 0.7), choice, d)


def draft_probs_for(rng, B, K, V, kind):
    if kind == "none":
        return None
    q = rng.random((B, K, V)) ** 3
    if kind == "sparse":
        q[rng.random((B, K, V)) < 0.7] = 0.0
        q[..., 0] += 1e-3  # never all zero
    return (q / q.sum(-1, keepdims=True)).astype(np.float32)


def filters_for(rng, B):
    T = rng.choice([0.0, 0.5, 1.0, 1.7], size=B)
    return dict(
        temperature=T,
        top_k=rng.choice([0, 1, 3, 20], size=B),
        top_p=rng.choice([1.0, 0.9, 0.5], size=B),
        min_p=rng.choice([0.0, 0.05], size=B),
    )


def near_boundary(x32, draft, q, U, nd, f, b):
    """Whether the reference's own numbers put one of row b's decisions within 1e-6 of
    its boundary (then a float32 kernel may decide the other way)."""
    args = dict(f)
    sub = {k: (v[b] if isinstance(v, np.ndarray) and v.ndim == 1 else v) for k, v in args.items()}
    npos = x32.shape[1]
    for k in range(npos):
        probs = ref.filtered_probs(x32[b, k], **sub)
        cum = np.cumsum(probs)
        if np.any(np.abs(cum - U[b, 0] * cum[-1]) <= 1e-6 * cum[-1]):
            return True
        if k < nd[b]:
            qd = 1.0 if q is None else float(q[b, k, draft[b, k]])
            if abs(U[b, k + 1] * qd - probs[draft[b, k]]) <= 1e-6:
                return True
            if q is not None:
                res = np.maximum(probs - q[b, k], 0)
                cr = np.cumsum(res)
                if cr[-1] > 0 and np.any(
                    np.abs(cr - U[b, 0] * cr[-1]) <= 1e-6 * max(cr[-1], 1e-30)
                ):
                    return True
    return False


def check_against_reference(rng, target, x32, K, q_kind, dtype, **extra):
    B, npos, V = x32.shape
    draft = drafts_for(rng, x32)
    q = draft_probs_for(rng, B, K, V, q_kind)
    nd = rng.integers(0, K + 1, size=B)
    U = rng.random((B, npos))
    f = filters_for(rng, B)
    kw = dict(draft_probs=q, num_draft=nd, uniforms=U, return_logprobs=True, **f, **extra)
    try:
        got, want = C.call_both(tp, ref, "verify", (target, draft), kw)
    except C.BothRaised:
        return
    tokens, acc, lps = got
    wt, wa, wl = want
    assert tokens.dtype == np.int64 and tokens.shape == (B, npos)
    assert acc.dtype == np.int64 and lps.dtype == np.float32 and lps.shape == (B, npos)
    assert ((tokens >= -1) & (tokens < V)).all()
    for b in range(B):
        if np.array_equal(tokens[b], wt[b]) and acc[b] == wa[b]:
            fin = np.isfinite(wl[b])
            assert np.array_equal(np.isfinite(lps[b]), fin), (b, lps[b], wl[b])
            np.testing.assert_allclose(lps[b][fin], wl[b][fin], rtol=1e-5, atol=1e-5)
            continue
        assert extra or near_boundary(x32, draft, q, U, nd, f, b), (
            f"{dtype} row {b}: verify gives {tokens[b]} ({acc[b]} accepted), the reference "
            f"{wt[b]} ({wa[b]}); drafts {draft[b]}, num_draft {nd[b]}"
        )


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("q_kind", ["none", "dense", "sparse"])
def test_matches_reference(simd_path, seed, dtype, q_kind):
    rng = np.random.default_rng(seed)
    for B, K, V in (
        (1, 0, 7),
        (3, 1, 1),
        (4, 2, 2),
        (5, 3, 11),
        (3, 4, 97),
        (2, 4, 1536),
        (1, 2, 5000),
    ):
        target, x32 = target_case(rng, B, K, V, dtype)
        check_against_reference(rng, target, x32, K, q_kind, dtype)


def test_matches_reference_with_processors(simd_path, seed):
    """The processors at each position see the drafts before it as output (penalties,
    min_tokens reached by the drafts), and a bitmask per position; both sides agree."""
    rng = np.random.default_rng(seed)
    B, K, V = 4, 3, 61
    for _ in range(6):
        target, x32 = target_case(rng, B, K, V)
        words = -(-V // 32)
        bits = rng.random((B, K + 1, 32 * words)) < 0.8
        mask = np.packbits(bits, axis=-1, bitorder="little").view("<u4")
        draft = drafts_for(rng, x32)
        U = rng.random((B, K + 1))
        kw = dict(
            token_bitmask=mask if rng.random() < 0.5 else mask[:, 0],
            output_ids=[rng.integers(V, size=int(rng.integers(0, 5))) for _ in range(B)],
            prompt_ids=rng.integers(-1, V, size=(B, 6)),
            repetition_penalty=1.4,
            frequency_penalty=rng.choice([0.0, 0.7], size=B),
            presence_penalty=0.3,
            min_tokens=int(rng.integers(0, 4)),
            stop_ids=[int(draft[0, 0]), 5],
            logit_bias=[{int(draft[b, 0]): 2.0} for b in range(B)],
            num_draft=rng.integers(0, K + 1, size=B),
            uniforms=U,
            temperature=rng.choice([0.0, 0.8], size=B),
            return_logprobs=True,
        )
        try:
            got, want = C.call_both(tp, ref, "verify", (target, draft), kw)
        except C.BothRaised:
            continue
        for g, w in zip(got[:2], want[:2]):
            assert np.array_equal(g, w), (got, want)
        fin = np.isfinite(want[2])
        np.testing.assert_allclose(got[2][fin], want[2][fin], rtol=1e-5, atol=1e-5)


def test_no_drafts_is_sample(simd_path, seed):
    """num_draft == 0 (or K == 0): the token and log-probability of ``sample`` on the first
    position, bitwise, with the same seed and offset, filters and processors."""
    rng = np.random.default_rng(seed)
    for V in (5, 300, 40000):
        target, x32 = target_case(rng, 6, 2, V)
        draft = drafts_for(rng, x32)
        kw = dict(temperature=[0.0, 0.7, 1.0, 1.3, 1.0, 0.9], top_k=[0, 5, 0, 50, 3, 0],
                  top_p=0.9, min_p=0.01, logit_bias={1: 3.0}, output_ids=[[2, 2]] * 6,
                  frequency_penalty=0.5)  # fmt: skip
        tokens, acc, lps = tp.verify(target, draft, num_draft=0, seed=41, offset=9,
                                     return_logprobs=True, **kw)  # fmt: skip
        want, want_lp = tp.sample(target[:, 0], seed=41, offset=9, return_logprobs=True, **kw)
        assert np.array_equal(tokens[:, 0], want) and np.array_equal(lps[:, 0], want_lp)
        assert (acc == 0).all() and (tokens[:, 1:] == -1).all() and np.isneginf(lps[:, 1:]).all()
        t0, _ = tp.verify(target[:, :1], draft[:, :0], seed=41, offset=9, **kw)
        assert np.array_equal(t0[:, 0], want)


def test_edge_cases(seed):
    rng = np.random.default_rng(seed)
    V = 8
    with np.errstate(divide="ignore"):
        x = np.log(np.array([0.4, 0.3, 0.2, 0.1, 0, 0, 0, 0]))  # -inf: probability 0
    target = np.repeat(np.stack([x, x])[None], 50, axis=0).astype(np.float32)  # (50, 2, 8)
    p = tp.filtered_probs(target[0, 0])
    # q(d) == 0: accepted iff p(d) > 0
    q = np.full((50, 1, V), 1 / 7, dtype=np.float32)
    q[:, 0, 2] = 0.0
    tokens, acc = tp.verify(target, np.full((50, 1), 2), draft_probs=q, seed=np.arange(50))
    assert (acc == 1).all() and (tokens[:, 0] == 2).all()
    q[:, 0, 6] = 0.0
    tokens, acc = tp.verify(target, np.full((50, 1), 6), draft_probs=q, seed=np.arange(50))
    assert (acc == 0).all() and (tokens[:, 0] < 4).all(), "p(6) = 0: never accepted"
    # p == q: every draft accepted (u * p(d) < p(d)), and where q >= p everywhere (q = 2 p,
    # no distribution, the limit of p == q under rounding) a rejected draft leaves an empty
    # residual: the token is drawn from p with u_0, sample's draw
    same = np.broadcast_to(p, (50, 1, V)).astype(np.float32).copy()
    d = np.full((50, 1), 3)
    U = rng.random((50, 2))
    U[:, 1] = 0.999
    assert (tp.verify(target, d, draft_probs=same, uniforms=U)[1] == 1).all()
    tokens, acc = tp.verify(target, d, draft_probs=2 * same, uniforms=U)
    assert (acc == 0).all()
    assert np.array_equal(tokens[:, 0], tp.sample(target[:, 0], uniforms=U[:, 0]))
    assert np.array_equal(ref.verify(target, d, draft_probs=2 * same, uniforms=U)[0], tokens)
    # drafts out of range, where read
    for bad in (-1, V, 2**40):
        with pytest.raises(ValueError, match="draft_tokens row 1, position 0"):
            tp.verify(target[:3], np.array([[0], [bad], [0]]), seed=1)
    tp.verify(target[:3], np.array([[0], [-1], [0]]), num_draft=[1, 0, 1], seed=1)  # not read
    # a probability that is not one, where read
    q = np.full((3, 1, V), 1 / 8, dtype=np.float32)
    q[1, 0, 5] = np.nan
    for mod in (tp, ref):
        with pytest.raises(ValueError, match="draft_probs row 1, position 0"):
            mod.verify(target[:3], np.full((3, 1), 5), draft_probs=q, seed=1)
    # T == 0 rows beside sampled rows
    tokens, acc = tp.verify(target[:4], np.array([[0], [1], [0], [1]]),
                            temperature=[0.0, 0.0, 1.0, 1.0], seed=3)  # fmt: skip
    assert tokens[0].tolist() == [0, 0] and acc[0] == 1
    assert tokens[1].tolist() == [0, -1] and acc[1] == 0


def test_every_emitted_id_is_a_token(simd_path, seed):
    """Whatever the draft distribution (spikes, zeros, rows that do not sum to one) and
    the logits (one token left, -inf everywhere else), emitted ids are in [0, V)."""
    rng = np.random.default_rng(seed)
    for V in (1, 2, 3, 300):
        B, K = 64, 3
        x = np.full((B, K + 1, V), -np.inf, dtype=np.float32)
        x[..., rng.integers(V)] = 0.0
        x[::2] = rng.standard_normal((B // 2, K + 1, V)) * 10
        q = rng.random((B, K, V)).astype(np.float32) * rng.choice(
            [0.0, 1e-30, 1.0, 1e30], size=(B, K, 1)
        )
        q = q.astype(np.float32)
        q[np.isinf(q)] = 1e30
        d = rng.integers(V, size=(B, K))
        for probs in (None, q):
            tokens, acc = tp.verify(x, d, draft_probs=probs, seed=np.arange(B), top_k=2)
            live = tokens[np.arange(B), acc]
            assert ((live >= 0) & (live < V)).all()


def test_a_row_never_depends_on_the_batch(seed):
    rng = np.random.default_rng(seed)
    target, x32 = target_case(rng, 16, 3, 20000)
    draft = drafts_for(rng, x32)
    q = draft_probs_for(rng, 16, 3, 20000, "dense")
    seeds = np.arange(16) + 100
    whole = tp.verify(target, draft, draft_probs=q, seed=seeds, top_p=0.9, return_logprobs=True)
    one = tp.verify(target, draft, draft_probs=q, seed=seeds, top_p=0.9, return_logprobs=True,
                    num_threads=1)  # fmt: skip
    for a, b in zip(whole, one):
        assert np.array_equal(a, b)
    for b in (0, 7, 15):
        alone = tp.verify(target[b : b + 1], draft[b : b + 1], draft_probs=q[b : b + 1],
                          seed=seeds[b], top_p=0.9, return_logprobs=True)  # fmt: skip
        for a, w in zip(alone, whole):
            assert np.array_equal(a[0], w[b])


def test_errors_match_the_reference():
    x = np.zeros((2, 3, 5), dtype=np.float32)
    d = np.zeros((2, 2), dtype=np.int64)
    nan = x.copy()
    nan[1, 2, 0] = np.nan
    bad_calls = [
        ((x[0], d), {}),
        ((x, d[:, :1]), {}),
        ((x, d.astype(float)), {}),
        ((x, d), dict(num_draft=3)),
        ((x, d), dict(num_draft=[1, -1])),
        ((x, d), dict(draft_probs=np.zeros((2, 2, 4)))),
        ((x, d), dict(uniforms=np.zeros((2, 2)))),
        ((x, d), dict(uniforms=np.ones((2, 3)))),
        ((x, d), dict(uniforms=np.zeros((2, 3)), seed=1)),
        ((x, d), dict(token_bitmask=np.zeros((2, 2, 1), dtype=np.int32))),
        ((nan, d), dict(seed=1)),
        ((x, d), dict(token_bitmask=np.zeros((2, 3, 1), dtype=np.int32), seed=1)),
        ((x, d), dict(output_ids=[[9], [1]], frequency_penalty=1.0, seed=1)),
        ((x, d), dict(temperature=-1)),
    ]
    for args, kw in bad_calls:
        errors = []
        for mod in (tp, ref):
            with pytest.raises((ValueError, TypeError)) as e:
                mod.verify(*args, **kw)
            errors.append((type(e.value), str(e.value)))
        assert errors[0] == errors[1], (kw, errors)


# ----------------------------------------------------------------------------
# Exactness, statistically.

N_TRIALS = 200_000
ALPHA = 1e-10  # per test; 4 tests: false-failure probability < 1e-9


def chi_square_p(counts, probs):
    probs = np.asarray(probs, dtype=np.float64)
    keep = probs > 0
    assert counts[~keep].sum() == 0, "a cell of probability 0 was drawn"
    expected = probs[keep] * counts.sum()
    assert expected.min() >= 50, "every cell populated"
    return stats.chisquare(counts[keep], expected).pvalue


@pytest.mark.parametrize("drafting", ["from q", "n-gram"])
def test_emitted_tokens_follow_the_target(drafting):
    """Drafts drawn from q (or fixed, n-gram), the first emitted token is distributed as
    p_0 and the number of accepted drafts as the theory says: acceptance at position k
    with probability a_k = sum min(p_k, q_k) (n-gram: p_k(d_k)), independently here, as
    the target rows do not depend on the drafts."""
    rng = np.random.default_rng(2024)
    V, K = 6, 3
    base = np.log(np.array([[0.30, 0.25, 0.20, 0.12, 0.08, 0.05],
                            [0.05, 0.45, 0.10, 0.15, 0.05, 0.20],
                            [0.25, 0.25, 0.25, 0.05, 0.10, 0.10],
                            [0.10, 0.10, 0.10, 0.10, 0.30, 0.30]]))  # fmt: skip
    x = np.broadcast_to(base.astype(np.float32), (N_TRIALS, K + 1, V))
    p = np.exp(base) / np.exp(base).sum(-1, keepdims=True)
    q = np.array([[0.10, 0.40, 0.10, 0.10, 0.20, 0.10],
                  [0.20, 0.20, 0.20, 0.20, 0.10, 0.10],
                  [0.30, 0.10, 0.30, 0.10, 0.10, 0.10]])  # fmt: skip
    if drafting == "from q":
        cum = np.cumsum(q, axis=-1)
        draft = np.stack([np.searchsorted(cum[k], rng.random(N_TRIALS), side="right")
                          for k in range(K)], axis=1)  # fmt: skip
        probs = np.broadcast_to(q.astype(np.float32), (N_TRIALS, K, V))
        accept = np.minimum(p[:K], q).sum(-1)
    else:
        draft = np.broadcast_to(np.array([1, 3, 0]), (N_TRIALS, K))
        probs = None
        accept = p[np.arange(K), [1, 3, 0]]
    seeds = rng.integers(0, 2**63, size=N_TRIALS, dtype=np.uint64)
    tokens, acc = tp.verify(x, draft, draft_probs=probs, seed=seeds, offset=5)
    # the first emitted token: p_0
    first = np.bincount(tokens[:, 0], minlength=V)
    assert chi_square_p(first, p[0]) > ALPHA, (first / N_TRIALS, p[0])
    # the number accepted: a_0 ... a_{j-1} (1 - a_j), and a_0 ... a_{K-1} for K
    law = [np.prod(accept[:j]) * (1 - accept[j]) for j in range(K)] + [np.prod(accept)]
    counted = np.bincount(acc, minlength=K + 1)
    assert chi_square_p(counted, law) > ALPHA, (counted / N_TRIALS, law)


def test_penalties_count_the_drafts_without_output_ids():
    """With a penalty on and no ids given, the drafts before a position are its output."""
    x = np.zeros((1, 3, 4), dtype=np.float32)
    x[..., 2] = 1.0
    d = np.array([[2, 2]])
    for kw in (
        dict(presence_penalty=5.0),
        dict(repetition_penalty=4.0),
        dict(frequency_penalty=2.0),
    ):
        got = tp.verify(x, d, uniforms=[[0.5, 0.0, 0.0]], return_logprobs=True, **kw)
        want = ref.verify(x, d, uniforms=[[0.5, 0.0, 0.0]], return_logprobs=True, **kw)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]), (kw, got, want)
        np.testing.assert_allclose(got[2], want[2], rtol=1e-5)
        assert got[2][0, 1] < got[2][0, 0], "the penalty lowers the repeated draft"


def test_per_row_penalties_in_any_array_form():
    """Per-row penalties and min_tokens as a list, a numpy array or any 1-D array-like
    (here array.array, as a tensor of another framework would be) serve each row's
    positions alike, as in sample."""
    import array

    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 3, 30)).astype(np.float32)
    d = x[:, :2].argmax(-1)
    kw = dict(output_ids=[[1, 2], [3]], seed=1, return_logprobs=True)
    want = ref.verify(x, d, repetition_penalty=[1.3, 1.1], frequency_penalty=[0.5, 0.0], **kw)
    for rep, freq in (
        ([1.3, 1.1], [0.5, 0.0]),
        (np.array([1.3, 1.1]), np.array([0.5, 0.0])),
        (array.array("d", [1.3, 1.1]), array.array("d", [0.5, 0.0])),
    ):
        got = tp.verify(x, d, repetition_penalty=rep, frequency_penalty=freq, **kw)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]), type(rep)
        np.testing.assert_allclose(got[2], want[2], rtol=1e-5)


def test_problems_in_the_order_of_rows_then_positions():
    """A bad draft probability at position 0 is met before NaN logits at position 3 of the
    same row, and NaN logits in row 0 before a bad probability in row 1, on both sides."""
    x = np.random.default_rng(3).normal(size=(3, 4, 20)).astype(np.float32)
    d = x[:, :3].argmax(-1)
    q = np.full((3, 3, 20), 1 / 20, dtype=np.float32)
    for nan_at, bad_q_at, message in (
        ((0, 3), (0, 0), "draft_probs row 0, position 0"),
        ((0, 2), (1, 0), "target_logits row 0, position 2 contains NaN"),
    ):
        xb, qb = x.copy(), q.copy()
        xb[nan_at] = np.nan
        qb[bad_q_at] = -1.0
        for mod in (tp, ref):
            with pytest.raises(ValueError, match=message):
                mod.verify(xb, d, draft_probs=qb, seed=1)


def test_positions_of_a_longer_sequence_are_read_in_place():
    """The last K+1 positions of a model's (B, L, V) logits: rows a whole number of
    elements apart, read where they are (no copy) with the results of a copy."""
    full = np.random.default_rng(0).normal(size=(4, 10, 32000)).astype(np.float32)
    x, d = full[:, -5:], np.zeros((4, 4), dtype=np.int64)
    want = tp.verify(np.ascontiguousarray(x), d, seed=1, top_p=0.9, return_logprobs=True)
    tp.verify(x, d, seed=1)
    tracemalloc.start()
    try:
        got = tp.verify(x, d, seed=1, top_p=0.9, return_logprobs=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < x.nbytes // 10, f"{peak} bytes allocated: a copy of the rows?"
    for g, w in zip(got, want):
        assert np.array_equal(g, w)
    half = full.astype(np.float16)[:, -5:]
    assert np.array_equal(
        tp.verify(half, d, seed=2)[0], ref.verify(half.astype(np.float32), d, seed=2)[0]
    )
