"""The selections called by name, route by route, and proof that every route runs.

top-k and top-p reach their result by one of several routes (csrc/rows/topk.c, topp.c,
kth.c and mass.c list them in fallback order); which one a row takes depends on its
length, its values and the parameters.  The k-th largest and the selection by mass are
called here directly, by route, on generated lists and compared with a sort.  In a build
that counts the routes (``TOKENPICK_COUNT_ROUTES=1 pip install .``; ``.ci/emulated`` runs
this file in one), a fixed set of calls must take every route of every SIMD path, so
that a change in how a route is chosen cannot leave one untested silently.
"""

import numpy as np
import pytest

from tokenpick import _core

KTH_ROUTES = ("kth_small", "kth_bisect", "kth_quickselect", "kth_radix")
MASS_ROUTES = ("mass_small", "mass_partition", "mass_value_bins", "mass_radix")
# where the instruction set packs vector lanes, selection by mass partitions; elsewhere
# it bins by value
PACKS_LANES = {"baseline": False, "neon": False, "avx2": True, "avx512": True}


def _lists(rng, n):
    """Float32 lists of length n that test a selection's edges."""
    yield rng.standard_normal(n)
    yield rng.integers(0, 3, n).astype(float)  # ties
    yield rng.choice([0.0, -0.0, 1e-45, -1e-45, 1e-38, -1e-38], n)  # zeros, subnormals
    x = rng.standard_normal(n) * 1e37
    x[rng.integers(0, n, 3)] = np.float32(3.4e38)
    yield x  # extremes
    x = rng.standard_normal(n)
    x[rng.random(n) < 0.5] = -np.inf
    yield x  # -inf
    yield np.ldexp(1.0, rng.integers(-149, 127, n)) * rng.choice([-1, 1], n)  # powers of 2
    yield np.sort(rng.standard_normal(n))  # sorted (pivots)


@pytest.mark.parametrize("route", KTH_ROUTES)
@pytest.mark.parametrize("n", [1, 2, 17, 64, 65, 600, 1024, 3000])
def test_kth_largest_by_route(simd_path, route, n, rng):
    for x in _lists(rng, n):
        x = x.astype(np.float32)
        desc = np.sort(x)[::-1]
        for k in sorted({min(k, n) for k in (1, 2, 16, 17, 64, n // 2 or 1, n)}):
            got = _core.kth_largest(x, k, route)
            if (route == "kth_small" and k > 64) or (route == "kth_bisect" and n > 1024):
                assert np.isnan(got)  # inputs the route does not take
            else:
                assert got == desc[k - 1], (route, n, k)
            assert _core.kth_largest(x, k) == desc[k - 1]


def _mass_oracle(v, w, target):
    """The smallest value whose mass of values >= it reaches target, by a float64 sort;
    None where the answer sits too close to a boundary for float rounding to agree."""
    keep = w > 0
    v, w = v[keep].astype(np.float64), w[keep].astype(np.float64)
    values = np.unique(v)[::-1]
    mass = np.cumsum([w[v == u].sum() for u in values])
    at = np.searchsorted(mass, target * (1 - 1e-9))
    if (
        at >= len(values)
        or abs(mass[at] - target) < 1e-6 * mass[-1]
        or (at > 0 and abs(mass[at - 1] - target) < 1e-6 * mass[-1])
    ):
        return None
    return np.float32(values[at])


@pytest.mark.parametrize("route", MASS_ROUTES)
@pytest.mark.parametrize("n", [1, 3, 100, 512, 513, 2000, 16384])
def test_select_by_mass_by_route(simd_path, route, n, rng):
    exists = (route != "mass_partition" or PACKS_LANES[simd_path]) and (
        route != "mass_value_bins" or not PACKS_LANES[simd_path]
    )
    for v in _lists(rng, n):
        v = v.astype(np.float32)
        finite = np.isfinite(v)
        if not finite.any():
            continue
        w = np.zeros(n, np.float32)
        w[finite] = np.exp((v[finite].astype(np.float64) - v[finite].max()) / 2)
        if not w.any():
            continue
        for frac in (0.01, 0.37, 0.9, 1.0):
            target = frac * float(w.astype(np.float64).sum())
            got = _core.select_by_mass(v, w, target, route)
            want = _mass_oracle(v, w, target)
            if not exists or (route == "mass_small" and n > 512):
                assert np.isnan(got)
            elif want is not None and not np.isnan(got):
                assert got == want, (route, n, frac)
            elif want is not None:
                # only the routes that may give up (to the radix select) return NaN
                assert route in ("mass_partition", "mass_value_bins"), (route, n, frac)
            if want is not None:
                assert _core.select_by_mass(v, w, target) == want


# ---- every route runs --------------------------------------------------------------


def _probe_positions(V):
    """The tokens of the probe of a row of V (csrc/rows/gather.c: probe_size, probe_lines)."""
    m = min(V // 16, 4096)
    lines = (m - m % 16) // 16
    starts = np.arange(lines) * (V // lines)
    return (starts[:, None] + np.arange(16)).ravel()


def _calls(tp):
    """Calls that between them take every route of top-k and top-p (fixed rows: the
    routes are the point, not the values)."""
    rng = np.random.default_rng(0)
    V = 131072
    peaked = rng.standard_normal(V) * 2
    peaked[rng.integers(0, V, 300)] += 12
    flat = rng.standard_normal(V)
    ties = rng.integers(0, 2, V).astype(float)
    # the probe is far below the rest of a flat row: the band misses twice, and the
    # histogram decides
    decoy = flat.copy()
    decoy[_probe_positions(V)] = -40.0
    # the probe overstates the row's mass 16-fold, so the bound of the first pass is
    # too high and the nucleus is gathered again with the exact mass
    overstated = np.full(16000, 3.5)
    overstated[_probe_positions(16000)] = 10 + np.log(10 / 992)
    overstated[5] = 10.0
    # a list of candidates with no weight where selection by mass looks for pivots:
    # only the radix select is left
    weightless = np.full(8192, -np.inf)
    weightless[:10] = rng.standard_normal(10)
    for x, kw in [
        (peaked, dict(top_k=10)),  # topk_blocks, kth_small
        (peaked, dict(top_k=50)),  # topk_blocks, kth_bisect
        (peaked, dict(top_k=3000)),  # topk_probe, kth_quickselect
        (flat, dict(top_k=20000)),  # topk_band
        (peaked[:1000], dict(top_k=40)),  # topk_row
        (peaked[:40000], dict(top_k=30000)),  # kth_radix
        (peaked, dict(top_k=50, top_p=0.9)),  # topp_listed, mass_small
        (peaked, dict(top_p=0.9)),  # topp_bound
        (overstated, dict(top_p=0.5)),  # topp_bound_exact
        (flat, dict(top_p=0.9)),  # topp_band, mass_partition/bins
        (flat, dict(top_p=0.95, temperature=0.3)),  # topp_band_exact
        (flat, dict(top_p=0.99, temperature=0.35)),  # topp_band_exact
        (decoy, dict(top_p=0.9)),  # topp_histogram
        (ties, dict(top_p=0.5)),  # topp_radix (one bin of ties)
        (weightless, dict(top_k=8191, top_p=0.5)),  # mass_radix
    ]:
        tp.sample(x.astype(np.float32), seed=1, **kw)


def test_every_route_runs(simd_path, tp):
    if _core.route_counts() is None:
        pytest.skip("this build does not count routes (TOKENPICK_COUNT_ROUTES=1 pip install .)")
    _core.route_counts()  # zeroes them
    _calls(tp)
    counts = _core.route_counts()
    absent = {"mass_value_bins" if PACKS_LANES[simd_path] else "mass_partition"}
    missed = [r for r, c in counts.items() if c == 0 and r not in absent]
    assert not missed, f"routes never taken on {simd_path}: {missed} (counts: {counts})"
    assert all(counts[r] == 0 for r in absent)
