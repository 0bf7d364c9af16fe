"""The oracle itself: Philox known answers, and the test helpers (tests/_compare.py)
cross-checked against the reference's definitions, so that a comparison failure points at
the package and not at the yardstick.  Runs without the compiled package."""

import _arrays
import _compare as C
import numpy as np
import pytest
from hypothesis import given

from tokenpick import reference as ref

# the float64 oracle overflows, by design, at extreme temperatures
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")

# Random123's known answers for philox4x32_10 (kat_vectors): counter, key -> output.
# float32 ("narrow") parameters can overflow to inf, an error: these tests want valid calls
VALID_FORMS = ("array", "list", "strided")

PHILOX_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize("counter, key, want", PHILOX_KAT)
def test_reference_philox_known_answers(counter, key, want):
    got = ref.philox4x32_10(counter, key)
    assert tuple(got) == want, f"philox4x32_10({counter}, {key}) = {[hex(w) for w in got]}"


def _u(words):
    return ((words[0] | (words[1] << 32)) >> 11) * 2.0**-53


def test_reference_uniform_is_philox_of_seed_and_offset():
    assert float(ref.uniform(0, 0)) == _u(PHILOX_KAT[0][2])
    # key (seed & 0xffffffff, seed >> 32), counter (offset & 0xffffffff, offset >> 32, 0, 0)
    for seed, offset in [
        (2**64 - 1, 2**64 - 1),
        (0x299F31D0A4093822, 0x85A308D3243F6A88),
        (2**32, 1),
        (1, 2**32),
    ]:
        words = ref.philox4x32_10(
            (offset & 0xFFFFFFFF, offset >> 32, 0, 0), (seed & 0xFFFFFFFF, seed >> 32)
        )
        assert float(ref.uniform(seed, offset)) == _u(words)
    u = ref.uniform(np.array([0, 1, 2**64 - 1], dtype=np.uint64), 5)
    assert u.dtype == np.float64 and u.shape == (3,)
    assert u.tolist() == [float(ref.uniform(s, 5)) for s in (0, 1, 2**64 - 1)]


def test_reference_uniform_range_and_resolution():
    u = ref.uniform(np.arange(2000, dtype=np.uint64), 7)
    assert ((u >= 0) & (u < 1)).all()
    assert np.all(u * 2.0**53 == np.floor(u * 2.0**53))  # multiples of 2**-53


def test_reference_accepts_python_int_lists_with_large_seeds():
    # np.asarray([0, 2**64 - 1]) is float64: lists of Python ints must be read exactly
    got = ref.uniform([0, 2**64 - 1], 3)
    want = ref.uniform(np.array([0, 2**64 - 1], dtype=np.uint64), 3)
    np.testing.assert_array_equal(got, want)


@given(case=_arrays.cases(layouts=("c32",), param_forms=VALID_FORMS))
def test_reference_kept_sets_lie_within_the_helper_bounds(case):
    """The ambiguity helper agrees with reference.mask: reference kept set in [strict, loose]."""
    masked = np.atleast_2d(ref.mask(case.x32, **case.filters()))
    for b in range(case.B):
        x = case.x32[b]
        fin = np.isfinite(x)
        strict, loose = C.kept_bounds(x, *case.params(b))
        want = np.isfinite(masked[b])
        assert not (want & ~(loose & fin)).any() and not ((strict & fin) & ~want).any(), (
            case.describe_row(b)
        )


@given(case=_arrays.cases(layouts=("c32",), param_forms=VALID_FORMS))
def test_reference_helpers_are_tight(case):
    """With no slack the helper's bounds collapse onto the reference's kept set, and the
    reference's own sampled token is the one its cumulative sum picks."""
    masked = np.atleast_2d(ref.mask(case.x32, **case.filters()))
    toks = np.atleast_1d(ref.sample(case.x32, **case.filters(), uniforms=np.array(case.U)))
    for b in range(case.B):
        x = case.x32[b]
        params = case.params(b)
        strict, loose = C.kept_bounds(x, *params, rel=0.0)
        fin = np.isfinite(x)
        if not C.kept_ambiguous(x, *params):
            np.testing.assert_array_equal(strict & fin, np.isfinite(masked[b]))
            np.testing.assert_array_equal(loose & fin, np.isfinite(masked[b]))
        assert fin[toks[b]] and np.isfinite(masked[b][toks[b]]), case.describe_row(b)


def test_reference_helper_flags_a_top_p_boundary():
    x = np.log(np.array([0.5, 0.3, 0.2])).astype(np.float32)
    p = float(np.exp(np.float64(x[0])) / np.exp(x.astype(np.float64)).sum())  # mass of token 0
    assert C.kept_ambiguous(x, 1.0, 0, p, 0.0)
    assert C.kept_ambiguous(x, 1.0, 0, p * (1 + 5e-7), 0.0)
    assert not C.kept_ambiguous(x, 1.0, 0, p * (1 + 1e-4), 0.0)
    assert not C.kept_ambiguous(x, 1.0, 0, 0.9, 0.0)


def test_reference_helper_flags_a_min_p_boundary():
    x = np.array([0.0, -1.0, -5.0], dtype=np.float32)
    assert C.kept_ambiguous(x, 1.0, 0, 1.0, float(np.exp(-1.0)))
    assert C.kept_ambiguous(x, 1.0, 0, 1.0, float(np.exp(-1.0 + 5e-7)))
    assert not C.kept_ambiguous(x, 1.0, 0, 1.0, float(np.exp(-1.0 + 1e-4)))
    assert not C.kept_ambiguous(x, 1.0, 0, 1.0, 1.0)  # the max itself always stays


def test_reference_helper_flags_a_draw_boundary():
    x = np.log(np.array([0.25, 0.25, 0.5])).astype(np.float32)
    assert C.draw_ambiguous(x, 1.0, 0, 1.0, 0.0, 0.5)
    assert C.draw_ambiguous(x, 1.0, 0, 1.0, 0.0, 0.25 * (1 + 5e-7))
    assert not C.draw_ambiguous(x, 1.0, 0, 1.0, 0.0, 0.3)
    assert not C.draw_ambiguous(x, 1.0, 0, 1.0, 0.0, 0.0)
    # u = 0 and a first token below float32's reach: excused (floor 1e-30 * total)
    y = np.array([-200.0, 0.0], dtype=np.float32)
    assert C.draw_ambiguous(y, 1.0, 0, 1.0, 0.0, 0.0)


def test_reference_tolerance_helpers():
    assert not C.prob_errors([np.float32(0.5)], [0.5 * (1 + 9e-6)]).any()
    assert C.prob_errors([np.float32(0.5)], [0.5 * (1 + 2e-5)]).any()
    assert not C.prob_errors([0.0], [1e-36]).any()
    assert C.prob_errors([0.0], [1e-29]).any()
    assert not C.log_errors([-np.inf, np.inf, -100.0], [-np.inf, np.inf, -100.0005]).any()
    assert C.log_errors([-100.0], [-100.002]).all()
    assert C.log_errors([-1e30], [-np.inf]).all()
    assert not C.log_errors([-np.inf], [-1e39]).any()  # beyond float32: infinity accepted
    assert C.log_errors([-np.inf], [-1e30]).all()


def test_reference_stratified_draws_match_filtered_probs():
    """With u = (i + 0.5) / N the draw counts are N * p within 2, per token."""
    rng = np.random.default_rng(11)
    x = (rng.standard_normal(11) * 2).astype(np.float32)
    N = 4000
    u = (np.arange(N) + 0.5) / N
    for kw in [{}, dict(top_k=4), dict(top_p=0.8, temperature=0.7), dict(min_p=0.1)]:
        p = ref.filtered_probs(x, **kw)
        toks = ref.sample(np.tile(x, (N, 1)), uniforms=u, **kw)
        counts = np.bincount(toks, minlength=x.size)
        assert np.all(np.abs(counts - N * p) <= 2), (kw, counts, N * p)


# ----------------------------------------------------------------------------
# The checkers themselves: the reference rounded to float32 passes them; deliberate faults
# do not.  (So a green comparison means something, and a red one is the package's.)


class Float32Reference:
    """The reference, with the package's result types (float32 values, int64 tokens), and
    optional faults injected per function."""

    def __init__(self, **faults):
        self.faults = faults

    def __getattr__(self, name):
        fn = getattr(ref, name)
        fault = self.faults.get(name)

        def call(*args, **kwargs):
            result = fn(*args, **kwargs)
            if isinstance(result, tuple):
                result = tuple(_f32(r) for r in result)
            else:
                result = _f32(result)
            return fault(result, *args, **kwargs) if fault else result

        return call


def _f32(r):
    r = np.asarray(r)
    out = r.astype(np.float32) if r.dtype.kind == "f" else r.astype(np.int64)
    return out[()] if out.ndim == 0 else out


CHECK_RECIPES = [
    _arrays.Recipe(
        seed=10,
        V=11,
        kinds=("peaked", "ties", "flat", "masked"),
        per_row=True,
        temperature=(1.0, 0.5, 2.0, 1.0),
        top_k=(3, 2, 0, 5),
        top_p=(0.9, 1.0, 0.7, 1.0),
        min_p=(0.0, 0.05, 0.0, 0.1),
        n_top=4,
        use_uniforms=True,
        uniform=(0.3, 0.6, 0.9, 0.1),
    ),
    _arrays.Recipe(
        seed=11,
        V=97,
        kinds=("flat", "ties", "peaked"),
        per_row=True,
        temperature=(1.0, 1.0, 0.8),
        top_k=(0, 50, 10),
        top_p=(0.6, 0.9, 0.95),
        min_p=(0.02, 0.0, 0.0),
        n_top=5,
    ),
    _arrays.Recipe(seed=12, V=97, kinds=("ties", "ties"), n_top=97),
    _arrays.Recipe(seed=13, V=11, kinds=("flat", "nan"), layout="c32"),
]


def _all_checks(fake):
    failures = []
    for recipe in CHECK_RECIPES:
        case = _arrays.build(recipe)
        for name, check in C.CHECKS.items():
            try:
                check(fake, ref, case)
            except AssertionError as exc:
                failures.append((name, recipe.seed, str(exc)[:300]))
    return failures


def test_reference_rounded_to_float32_passes_every_check():
    failures = _all_checks(Float32Reference())
    assert not failures, failures


def _scale_probs(r, *a, **k):
    return (r * np.float32(1 + 3e-5)).astype(np.float32)


def _shift_logs(r, *a, **k):
    return (r - np.float32(3e-5) * np.maximum(1, np.abs(r))).astype(np.float32)


def _last_tie(r, logits, *a, **k):
    x = np.atleast_2d(_arrays.to_x32(logits))
    last = x.shape[1] - 1 - np.argmax(x[:, ::-1], axis=1)
    return last[0] if np.ndim(r) == 0 else last


def _keep_extra(r, logits, *a, **k):
    r = np.array(r, copy=True)
    x = np.atleast_2d(_arrays.to_x32(logits))
    r2 = np.atleast_2d(r)
    for b in range(r2.shape[0]):
        dead = np.nonzero(np.isneginf(r2[b]) & np.isfinite(x[b]))[0]
        if dead.size:
            r2[b, dead[0]] = x[b, dead[0]]
    return r2.reshape(r.shape)


def _next_token(r, logits, *a, **k):
    V = np.asarray(logits).shape[-1]
    if isinstance(r, tuple):
        return (r[0] + 1) % V, r[1]
    return (r + 1) % V


def _no_renormalize(r, logits, *a, **k):
    return (r * np.float32(0.9)).astype(np.float32)


def _reverse_ids(r, *a, **k):
    ids, vals = r
    return ids[..., ::-1].copy(), vals[..., ::-1].copy()


def _wrong_error(r, *a, **k):
    return r


FAULTS = {
    "softmax": _scale_probs,
    "filtered_probs": _no_renormalize,
    "log_softmax": _shift_logs,
    "logsumexp": _shift_logs,
    "greedy": _last_tie,
    "mask": _keep_extra,
    "top_k_mask": _keep_extra,
    "top_p_mask": _keep_extra,
    "min_p_mask": _keep_extra,
    "sample": _next_token,
    "top_logprobs": _reverse_ids,
}


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_reference_checkers_catch_a_fault(name):
    fake = Float32Reference(**{name: FAULTS[name]})
    failures = [f for f in _all_checks(fake) if f[0] == name]
    assert failures, f"a fault in {name} went unnoticed"


def test_reference_checkers_catch_a_wrong_error_type():
    class Raising(Float32Reference):
        def __getattr__(self, name):
            inner = super().__getattr__(name)

            def call(*args, **kwargs):
                try:
                    return inner(*args, **kwargs)
                except ValueError as exc:
                    raise TypeError(str(exc)) from None

            return call

    failures = _all_checks(Raising())
    assert {f[0] for f in failures} == set(C.CHECKS), failures
