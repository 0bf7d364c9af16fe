"""tokenpick.integrations.transformers on a tiny random-weights Llama built from a
config (no download): generate samples what tokenpick.sample gives on the same logits,
seeds and offsets, keeps HF's kept sets and HF's own processors, stops as HF does, and
decode() with a Sampler gives generate's tokens.  Skipped without torch and
transformers, but for the import without them."""

import subprocess
import sys

import numpy as np
import pytest

import tokenpick as tp
from tokenpick.integrations import transformers as tpt

V = 211
EOS = 3
PAD = 0
SETTINGS = dict(temperature=0.8, top_k=40, top_p=0.9, min_p=0.02)


@pytest.fixture(scope="module")
def hf():
    """(torch, transformers), or the test is skipped."""
    return pytest.importorskip("torch"), pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def model(hf):
    torch, transformers = hf
    config = transformers.LlamaConfig(
        vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        eos_token_id=EOS, pad_token_id=PAD, bos_token_id=1,
    )  # fmt: skip
    torch.manual_seed(0)
    m = transformers.LlamaForCausalLM(config).eval()
    m.generation_config.eos_token_id = EOS
    m.generation_config.pad_token_id = PAD
    with torch.no_grad():  # logits of some spread, so that sampling has choices
        m.lm_head.weight.mul_(8.0)
    return m


def prompts(B, L=6, seed=0):
    import torch

    return torch.from_numpy(np.random.default_rng(seed).integers(4, V, (B, L)))


def run(model, ids, seed, n=12, **kw):
    """n new tokens each (EOS banned by HF's min_new_tokens), with the raw logits."""
    out = tpt.generate(
        model, ids, seed=seed, do_sample=True, max_new_tokens=n, min_new_tokens=n,
        output_logits=True, return_dict_in_generate=True, **SETTINGS, **kw,
    )  # fmt: skip
    return out.sequences[:, ids.shape[1] :], out.logits


def test_generate_samples_what_sample_gives(model):
    ids = prompts(3)
    new, logits = run(model, ids, seed=[5, 6, 7])
    assert new.shape == (3, 12)
    for t, raw in enumerate(logits):  # the raw logits; HF's min_new_tokens bans EOS
        want = tp.sample(
            raw, **SETTINGS, order="hf", seed=[5, 6, 7], offset=t, logit_bias={EOS: -np.inf}
        )
        np.testing.assert_array_equal(new[:, t].numpy(), want)


def test_raw_logits_left_alone_and_eos_stops(model, hf):
    """With no HF processor before tokenpick's, the scores it gets are the raw logits HF
    returns: they stay as the model gave them (a forward pass over the sequences
    recomputes them), each row's tokens are sample's on them up to its EOS, then
    padding, and generation stops once every row has ended or at max_new_tokens."""
    torch, _ = hf
    ids = prompts(3, seed=7)
    n = 24
    out = tpt.generate(
        model, ids, seed=40, do_sample=True, temperature=1.3, max_new_tokens=n,
        sequence_bias={(EOS,): 2.5}, output_logits=True, return_dict_in_generate=True,
    )  # fmt: skip
    seqs = out.sequences
    new = seqs[:, ids.shape[1] :].numpy()
    assert 1 <= new.shape[1] <= n
    with torch.no_grad():  # the sequences' own logits, recomputed in one pass
        full = model(seqs).logits
    ended = np.zeros(3, bool)
    for t, raw in enumerate(out.logits):
        np.testing.assert_allclose(raw, full[:, ids.shape[1] - 1 + t], rtol=1e-4, atol=1e-4)
        want = tp.sample(raw, temperature=1.3, top_k=50, order="hf", seed=[40, 41, 42],
                         offset=t, logit_bias={EOS: 2.5})  # fmt: skip
        np.testing.assert_array_equal(new[~ended, t], want[~ended])
        assert (new[ended, t] == PAD).all()
        ended |= new[:, t] == EOS
    assert ended.all() or new.shape[1] == n
    assert ended.any(), "EOS made likely: some row should end"


# Generation keywords -> the kept sets, compared with HF's own warpers
KEPT_CASES = [
    dict(),  # HF's defaults: top_k=50
    dict(temperature=0.7, top_p=0.9, min_p=0.05),
    dict(top_k=0, typical_p=0.9, epsilon_cutoff=3e-4, eta_cutoff=1e-3),
    dict(temperature=1.3, top_k=20, top_p=0.8, min_p=0.02, typical_p=0.95, eta_cutoff=3e-4),
]


@pytest.mark.parametrize("kw", KEPT_CASES, ids=lambda kw: ",".join(kw) or "defaults")
def test_kept_sets_are_hfs(model, hf, kw):
    """The settings generate reads give, through tokenpick.mask(order='hf'), the kept
    set of the warpers HF itself builds from the same config, row by row (rows where
    HF's own float32 and float64 answers differ sit on a boundary and are left out)."""
    torch, transformers = hf
    config, _ = model._prepare_generation_config(None, do_sample=True, **kw)
    warpers = model._get_logits_processor(config, input_ids_seq_length=1, device="cpu")
    assert warpers, "HF builds at least one warper"
    rng = np.random.default_rng(len(kw))
    rows = (rng.standard_normal((64, V)) * rng.uniform(0.5, 4.0, (64, 1))).astype(np.float32)
    ids = torch.zeros((64, 1), dtype=torch.long)

    def hf_kept(dtype):
        return np.isfinite(warpers(ids, torch.from_numpy(rows).to(dtype)).numpy())

    kept = hf_kept(torch.float32)
    steady = (kept == hf_kept(torch.float64)).all(1)
    ours = np.isfinite(tp.mask(rows, order="hf", **tpt.sampling_settings(config)))
    assert steady.sum() >= 56
    np.testing.assert_array_equal(ours[steady], kept[steady])
    if not kw:
        assert kept.sum(1).max() == 50


def test_settings_resolve_as_hf_resolves(model, hf):
    """Keywords over the given config over the model's over HF's defaults."""
    _, transformers = hf
    given = transformers.GenerationConfig(temperature=0.6, top_p=0.8, epsilon_cutoff=2.0)
    config, _ = model._prepare_generation_config(given, top_k=7, typical_p=0.5)
    assert tpt.sampling_settings(config) == dict(
        temperature=0.6, top_k=7, top_p=0.8, min_p=0.0, typical_p=0.5, epsilon=0.0, eta=0.0
    )  # HF applies no epsilon cutoff of 2.0
    config, _ = model._prepare_generation_config(None)
    assert tpt.sampling_settings(config)["top_k"] == 50


def test_a_sequence_does_not_depend_on_its_batch(model):
    ids = prompts(3)
    together, _ = run(model, ids, seed=[5, 6, 7])
    for b, seed in enumerate([5, 6, 7]):
        alone, _ = run(model, ids[b : b + 1], seed=[seed])
        np.testing.assert_array_equal(alone[0].numpy(), together[b].numpy())


def test_num_return_sequences(model):
    """Prompt i's j-th sequence is row i * n + j, with that row's seed."""
    ids = prompts(2, seed=8)
    seeds = [3, 1, 4, 1, 5, 9]
    many, _ = run(model, ids, seed=seeds, num_return_sequences=3)
    expanded, _ = run(model, ids.repeat_interleave(3, dim=0), seed=seeds)
    np.testing.assert_array_equal(many.numpy(), expanded.numpy())


def test_output_scores_give_the_logprobs(model):
    """With output_scores, each step's scores hold the drawn token's log-probability:
    compute_transition_scores gives what sample's return_logprobs gives."""
    ids = prompts(2, seed=9)
    out = tpt.generate(
        model, ids, seed=[2, 3], do_sample=True, max_new_tokens=5, min_new_tokens=5,
        output_scores=True, output_logits=True, return_dict_in_generate=True, **SETTINGS,
    )  # fmt: skip
    got = model.compute_transition_scores(out.sequences, out.scores).numpy()
    for t, raw in enumerate(out.logits):
        tokens, logprobs = tp.sample(raw, **SETTINGS, order="hf", seed=[2, 3], offset=t,
                                     logit_bias={EOS: -np.inf}, return_logprobs=True)  # fmt: skip
        np.testing.assert_array_equal(out.sequences[:, ids.shape[1] + t].numpy(), tokens)
        np.testing.assert_array_equal(got[:, t], logprobs)


def test_hf_processors_still_apply(model):
    """HF's repetition penalty acts before tokenpick: the tokens are tokenpick's with the
    same penalty over the ids so far."""
    import torch

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


@pytest.mark.filterwarnings("ignore:Using the model-agnostic default `max_length`")
def test_lengths_as_hfs(model):
    """Without max_new_tokens, HF's default max_length (20) counts new tokens."""
    ids = prompts(1, seed=10)
    ours = tpt.generate(model, ids, seed=0, do_sample=True, min_new_tokens=20)
    hf = model.generate(ids, do_sample=True, min_new_tokens=20)
    assert ours.shape == hf.shape == (1, ids.shape[1] + 20)


def test_greedy_is_hfs_greedy(model):
    ids = prompts(2, seed=2)
    ours = tpt.generate(model, ids, seed=0, do_sample=True, temperature=0.0, max_new_tokens=8)
    hf = model.generate(ids, do_sample=False, max_new_tokens=8)
    np.testing.assert_array_equal(ours.numpy(), hf.numpy())


def test_processor_scores_and_offsets(hf):
    """The processor leaves the scores it gets alone and returns its own tensor, -inf
    but at the drawn token (the same tensor step after step); offsets count from the
    first call, and a call that does not extend the last one starts over."""
    torch, _ = hf
    rng = np.random.default_rng(3)
    scores = torch.from_numpy(rng.standard_normal((2, V)).astype(np.float32))
    before = scores.clone()
    p = tpt.TokenpickLogitsProcessor(seed=[8, 9], top_p=0.9)
    returned = []
    for length in (5, 6, 7, 5):
        out = p(torch.zeros((2, length), dtype=torch.long), scores)
        offset = length - 5 if len(returned) < 3 else 0
        want = tp.sample(scores, top_p=0.9, order="hf", seed=[8, 9], offset=offset)
        assert torch.isfinite(out).sum() == 2
        np.testing.assert_array_equal(out.argmax(-1).numpy(), want)
        returned.append(out)
    assert returned[1] is returned[0] and returned[2] is returned[0]
    assert torch.equal(scores, before)


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
    import torch

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


def test_errors(model, hf):
    torch, _ = hf
    with pytest.raises(ValueError):
        tpt.TokenpickLogitsProcessor(seed=1, top_p=0.0)
    with pytest.raises(ValueError):
        tpt.TokenpickLogitsProcessor(seed=-1)
    p = tpt.TokenpickLogitsProcessor(seed=[1, 2])
    with pytest.raises(ValueError, match="batch of 3"):
        p(torch.zeros((3, 4), dtype=torch.long), torch.zeros((3, V)))
    ids = prompts(1)
    with pytest.raises(ValueError, match="top_h"):
        tpt.generate(model, ids, seed=0, do_sample=True, top_h=0.5, max_new_tokens=2)
    with pytest.raises(ValueError, match="beam"):
        tpt.generate(model, ids, seed=0, do_sample=True, num_beams=2, max_new_tokens=2)
    with pytest.raises(ValueError, match="assisted"):
        tpt.generate(model, ids, seed=0, do_sample=True, assistant_model=model, max_new_tokens=2)


def test_imports_without_transformers():
    """The module imports with neither torch nor transformers; using it says what to
    install."""
    code = (
        "import sys\n"
        "sys.modules['torch'] = sys.modules['transformers'] = None\n"
        "from tokenpick.integrations import transformers as t\n"
        "try:\n"
        "    t.generate(None, seed=0)\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "pip install transformers torch" in run.stdout
