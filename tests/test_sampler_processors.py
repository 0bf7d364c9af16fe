"""The logit processors tokenpick.Sampler keeps in C between steps (each request's
biases, the ids it bans until min_tokens, the tallies of its prompt and outputs): every
token equals sample() given the same arguments as lists (itself checked against the
reference), on every SIMD path and dtype, through steps whose batches change, with the
step's grammar bitmask; a request resumed with its outputs goes on as if it had never
stopped."""

import sys
from pathlib import Path

import numpy as np
import pytest

import tokenpick as tp
from tokenpick import _core
from tokenpick import reference as ref

sys.path.insert(0, str(Path(__file__).parent))
import _dlpack  # noqa: E402

EOS = (7, 11)


def request_args(rng, i, V):
    """Every processor in turn and together, with the edges that meet in one table: a
    bias on a prompt token, a -inf bias on a token the output repeats, a stop id in the
    prompt, penalties below and above 1, and requests with none."""
    hot = rng.integers(0, 40, 30)  # tokens the outputs come back to (the rows favour them)
    a = dict(seed=int(rng.integers(2**63)), temperature=float(rng.choice([0.0, 0.6, 1.0])))
    kind = i % 5
    if kind in (0, 4):
        a.update(
            repetition_penalty=float(rng.choice([0.8, 1.0, 1.3])),
            frequency_penalty=float(rng.uniform(-0.5, 0.8)),
            presence_penalty=float(rng.uniform(-0.5, 0.8)),
            prompt_ids=np.concatenate([hot[:8], rng.integers(0, V, 20)]),
        )
    if kind in (1, 4):
        bias = {int(t): float(rng.uniform(-5, 5)) for t in rng.integers(0, V, 6)}
        bias[int(hot[0])] = float(rng.uniform(-3, 3))
        bias[int(hot[1])] = -np.inf
        a["logit_bias"] = bias
    if kind in (2, 4):
        a.update(min_tokens=int(rng.integers(1, 6)), stop_ids=[int(hot[2]), 5])
    if kind == 3 or i % 3 == 0:  # with processors too (top-k's block route at large V)
        a.update(top_k=int(rng.integers(1, 60)), top_p=0.9)
    if i % 2:
        a["min_p"] = 0.02
    return a


def by_hand(row, args, outputs, bitmask):
    """The token (and log-probability) sample() gives for one request at its step."""
    a = dict(args)
    seed = a.pop("seed")
    a.pop("max_new_tokens", None)
    stop = list(a.pop("stop_ids", ()))
    mint = a.pop("min_tokens", 0)
    if mint:
        a.update(min_tokens=mint, stop_ids=np.array(sorted(set(stop) | set(EOS)), np.int64))
    return tp.sample(
        row, **a, output_ids=np.array(outputs, dtype=np.int64), token_bitmask=bitmask,
        seed=seed, offset=len(outputs), return_logprobs=True,
    )  # fmt: skip


def bitmask_for(rng, B, V):
    """Each row's bitmask: dense, sparse or none at all (all ones), its words sometimes
    too few for V (the tokens past them banned); the 40 tokens the rows favour allowed."""
    W = -(-V // 32) - int(rng.integers(0, 2))
    allowed = rng.random((B, 32 * W)) < rng.choice([0.9, 0.3, 1.0], size=(B, 1))
    allowed[:, :40] = True
    return np.packbits(allowed.reshape(B, W, 32), axis=-1, bitorder="little").view("<u4")[..., 0]


def rows_for(rng, B, V, dtype):
    x = rng.standard_normal((B, V)) * 2
    x[:, :40] += 2.5  # the outputs repeat these
    x[:, [*EOS, 5]] += 1.5  # the EOS and a stop id come, but not at once
    if dtype == "bf16":
        bits = _dlpack.bfloat16_bits(x)
        return _dlpack.Bfloat16Rows(bits), bits
    x = x.astype(dtype)
    return x, x


@pytest.mark.parametrize("dtype", ["float32", "float16", "bf16"])
@pytest.mark.parametrize("V", [300, 4099, 128256])  # the last: top-k's block route
def test_kept_processors_give_the_tokens_of_sample(simd_path, dtype, V, rng):
    s = tp.Sampler(V, eos_ids=EOS)
    args = {f"r{i}": request_args(rng, i, V) for i in range(10)}
    for rid, a in args.items():
        s.add(rid, **a)
    outputs = {rid: [] for rid in args}
    live = list(args)
    _core.route_counts()  # zeroes the counts, in a build that keeps them
    for step in range(24):
        if not live:
            break
        batch = list(rng.permutation(live)[: int(rng.integers(1, len(live) + 1))])
        if step % 3 == 0:
            batch = sorted(live)[: len(batch)]  # now and then the batch of the step before
        x, rows = rows_for(rng, len(batch), V, dtype)
        mask = bitmask_for(rng, len(batch), V) if step % 2 else None
        got = s.step(x, batch, token_bitmask=mask, return_logprobs=True)
        for b, rid in enumerate(batch):
            token, logprob = by_hand(
                rows[b], args[rid], outputs[rid], None if mask is None else mask[b]
            )
            assert (got.tokens[b], got.logprobs[b]) == (token, logprob), (rid, step)
            outputs[rid].append(int(token))
            if got.finished[b]:
                live.remove(rid)
    for rid in args:
        np.testing.assert_array_equal(s.output_ids(rid), outputs[rid])
    counts = _core.route_counts()
    if counts is not None and V == 128256:
        assert counts["topk_blocks"] > 0, counts


def test_kept_processors_match_the_reference(rng):
    """The same, against tokenpick.reference.sample on the request's history, for a
    request with every processor."""
    V = 500
    a = request_args(rng, 4, V)
    s = tp.Sampler(V, eos_ids=EOS)
    s.add("a", **a)
    outputs = []
    for _ in range(10):
        x, _ = rows_for(rng, 1, V, "float32")
        mask = bitmask_for(rng, 1, V)
        token = s.step(x, ["a"], token_bitmask=mask).tokens[0]
        r = dict(a)
        seed, mint, stop = r.pop("seed"), r.pop("min_tokens"), r.pop("stop_ids")
        want = ref.sample(
            x[0], **r, output_ids=np.array(outputs, np.int64), token_bitmask=mask[0],
            min_tokens=mint, stop_ids=np.array(sorted(set(stop) | set(EOS)), np.int64),
            seed=seed, offset=len(outputs),
        )  # fmt: skip
        assert token == want
        outputs.append(int(token))
        if s.finish_reason("a"):
            break


def test_a_resumed_request_goes_on_as_if_it_never_stopped(rng):
    """Resumed with its first outputs, a request draws the tokens it would have drawn,
    its min_tokens and max_new_tokens counting the outputs it came with."""
    V = 300
    a = dict(seed=9, temperature=0.9, repetition_penalty=1.2, frequency_penalty=0.3,
             prompt_ids=[1, 2, 3], logit_bias={4: 1.5})  # fmt: skip
    rows = [rows_for(rng, 1, V, "float32")[0] for _ in range(12)]
    for x in rows:
        x[0, 5] += 20.0  # the stop id, once min_tokens allows it
    for ends, why, n in ((dict(min_tokens=8, stop_ids=[5]), "stop", 9),
                         (dict(max_new_tokens=10), "length", 10)):  # fmt: skip
        whole = tp.Sampler(V)
        whole.add("a", **a, **ends)
        tokens = [int(whole.step(x, ["a"]).tokens[0]) for x in rows[:n]]
        assert whole.finish_reason("a") == why
        for cut in (1, 6, n - 1):
            later = tp.Sampler(V)
            later.add("b", seed=1)  # another request first: the resumed one is not in slot 0
            later.add("a", **a, **ends, output_ids=tokens[:cut])
            np.testing.assert_array_equal(later.output_ids("a"), tokens[:cut])
            rest = [int(later.step(x, ["a"]).tokens[0]) for x in rows[cut:n]]
            assert rest == tokens[cut:]
            assert later.finish_reason("a") == why
    with pytest.raises(ValueError, match="leaves the request no step"):
        whole.add("c", seed=1, max_new_tokens=3, output_ids=[1, 2, 3])
    with pytest.raises(ValueError, match="output_ids"):
        whole.add("c", seed=1, output_ids=[V])
    assert "c" not in whole


def test_a_processed_overflow_is_refused_and_advances_nothing():
    """A bias that takes a logit beyond float32 raises, naming the batch row, and no
    request of the step advances."""
    V = 64
    s = tp.Sampler(V)
    s.add("a", seed=1, frequency_penalty=0.5)
    s.add("b", seed=2, logit_bias={3: 3e38})
    x = np.zeros((2, V), np.float32)
    x[1, 3] = 3e38
    with pytest.raises(ValueError, match="logits row 1.*token 3"):
        s.step(x, ["a", "b"])
    assert s.output_ids("a").size == 0 and s.output_ids("b").size == 0
    x[1, 3] = 0.0
    assert s.step(x, ["a", "b"]).tokens[1] == 3  # the bias acts once the logit allows it


@pytest.mark.parametrize(
    "bitmask, error",
    [
        (np.zeros((3, 2), np.int32), ValueError),  # rows: the step has 2
        (np.zeros((2, 2), np.float32), TypeError),  # dtype
        (np.zeros((2, 2, 1), np.int32), ValueError),  # 3-D
        (np.zeros((2, 2), np.int32), ValueError),  # bans everything: no token left
    ],
)
def test_a_bad_bitmask_is_refused_and_advances_nothing(bitmask, error):
    V = 64
    s = tp.Sampler(V)
    s.add("a", seed=1, frequency_penalty=0.5, output_ids=[1, 2])
    s.add("b", seed=2)
    with pytest.raises(error):
        s.step(np.zeros((2, V), np.float32), ["a", "b"], token_bitmask=bitmask)
    assert s.output_ids("a").tolist() == [1, 2] and s.output_ids("b").size == 0
    assert s.step(np.zeros((2, V), np.float32), ["a", "b"]).tokens.shape == (2,)
