"""Shared fixtures: the reproducible ``seed``, the ``simd_path`` every kernel runs under,
and the Hypothesis profiles.

The suite tests the installed package: ``pip install .``, then, from outside the source
tree, ``python -m pytest /path/to/tests``.  ``tokenpick.reference`` is the oracle; the tests
of the oracle itself and of the test helpers are selected by ``-k reference`` (they need
only ``tokenpick.reference`` importable, not the compiled core).

Environment:
  TOKENPICK_TEST_SEED=N       seed of every test using the ``seed`` fixture (default: a
                              fixed value derived from the test's id, so runs repeat)
  HYPOTHESIS_PROFILE=NAME     "default" (random exploration, a modest number of examples),
                              "ci" (derandomized: the same examples every run; chosen
                              automatically when CI is set), "thorough" (10x examples)
"""

import os
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

_COMMON = dict(
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
    print_blob=True,
)
settings.register_profile("default", max_examples=40, **_COMMON)
settings.register_profile("ci", max_examples=40, derandomize=True, database=None, **_COMMON)
settings.register_profile("thorough", max_examples=250, **_COMMON)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default")
)


@pytest.fixture
def seed(request):
    """An integer seed for numpy; printed (shown with the failure) with how to reproduce."""
    env = os.environ.get("TOKENPICK_TEST_SEED")
    if env is not None:
        value = int(env)
    else:
        value = zlib.crc32(request.node.nodeid.encode())
    print(
        f"\n[seed] {request.node.nodeid} ran with seed {value}; reproduce with:\n"
        f"    TOKENPICK_TEST_SEED={value} python -m pytest '{request.node.nodeid}'"
    )
    return value


@pytest.fixture
def rng(seed):
    return np.random.default_rng(seed)


def _simd_paths():
    try:
        from tokenpick import _core
    except ImportError as exc:  # the tests that need the package then fail, loudly
        return [pytest.param("unavailable", id=f"no-core({type(exc).__name__})")]
    return list(_core.simd_paths())


@pytest.fixture(params=_simd_paths())
def simd_path(request):
    """Run the test with the kernels' dispatch forced to each SIMD path of this machine."""
    from tokenpick import _core

    name = request.param
    previous = _core.force_simd(name)
    try:
        yield name
    finally:
        _core.force_simd(previous)


@pytest.fixture
def tp():
    import tokenpick

    return tokenpick


@pytest.fixture
def ref():
    from tokenpick import reference

    return reference
