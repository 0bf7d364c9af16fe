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


def test_sampler_requests_come_and_go_without_leaking():
    """Requests with kept processors (tallies, biases, bans in C), added, stepped,
    refused and removed by the thousand: memory stays flat."""
    V = 3000
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, V)).astype(np.float32)
    x[:, 7] = -np.inf  # the EOS id: banned until min_tokens, and never drawn after
    s = tp.Sampler(V, eos_ids=[7])
    history = rng.integers(0, V, 500)

    def round_(n):
        ids = [(n, i) for i in range(4)]
        for rid in ids:
            s.add(
                rid, seed=n, frequency_penalty=0.5, repetition_penalty=1.2, prompt_ids=history,
                output_ids=history[:100], logit_bias={3: -np.inf, 4: 1.0}, min_tokens=2,
            )  # fmt: skip
        for _ in range(3):
            s.step(x, ids)
        with pytest.raises(ValueError):
            s.add(ids[0], seed=1)  # already there
        for rid in ids:
            s.remove(rid)

    for n in range(200):
        round_(n)
    before = resident_bytes()
    for n in range(200, 2200):
        round_(n)
    grown = resident_bytes() - before
    assert grown < 4 << 20, f"resident memory grew by {grown / 2**20:.1f} MiB over 8,000 requests"
