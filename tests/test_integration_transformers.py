"""tokenpick.integrations.transformers on a tiny random-weights Llama built from a
config (no download): generate samples what tokenpick.sample gives on the same logits,
seeds and offsets, keeps HF's own processors, stops as HF does, and decode() with a
Sampler gives generate's tokens."""

import numpy as np
import pytest

import tokenpick as tp

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from tokenpick.integrations import transformers as tpt  # noqa: E402

V = 211
EOS = 3


@pytest.fixture(scope="module")
def model():
    config = transformers.LlamaConfig(
        vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        eos_token_id=EOS, pad_token_id=0, bos_token_id=1,
    )  # fmt: skip
    torch.manual_seed(0)
    m = transformers.LlamaForCausalLM(config).eval()
    m.generation_config.eos_token_id = EOS
    m.generation_config.pad_token_id = 0
    with torch.no_grad():  # logits of some spread, so that sampling has choices
        m.lm_head.weight.mul_(8.0)
    return m


def prompts(B, L=6, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(4, V, (B, L)))


SETTINGS = dict(temperature=0.8, top_k=40, top_p=0.9, min_p=0.02)


def run(model, ids, seed, n=12, **kw):
    out = tpt.generate(
        model, ids, seed=seed, do_sample=True, max_new_tokens=n, min_new_tokens=n,
        output_logits=True, return_dict_in_generate=True, **SETTINGS, **kw,
    )  # fmt: skip
    return out.sequences[:, ids.shape[1] :], out.logits


def test_generate_samples_what_sample_gives(model):
    ids = prompts(3)
    new, logits = run(model, ids, seed=[5, 6, 7])
    for t, raw in enumerate(logits):  # the raw logits; HF's min_new_tokens bans EOS
        want = tp.sample(
            raw, **SETTINGS, order="hf", seed=[5, 6, 7], offset=t, logit_bias={EOS: -np.inf}
        )
        np.testing.assert_array_equal(new[:, t].numpy(), want)


def test_a_sequence_does_not_depend_on_its_batch(model):
    ids = prompts(3)
    together, _ = run(model, ids, seed=[5, 6, 7])
    for b, seed in enumerate([5, 6, 7]):
        alone, _ = run(model, ids[b : b + 1], seed=[seed])
        np.testing.assert_array_equal(alone[0].numpy(), together[b].numpy())


def test_hf_processors_still_apply(model):
    """HF's repetition penalty acts before tokenpick: the tokens are tokenpick's with the
    same penalty over the ids so far."""
    ids = prompts(2, seed=1)
    new, logits = run(model, ids, seed=9, repetition_penalty=1.7)
    seqs = torch.cat([ids, new], dim=1).numpy()
    for t, raw in enumerate(logits):
        history = seqs[:, : ids.shape[1] + t]
        want = tp.sample(
            raw, **SETTINGS, order="hf", seed=[9, 10], offset=t,
            repetition_penalty=1.7, prompt_ids=history, logit_bias={EOS: -np.inf},
        )  # fmt: skip
        np.testing.assert_array_equal(new[:, t].numpy(), want)


def test_greedy_is_hfs_greedy(model):
    ids = prompts(2, seed=2)
    ours = tpt.generate(model, ids, seed=0, do_sample=True, temperature=0.0, max_new_tokens=8)
    hf = model.generate(ids, do_sample=False, max_new_tokens=8)
    np.testing.assert_array_equal(ours.numpy(), hf.numpy())


def test_settings_come_from_the_generation_config(model):
    """The config's values (and HF's default top_k) are read as HF reads them."""
    config = transformers.GenerationConfig(do_sample=True, temperature=0.6, top_p=0.8)
    kw = {"top_k": 7}
    got = tpt.sampling_settings(config, kw)
    assert got["temperature"] == 0.6 and got["top_p"] == 0.8 and got["top_k"] == 7
    default = transformers.GenerationConfig().top_k or 0  # 50 in transformers 4, None in 5
    assert (
        kw == {} and tpt.sampling_settings(transformers.GenerationConfig(), {})["top_k"] == default
    )


def test_decode_with_a_sampler_gives_generates_tokens(model):
    ids = prompts(3, seed=3)
    new, _ = run(model, ids, seed=[11, 12, 13])
    sampler = tp.Sampler(V)  # no EOS: 12 tokens each, as generate's min_new_tokens
    for b, seed in enumerate([11, 12, 13]):
        sampler.add(
            b, seed=seed, order="hf", max_new_tokens=12, logit_bias={EOS: -np.inf}, **SETTINGS
        )  # fmt: skip  (generate's min_new_tokens bans EOS)
    got = tpt.decode(model, ids, sampler, [0, 1, 2])
    for b in range(3):
        np.testing.assert_array_equal(got[b], new[b].numpy())
        assert sampler.finish_reason(b) == "length"


def test_decode_stops_each_request_on_its_own(model):
    """EOS made likely: requests end at their own steps; a finished one gets no more."""
    ids = prompts(4, seed=4)
    sampler = tp.Sampler(V, eos_ids=[EOS])
    for b in range(4):
        sampler.add(b, seed=b, temperature=1.5, max_new_tokens=30, logit_bias={EOS: 4.0})
    got = tpt.decode(model, ids, sampler, range(4))
    for b in range(4):
        out = got[b].tolist()
        reason = sampler.finish_reason(b)
        assert reason in ("eos", "length")
        assert (out[-1] == EOS) == (reason == "eos") and EOS not in out[:-1]


def test_left_padded_prompts(model):
    """Prompts of different lengths, left-padded: each request's tokens are those it
    gets alone."""
    a, b = prompts(1, L=4, seed=5), prompts(1, L=7, seed=6)
    padded = torch.cat([torch.cat([torch.zeros((1, 3), dtype=a.dtype), a], dim=1), b])
    mask = torch.ones_like(padded)
    mask[0, :3] = 0

    def fresh():
        s = tp.Sampler(V)
        for r in ("a", "b"):
            s.add(r, seed=21, max_new_tokens=6, **SETTINGS)
        return s

    both = tpt.decode(model, padded, fresh(), ["a", "b"], attention_mask=mask)
    alone_a = tpt.decode(model, a, fresh(), ["a"])
    alone_b = tpt.decode(model, b, fresh(), ["b"])
    np.testing.assert_array_equal(both["a"], alone_a["a"])
    np.testing.assert_array_equal(both["b"], alone_b["b"])


def test_errors():
    with pytest.raises(ValueError):
        tpt.TokenpickLogitsProcessor(seed=1, top_p=0.0)
    with pytest.raises(ValueError):
        tpt.TokenpickLogitsProcessor(seed=-1)
    p = tpt.TokenpickLogitsProcessor(seed=[1, 2])
    with pytest.raises(ValueError, match="batch of 3"):
        p(torch.zeros((3, 4), dtype=torch.long), torch.zeros((3, V)))
