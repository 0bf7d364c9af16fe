"""The reference's logit processors: ``process_logits``, ``token_logprobs`` and the processor
keywords of ``sample``, ``filtered_probs`` and ``mask``.

Known answers from the samplers the processors follow, written out as data (HF's repetition
penalty, OpenAI's frequency and presence formula, llama.cpp's penalties, xgrammar's bitmask
layout); the rules of order and banning; the accepted forms of every argument agreeing with
each other; every error; and the filters' functions with processors equal to the same
functions on ``process_logits``' result.  Runs without the compiled package; the cross-checks
against transformers and xgrammar run where those are installed.
"""

import inspect
import warnings

import numpy as np
import pytest

from tokenpick import reference as ref

F32 = np.float32
NEG = -np.inf

PROCESSOR_SIGNATURE = (
    "token_bitmask=None, logit_bias=None, prompt_ids=None, output_ids=None, "
    "repetition_penalty=1.0, frequency_penalty=0.0, presence_penalty=0.0, min_tokens=0, "
    "stop_ids=None"
)


def allowed_ids(row):
    return np.flatnonzero(~np.isneginf(row)).tolist()


def test_reference_processor_signatures():
    assert str(inspect.signature(ref.process_logits)) == (
        f"(logits, *, {PROCESSOR_SIGNATURE}, out=None)"
    )
    assert str(inspect.signature(ref.token_logprobs)) == "(logits, tokens, temperature=1.0)"
    for name in ("process_logits", "token_logprobs"):
        assert name in ref.__all__


# ----------------------------------------------------------------------------
# token_bitmask: xgrammar's layout, bit j % 32 of word j // 32.

# The allowed set {0, 5, 31, 32, 40} packs into two words: bits 0, 5, 31 of word 0 and
# bits 0 (token 32) and 8 (token 40) of word 1.
XGRAMMAR_ALLOWED = [0, 5, 31, 32, 40]
XGRAMMAR_WORDS_U32 = [0x80000021, 0x00000101]
XGRAMMAR_WORDS_I32 = [-2147483615, 0x00000101]  # 0x80000021 - 2**32


def test_reference_bitmask_known_answer_int32_and_uint32():
    u32 = np.array(XGRAMMAR_WORDS_U32, dtype=np.uint32)
    i32 = np.array(XGRAMMAR_WORDS_I32, dtype=np.int32)
    assert u32.view(np.int32).tolist() == XGRAMMAR_WORDS_I32
    for V, want in [
        (64, XGRAMMAR_ALLOWED),
        (41, XGRAMMAR_ALLOWED),
        (40, XGRAMMAR_ALLOWED[:-1]),  # bits past V are ignored
        (33, [0, 5, 31, 32]),
        (6, [0, 5]),
        (100, XGRAMMAR_ALLOWED),  # tokens past 32 * W are banned
    ]:
        x = np.zeros(V, F32)
        for words in (u32, i32, u32.reshape(1, 2), i32.astype(">i4")):
            got = ref.process_logits(x, token_bitmask=words)
            assert got.dtype == np.float32 and got.shape == (V,)
            assert allowed_ids(got) == want, (V, words)


def test_reference_bitmask_minus_one_word_allows_32_tokens():
    for V in (1, 31, 32):
        for word in (np.array([-1], np.int32), np.array([0xFFFFFFFF], np.uint32)):
            got = ref.process_logits(np.zeros(V, F32), token_bitmask=word)
            assert allowed_ids(got) == list(range(V))
    got = ref.process_logits(np.zeros(40, F32), token_bitmask=np.array([-1], np.int32))
    assert allowed_ids(got) == list(range(32))  # a too-short bitmask bans the tail
    got = ref.process_logits(np.zeros(40, F32), token_bitmask=np.array([0, -1], np.int32))
    assert allowed_ids(got) == list(range(32, 40))


def _pack(bits):
    """(B, 32 W) booleans to (B, W) uint32 words, token j at bit j % 32 of word j // 32."""
    B, n = bits.shape
    w = bits.reshape(B, n // 32, 32).astype(np.uint64) << np.arange(32, dtype=np.uint64)
    return w.sum(axis=-1).astype(np.uint32)


def _naive_allowed(words, V):
    """Token by token, the rule as written: bit j % 32 of word j // 32, past 32 W banned."""
    words = [int(w) & 0xFFFFFFFF for w in words]
    return [j for j in range(V) if j < 32 * len(words) and (words[j // 32] >> (j % 32)) & 1]


@pytest.mark.parametrize("V", [1, 2, 31, 32, 33, 97, 200])
def test_reference_bitmask_random_rows_against_the_rule(V, rng):
    B = 5
    for W in {(V + 31) // 32, (V + 31) // 32 + 1, max((V + 31) // 32 - 1, 1)}:
        for density in (0.02, 0.5, 0.98):
            bits = rng.random((B, 32 * W)) < density
            bits[np.arange(B), rng.integers(0, min(V, 32 * W), B)] = True  # one allowed
            words = _pack(bits)
            x = rng.standard_normal((B, V)).astype(F32)
            for form in (words, words.view(np.int32), words.astype(">u4")):
                got = ref.process_logits(x, token_bitmask=form)
                for b in range(B):
                    assert allowed_ids(got[b]) == _naive_allowed(words[b], V)
                    keep = ~np.isneginf(got[b])
                    assert np.array_equal(got[b][keep], x[b][keep])
            shared = ref.process_logits(x, token_bitmask=words[1])
            for b in range(B):
                assert allowed_ids(shared[b]) == _naive_allowed(words[1], V)


def test_reference_bitmask_errors():
    x = np.zeros((2, 40), F32)
    for dtype in (np.int64, np.uint64, np.int16, np.uint8, np.bool_, np.float32):
        with pytest.raises(TypeError, match="int32 or uint32"):
            ref.process_logits(x, token_bitmask=np.ones(2, dtype))
    with pytest.raises(TypeError, match="int32 or uint32"):
        ref.process_logits(x, token_bitmask=[1, 2])  # a list is int64
    with pytest.raises(ValueError, match="1-D .* or 2-D"):
        ref.process_logits(x, token_bitmask=np.ones((2, 2, 2), np.int32))
    with pytest.raises(ValueError, match="1-D .* or 2-D"):
        ref.process_logits(x, token_bitmask=np.int32(1))
    with pytest.raises(ValueError, match="3 rows, but logits has 2"):
        ref.process_logits(x, token_bitmask=np.ones((3, 2), np.int32))
    with pytest.raises(ValueError, match="2 rows, but logits has 1"):
        ref.process_logits(x[0], token_bitmask=np.ones((2, 2), np.int32))
    with pytest.raises(ValueError, match="row 0 has no token left"):
        ref.process_logits(x, token_bitmask=np.zeros(0, np.int32))  # W = 0 bans all
    with pytest.raises(ValueError, match="row 1 has no token left"):
        ref.process_logits(x, token_bitmask=np.array([[1, 0], [0, 0]], np.int32))


# ----------------------------------------------------------------------------
# logit_bias.


def test_reference_logit_bias_forms():
    x = np.array([[0.5, 1.0, -1.0, 2.0], [0.0, 0.0, 0.0, 0.0]], F32)
    got = ref.process_logits(x, logit_bias={1: 0.25, np.int64(3): -2.0, np.uint8(0): NEG})
    assert got.tolist() == [[NEG, 1.25, -1.0, 0.0], [NEG, 0.25, 0.0, -2.0]]
    got = ref.process_logits(x, logit_bias=[None, {2: F32(1.5), 3: 7}])
    assert got.tolist() == [[0.5, 1.0, -1.0, 2.0], [0.0, 0.0, 1.5, 7.0]]
    got = ref.process_logits(x, logit_bias=({}, {0: NEG, 1: NEG, 2: NEG}))
    assert got.tolist() == [[0.5, 1.0, -1.0, 2.0], [NEG, NEG, NEG, 0.0]]
    # 1-D logits: a mapping, or a sequence of one
    assert ref.process_logits(x[0], logit_bias={0: 1}).tolist() == [1.5, 1.0, -1.0, 2.0]
    assert ref.process_logits(x[0], logit_bias=[{0: 1}]).tolist() == [1.5, 1.0, -1.0, 2.0]


def test_reference_logit_bias_is_float64_rounded_once():
    x = np.array([1.0, 3.0e38, 16777216.0], F32)
    got = ref.process_logits(x, logit_bias={0: 1e-9, 2: 1.0000001})
    assert got[0] == F32(1.0) and got[1] == x[1]
    assert got[2] == F32(16777216.0 + 1.0000001)  # 16777218: the sum, rounded once
    assert np.isneginf(ref.process_logits(x, logit_bias={1: -(10**400)})[1])  # a ban


def test_reference_logit_bias_errors():
    x = np.zeros((2, 4), F32)
    for bias, match in [
        ({0: np.nan}, "logit_bias: the bias of token 0 must be finite or -inf"),
        ({1: np.inf}, "logit_bias: the bias of token 1 must be finite or -inf"),
        ({4: 1.0}, r"logit_bias: token id 4 is not in \[0, V\) = \[0, 4\)"),
        ({-1: 1.0}, "token id -1 is not in"),
        ([None, {9: 1.0}], "logit_bias for row 1: token id 9"),
        ([None, {0: np.inf}], "logit_bias for row 1: the bias of token 0"),
        ({0: 10**400}, "the bias of token 0 must be finite or -inf; got inf"),
        ([{}], "1 mappings, but logits has 2 row"),
        ([{}, {}, {}], "3 mappings"),
    ]:
        with pytest.raises(ValueError, match=match):
            ref.process_logits(x, logit_bias=bias)
    for bias, match in [
        ({"5": 1.0}, "keys must be integer token ids"),  # OpenAI's JSON keys: int() them
        ({1.0: 1.0}, "keys must be integer token ids"),
        ({True: 1.0}, "keys must be integer token ids"),
        ({0: "1"}, "biases must be real numbers"),
        ({0: True}, "biases must be real numbers"),
        ({0: None}, "biases must be real numbers"),
        ([{}, 3], "logit_bias for row 1 must be a mapping"),
        (np.zeros(4), "logit_bias must be a mapping"),
        (5, "logit_bias must be a mapping"),
    ]:
        with pytest.raises(TypeError, match=match):
            ref.process_logits(x, logit_bias=bias)


# ----------------------------------------------------------------------------
# Penalties: known answers.

# HF transformers' repetition penalty (RepetitionPenaltyLogitsProcessor, its test of the
# distribution): V = 10, every logit 1/10 but two, input_ids [[0, 1], [5, 0]], penalty 2:
# each id present, however often, is divided by 2 if positive, multiplied by 2 otherwise.
HF_REPETITION = dict(
    V=10,
    input_ids=[[0, 1], [5, 0]],
    penalty=2.0,
    changed_logits={(0, 0): -0.1, (1, 5): 0.4},
    want={(0, 0): -0.2, (0, 1): 0.05, (1, 0): 0.05, (1, 5): 0.2},
)


def test_reference_repetition_penalty_hf_known_answer():
    case = HF_REPETITION
    x = np.full((2, case["V"]), F32(0.1))
    for (b, j), v in case["changed_logits"].items():
        x[b, j] = F32(v)
    want = x.copy()
    for (b, j), v in case["want"].items():
        want[b, j] = F32(v)  # halving and doubling are exact in float32
    ids = np.array(case["input_ids"])
    for kw in (dict(prompt_ids=ids), dict(output_ids=ids), dict(prompt_ids=list(ids))):
        got = ref.process_logits(x, repetition_penalty=case["penalty"], **kw)
        np.testing.assert_array_equal(got, want)
    # an id repeated is penalized once
    got = ref.process_logits(x, prompt_ids=[[0, 0, 0, 1], [5, 5, 0, 0]], repetition_penalty=2.0)
    np.testing.assert_array_equal(got, want)


# OpenAI's documented penalties: mu[j] -> mu[j] - c[j] * alpha_frequency
# - float(c[j] > 0) * alpha_presence, c[j] the count of j among the tokens sampled so far.
OPENAI = dict(
    logits=[1.0, 0.5, -0.25, 2.0, 0.0, -1.0],
    prompt=[0, 0, 2],  # not counted
    sampled=[3, 3, 1, 3, 5],  # counts: token 1 once, token 3 three times, token 5 once
    cases=[
        (0.5, 0.25, [1.0, -0.25, -0.25, 0.25, 0.0, -1.75]),
        (-0.5, -1.0, [1.0, 2.0, -0.25, 4.5, 0.0, 0.5]),  # negative: encourage
        (0.0, 0.75, [1.0, -0.25, -0.25, 1.25, 0.0, -1.75]),
        (1.0, 0.0, [1.0, -0.5, -0.25, -1.0, 0.0, -2.0]),
    ],
)


def test_reference_frequency_presence_openai_known_answer():
    x = np.array(OPENAI["logits"], F32)
    for f, r, want in OPENAI["cases"]:
        for prompt in (None, OPENAI["prompt"]):
            got = ref.process_logits(
                x,
                prompt_ids=prompt,
                output_ids=OPENAI["sampled"],
                frequency_penalty=f,
                presence_penalty=r,
            )
            assert got.tolist() == want, (f, r, prompt)


# llama.cpp's penalties sampler (llama_sampler_penalties): over the tokens of its window,
# logit <= 0 is multiplied by penalty_repeat, a positive one divided, then
# logit -= count * penalty_freq + (count > 0) * penalty_present.  llama-server accepts the
# prompt into the window, so with the window covering the whole history every count is
# over prompt and output together.
LLAMA_CPP = dict(
    logits=[1.5, -0.5, 0.0, 3.0, 2.0, -2.0],
    prompt=[0, 4, 4],
    output=[4, 1, 2, 2],  # whole history counts: 0 once, 1 once, 2 twice, 4 three times
    penalty_repeat=2.0,
    penalty_freq=0.25,
    penalty_present=0.5,
    want=[0.0, -1.75, -1.0, 3.0, -0.25, -2.0],
    # the same request read as OpenAI and vLLM read it: frequency and presence count the
    # output only (token 0 only in the prompt, token 4 once in the output)
    want_output_only=[0.75, -1.75, -1.0, 3.0, 0.25, -2.0],
)


def test_reference_penalties_llama_cpp_known_answer():
    c = LLAMA_CPP
    x = np.array(c["logits"], F32)
    kw = dict(
        repetition_penalty=c["penalty_repeat"],
        frequency_penalty=c["penalty_freq"],
        presence_penalty=c["penalty_present"],
    )
    got = ref.process_logits(x, output_ids=c["prompt"] + c["output"], **kw)
    assert got.tolist() == c["want"]
    got = ref.process_logits(x, prompt_ids=c["prompt"], output_ids=c["output"], **kw)
    assert got.tolist() == c["want_output_only"]


def test_reference_repetition_counts_prompt_and_output_frequency_only_output():
    # vLLM's split: the repetition penalty sees prompt and output, frequency and
    # presence the output alone
    x = np.array([2.0, 2.0, 2.0, 2.0], F32)
    got = ref.process_logits(
        x,
        prompt_ids=[0, 1],
        output_ids=[1, 2],
        repetition_penalty=2.0,
        frequency_penalty=0.5,
        presence_penalty=0.25,
    )
    assert got.tolist() == [1.0, 0.25, 0.25, 2.0]


def test_reference_repetition_sign_rule():
    x = np.array([3.0, -3.0, 0.0, -0.0, 1e-45, -1e-45], F32)
    for p in (2.0, 0.5):
        got = ref.process_logits(x, output_ids=np.arange(6), repetition_penalty=p)
        want = np.where(x > 0, x / F32(p), x * F32(p))
        np.testing.assert_array_equal(got, want)
        assert np.signbit(got).tolist() == np.signbit(x).tolist()


def _penalized_by_loop(x, bias, prompt, output, p, f, r):
    """The rules again, as a loop over the few touched ids, each in float64."""
    v = x.astype(np.float64)
    for j, b in bias.items():
        v[j] += b
    for j in set(prompt) | set(output):
        v[j] = v[j] / p if v[j] > 0 else v[j] * p
    for j in set(output):
        c = output.count(j)
        v[j] -= f * c + r * (c > 0)
    return v.astype(F32)


def test_reference_penalties_against_a_loop_over_ids(rng):
    V = 50
    for _ in range(50):
        x = (rng.standard_normal(V) * 3).astype(F32)
        bias = {int(j): float(rng.standard_normal() * 2) for j in rng.integers(0, V, 5)}
        prompt = rng.integers(0, V, rng.integers(0, 20)).tolist()
        output = rng.integers(0, V, rng.integers(0, 20)).tolist()
        p, f, r = rng.uniform(0.3, 2.5), rng.uniform(-1, 1), rng.uniform(-1, 1)
        got = ref.process_logits(
            x,
            logit_bias=bias,
            prompt_ids=prompt,
            output_ids=output,
            repetition_penalty=p,
            frequency_penalty=f,
            presence_penalty=r,
        )
        want = _penalized_by_loop(x, bias, prompt, output, p, f, r)
        np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------------------
# Order: bans, finite biases, repetition, frequency and presence; a ban is final.


def test_reference_order_bias_before_repetition():
    x = np.array([-1.0, 0.0], F32)
    got = ref.process_logits(x, logit_bias={0: 2.0}, prompt_ids=[0], repetition_penalty=4.0)
    assert got[0] == 0.25  # (-1 + 2) / 4; penalizing first would give -1 * 4 + 2 = -2
    got = ref.process_logits(x, logit_bias={0: -2.0}, prompt_ids=[0], repetition_penalty=4.0)
    assert got[0] == -12.0  # (-1 - 2) * 4


def test_reference_banned_stays_banned():
    x = np.array([1.0, 2.0, -3.0, NEG, 0.5], F32)
    cases = [
        dict(logit_bias={1: NEG}, output_ids=[1, 1], frequency_penalty=-100.0),
        dict(logit_bias={1: NEG}, prompt_ids=[1], repetition_penalty=1e-30),
        dict(token_bitmask=np.array([0b11101], np.int32), logit_bias={1: 1e30}),
        dict(min_tokens=1, stop_ids=[1], logit_bias={1: 100.0}, presence_penalty=-1e30),
        dict(logit_bias={1: NEG, 3: 5.0}, output_ids=[3, 3], frequency_penalty=-1e38),
    ]
    for kw in cases:
        got = ref.process_logits(x, **kw)
        assert np.isneginf(got[1]) and np.isneginf(got[3]), kw


def test_reference_untouched_tokens_keep_their_bits(rng):
    V = 64
    x = rng.standard_normal(V).astype(F32)
    x[:4] = [0.0, -0.0, 1e-45, -1e-45]
    touched = [40, 41, 42, 43, 50]
    got = ref.process_logits(
        x,
        logit_bias={40: 1.0, 41: -0.5},
        prompt_ids=[42, -1],
        output_ids=[43, 50, 50],
        repetition_penalty=1.3,
        frequency_penalty=0.3,
        presence_penalty=-0.2,
        min_tokens=1,
        stop_ids=[],
    )
    rest = np.setdiff1d(np.arange(V), touched)
    assert got[rest].tobytes() == x[rest].tobytes()
    assert not np.array_equal(got[touched], x[touched])


def test_reference_overflow_beyond_float32():
    x = np.array([[3e38, 0.0], [1.0, 0.0]], F32)
    with pytest.raises(ValueError, match="row 0: the logit processors take token 0"):
        ref.process_logits(x, logit_bias={0: 3e38})
    with pytest.raises(ValueError, match="row 1: .* token 0's logit beyond float32"):
        ref.process_logits(x, output_ids=[[], [0]], repetition_penalty=[1.0, 1e-39])
    with pytest.raises(ValueError, match="row 0: .* token 1"):
        ref.process_logits(x, output_ids=[[1, 1], []], frequency_penalty=-1e308)
    # below float32's range the logit becomes -inf: banned, like any -inf
    got = ref.process_logits(x, logit_bias={0: -1e39})
    assert got.tolist() == [[NEG, 0.0], [NEG, 0.0]]
    with pytest.raises(ValueError, match="row 1 has no token left"):
        ref.process_logits(x, logit_bias=[None, {0: -1e39, 1: -1e39}])


# ----------------------------------------------------------------------------
# Histories: the accepted forms agree; the errors.


def _histories(rng, B, V):
    rows = [rng.integers(0, V, rng.integers(0, 12)) for _ in range(B)]
    rows[0] = rows[0][:0]  # an empty history
    return rows


def _forms(rows, rng):
    """The same histories in every accepted form."""
    L = max(len(r) for r in rows) + 2
    padded = np.full((len(rows), L), -1, dtype=np.int64)
    scattered = padded.copy()
    for b, r in enumerate(rows):
        padded[b, : len(r)] = r
        where = np.sort(rng.choice(L, len(r), replace=False))  # -1 anywhere in the row
        scattered[b, where] = r
    yield "padded", padded
    yield "padded int32", padded.astype(np.int32)
    yield "padded, -1 in between", scattered
    yield "ragged arrays", [np.asarray(r) for r in rows]
    yield "ragged uint16", [np.asarray(r, np.uint16) for r in rows]
    yield "ragged int8 with -1", [np.append(np.asarray(r, np.int8), -1) for r in rows]
    yield "ragged lists", [list(map(int, r)) for r in rows]
    yield "tuple of lists", tuple([int(v) for v in r] for r in rows)
    yield "rows of the padded array", list(scattered)
    yield "object array of arrays", np.array([*map(np.asarray, rows), None], dtype=object)[:-1]


def test_reference_ragged_and_padded_histories_agree(rng):
    B, V = 5, 23
    x = (rng.standard_normal((B, V)) * 2).astype(F32)
    prompts, outputs = _histories(rng, B, V), _histories(rng, B, V)
    kw = dict(
        repetition_penalty=[1.5, 0.7, 1.2, 2.0, 1.0],
        frequency_penalty=0.3,
        presence_penalty=np.array([0.1, -0.2, 0.0, 0.5, 1.0]),
        min_tokens=4,
        stop_ids=[[0], [1, 1], [], [2, 3], [4]],
    )
    want = ref.process_logits(x, prompt_ids=prompts, output_ids=outputs, **kw)
    for (pname, p), (oname, o) in zip(_forms(prompts, rng), _forms(outputs, rng)):
        got = ref.process_logits(x, prompt_ids=p, output_ids=o, **kw)
        assert got.tobytes() == want.tobytes(), (pname, oname)
    for b in range(B):  # each row alone, as 1-D logits
        got = ref.process_logits(
            x[b],
            prompt_ids=prompts[b],
            output_ids=np.append(outputs[b], -1).reshape(1, -1),
            repetition_penalty=kw["repetition_penalty"][b],
            frequency_penalty=0.3,
            presence_penalty=kw["presence_penalty"][b : b + 1],
            min_tokens=4,
            stop_ids=kw["stop_ids"][b],
        )
        assert got.tobytes() == want[b].tobytes()


def test_reference_history_errors():
    x = np.zeros((2, 5), F32)
    for name in ("prompt_ids", "output_ids"):
        for value, match in [
            (np.array([[0, 5], [1, 2]]), rf"{name} row 0 holds 5, not a token id in \[0, V\)"),
            (np.array([[0, 1], [1, -2]]), rf"{name} row 1 holds -2"),
            ([[0], [1, 2**70]], rf"{name} row 1 holds {2**70}"),
            ([[0], np.array([2**64 - 1], np.uint64)], rf"{name} row 1 holds {2**64 - 1}"),
            (np.zeros((3, 2), int), rf"{name} has 3 rows, but logits has 2"),
            ([[0]], rf"{name} has 1 rows, but logits has 2"),
            (np.zeros(2, int), rf"{name} must be a 2-D \(B, L\) array"),
            (np.zeros((2, 1, 1), int), rf"{name} must be a 2-D"),
            ([1, 2], rf"{name} row 0 must be a 1-D list of ids, got 0-D"),
            ([[0], [[1]]], rf"{name} row 1 must be a 1-D list"),
        ]:
            with pytest.raises(ValueError, match=match):
                ref.process_logits(x, **{name: value})
        for value, match in [
            (np.zeros((2, 2)), "must hold integer token ids, got dtype float64"),
            (np.zeros((2, 2), bool), "got dtype bool"),
            ([[0.0], [1]], rf"{name} row 0 must hold integer token ids"),
            ([[0], [True]], rf"{name} row 1 must hold integer token ids"),
            ([[0], ["1"]], rf"{name} row 1 must hold integer token ids"),
            ([[0], np.array([1.0])], rf"{name} row 1 must hold integer token ids"),
        ]:
            with pytest.raises(TypeError, match=match):
                ref.process_logits(x, **{name: value})
        # 1-D logits: one 1-D list (or a (1, L) array)
        assert ref.process_logits(x[0], **{name: [1, -1, 4]}).shape == (5,)
        assert ref.process_logits(x[0], **{name: np.array([[1, 4]])}).shape == (5,)
        with pytest.raises(ValueError, match=rf"{name} row 0 holds 5"):
            ref.process_logits(x[0], **{name: np.array([[1, 5]])})
        with pytest.raises(ValueError, match=rf"{name} holds -3"):
            ref.process_logits(x[0], **{name: [1, -3]})
        with pytest.raises(ValueError, match=rf"{name} has 2 rows, but logits has 1"):
            ref.process_logits(x[0], **{name: [[1], [2]]})


def test_reference_penalty_parameter_errors():
    x = np.zeros((2, 5), F32)
    h = dict(prompt_ids=[[1], [2]], output_ids=[[1], [2]])
    for kw, match in [
        (dict(repetition_penalty=0.0), "repetition_penalty must be a finite number > 0"),
        (dict(repetition_penalty=-1.0), "repetition_penalty must be"),
        (dict(repetition_penalty=np.inf), "repetition_penalty must be"),
        (dict(repetition_penalty=np.nan), "repetition_penalty must be"),
        (dict(repetition_penalty=[1.0, 0.0]), "repetition_penalty for row 1 must be"),
        (dict(repetition_penalty=[1.0, 1.0, 1.0]), "repetition_penalty has length 3"),
        (dict(frequency_penalty=np.inf), "frequency_penalty must be a finite number"),
        (dict(frequency_penalty=[0.0, np.nan]), "frequency_penalty for row 1 must be"),
        (dict(presence_penalty=-np.inf), "presence_penalty must be a finite number"),
        (dict(presence_penalty=np.zeros((2, 1))), "presence_penalty must be a scalar or 1-D"),
    ]:
        with pytest.raises(ValueError, match=match):
            ref.process_logits(x, **h, **kw)
        with pytest.raises(ValueError, match=match):  # checked with or without histories
            ref.process_logits(x, **kw)
    for kw, match in [
        (dict(repetition_penalty=True), "repetition_penalty must be real numbers"),
        (dict(frequency_penalty="0.5"), "frequency_penalty must be real numbers"),
        (dict(presence_penalty=None), "presence_penalty must be a number"),
    ]:
        with pytest.raises(TypeError, match=match):
            ref.process_logits(x, **h, **kw)


# ----------------------------------------------------------------------------
# min_tokens and stop_ids.


def test_reference_min_tokens_counts_real_tokens_only():
    x = np.zeros((4, 8), F32)
    out = np.array([[5, -1, -1], [5, 6, -1], [-1, 5, 6], [-1, -1, -1]])
    got = ref.process_logits(x, output_ids=out, min_tokens=2, stop_ids=[7, 7, 3])
    assert [np.flatnonzero(np.isneginf(r)).tolist() for r in got] == [[3, 7], [], [], [3, 7]]
    got = ref.process_logits(x, min_tokens=[0, 1, 2, 3], stop_ids=[[1], [2], [3], [4]])
    assert [np.flatnonzero(np.isneginf(r)).tolist() for r in got] == [[], [2], [3], [4]]
    # no output_ids is an empty output; min_tokens 0 bans nothing (stop_ids still checked)
    got = ref.process_logits(x, output_ids=out, stop_ids=[[1, -1], [2, 3], [0, 0], []])
    assert not np.isneginf(got).any()
    got = ref.process_logits(x[0], min_tokens=1, stop_ids=np.array([1, 2]))
    assert allowed_ids(got) == [0, 3, 4, 5, 6, 7]


def test_reference_min_tokens_errors():
    x = np.zeros((2, 5), F32)
    for kw, match in [
        (dict(min_tokens=1), "min_tokens > 0 needs stop_ids"),
        (dict(min_tokens=[0, 3]), "min_tokens > 0 needs stop_ids"),
        (dict(min_tokens=-1, stop_ids=[1]), "min_tokens must be an integer >= 0"),
        (dict(min_tokens=[1, -1], stop_ids=[1]), "min_tokens for row 1 must be"),
        (dict(min_tokens=[1, 1, 1], stop_ids=[1]), "min_tokens has length 3"),
        (dict(min_tokens=1, stop_ids=[5]), r"stop_ids holds 5, not a token id in \[0, V\)"),
        (dict(stop_ids=[[1], [-2]]), "stop_ids row 1 holds -2"),
        (dict(stop_ids=[[1], [2], [3]]), "stop_ids has 3 rows, but logits has 2"),
        (dict(stop_ids=np.zeros((2, 2, 2), int)), "stop_ids must be a 1-D list of ids .every"),
    ]:
        with pytest.raises(ValueError, match=match):
            ref.process_logits(x, **kw)
    for kw, match in [
        (dict(min_tokens=1.0, stop_ids=[1]), "min_tokens must be integers"),
        (dict(min_tokens=True, stop_ids=[1]), "min_tokens must be integers, got dtype bool"),
        (dict(min_tokens=1, stop_ids=[1.0]), "stop_ids must hold integer token ids"),
        (dict(stop_ids=np.array([[1.0], [2.0]])), "stop_ids must hold integer token ids"),
    ]:
        with pytest.raises(TypeError, match=match):
            ref.process_logits(x, **kw)


# ----------------------------------------------------------------------------
# A row with nothing left; every check before any write.


def test_reference_row_left_with_nothing_is_named_in_every_function():
    x = np.zeros((3, 6), F32)
    x[2, 4] = NEG
    kw = dict(
        token_bitmask=np.array([[0b111111], [0b1], [0b10000]], np.int32),
        min_tokens=[0, 0, 1],
        stop_ids=[3],
    )
    functions = {
        "process_logits": ref.process_logits,
        "mask": ref.mask,
        "filtered_probs": ref.filtered_probs,
        "sample": lambda x, **k: ref.sample(x, seed=1, **k),
    }
    for fn in functions.values():
        with pytest.raises(ValueError, match="logits row 2 has no token left"):
            fn(x, **kw)
        with pytest.raises(ValueError, match="logits row 1 has no token left"):
            fn(x, token_bitmask=kw["token_bitmask"], logit_bias=[None, {0: NEG}, None])
    # the check of the logits themselves comes first
    y = x.copy()
    y[0, 0] = np.nan
    with pytest.raises(ValueError, match="row 0 contains NaN"):
        ref.process_logits(y, **kw)


def test_reference_nothing_written_before_an_error():
    x = np.linspace(-1, 1, 12, dtype=F32).reshape(2, 6)
    bitmask = np.array([0b111011], np.int32)
    out_ids = np.array([[1, 2, -1], [3, 3, 3]])
    snapshot = [a.copy() for a in (x, bitmask, out_ids)]
    bad_calls = [
        dict(token_bitmask=bitmask, logit_bias={0: np.nan}),
        dict(token_bitmask=bitmask, output_ids=out_ids, min_tokens=9, stop_ids=[0, 1, 3, 4, 5]),
        dict(output_ids=out_ids, repetition_penalty=0.0),
        dict(output_ids=out_ids, stop_ids=[[0], [6]]),
    ]
    for kw in bad_calls:
        for fn in (ref.process_logits, ref.mask, ref.filtered_probs):
            out = np.full((2, 6), 7.0, F32)
            with pytest.raises(ValueError):
                fn(x, out=out, **kw)
            assert (out == 7.0).all(), (fn.__name__, kw)
        with pytest.raises(ValueError):
            ref.process_logits(x, out=x, **kw)
        for a, b in zip((x, bitmask, out_ids), snapshot):
            assert a.tobytes() == b.tobytes()
    # and a good call modifies nothing it is given but out
    ref.process_logits(x, token_bitmask=bitmask, output_ids=out_ids, frequency_penalty=1.0)
    for a, b in zip((x, bitmask, out_ids), snapshot):
        assert a.tobytes() == b.tobytes()


def test_reference_process_logits_out_and_types():
    x = np.array([[1.0, 2.0, 3.0]], np.float64)
    out = np.empty((1, 3), F32)
    res = ref.process_logits(x, logit_bias={0: 1.0}, out=out)
    assert res is out and out.tolist() == [[2.0, 2.0, 3.0]]
    y = x.astype(F32)
    assert ref.process_logits(y, output_ids=[[2]], frequency_penalty=1.0, out=y) is y
    assert y.tolist() == [[1.0, 2.0, 2.0]]
    assert ref.process_logits(x).dtype == np.float32  # nothing on: the logits, as float32
    assert ref.process_logits(np.zeros((0, 4), F32), logit_bias={0: 1.0}).shape == (0, 4)
    with pytest.raises(TypeError, match="out must have dtype float32"):
        ref.process_logits(x, out=np.empty((1, 3)))
    with pytest.raises(ValueError, match="out has shape"):
        ref.process_logits(x, out=np.empty(3, F32))
    with pytest.raises(TypeError, match="logits must be a real floating-point array"):
        ref.process_logits(np.zeros(3, int))


# ----------------------------------------------------------------------------
# sample, filtered_probs and mask: the filters on process_logits' result.


def _random_processors(rng, B, V):
    return dict(
        token_bitmask=_pack(rng.random((B, (V + 31) // 32 * 32)) < rng.uniform(0.1, 1.0)),
        logit_bias=[
            {int(j): float(rng.choice([NEG, -5.0, 0.5, 30.0])) for j in rng.integers(0, V, 4)}
            for _ in range(B)
        ],
        prompt_ids=[rng.integers(0, V, rng.integers(0, 30)) for _ in range(B)],
        output_ids=[rng.integers(0, V, rng.integers(0, 30)) for _ in range(B)],
        repetition_penalty=rng.uniform(0.5, 2.0, B),
        frequency_penalty=rng.uniform(-0.5, 1.0, B),
        presence_penalty=float(rng.uniform(-0.5, 1.0)),
        min_tokens=rng.integers(0, 20, B),
        stop_ids=rng.integers(0, V, 3),
    )


def test_reference_filters_see_the_processed_logits(rng):
    B, V = 6, 97
    for _ in range(20):
        x = (rng.standard_normal((B, V)) * 2).astype(F32)
        kw = _random_processors(rng, B, V)
        kw["token_bitmask"][:, 0] |= 1  # token 0 allowed: a row keeps something
        for b in range(B):
            kw["logit_bias"][b].pop(0, None)
        kw["stop_ids"] = kw["stop_ids"][kw["stop_ids"] != 0]
        filters = dict(
            temperature=rng.choice([0.0, 0.7, 1.0, 1.5], B),
            top_k=rng.choice([0, 1, 5, 50], B),
            top_p=rng.choice([1.0, 0.9, 0.5], B),
            min_p=rng.choice([0.0, 0.05], B),
        )
        u = rng.random(B)
        px = ref.process_logits(x, **kw)
        assert ref.mask(x, **filters, **kw).tobytes() == ref.mask(px, **filters).tobytes()
        got, want = ref.filtered_probs(x, **filters, **kw), ref.filtered_probs(px, **filters)
        assert got.tobytes() == want.tobytes()
        got = ref.sample(x, **filters, **kw, uniforms=u, return_logprobs=True)
        want = ref.sample(px, **filters, uniforms=u, return_logprobs=True)
        assert got[0].tobytes() == want[0].tobytes() and got[1].tobytes() == want[1].tobytes()
        greedy = filters["temperature"] == 0
        assert (got[0][greedy] == np.argmax(px, axis=1)[greedy]).all()
        assert np.isfinite(px[np.arange(B), got[0]]).all()  # never a banned token
        probs = ref.filtered_probs(x, **filters, **kw)
        assert (probs[np.isneginf(px)] == 0).all()
        lp = np.log(probs[np.arange(B), got[0]])
        np.testing.assert_allclose(got[1][~greedy], lp[~greedy], rtol=1e-12, atol=1e-12)


def test_reference_no_processors_is_part_one(rng):
    """Every processor argument at its default (or a history with no penalty) changes
    nothing, bit for bit."""
    x = (rng.standard_normal((4, 50)) * 3).astype(F32)
    x[1, :10] = NEG
    filters = dict(temperature=[0.0, 0.8, 1.0, 2.0], top_k=[0, 3, 10, 0], top_p=0.9)
    defaults = dict(
        token_bitmask=None,
        logit_bias=None,
        prompt_ids=None,
        output_ids=None,
        repetition_penalty=1.0,
        frequency_penalty=0.0,
        presence_penalty=0.0,
        min_tokens=0,
        stop_ids=None,
    )
    neutral = dict(
        token_bitmask=np.full(2, -1, np.int32),
        logit_bias=[{}, None, {}, {}],
        prompt_ids=np.arange(40).reshape(4, 10),
        output_ids=[[1, 2], [], [3], [4, 4]],
        min_tokens=0,
        stop_ids=[0],
    )
    for kw in (defaults, neutral):
        for fn in (ref.mask, ref.filtered_probs):
            assert fn(x, **filters, **kw).tobytes() == fn(x, **filters).tobytes()
        for extra in (dict(uniforms=np.linspace(0, 0.9, 4)), dict(seed=5, offset=3)):
            got = ref.sample(x, **filters, **kw, **extra, return_logprobs=True)
            want = ref.sample(x, **filters, **extra, return_logprobs=True)
            assert got[0].tobytes() == want[0].tobytes()
            assert got[1].tobytes() == want[1].tobytes()
        assert ref.process_logits(x, **kw).tobytes() == x.tobytes()


# ----------------------------------------------------------------------------
# token_logprobs: the raw log-softmax at given tokens.


def test_reference_token_logprobs(rng):
    x = (rng.standard_normal((3, 20)) * 2).astype(F32)
    x[2, 5] = NEG
    toks = np.array([3, 19, 5])
    for T in (1.0, 0.5, [1.0, 2.0, 0.3]):
        got = ref.token_logprobs(x, toks, T)
        want = ref.log_softmax(x, T)[np.arange(3), toks]
        assert got.dtype == np.float32 and got.shape == (3,)
        np.testing.assert_array_equal(got, want.astype(F32))
        assert np.isneginf(got[2])
    got = ref.token_logprobs(x, 7)  # a scalar is every row's token
    np.testing.assert_array_equal(got, ref.log_softmax(x)[:, 7].astype(F32))
    one = ref.token_logprobs(x[0], np.int64(3), 0.7)
    assert isinstance(one, np.float32) and one == F32(ref.log_softmax(x[0], 0.7)[3])
    a = int(np.argmax(x[1]))
    assert ref.token_logprobs(x[1], a, 0.0) == 0.0
    assert np.isneginf(ref.token_logprobs(x[1], (a + 1) % 20, 0.0))
    # raw: a token banned by the processors still has its raw log-probability
    px = ref.process_logits(x, logit_bias={3: NEG})
    assert np.isneginf(px[0, 3]) and np.isfinite(ref.token_logprobs(x, toks)[0])


def test_reference_token_logprobs_errors():
    x = np.zeros((2, 5), F32)
    for tokens, match in [
        ([0, 5], r"tokens for row 1 must be a token id in \[0, V\) = \[0, 5\); got 5"),
        (-1, r"tokens must be a token id in \[0, V\)"),
        ([0, 1, 2], "tokens has length 3, but logits has 2 row"),
        (np.zeros((2, 1), int), "tokens must be a scalar or 1-D"),
    ]:
        with pytest.raises(ValueError, match=match):
            ref.token_logprobs(x, tokens)
    for tokens, match in [
        (1.0, "tokens must be integers"),
        (np.array([0.0, 1.0]), "tokens must be integers"),
        (True, "tokens must be integers, got dtype bool"),
        (None, "tokens must be an integer or a 1-D array of integers"),
    ]:
        with pytest.raises(TypeError, match=match):
            ref.token_logprobs(x, tokens)
    with pytest.raises(ValueError, match="temperature must be"):
        ref.token_logprobs(x, 0, -1.0)
    with pytest.raises(ValueError, match="row 1 contains NaN"):
        ref.token_logprobs(np.array([[0.0, 1.0], [np.nan, 0.0]], F32), 0)


# ----------------------------------------------------------------------------
# Cross-checks against the peers themselves, where installed.


def test_reference_bitmask_bans_what_xgrammar_bans(rng):
    torch = pytest.importorskip("torch")
    xgr = pytest.importorskip("xgrammar")
    apply = xgr.apply_token_bitmask_inplace
    has_backend = "backend" in inspect.signature(apply).parameters
    B = 4
    for V in (1, 2, 7, 8, 31, 32, 33, 97, 1000, 4096):
        for extra_words in (0, 1):
            W = (V + 31) // 32 + extra_words
            for density in (0.0, 0.001, 0.1, 0.5, 0.9, 1.0):
                bits = rng.random((B, 32 * W)) < density
                bits[np.arange(B), rng.integers(0, V, B)] = True  # at least one allowed
                x = rng.standard_normal((B, V)).astype(F32)
                if V > 1:
                    x[0, rng.integers(1, V, 3)] = NEG  # -inf stays -inf on both sides
                    bits[0, 0] = True
                # xgrammar's own bitmasks have every bit past V set, and its CPU kernel
                # (0.2.9) needs them so: a 0 there makes it write -inf past the row (into
                # the next row, or past the buffer).  Its pure-torch backend reads them as
                # the rule does (ignored), so it also gets bitmasks with random tails.
                clean = bits.copy()
                clean[:, V:] = True
                calls = [(clean, {})]
                if has_backend:
                    calls += [(clean, dict(backend="cpu")), (bits, dict(backend="torch_native"))]
                for form, kw in calls:
                    words = _pack(form).view(np.int32)
                    ours = ref.process_logits(x, token_bitmask=words)
                    ours1 = ref.process_logits(x[1], token_bitmask=words[1])
                    t, t1 = torch.from_numpy(x.copy()), torch.from_numpy(x[1].copy())
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        apply(t, torch.from_numpy(words.copy()), **kw)
                        apply(t1, torch.from_numpy(words[1].copy()), **kw)
                    where = f"V={V} W={W} density={density} {kw}"
                    np.testing.assert_array_equal(ours, t.numpy(), err_msg=where)
                    np.testing.assert_array_equal(ours1, t1.numpy(), err_msg=where)


def test_reference_repetition_penalty_matches_transformers(rng):
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

    for penalty in (2.0, 1.25, 1.5, 0.5):  # exact in float32: one rounding either way
        x = (rng.standard_normal((4, 40)) * 3).astype(F32)
        ids = rng.integers(0, 40, (4, 25))  # repeats included
        proc = RepetitionPenaltyLogitsProcessor(penalty=penalty)
        theirs = proc(torch.from_numpy(ids), torch.from_numpy(x.copy())).numpy()
        ours = ref.process_logits(x, prompt_ids=ids, repetition_penalty=penalty)
        np.testing.assert_array_equal(ours, theirs)
