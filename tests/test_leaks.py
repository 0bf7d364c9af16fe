"""Memory stays flat over tens of thousands of calls, failing calls included
(issue 5).  Resident memory is read from /proc, so this runs on Linux only."""

import os

import numpy as np
import pytest

import tokenpick as tp

STATM = "/proc/self/statm"
pytestmark = [
    pytest.mark.skipif(not os.path.exists(STATM), reason="needs /proc/self/statm"),
    # AddressSanitizer (.ci/sanitize) holds freed memory in quarantine
    pytest.mark.skipif(
        "asan" in os.environ.get("LD_PRELOAD", ""),
        reason="resident memory means nothing under AddressSanitizer",
    ),
]


def resident_bytes():
    with open(STATM) as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def calls(x, bad):
    """One round of every kind of call, and of calls that raise."""
    tp.sample(x, seed=1)
    tp.sample(x, top_k=5, top_p=0.9, min_p=0.05, seed=2, return_logprobs=True)
    tp.sample(x[0], uniforms=0.25)
    tp.softmax(x, 0.7)
    tp.log_softmax(x)
    tp.logsumexp(x)
    tp.mask(x, top_p=0.5)
    tp.filtered_probs(x, top_k=3)
    tp.greedy(x)
    tp.top_logprobs(x, 4)
    for call in (
        lambda: tp.sample(bad, seed=1),  # NaN row
        lambda: tp.softmax(x, temperature=-1.0),  # bad parameter
        lambda: tp.sample(x, top_p=np.zeros(3), seed=1),  # wrong length
        lambda: tp.greedy(x.astype(np.int32)),
    ):  # wrong dtype
        with pytest.raises((ValueError, TypeError)):
            call()


def test_memory_stays_flat_over_many_calls():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3000)).astype(np.float32)
    bad = x.copy()
    bad[1, 7] = np.nan
    for _ in range(300):  # warm up: caches, per-thread workspaces, interned objects
        calls(x, bad)
    before = resident_bytes()
    for _ in range(3000):  # 42,000 calls, 12,000 of them raising
        calls(x, bad)
    grown = resident_bytes() - before
    assert grown < 4 << 20, f"resident memory grew by {grown / 2**20:.1f} MiB over 42,000 calls"
