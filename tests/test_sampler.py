"""tokenpick.Sampler: every step's token is what sample() gives for that request's row,
arguments, seed, offset (its step count) and history, whatever requests share the step;
the requests finish when and why they should; bad input is refused and changes nothing."""

import threading

import numpy as np
import pytest

import tokenpick as tp
from tokenpick import reference as ref

V = 300
EOS = (7, 11)


def request_args(rng, i):
    """Mixed arguments, as a server's requests bring them."""
    kind = i % 6
    a = dict(seed=int(rng.integers(2**63)), temperature=float(rng.choice([0.0, 0.7, 1.0, 1.3])))
    if kind == 1:
        a.update(top_k=int(rng.integers(1, 40)), top_p=0.9)
    elif kind == 2:
        a.update(min_p=0.05, repetition_penalty=1.3, prompt_ids=rng.integers(0, V, 12).tolist())
    elif kind == 3:
        a.update(frequency_penalty=0.4, presence_penalty=0.3, top_p=0.8)
    elif kind == 4:
        a.update(logit_bias={3: 2.0, 4: -np.inf}, min_tokens=3, stop_ids=[5, 6])
    elif kind == 5:
        a.update(typical_p=0.9, top_n_sigma=2.0, max_new_tokens=4)
    return a


def by_hand(row, args, outputs):
    """The token sample() gives for one request's row at its step."""
    a = dict(args)
    seed = a.pop("seed")
    a.pop("max_new_tokens", None)
    stop = list(a.pop("stop_ids", ()))
    mint = a.pop("min_tokens", 0)
    if a.get("prompt_ids") is not None:
        a["prompt_ids"] = np.array(a["prompt_ids"], dtype=np.int64)
    if mint:
        a.update(min_tokens=mint, stop_ids=np.array(sorted(set(stop) | set(EOS)), dtype=np.int64))
    return int(
        tp.sample(
            row, **a, output_ids=np.array(outputs, dtype=np.int64), seed=seed, offset=len(outputs)
        )
    )


def logits_for(rng, B):
    x = (rng.standard_normal((B, V)) * 2).astype(np.float32)
    x[:, [*EOS, 5, 6]] += 3.0  # the EOS and some stop ids come, but not at once
    return x


def test_each_token_is_samples_for_that_request(rng):
    """A loop over 12 requests whose batches change every step (some leave, arrive,
    shuffle): each token equals sample() on the request's own row, arguments, seed,
    offset and outputs, and the finish reasons are right."""
    s = tp.Sampler(V, eos_ids=EOS)
    args = {f"r{i}": request_args(rng, i) for i in range(12)}
    for rid, a in args.items():
        s.add(rid, **a)
    outputs = {rid: [] for rid in args}
    live = list(args)
    for _ in range(30):
        if not live:
            break
        batch = list(rng.permutation(live)[: max(1, int(rng.integers(1, len(live) + 1)))])
        x = logits_for(rng, len(batch))
        got = s.step(x, batch)
        for b, rid in enumerate(batch):
            want = by_hand(x[b], args[rid], outputs[rid])
            assert got.tokens[b] == want, (rid, len(outputs[rid]))
            outputs[rid].append(want)
            a = args[rid]
            reason = None
            if want in EOS:
                reason = "eos"
            elif want in a.get("stop_ids", ()):
                reason = "stop"
            elif len(outputs[rid]) >= a.get("max_new_tokens", 10**9):
                reason = "length"
            assert got.reasons[b] == reason
            assert got.finished[b] == (reason is not None)
            if reason is not None:
                assert len(outputs[rid]) > a.get("min_tokens", 0) or reason == "length"
                live.remove(rid)
                assert s.finish_reason(rid) == reason
    for rid in args:
        np.testing.assert_array_equal(s.output_ids(rid), outputs[rid])


def test_a_request_does_not_depend_on_its_batch(rng):
    """The same request alone and among others, at another position: the same tokens."""
    rows = logits_for(rng, 8)
    a = dict(seed=123, temperature=0.9, top_k=50, frequency_penalty=0.5)
    alone, crowd = tp.Sampler(V), tp.Sampler(V)
    alone.add("x", **a)
    for i in range(5):
        crowd.add(i, **request_args(rng, i))
    crowd.add("x", **a)
    for step in range(8):
        others = [i for i in range(5) if crowd.finish_reason(i) is None][: step % 5]
        batch = others + ["x"] if step % 2 else ["x"] + others
        x = np.repeat(rows[step : step + 1], len(batch), axis=0)
        x[[i for i, r in enumerate(batch) if r != "x"]] += 1.0  # the others' rows differ
        got = crowd.step(x, batch).tokens[batch.index("x")]
        assert got == alone.step(rows[step : step + 1], ["x"]).tokens[0]


def test_matches_the_reference(rng):
    """The tokens equal tokenpick.reference.sample's, computed by hand, on a few steps."""
    s = tp.Sampler(V, eos_ids=[V - 1])
    s.add("a", seed=5, temperature=0.8, top_p=0.9, repetition_penalty=1.2, prompt_ids=[1, 2, 3])
    outputs = []
    for _ in range(6):
        x = logits_for(rng, 1)
        token = s.step(x, ["a"]).tokens[0]
        want = ref.sample(
            x[0], temperature=0.8, top_p=0.9, repetition_penalty=1.2, prompt_ids=[1, 2, 3],
            output_ids=outputs, seed=5, offset=len(outputs),
        )  # fmt: skip
        assert token == want
        outputs.append(int(token))


def test_min_tokens_bans_eos_and_stop_ids_until_then():
    x = np.full((1, 10), -5.0, np.float32)
    x[0, 9] = 5.0  # the EOS id is by far the likeliest
    x[0, 8] = 4.0  # then a stop id
    s = tp.Sampler(10, eos_ids=[9])
    s.add("a", seed=0, temperature=0.0, min_tokens=2, stop_ids=[8])
    assert [s.step(x, ["a"]).tokens[0] for _ in range(2)] == [x[0, :8].argmax()] * 2
    out = s.step(x, ["a"])
    assert out.tokens[0] == 9 and out.reasons == ["eos"]


def test_length_and_logprobs_and_remove():
    rng = np.random.default_rng(0)
    x = logits_for(rng, 2)
    s = tp.Sampler(V)
    s.add(1, seed=1, max_new_tokens=2)
    s.add(2, seed=2, temperature=0.5)
    first = s.step(x, [1, 2], return_logprobs=True)
    _, want = tp.sample(x, temperature=[1.0, 0.5], seed=[1, 2], offset=0, return_logprobs=True)
    np.testing.assert_array_equal(first.logprobs, want)
    second = s.step(x, (1, 2))
    assert second.reasons == ["length", None] and second.finished.tolist() == [True, False]
    with pytest.raises(ValueError, match="finished"):
        s.step(x, [1, 2])
    assert s.remove(1).tolist() == [first.tokens[0], second.tokens[0]]
    assert 1 not in s and len(s) == 1
    s.add(1, seed=1)  # the id may come back, as a new request
    assert s.output_ids(1).size == 0


def test_tensors_and_the_models_last_position(rng):
    torch = pytest.importorskip("torch")
    x = logits_for(rng, 3)
    s1, s2 = tp.Sampler(V), tp.Sampler(V)
    for s in (s1, s2):
        for i in range(3):
            s.add(i, seed=i, top_k=20)
    a = s1.step(torch.from_numpy(x)[:, None, :], [0, 1, 2]).tokens
    np.testing.assert_array_equal(a, s2.step(x, [0, 1, 2]).tokens)


def test_threads_share_a_sampler(rng):
    """Two threads step their own requests of one Sampler: the tokens are those each
    would get alone."""
    rows = logits_for(rng, 20)
    shared, got = tp.Sampler(V), {}
    for t in ("a", "b"):
        shared.add(t, seed=7, top_p=0.9)

    def loop(t):
        got[t] = [int(shared.step(rows[i : i + 1], [t]).tokens[0]) for i in range(20)]

    threads = [threading.Thread(target=loop, args=(t,)) for t in ("a", "b")]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    alone = tp.Sampler(V)
    alone.add("a", seed=7, top_p=0.9)
    want = [int(alone.step(rows[i : i + 1], ["a"]).tokens[0]) for i in range(20)]
    assert got["a"] == want and got["b"] == want


@pytest.mark.parametrize(
    "args, error",
    [
        (dict(seed=-1), ValueError),
        (dict(seed=1.5), TypeError),
        (dict(seed=1, top_p=0.0), ValueError),
        (dict(seed=1, temperature=[1.0, 2.0]), TypeError),
        (dict(seed=1, order="torch"), ValueError),
        (dict(seed=1, order="vllm", typical_p=0.5), ValueError),
        (dict(seed=1, stop_ids=[V]), ValueError),
        (dict(seed=1, prompt_ids=[-2]), ValueError),
        (dict(seed=1, logit_bias={V: 1.0}), ValueError),
        (dict(seed=1, logit_bias={1: np.nan}), ValueError),
        (dict(seed=1, repetition_penalty=0.0), ValueError),
        (dict(seed=1, max_new_tokens=0), ValueError),
        (dict(seed=1, min_tokens=-1), ValueError),
    ],
)
def test_bad_requests_are_refused_and_change_nothing(args, error):
    s = tp.Sampler(V)
    with pytest.raises(error):
        s.add("a", **args)
    assert "a" not in s and len(s) == 0
    s.add("a", seed=1)  # the sampler still works
    assert s.step(np.zeros((1, V), np.float32), ["a"]).tokens.shape == (1,)


def test_bad_steps_are_refused():
    s = tp.Sampler(V, eos_ids=[1])
    s.add("a", seed=1)
    s.add("b", seed=2)
    x = np.zeros((2, V), np.float32)
    with pytest.raises(ValueError, match="not in the sampler"):
        s.step(x, ["a", "c"])
    with pytest.raises(ValueError, match="more than once"):
        s.step(x, ["a", "a"])
    with pytest.raises(ValueError, match="empty"):
        s.step(x[:0], [])
    with pytest.raises(ValueError, match=r"\(2, 300\)"):
        s.step(x[:, :10], ["a", "b"])
    with pytest.raises(ValueError, match=r"\(1, 300\)"):
        s.step(x, ["a"])
    with pytest.raises(ValueError, match="already"):
        s.add("a", seed=3)
    with pytest.raises(KeyError):
        s.remove("c")
    assert s.output_ids("a").size == 0  # nothing was sampled by the refused steps
    y = x.copy()
    y[1, 0] = np.nan
    with pytest.raises(ValueError, match="row 1"):
        s.step(y, ["a", "b"])
    assert s.output_ids("a").size == 0
    with pytest.raises(ValueError, match="vocab_size"):
        tp.Sampler(0)
    with pytest.raises(ValueError, match="eos_ids"):
        tp.Sampler(5, eos_ids=[5])


def test_a_refused_add_changes_nothing_and_a_bias_is_the_requests_own():
    s = tp.Sampler(V)
    for _ in range(3):  # top_k past int64 keeps every token, as in sample; then a bad top_p
        with pytest.raises(ValueError):
            s.add("a", seed=1, temperature=0.5, top_k=10**30, top_p=2.0)
    with pytest.raises(TypeError, match="mapping"):
        s.add("a", seed=1, logit_bias=[{3: 1.0}])  # the per-row form of sample: one request
    assert len(s) == 0 and s._used == 0 and not any(s._set.values())
    bias = {3: 1.0}
    s.add("a", seed=1, top_k=10**30, logit_bias=bias)
    bias[4] = np.nan  # the caller's dict changes after add: not the request's bias
    x = np.zeros((1, V), np.float32)
    want = tp.sample(x, logit_bias={3: 1.0}, seed=1, offset=0)
    assert s.step(x, ["a"]).tokens.tolist() == want.tolist()


def test_requests_of_different_orders_share_a_step(rng):
    rows = logits_for(rng, 3)
    s = tp.Sampler(V)
    orders = ["hf", "tokenpick", "llama.cpp"]
    for i, order in enumerate(orders):
        s.add(i, seed=i, order=order, top_k=20, top_p=0.8, temperature=0.9)
    got = s.step(rows, [0, 1, 2]).tokens
    for i, order in enumerate(orders):
        want = tp.sample(rows[i], order=order, top_k=20, top_p=0.8, temperature=0.9, seed=i)
        assert got[i] == want
    bad = rows.copy()
    bad[2, 5] = np.nan  # the only llama.cpp row: row 0 of its order's call, row 2 of the step
    with pytest.raises(ValueError, match="logits row 2 contains NaN"):
        s.step(bad, [0, 1, 2])


def test_another_requests_stop_id_does_not_stop_this_one():
    x = np.full((2, 10), -5.0, np.float32)
    x[:, 4] = 5.0
    s = tp.Sampler(10)
    s.add("a", seed=0, temperature=0.0, stop_ids=[4])
    s.add("b", seed=0, temperature=0.0)
    out = s.step(x, ["a", "b"])
    assert out.reasons == ["stop", None] and out.finished.tolist() == [True, False]
    again = s.step(x[1:], ["b"])  # "b" goes on
    assert again.tokens.tolist() == [4] and again.reasons == [None]
