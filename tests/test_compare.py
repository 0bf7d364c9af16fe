"""Every public function against tokenpick.reference on the generated inputs (tests/_arrays.py),
under every SIMD path, with the tolerances of docs/semantics.md (tests/_compare.py).

Pass rule: both raise the same error type, or both return and agree.  Hypothesis draws
the recipes (a failure prints ``build(Recipe(...))``, which rebuilds the arrays); a few
fixed recipes cover the big vocabulary (V = 131072).
"""

import _arrays
import _compare as C
import numpy as np
import pytest
from hypothesis import given, settings

import tokenpick as tp
from tokenpick import reference as ref

FUNCTIONS = sorted(C.CHECKS)


@pytest.mark.parametrize("name", FUNCTIONS)
@given(case=_arrays.cases())
def test_matches_reference(simd_path, name, case):
    C.CHECKS[name](tp, ref, case)


@pytest.mark.parametrize("name", FUNCTIONS)
@given(
    case=_arrays.cases(
        layouts=("c32", "1d", "f64", "f16", "bf16"), invalid=True, min_rows=1, max_rows=4
    )
)
def test_matches_reference_with_invalid_rows(simd_path, name, case):
    """Rows with NaN, +inf or all -inf mixed in: both raise ValueError, or (no bad row) agree."""
    C.CHECKS[name](tp, ref, case)


@settings(max_examples=10)
@pytest.mark.parametrize("name", FUNCTIONS)
@given(
    case=_arrays.cases(
        min_rows=0, max_rows=0, layouts=tuple(lay for lay in _arrays.LAYOUTS if lay != "1d")
    )
)
def test_matches_reference_empty_batch(simd_path, name, case):
    """B = 0 gives empty results (or, for a scalar parameter invalid in itself, e.g. a
    float32 temperature of inf, the same error on both sides)."""
    C.CHECKS[name](tp, ref, case)


@pytest.mark.parametrize("recipe", _arrays.BIG_RECIPES, ids=lambda r: f"seed{r.seed}")
def test_matches_reference_big_vocabulary(simd_path, recipe):
    case = _arrays.build(recipe)
    for name in FUNCTIONS:
        C.CHECKS[name](tp, ref, case)


@settings(max_examples=6)
@given(case=_arrays.cases(vocab_sizes=(131072,), max_rows=2))
def test_matches_reference_big_vocabulary_random(simd_path, case):
    """Random recipes at V = 131072, where selection (top-k / top-p without a full sort)
    may take other paths than at small V; few examples, every function on each."""
    for name in FUNCTIONS:
        C.CHECKS[name](tp, ref, case)


@pytest.mark.parametrize("layout", [lay for lay in _arrays.LAYOUTS if lay != "c32"])
@given(case=_arrays.cases(layouts=("c32",)))
def test_other_layouts_equal_the_float32_copy(simd_path, layout, case):
    """float16 / float64 / strided / Fortran / read-only / big-endian / unaligned / broadcast
    / 1-D input give bitwise the results of the float32 C-contiguous copy."""
    r = case.recipe
    other = _arrays.build(type(r)(**{**r.__dict__, "layout": layout}))
    x32 = other.x32 if not other.was_1d else other.x32[0]
    kw = other.filters()
    rnd = other.randomness()
    for name, call in [
        ("softmax", lambda a: tp.softmax(a, other.temperature)),
        ("log_softmax", lambda a: tp.log_softmax(a, other.temperature)),
        ("logsumexp", lambda a: tp.logsumexp(a, other.temperature)),
        ("greedy", tp.greedy),
        ("mask", lambda a: tp.mask(a, **kw)),
        ("filtered_probs", lambda a: tp.filtered_probs(a, **kw)),
        ("sample", lambda a: tp.sample(a, **kw, **rnd, return_logprobs=True)),
        ("top_logprobs", lambda a: tp.top_logprobs(a, other.n_top, other.temperature)),
    ]:
        try:
            want = call(x32)
        except ValueError:  # e.g. float16 overflow to +inf: the layout must raise too
            with pytest.raises(ValueError):
                call(other.logits)
            continue
        got = call(other.logits)
        for g, w in zip(
            want if isinstance(want, tuple) else (want,), got if isinstance(got, tuple) else (got,)
        ):
            g, w = np.asarray(g), np.asarray(w)
            assert g.dtype == w.dtype and g.shape == w.shape, (name, layout)
            assert np.array_equal(g, w, equal_nan=True), (
                f"{name}: layout {layout!r} gives {g} but its float32 copy gives {w}"
            )
