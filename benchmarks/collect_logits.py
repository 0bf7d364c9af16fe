"""Save real next-token logits of SmolLM2-135M-Instruct to a ``.npy`` file, for the
benchmark (``python -m tokenpick bench --logits FILE.npy``) and the tests.

Each chat prompt goes through the tokenizer's chat template; the model then decodes
``--steps`` tokens, each drawn by ``tokenpick.sample`` (seeded; ``--temperature 0``
for greedy), and the last position's logits of every step are kept: a (prompts *
steps, 49152) float32 array.  ``--rows N`` keeps N of them spread over entropy, the
most peaked, the flattest and evenly between, in that order of entropy.  The
model comes from ``examples/smollm2_model.py`` (``--gguf``, or its download).

    python benchmarks/collect_logits.py --out rows.npy                 # every step
    python benchmarks/collect_logits.py --out three.npy --rows 3       # peaked, middling, flat
"""

import argparse
import sys
from pathlib import Path

import numpy as np

import tokenpick

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from smollm2_model import load_smollm2  # noqa: E402

PROMPTS = (
    "What is the capital of France?",
    "Write a short poem about the sea.",
    "List three prime numbers.",
    "Translate 'good morning' into Spanish.",
    "Tell me a story about a dragon.",
    "What is 12 times 12?",
    "Suggest a name for a pet cat.",
    "Explain photosynthesis in one sentence.",
)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, metavar="FILE.npy", help="where to save the rows")
    parser.add_argument(
        "--rows",
        type=int,
        metavar="N",
        help="keep N rows spread over entropy, lowest first (default: every step's)",
    )
    parser.add_argument(
        "--prompts",
        nargs="+",
        metavar="TEXT",
        default=list(PROMPTS),
        help=f"the user's messages (default: {len(PROMPTS)} built-in ones)",
    )
    parser.add_argument(
        "--steps", type=int, default=6, help="tokens decoded per prompt (default: 6)"
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=0.8,
        help="of the draws that extend each reply (default: 0.8; 0 is greedy)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="of the draws: prompt i's is seed + i (default: 0)"
    )
    parser.add_argument(
        "--gguf", metavar="PATH", help="the model's GGUF file (default: found or downloaded)"
    )
    args = parser.parse_args(argv)
    if (args.rows is not None and args.rows < 1) or args.steps < 1:
        parser.error("--rows and --steps must be at least 1")
    return args


def decode(model, tokenizer, prompt, steps, temperature, seed):
    """The last position's logits at each of `steps` decoding steps of one chat
    prompt, ``(steps, V)`` float32, and the tokens drawn."""
    import torch

    chat = [{"role": "user", "content": prompt}]
    ids = tokenizer.apply_chat_template(
        chat, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"]
    rows, tokens = [], []
    with torch.no_grad():
        for step in range(steps):
            row = model(ids).logits[0, -1].float().numpy()
            token = int(tokenpick.sample(row, temperature=temperature, seed=seed, offset=step))
            rows.append(row)
            tokens.append(token)
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    return np.stack(rows), tokens


def entropy_and_top(rows):
    """Each row's entropy (nats) and largest probability at T = 1, in float64."""
    x = rows.astype(np.float64)
    logp = x - x.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    p = np.exp(logp)
    return -(p * logp).sum(axis=1), p.max(axis=1)


def spread(entropy, n):
    """Indices of `n` rows spread over entropy: the lowest, the highest, evenly between."""
    by_entropy = np.argsort(entropy, kind="stable")
    if n >= len(by_entropy):
        return by_entropy
    return by_entropy[np.round(np.linspace(0, len(by_entropy) - 1, n)).astype(int)]


def main(argv=None):
    args = parse_args(argv)
    model, tokenizer = load_smollm2(args.gguf)
    rows, where = [], []
    for i, prompt in enumerate(args.prompts):
        got, tokens = decode(model, tokenizer, prompt, args.steps, args.temperature, args.seed + i)
        rows.append(got)
        where += [(i, step, tokenizer.decode([t])) for step, t in enumerate(tokens)]
        print(f"prompt {i}: {prompt!r} -> {tokenizer.decode(tokens)!r}", flush=True)
    rows = np.concatenate(rows)
    entropy, top = entropy_and_top(rows)
    chosen = spread(entropy, args.rows) if args.rows else np.arange(len(rows))
    saved = np.ascontiguousarray(rows[chosen], dtype=np.float32)
    np.save(args.out, saved)
    print(f"\nsaved {args.out}: shape {saved.shape}, {saved.dtype}")
    print("row  prompt  step  max logit  max prob  entropy (nats)  token drawn")
    for r, j in enumerate(chosen):
        i, step, text = where[j]
        print(
            f"{r:>3}  {i:>6}  {step:>4}  {saved[r].max():>9.3f}  {top[j]:>8.4f}  "
            f"{entropy[j]:>14.3f}  {text!r}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
