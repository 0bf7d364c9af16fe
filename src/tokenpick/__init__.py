"""tokenpick: fast, verified next-token sampling over float32, float16 and bfloat16 logits.

Logit processors (grammar bitmask, logit bias, repetition, frequency and
presence penalties, min_tokens), temperature softmax, top-k, top-p (nucleus)
and min-p selection, greedy and seeded sampling, log-probabilities, and the
verification of speculative decoding's draft tokens; a C core
driven by Cython with the GIL released, checked against the pure-numpy
:mod:`tokenpick.reference`.
"""

from ._api import (
    filtered_probs,
    greedy,
    log_softmax,
    logsumexp,
    mask,
    min_p_mask,
    process_logits,
    sample,
    softmax,
    token_logprobs,
    top_k_mask,
    top_logprobs,
    top_p_mask,
    uniform,
)
from ._config import get_num_threads, set_num_threads, show_config
from ._sampler import Sampler, Step
from ._verify import verify
from ._version import __version__

__all__ = [
    "Sampler",
    "Step",
    "__version__",
    "filtered_probs",
    "get_num_threads",
    "greedy",
    "log_softmax",
    "logsumexp",
    "mask",
    "min_p_mask",
    "process_logits",
    "sample",
    "set_num_threads",
    "show_config",
    "softmax",
    "token_logprobs",
    "top_k_mask",
    "top_logprobs",
    "top_p_mask",
    "uniform",
    "verify",
]
