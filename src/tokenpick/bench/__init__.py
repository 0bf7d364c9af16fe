"""Time tokenpick against its floor and its peers.

``python -m tokenpick bench`` prints the versions, SIMD path and thread
settings, then one table row per operation (greedy, softmax, sample at
temperature 0.8 alone and with top-k, top-p and min-p) and case of logits
(kind, V, B), then the call overhead on one short row, the throughput of
one and two Python threads, and the logit processors (a history's penalties,
logit biases, grammar bitmasks) against the same sampling step without them,
against PyTorch doing that step, and the bitmask alone against xgrammar's,
and speculative decoding's ``verify`` against ``sample`` on the same rows and
against PyTorch doing the same verification (``--no-verify``, ``--only-verify``).
Every call gets rows it has not just seen.

* tokenpick us/row: median wall time of one call, divided by the rows;
* x floor: that time over ``np.max(x, axis=-1)`` on the same rows, the cost
  of merely reading them, in which the project's speed targets are stated;
* x 1 thread (B >= 64): tokenpick's time at one thread over its time at the
  run's thread count, their repeats interleaved;
* <peer> speedup: a peer's time per row over tokenpick's.  The peers: the
  numpy reference (``tokenpick.reference``); PyTorch with HF-style warpers,
  when it can be imported (``--no-torch``); llama.cpp's sampler chain through
  llama-cpp-python, when it can be imported (``--no-llama``); in the
  logit-processors section (``--no-processors``), xgrammar's CPU bitmask
  kernel, when it can be imported (``--no-xgrammar``).

The logits are synthetic (``--logits peaked flat``, the default) or rows
saved from a model (``--logits FILE.npy``, a (B, V) or (V,) float array);
``--dtype float16`` or ``bfloat16`` times the table on them rounded to that
dtype (torch tensors where torch can be imported), beside the same values in
float32 (x float32).
The default run takes V = 128256, B in {1, 8} (a few seconds of it on the
logit processors); ``--full`` the long grid.
benchmarks/README.md in the source tree says how each number is measured.
"""

from .cli import SUMMARY, configure_parser, main, run

__all__ = ["SUMMARY", "configure_parser", "main", "run"]
