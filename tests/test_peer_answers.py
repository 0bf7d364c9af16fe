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


def skip_reason(case):
    """Why tokenpick cannot run `case` in its peer's semantics; None when it can."""
    p, sampler = case["params"], case["sampler"]
    keep = p.get("min_keep", p.get("min_tokens_to_keep", 1))
    if keep > 1:
        return f"min_keep {keep} > 1: tokenpick has no min_keep (it keeps at least one token)"
    if sampler == "temperature" and (p.get("delta", 0.0), p.get("exponent", 1.0)) != (0.0, 1.0):
        return "dynamic temperature (temp_ext with delta != 0): tokenpick has none"
    if sampler == "top_p" and p.get("p", 1.0) <= 0.0:
        return f"top_p {p['p']} (llama.cpp: only the top token) is outside tokenpick's (0, 1]"
    if sampler == "min_p" and p.get("p", 0.0) > 1.0:
        return f"min_p {p['p']} (llama.cpp: only the top token) is outside tokenpick's [0, 1]"
    return None


def cases(peer, sampler=None, **params):
    """The cases of `peer` (for `sampler`, if given) whose parameters include `params`; those
    tokenpick cannot express are skipped, with the reason."""
    return [
        pytest.param(
            c,
            id=f"{c['test']}-{i}",
            marks=[pytest.mark.skip(reason=r)] if (r := skip_reason(c)) else [],
        )
        for i, c in enumerate(ANSWERS[peer])
        if sampler in (None, c["sampler"])
        and all(c["params"].get(k) == v for k, v in params.items())
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


# The peer's parameter -> tokenpick's.  llama.cpp's XTC acts where its coin (the first draw
# of mt19937(seed 0), 0.549) is <= its probability (0.99 in every case): tokenpick's coin is
# another generator's, so the cases run with xtc_probability 1, the coin having come up.
LLAMA = {
    "temperature": lambda p: {"temperature": p["temp"]},
    "top_k": lambda p: {"top_k": p["k"]},
    "top_p": lambda p: {"top_p": p["p"]},
    "min_p": lambda p: {"min_p": p["p"]},
    "typical": lambda p: {"typical_p": p["p"]},
    "xtc": lambda p: {"xtc_threshold": p["threshold"], "xtc_probability": 1.0},
    "top_n_sigma": lambda p: {"top_n_sigma": p["n"]},
}
# HF's warpers: tokenpick's name, HF's (EtaLogitsWarper calls its eta "epsilon").
HF = {
    "top_k": ("top_k", "top_k"),
    "top_p": ("top_p", "top_p"),
    "min_p": ("min_p", "min_p"),
    "typical": ("typical_p", "mass"),
    "epsilon": ("epsilon", "epsilon"),
    "eta": ("eta", "epsilon"),
}


@pytest.mark.parametrize("mod", [tp, ref], ids=["tokenpick", "reference"])
@pytest.mark.parametrize("case", cases("llama.cpp"))
def test_llama_cpp_samplers(mod, case):
    """llama.cpp's samplers with order="llama.cpp".  Its test reads the p of the candidates
    left: after dist, the softmax over them (tokenpick's filtered_probs); after typical or
    XTC alone, the sampler's own softmax over the whole input (tokenpick's softmax on the
    kept set).  Candidates a sampler masks rather than removes (temperature 0, top-n-sigma)
    stay with p 0.  The array is in id order where nothing sorted it, else by probability,
    descending (top-n-sigma's differs between snapshots; typical's, by distance to the
    entropy, is moot in its cases: one token, or three equal ones), so the expected values
    must be tokenpick's, as a multiset and per id in one of those two orders."""
    x = logits_of(case)
    kw = dict(LLAMA[case["sampler"]](case["params"]), order="llama.cpp")
    kept = np.isfinite(mod.mask(x, **kw))
    if case["chain"][-1].startswith("dist"):
        got = mod.filtered_probs(x, **kw).astype(np.float64)
        np.testing.assert_array_equal(got > 0, kept, err_msg="filtered_probs vs mask")
    else:
        got = np.where(kept, mod.softmax(x), 0.0)
    want = np.array(case["expected"])
    ids = np.arange(x.size) if want.size == x.size else np.flatnonzero(kept)
    msg = f"{case['test']} {case['params']}: expected {want.tolist()}, got {got.tolist()}"
    assert ids.size == want.size, msg
    np.testing.assert_allclose(np.sort(got[ids]), np.sort(want), atol=1e-5, err_msg=msg)
    in_order = [ids, ids[np.argsort(-x[ids], kind="stable")]]  # by id, by probability
    assert any(np.allclose(got[o], want, rtol=0, atol=1e-5) for o in in_order), msg


@pytest.mark.parametrize("mod", [tp, ref], ids=["tokenpick", "reference"])
@pytest.mark.parametrize("order", ["hf", "tokenpick"])
@pytest.mark.parametrize("case", cases("transformers"))
def test_hf_warpers(mod, order, case):
    """HF's warpers (min_tokens_to_keep 1, which tokenpick has no parameter for) keep what
    tokenpick's filters keep, in HF's order and tokenpick's (the same for one filter).  The
    warper's output is the scores with filter_value outside the kept set, unrenormalized;
    expected_kind says what of it the test checks."""
    x = logits_of(case)
    name, key = HF[case["sampler"]]
    kept = np.isfinite(np.atleast_2d(mod.mask(x, order=order, **{name: case["params"][key]})))
    fill = float(case["params"]["filter_value"])  # "-inf" or a number
    out = np.where(kept, x.astype(np.float64), fill)
    kind, want = case["expected_kind"], np.array(case["expected"])
    msg = f"{case['test']} {case['params']}: expected {want.tolist()}, got kept {kept.tolist()}"
    if kind == "exp_of_output":
        np.testing.assert_allclose(np.exp(out), want, rtol=1e-3, atol=1e-3, err_msg=msg)
        return
    got = {
        "isinf_mask": lambda: np.isinf(out),
        "count_nonzero_per_row": lambda: np.count_nonzero(out, axis=-1),
        "count_equal_filter_value_per_row": lambda: np.sum(out == fill, axis=-1),
    }[kind]()
    np.testing.assert_array_equal(got, want, err_msg=msg)
