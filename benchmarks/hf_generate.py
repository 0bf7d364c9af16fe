"""What sampling costs per step inside HF transformers' ``generate``, with tokenpick's
logits processor (tokenpick.integrations.transformers) and with HF's own warpers.

    pip install . transformers torch
    python benchmarks/hf_generate.py [--vocab 128256] [--batch 1 8] [--threads 1]

Part 1 times each piece of a step on ``(B, V)`` float32 rows of LM-like ("peaked")
logits, at T=0.7, top_k=50, top_p=0.9: tokenpick's draw; the processor's whole call
(the draw, then 2B writes into the tensor it returns); the alternative of filling
the handed-over scores with -inf in place; HF's ``argmax`` over the returned scores
(greedy generate's step); HF's warpers with softmax and ``torch.multinomial``
(sampling generate's step).  Part 2 times whole steps of ``generate`` on a tiny random
Llama (hidden size 32, 2 layers) with that vocabulary, where the lm_head is most of
the forward pass, and of ``decode``'s loop around a Sampler: a step's time is that of
``steps + 1`` new tokens less that of one, over ``steps``.  Each time is the median
of `--repeats` runs (of an autoranged loop in part 1); torch and tokenpick run on
`--threads` threads.
"""

import argparse
import statistics
import sys
import time
import timeit

import numpy as np

import tokenpick
from tokenpick.bench.cases import make_logits
from tokenpick.bench.timing import autorange, tokenpick_threads

SETTINGS = dict(temperature=0.7, top_k=50, top_p=0.9)


def median_us(fn, repeats, min_time=0.05):
    """Median over `repeats` of the time of one call of fn, in microseconds."""
    timer = timeit.Timer(fn)
    loops = autorange(timer, min_time)
    return statistics.median(timer.timeit(loops) / loops for _ in range(repeats)) * 1e6


def pieces(torch, V, B, repeats):
    """Part 1: {label: microseconds per call} on one batch of rows."""
    from transformers import LogitsProcessorList
    from transformers.generation import logits_process as lp

    from tokenpick.integrations.transformers import TokenpickLogitsProcessor

    scores = torch.from_numpy(make_logits("peaked", V, B))
    seeds = np.arange(B, dtype=np.uint64)
    ids = torch.zeros((B, 8), dtype=torch.long)
    processor = TokenpickLogitsProcessor(seed=0, **SETTINGS)
    returned = processor(ids, scores)
    rows = torch.arange(B)
    chosen = returned.argmax(-1)
    spare = scores.clone()

    def fill_in_place():
        spare.fill_(-torch.inf)
        spare[rows, chosen] = 0.0

    def step_processor():  # one call more per generation leaves the offset moving
        processor._last = ids.shape[1] - 1
        return processor(ids, scores)

    warpers = LogitsProcessorList([lp.TemperatureLogitsWarper(0.7), lp.TopKLogitsWarper(50),
                                   lp.TopPLogitsWarper(0.9)])  # fmt: skip

    def hf_sampling():
        return torch.multinomial(torch.softmax(warpers(ids, scores), dim=-1), 1)

    timed = {
        "tokenpick.sample (the draw)": lambda: tokenpick.sample(
            scores, **SETTINGS, order="hf", seed=seeds, offset=3
        ),
        "processor call (draw + 2B writes)": step_processor,
        "alternative: fill scores in place": fill_in_place,
        "HF's argmax over the returned scores": lambda: torch.argmax(returned, dim=-1),
        "HF's warpers + softmax + multinomial": hf_sampling,
    }
    return {label: median_us(fn, repeats) for label, fn in timed.items()}


def tiny_llama(torch, V):
    import transformers

    config = transformers.LlamaConfig(
        vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        eos_token_id=None, pad_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config).eval()


def steps(torch, V, B, n, repeats):
    """Part 2: {label: microseconds per generate step} on the tiny Llama."""
    from tokenpick.integrations import transformers as tpt

    model = tiny_llama(torch, V)
    ids = torch.randint(1, V, (B, 8), generator=torch.Generator().manual_seed(1))
    runs = {
        "HF greedy": lambda k: model.generate(ids, do_sample=False, max_new_tokens=k),
        "HF sampling": lambda k: model.generate(ids, do_sample=True, max_new_tokens=k, **SETTINGS),
        "tokenpick generate": lambda k: tpt.generate(
            model, ids, seed=0, do_sample=True, max_new_tokens=k, **SETTINGS
        ),
    }

    def decode(k):
        sampler = tokenpick.Sampler(V)
        for b in range(B):
            sampler.add(b, seed=b, order="hf", max_new_tokens=k, **SETTINGS)
        return tpt.decode(model, ids, sampler, range(B))

    runs["tokenpick decode (a Sampler)"] = decode
    out = {}
    for label, run in runs.items():
        run(2)  # warm up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            run(1)
            t1 = time.perf_counter()
            run(n + 1)
            times.append(((time.perf_counter() - t1) - (t1 - t0)) / n)
        out[label] = statistics.median(times) * 1e6
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab", type=int, default=128256)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--threads", type=int, default=1, help="torch's and tokenpick's")
    parser.add_argument("--steps", type=int, default=32, help="new tokens timed in part 2")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        import torch
        import transformers
    except ImportError:
        print("needs transformers and torch: pip install transformers torch", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    config = tokenpick.show_config(mode="dicts")
    print(f"tokenpick {tokenpick.__version__} ({config['simd']}), torch "
          f"{torch.__version__}, transformers {transformers.__version__}, "
          f"{args.threads} thread(s), V={args.vocab}, sampling {SETTINGS}")  # fmt: skip
    with tokenpick_threads(args.threads):
        for B in args.batch:
            print(f"\nB={B}: one call, us (per row in brackets)")
            for label, us in pieces(torch, args.vocab, B, args.repeats).items():
                print(f"  {label:<40} {us:10.1f}  ({us / B:8.1f})")
            print(f"B={B}: one step of generate on a tiny Llama, us")
            for label, us in steps(torch, args.vocab, B, args.steps, args.repeats).items():
                print(f"  {label:<40} {us:10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
