"""The tolerances of docs/semantics.md ("Accuracy against the reference") as code, and the
helpers that decide which rows they excuse.

Pass rule of every comparison: the package and ``tokenpick.reference`` both raise the same
error type, or both return and agree:

* ``softmax`` / ``filtered_probs``: |got - want| <= 1e-5 * max(want, 1e-30) (relative 1e-5
  where p >= 1e-30, an absolute floor of 1e-35 below), and exactly 0 where the logit is -inf
  or the token is outside the kept set;
* ``log_softmax`` / ``logsumexp`` / ``top_logprobs`` / sampled logprobs: |got - want| <=
  1e-5 * max(1, |want|); -inf exactly where the reference has -inf; where the reference
  value lies beyond float32's range, the same-signed infinity is also accepted;
* kept sets identical, except in rows where a top-p cumulative mass or a min-p threshold lies
  within 1e-6 (relative) of its bound: ``kept_bounds`` computes, in float64 from the
  reference's own definitions, the smallest and largest kept set reachable by moving each
  bound by that much; a row is ambiguous iff they differ, and in every row the package's
  set must lie between them;
* tokens identical for the same u, except where u * total lies within 1e-6 (relative) of a
  cumulative-sum boundary (``draw_ambiguous``), with an absolute floor of 1e-30 * total,
  the same floor as for probabilities (float32 cannot hold smaller ones).

The filters after min-p and the orders of other samplers, whose boundaries ``kept_bounds``
does not follow, are compared by ``compare_filters``: a row is on a boundary when nudging a
parameter by 3e-6 (relative) moves its kept set in the reference, and is left out.
"""

import numpy as np

F32_MAX = float(np.finfo(np.float32).max)
REL_BOUND = 1e-6  # top-p / min-p / draw boundaries
PROB_RTOL = 1e-5  # softmax, filtered_probs
PROB_FLOOR = 1e-30
LOG_TOL = 1e-5  # log-domain values


# ----------------------------------------------------------------------------
# Calling both sides.


class BothRaised(Exception):
    """Both sides raised the same error type: nothing more to compare."""


def call_both(tp, ref, name, args=(), kwargs=None, inputs=()):
    """Call tp.<name> and reference.<name>; apply the error half of the pass rule.

    Returns (got, want) when neither raised.  Raises BothRaised when both raised the same
    type; fails the test when only one raised or the types differ.  ``inputs``: arrays that
    must come out unmodified.
    """
    kwargs = dict(kwargs or {})
    before = [np.array(a, copy=True) for a in inputs]
    got_exc = want_exc = None
    try:
        with np.errstate(all="ignore"):  # float64 overflow/underflow is the oracle's business
            want = getattr(ref, name)(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the pass rule compares types
        want_exc = exc
    try:
        got = getattr(tp, name)(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001
        got_exc = exc
    for a, b in zip(inputs, before):
        assert_same_array(a, b, f"{name} modified its input")
    if got_exc is not None or want_exc is not None:
        if type(got_exc) is not type(want_exc):
            raise AssertionError(
                f"{name}: the package {'raised ' + repr(got_exc) if got_exc else 'returned'}"
                f" but the reference {'raised ' + repr(want_exc) if want_exc else 'returned'}"
            )
        raise BothRaised(f"{type(got_exc).__name__}: {got_exc} / reference: {want_exc}")
    return got, want


def assert_same_array(a, b, msg):
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype or not np.array_equal(a, b, equal_nan=True):
        raise AssertionError(f"{msg}: before {b!r}, after {a!r}")


def check_type(got, dtype, shape, what):
    arr = np.asarray(got)
    assert arr.dtype == dtype, f"{what}: dtype {arr.dtype}, expected {np.dtype(dtype)}"
    assert arr.shape == tuple(shape), f"{what}: shape {arr.shape}, expected {tuple(shape)}"
    if not shape:
        assert not isinstance(got, np.ndarray) or got.ndim == 0, what


# ----------------------------------------------------------------------------
# Value tolerances.


def prob_errors(got, want):
    """Boolean mask of entries of float32 probabilities ``got`` outside tolerance."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(got - want) <= PROB_RTOL * np.maximum(want, PROB_FLOOR))
    return bad


def log_errors(got, want):
    """Boolean mask of entries of float32 log-domain values ``got`` outside tolerance."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        same_inf = np.isinf(want) & (got == want)
        beyond = (
            np.isfinite(want)
            & (np.abs(want) >= F32_MAX * (1 - LOG_TOL))
            & np.isinf(got)
            & (np.sign(got) == np.sign(want))
        )
        close = (
            np.isfinite(want)
            & np.isfinite(got)
            & (np.abs(got - want) <= LOG_TOL * np.maximum(1.0, np.abs(want)))
        )
    return ~(same_inf | beyond | close)


def describe_bad(got, want, bad, case=None, limit=6):
    """A readable list of the first mismatching entries."""
    got = np.atleast_2d(np.asarray(got))
    want = np.atleast_2d(np.asarray(want))
    bad = np.atleast_2d(bad)
    lines = []
    for b, v in list(zip(*np.nonzero(bad)))[:limit]:
        where = case.describe_row(b) if case is not None else f"row {b}"
        logit = f" logit {case.x32[b, v]!r}" if case is not None else ""
        lines.append(f"  [{b}, {v}] got {got[b, v]!r} want {want[b, v]!r}{logit}; {where}")
    return f"{int(bad.sum())} entries out of tolerance:\n" + "\n".join(lines)


# ----------------------------------------------------------------------------
# Kept sets and their ambiguity, from the reference's definitions, in float64.


def kept_bounds(x, T, k, p, m, n=0.0, rel=REL_BOUND):
    """(strict, loose): the smallest and largest kept set of one float32 row when each top-p
    and min-p bound may move by ``rel`` (relative), following reference._kept.

    top-p: the crossing is the first group of tied logits (in descending order) whose
    cumulative mass, as a fraction of the post-top-k total, reaches p; strict uses p - rel,
    loose min(1, p + rel).  min-p: keep s >= log(m) with s = (x - max) / T; the bound
    x >= max + T log m moves by rel * (|max| + T |log m|) (the error of computing it in
    float32); the max itself (s = 0) always stays.
    Only finite logits can be kept (a kept -inf is invisible in every output).
    """
    x = np.asarray(x, dtype=np.float64)
    V = x.shape[0]
    finite = np.isfinite(x)
    if T == 0.0:
        one = np.zeros(V, dtype=bool)
        one[int(np.argmax(x))] = True
        return one, one.copy()
    keep = finite.copy()
    xmax = x.max()
    sigma_band = None
    if n > 0.0:  # top-n-sigma: x >= max - n sigma, sigma over the finite logits
        with np.errstate(over="ignore", invalid="ignore"):
            bound = xmax - n * x[finite].std()
            d = rel * (abs(xmax) + abs(xmax - bound))
        keep &= (x >= bound) | (x == xmax)
        sigma_band = (bound, d)
    if 0 < k < V:
        keep &= x >= np.sort(x)[V - k]
    with np.errstate(invalid="ignore", over="ignore"):
        s = (x - xmax) / T
    strict = keep.copy()
    loose = keep.copy()
    if sigma_band is not None:  # the bound computed in float32 by the kernels may move
        bound, d = sigma_band
        with np.errstate(invalid="ignore"):
            strict &= (x >= bound + d) | (x == xmax)
            loose |= (
                finite & (x >= bound - d) & (x >= (np.sort(x)[V - k] if 0 < k < V else -np.inf))
            )
    if p < 1.0:
        e = np.where(keep, np.exp(s), 0.0)
        order = np.argsort(-x, kind="stable")
        xs = x[order]
        cum = np.cumsum(e[order])
        total = cum[-1]
        ends = np.r_[xs[1:] != xs[:-1], True]  # last position of each group of ties
        frac = cum[ends] / total
        vals = xs[ends]
        lo = p - rel
        hi = min(1.0, p + rel)
        i_strict = int(np.argmax(frac >= lo))
        reach = frac >= hi
        i_loose = int(np.argmax(reach)) if reach.any() else len(frac) - 1
        strict &= x >= vals[i_strict]
        loose &= x >= vals[i_loose]
    if m > 0.0:
        # s >= log m  <=>  x - max >= T log m, compared in x-space so that nothing overflows
        lm = np.log(m)
        bound = T * lm
        d = rel * (abs(xmax) + T * abs(lm))
        is_max = x == xmax
        with np.errstate(invalid="ignore", over="ignore"):
            dx = x - xmax
            in_s = s >= lm  # the reference's own test, in float64
            # where the two disagree (s underflows to 0 at an enormous T) either is accepted
            strict &= ((dx >= bound + d) | is_max) & in_s
            loose &= (dx >= bound - d) | is_max | in_s
    return strict, loose


def kept_ambiguous(x, T, k, p, m, n=0.0):
    strict, loose = kept_bounds(x, T, k, p, m, n)
    return bool((strict != loose).any())


def scores(x, T):
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        return (x - x.max()) / T


def draw_ambiguous(x, T, k, p, m, u, rel=REL_BOUND, n=0.0):
    """True if the token drawn from one row with uniform u is not fixed by docs/semantics.md: the
    kept set is ambiguous, or u * total lies within ``rel`` (relative) of a cumulative-sum
    boundary (absolute floor 1e-30 * total); n is top_n_sigma."""
    strict, loose = kept_bounds(x, T, k, p, m, n)
    if (strict != loose).any():
        return True
    if T == 0.0:
        return False
    with np.errstate(under="ignore"):
        e = np.where(strict, np.exp(scores(x, T)), 0.0)
    cum = np.cumsum(e)
    total = cum[-1]
    t = u * total
    near = np.abs(cum - t) <= rel * np.maximum(cum, t) + PROB_FLOOR * total
    # cum == total is no boundary: past it there is nothing, before it the last token
    return bool(near[strict & (cum < total)].any())


def token_logprob(x, T, keep, tok):
    """log of token tok's probability under the distribution renormalized over keep."""
    if T == 0.0:
        return 0.0
    s = scores(x, T)
    sk = s[keep]
    mx = sk.max()
    return float(s[tok] - (mx + np.log(np.exp(sk - mx).sum())))


def order_by_logit(x, n):
    """The n token ids of a row by descending logit, lowest id first among ties."""
    x = np.asarray(x, dtype=np.float64)
    return np.lexsort((np.arange(x.shape[0]), -x))[:n]


# ----------------------------------------------------------------------------
# The filters after min-p (typical, epsilon, eta, XTC) and the other orders, which
# kept_bounds does not follow: a row whose kept set moves when a threshold-like parameter
# moves by NUDGE_REL (relative) in the reference is on a boundary, and left out.

NUDGE_REL = 3e-6  # beyond float32 exponentials' rounding summed, within a token's mass
NUDGED = ("top_p", "min_p", "typical_p", "epsilon", "eta", "xtc_threshold", "top_n_sigma")


def nudged_kept(ref, row, f):
    """The row's kept sets under filters f and under each nudge of one parameter by
    NUDGE_REL, the first unnudged."""
    sets = [np.isfinite(ref.mask(row, **f))]
    for name in NUDGED:
        v = f.get(name)
        if v is None or v in (0.0, 1.0):
            continue
        for scale in (1 - NUDGE_REL, 1 + NUDGE_REL):
            sets.append(np.isfinite(ref.mask(row, **{**f, name: v * scale})))
    return sets


def on_boundary(ref, row, f):
    """Whether the row's kept set under filters f moves when a parameter moves by NUDGE_REL."""
    kept, *nudged = nudged_kept(ref, row, f)
    return any(not np.array_equal(k, kept) for k in nudged)


def compare_filters(tp, ref, x, f, seed=7, values=None):
    """Check mask, filtered_probs and sample of x under filters f against the reference on
    `values` (x's float32 values, default x itself), row by row, and return the rows
    left out as on a boundary.  Probabilities and log-probabilities within the tolerances
    above; sample's row b draws at (seed, offset b), and its token must be the reference's
    unless the draw lies within 1e-5 of a cumulative boundary."""
    values = x if values is None else values
    skipped = []
    m_tp, p_tp = tp.mask(x, **f), tp.filtered_probs(x, **f)
    draws = dict(seed=seed, offset=np.arange(len(values)), return_logprobs=True)
    t_tp, lp_tp = tp.sample(x, **f, **draws)
    t_ref, lp_ref = ref.sample(values, **f, **draws)
    for b, row in enumerate(values):
        if on_boundary(ref, row, f):
            skipped.append(b)
            continue
        want = ref.mask(row, **f)
        assert np.array_equal(np.isfinite(m_tp[b]), np.isfinite(want)), (b, f)
        np.testing.assert_array_equal(m_tp[b][np.isfinite(want)], want[np.isfinite(want)])
        probs = ref.filtered_probs(row, **f)
        bad = prob_errors(p_tp[b], probs)
        assert not bad.any(), f"filtered_probs, {f}: " + describe_bad(p_tp[b], probs, bad)
        u = tp.uniform(seed, b)
        cum = np.cumsum(probs)
        if np.min(np.abs(cum - u * cum[-1])) > 1e-5:  # the draw is not on a boundary either
            assert t_tp[b] == t_ref[b], (b, f)
        if t_tp[b] == t_ref[b]:
            assert not log_errors(lp_tp[b], lp_ref[b]), (b, f, lp_tp[b], lp_ref[b])
    return skipped


# ----------------------------------------------------------------------------
# One checker per public function: call both sides on a Case and apply the pass rule.
# Each returns None; a failure raises AssertionError with the case's rows described.


def _result_shape(case, per_row_scalar=False):
    if per_row_scalar:
        return () if case.was_1d else (case.B,)
    return case.x32.shape[1:] if case.was_1d else case.x32.shape


def _rows(a):
    a = np.asarray(a)
    return a.reshape(1, -1) if a.ndim == 1 else a


def check_softmax(tp, ref, case):
    try:
        got, want = call_both(
            tp,
            ref,
            "softmax",
            (case.logits,),
            dict(temperature=case.temperature),
            inputs=(case.logits,),
        )
    except BothRaised:
        return
    check_type(got, np.float32, _result_shape(case), "softmax")
    g, w = _rows(got), _rows(want)
    bad = prob_errors(g, w) | (np.isneginf(case.x32) & (g != 0))
    assert not bad.any(), "softmax: " + describe_bad(g, w, bad, case)


def check_log_softmax(tp, ref, case):
    try:
        got, want = call_both(
            tp,
            ref,
            "log_softmax",
            (case.logits,),
            dict(temperature=case.temperature),
            inputs=(case.logits,),
        )
    except BothRaised:
        return
    check_type(got, np.float32, _result_shape(case), "log_softmax")
    g, w = _rows(got), _rows(want)
    bad = log_errors(g, w)
    assert not bad.any(), "log_softmax: " + describe_bad(g, w, bad, case)


def check_logsumexp(tp, ref, case):
    try:
        got, want = call_both(
            tp,
            ref,
            "logsumexp",
            (case.logits,),
            dict(temperature=case.temperature),
            inputs=(case.logits,),
        )
    except BothRaised:
        return
    check_type(got, np.float32, _result_shape(case, True), "logsumexp")
    g, w = np.atleast_1d(got), np.atleast_1d(want)
    bad = log_errors(g, w)
    assert not bad.any(), "logsumexp: " + "; ".join(
        f"{case.describe_row(b)}: got {g[b]!r} want {w[b]!r}" for b in np.nonzero(bad)[0][:6]
    )


def check_greedy(tp, ref, case):
    try:
        got, want = call_both(tp, ref, "greedy", (case.logits,), inputs=(case.logits,))
    except BothRaised:
        return
    check_type(got, np.int64, _result_shape(case, True), "greedy")
    g, w = np.atleast_1d(got), np.atleast_1d(want)
    bad = g != w
    assert not bad.any(), "greedy: " + "; ".join(
        f"row {b}: got {g[b]} (logit {case.x32[b, g[b]]!r}) want {w[b]} "
        f"(logit {case.x32[b, w[b]]!r})"
        for b in np.nonzero(bad)[0][:6]
    )


MASK_FUNCTIONS = ("mask", "top_k_mask", "top_p_mask", "min_p_mask")


def _mask_call(case, name):
    """(kwargs, per-row (T, k, p, m, n) that the call means)."""
    if name in ("mask", "filtered_probs"):
        return case.filters(), [case.params(b) for b in range(case.B)]
    if name == "top_k_mask":
        return dict(top_k=case.top_k), [(1.0, k, 1.0, 0.0, 0.0) for k in case.K]
    if name == "top_p_mask":
        return (
            dict(top_p=case.top_p, temperature=case.temperature),
            [(t, 0, p, 0.0, 0.0) for t, p in zip(case.T, case.P)],
        )
    if name == "min_p_mask":
        return (
            dict(min_p=case.min_p, temperature=case.temperature),
            [(t, 0, 1.0, m, 0.0) for t, m in zip(case.T, case.M)],
        )
    raise ValueError(name)


def _check_kept(name, case, b, params, got_kept, want_kept):
    """Kept sets: the package's lies in [strict, loose]; equal to the reference's where
    the row is not ambiguous.  Returns whether the row is ambiguous."""
    x = case.x32[b]
    fin = np.isfinite(x)
    strict, loose = kept_bounds(x, *params)
    strict &= fin
    loose &= fin
    if (want_kept & ~loose).any() or (strict & ~want_kept).any():
        raise AssertionError(
            f"{name}: the reference's kept set lies outside the test helper kept_bounds "
            f"(a bug in tests/_compare.py or in reference.py); {case.describe_row(b)}; "
            f"reference kept {np.nonzero(want_kept)[0][:20]}, strict {np.nonzero(strict)[0][:20]}, "
            f"loose {np.nonzero(loose)[0][:20]}"
        )
    ambiguous = bool((strict != loose).any())
    extra = np.nonzero(got_kept & ~(want_kept if not ambiguous else loose))[0]
    missing = np.nonzero((want_kept if not ambiguous else strict) & ~got_kept)[0]
    if extra.size or missing.size:
        raise AssertionError(
            f"{name}: kept set differs from the reference's "
            f"({'ambiguous' if ambiguous else 'unambiguous'}"
            f" row); {case.describe_row(b)}; kept by the package only: {extra[:10]} "
            f"(logits {x[extra[:10]]}); kept by the reference only: {missing[:10]} "
            f"(logits {x[missing[:10]]}); reference keeps {int(want_kept.sum())}, "
            f"package {int(got_kept.sum())} of {x.size}; this call means (T, top_k, top_p, "
            f"min_p) = {params}"
        )
    return ambiguous


def check_mask(tp, ref, case, name="mask"):
    kwargs, params = _mask_call(case, name)
    try:
        got, want = call_both(tp, ref, name, (case.logits,), kwargs, inputs=(case.logits,))
    except BothRaised:
        return
    check_type(got, np.float32, _result_shape(case), name)
    g, w = _rows(got), _rows(want)
    for b in range(case.B):
        gk, wk = np.isfinite(g[b]), np.isfinite(w[b])
        _check_kept(name, case, b, params[b], gk, wk)
        wrong = np.nonzero((gk & (g[b] != case.x32[b])) | (~gk & ~np.isneginf(g[b])))[0]
        assert not wrong.size, (
            f"{name}: kept entries must be the float32 logits unchanged and the others -inf; "
            f"{case.describe_row(b)}; at {wrong[:8]} got {g[b][wrong[:8]]} "
            f"logits {case.x32[b][wrong[:8]]}"
        )


def check_filtered_probs(tp, ref, case):
    kwargs, params = _mask_call(case, "filtered_probs")
    try:
        got, want = call_both(
            tp, ref, "filtered_probs", (case.logits,), kwargs, inputs=(case.logits,)
        )
    except BothRaised:
        return
    check_type(got, np.float32, _result_shape(case), "filtered_probs")
    g, w = _rows(got), _rows(want)
    for b in range(case.B):
        wk = w[b] > 0
        x = case.x32[b]
        strict, loose = kept_bounds(x, *params[b])
        fin = np.isfinite(x)
        if ((strict & fin) != (loose & fin)).any():
            outside = np.nonzero((g[b] != 0) & ~loose)[0]
            assert not outside.size, (
                f"filtered_probs: nonzero outside every admissible kept set at {outside[:10]}; "
                f"{case.describe_row(b)}"
            )
            total = float(np.sum(g[b], dtype=np.float64))
            assert abs(total - 1.0) <= 1e-5, (
                f"filtered_probs: row sums to {total}; {case.describe_row(b)}"
            )
            continue
        bad = (prob_errors(g[b], w[b]) | ((g[b] != 0) & ~wk))[None, :]
        if bad.any():
            raise AssertionError(
                "filtered_probs: "
                + describe_bad(g[b : b + 1], w[b : b + 1], bad, None)
                + f"\n  {case.describe_row(b)}"
            )


def check_sample(tp, ref, case):
    kwargs = {**case.filters(), **case.randomness()}
    inputs = [case.logits] + [v for v in kwargs.values() if isinstance(v, np.ndarray)]
    try:
        got, want = call_both(
            tp, ref, "sample", (case.logits,), {**kwargs, "return_logprobs": True}, inputs=inputs
        )
    except BothRaised:
        return
    assert isinstance(got, tuple) and len(got) == 2, f"sample(return_logprobs=True) gave {got!r}"
    tok, lp = got
    rtok, rlp = want
    shape = _result_shape(case, True)
    check_type(tok, np.int64, shape, "sample tokens")
    check_type(lp, np.float32, shape, "sample logprobs")
    plain = tp.sample(case.logits, **kwargs)
    check_type(plain, np.int64, shape, "sample tokens (return_logprobs=False)")
    assert np.array_equal(plain, tok), (
        f"sample: tokens differ with and without return_logprobs: {plain} vs {tok}"
    )
    tok, lp, rtok, rlp = (np.atleast_1d(a) for a in (tok, lp, rtok, rlp))
    for b in range(case.B):
        x = case.x32[b]
        params = case.params(b)
        u = case.U[b]
        strict, loose = kept_bounds(x, *params)
        fin = np.isfinite(x)
        t = int(tok[b])
        assert 0 <= t < case.V and fin[t] and loose[t], (
            f"sample drew token {t}, outside every admissible kept set; {case.describe_row(b)}"
        )
        ambiguous_set = bool(((strict & fin) != (loose & fin)).any())
        if t != int(rtok[b]):
            assert draw_ambiguous(x, *params[:4], u, n=params[4]), (
                f"sample: token {t} but the reference draws {int(rtok[b])} for the same u, and "
                f"u * total is not within 1e-6 of a boundary; {case.describe_row(b)}; "
                f"logits there: {x[t]!r} / {x[int(rtok[b])]!r}"
            )
        if ambiguous_set:
            assert lp[b] <= LOG_TOL, f"sample: logprob {lp[b]} > 0; {case.describe_row(b)}"
            continue
        want_lp = rlp[b] if t == int(rtok[b]) else token_logprob(x, params[0], strict, t)
        bad = log_errors(np.array([lp[b]]), np.array([want_lp]))
        assert not bad.any(), (
            f"sample: logprob of token {t} is {lp[b]!r}, want {want_lp!r}; {case.describe_row(b)}"
        )


def check_top_logprobs(tp, ref, case):
    n = case.n_top
    try:
        got, want = call_both(
            tp,
            ref,
            "top_logprobs",
            (case.logits, n),
            dict(temperature=case.temperature),
            inputs=(case.logits,),
        )
    except BothRaised:
        return
    assert isinstance(got, tuple) and len(got) == 2, f"top_logprobs gave {got!r}"
    ids, vals = got
    shape = (n,) if case.was_1d else (case.B, n)
    check_type(ids, np.int64, shape, "top_logprobs ids")
    check_type(vals, np.float32, shape, "top_logprobs logprobs")
    rids, _ = want
    with np.errstate(all="ignore"):
        lsm = _rows(ref.log_softmax(case.x32, temperature=np.asarray(case.T, dtype=np.float64)))
    ids, vals, rids = _rows(ids), _rows(vals), _rows(rids)
    for b in range(case.B):
        # the reference ranks by logit for T > 0 (exact), by log-probability at T = 0
        assert np.array_equal(ids[b], rids[b]), (
            f"top_logprobs: ids {ids[b]} (logits {case.x32[b][ids[b]]}), reference {rids[b]} "
            f"(logits {case.x32[b][rids[b]]}); {case.describe_row(b)}"
        )
        bad = log_errors(vals[b], lsm[b][ids[b]])
        assert not bad.any(), (
            f"top_logprobs: values {vals[b][bad]} for ids {ids[b][bad]}, want "
            f"{lsm[b][ids[b]][bad]}; {case.describe_row(b)}"
        )


CHECKS = {
    "softmax": check_softmax,
    "log_softmax": check_log_softmax,
    "logsumexp": check_logsumexp,
    "greedy": check_greedy,
    "mask": check_mask,
    "top_k_mask": lambda tp, ref, case: check_mask(tp, ref, case, "top_k_mask"),
    "top_p_mask": lambda tp, ref, case: check_mask(tp, ref, case, "top_p_mask"),
    "min_p_mask": lambda tp, ref, case: check_mask(tp, ref, case, "min_p_mask"),
    "filtered_probs": check_filtered_probs,
    "sample": check_sample,
    "top_logprobs": check_top_logprobs,
}
