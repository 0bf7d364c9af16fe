"""Known answers of the peers' own test suites, rewritten as data: the inputs and expected
outputs of llama.cpp's ``tests/test-sampling.cpp`` and HF transformers'
``tests/generation/test_logits_process.py`` (``tests/data/peer_filter_answers.json``, each
case with its source), for the filters tokenpick has in the peer's own semantics, on the
package and the reference alike."""

import json
import os

import numpy as np
import pytest

import tokenpick as tp
from tokenpick import reference as ref

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "peer_filter_answers.json")
with open(DATA, encoding="utf-8") as f:
    ANSWERS = json.load(f)


def cases(peer, sampler, **params):
    """The cases of `peer` for `sampler` whose parameters include `params`."""
    return [
        pytest.param(c, id=f"{c['test']}-{i}")
        for i, c in enumerate(ANSWERS[peer])
        if c["sampler"] == sampler and all(c["params"].get(k) == v for k, v in params.items())
    ]


def logits_of(case):
    """The case's input as float32 logits (log of its probabilities, where it gives those)."""
    if "input_probs" in case:
        with np.errstate(divide="ignore"):
            return np.log(np.array(case["input_probs"], dtype=np.float32))
    return np.array(case["input_logits"], dtype=np.float32)


@pytest.mark.parametrize("mod", [tp, ref], ids=["tokenpick", "reference"])
@pytest.mark.parametrize("case", cases("llama.cpp", "top_n_sigma"))
def test_llama_cpp_top_n_sigma(mod, case):
    """llama.cpp keeps what top-n-sigma keeps and renormalizes; its own order of the
    candidates (sorted, in one version of the test) is not tokenpick's business: the
    probabilities are compared as a multiset."""
    got = mod.filtered_probs(logits_of(case), top_n_sigma=case["params"]["n"])
    want = np.array(case["expected"])
    np.testing.assert_allclose(
        np.sort(got)[::-1], np.sort(want)[::-1], atol=1e-5, err_msg=case["test"]
    )


@pytest.mark.parametrize("mod", [tp, ref], ids=["tokenpick", "reference"])
@pytest.mark.parametrize(
    "case",
    cases("transformers", "top_k", min_tokens_to_keep=1)
    + cases("transformers", "top_p", min_tokens_to_keep=1)
    + cases("transformers", "min_p", min_tokens_to_keep=1),
)
def test_hf_warpers(mod, case):
    """HF's top-k, top-p and min-p warpers (with min_tokens_to_keep 1, which tokenpick has
    no parameter for) keep what tokenpick's filters keep: the expected mask of banned
    tokens, or the kept probabilities unrenormalized (HF's filter_value -inf)."""
    x = logits_of(case)
    params = {k: v for k, v in case["params"].items() if k in ("top_k", "top_p", "min_p")}
    kept = np.isfinite(np.atleast_2d(mod.mask(x, **params)))
    if case["expected_kind"] == "isinf_mask":
        np.testing.assert_array_equal(~kept, np.array(case["expected"]), err_msg=case["test"])
    else:
        assert case["expected_kind"] == "exp_of_output", case
        got = np.where(kept, np.exp(x.astype(np.float64)), 0.0)
        np.testing.assert_allclose(got, np.array(case["expected"]), atol=1e-3, err_msg=case["test"])
