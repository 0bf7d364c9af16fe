"""tokenpick in HF transformers: ``generate`` sampling with tokenpick, and a decoding
loop around a :class:`tokenpick.Sampler`.

- :class:`TokenpickLogitsProcessor` goes last in ``generate``'s ``logits_processor``
  with ``do_sample=False``: it samples each row with :func:`tokenpick.sample` from the
  scores HF's own processors left (repetition penalty, ``min_new_tokens``, bad words,
  ...), and returns scores whose argmax is that token (0 there, ``-inf`` elsewhere,
  written in place), so that HF's greedy step takes it.  Row b's seed is ``seed[b]``
  (or ``seed + b`` for one int), its offset the number of tokens generated so far: a
  sequence's tokens do not depend on the batch around it when it keeps its seed.
- :func:`generate` reads the sampling settings as HF would (the call's keywords, else
  the model's generation config, whose defaults differ between transformers versions:
  ``top_k=50`` in 4.x, none in 5.x) and runs ``generate``
  with the processor, HF's warpers off, ``order="hf"``: the kept sets of HF's
  warpers, drawn by tokenpick.
- :func:`decode` runs a KV-cached decoding loop with a Sampler whose requests the
  caller added.

Cost per step beyond HF's own: the sampling call and one in-place fill of the
scores row (measured in ``examples/smollm2_generate.py``).  What differs from HF's
sampling: the draw (Philox by seed and offset, not torch's generator), and
``min_tokens_to_keep`` (HF's warpers keep at least that many; tokenpick keeps at least
the most likely token, which is the same for the default of 1).  Beam search is not
sampling and is refused.

torch and transformers are imported when used: ``pip install torch transformers``.
"""

import copy
import inspect

import numpy as np

import tokenpick
from tokenpick import _params

# HF's generation-config names of the filters -> tokenpick's, with tokenpick's off value
HF_FILTERS = {
    "temperature": ("temperature", 1.0),
    "top_k": ("top_k", 0),
    "top_p": ("top_p", 1.0),
    "min_p": ("min_p", 0.0),
    "typical_p": ("typical_p", 1.0),
    "epsilon_cutoff": ("epsilon", 0.0),
    "eta_cutoff": ("eta", 0.0),
}


def _torch():
    try:
        import torch  # noqa: PLC0415 - an optional peer
        import transformers  # noqa: F401, PLC0415
    except ImportError as exc:
        raise ImportError(
            "tokenpick.integrations.transformers needs torch and transformers: "
            "pip install torch transformers"
        ) from exc
    return torch


class TokenpickLogitsProcessor:
    """Samples each row with tokenpick; for ``generate(..., do_sample=False,
    logits_processor=[...,  this])`` (placed last).

    Parameters
    ----------
    seed : int or sequence of int
        Row b's seed: ``seed[b]``, or ``seed + b`` for one int.
    temperature, top_k, top_p, min_p, typical_p, epsilon, eta, order, **sample_kwargs
        As :func:`tokenpick.sample` takes them (``order="hf"`` by default: HF's
        warpers' order and tie rules).  They are checked here.
    """

    def __init__(self, *, seed, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0,
                 typical_p=1.0, epsilon=0.0, eta=0.0, order="hf", **sample_kwargs):  # fmt: skip
        self.kwargs = dict(
            temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
            typical_p=typical_p, epsilon=epsilon, eta=eta, order=order, **sample_kwargs,
        )  # fmt: skip
        _params.filters(1, 2, temperature, top_k, top_p, min_p, 0.0, typical_p, epsilon, eta,
                        0.1, sample_kwargs.get("xtc_probability", 0.0), order)  # fmt: skip
        if isinstance(seed, (int, np.integer)):
            self._seed, self._seeds = int(seed), None
        else:
            self._seed, self._seeds = None, np.asarray(seed, dtype=np.uint64)
        given = self._seed if self._seeds is None else self._seeds
        _params.uint64_rows("seed", given, np.size(given), _params.SEED)
        self._start = None  # the sequences' length at the first step
        self._last = None

    def seeds(self, B):
        """The B rows' seeds."""
        if self._seeds is None:
            return (np.arange(B, dtype=np.uint64) + np.uint64(self._seed)).astype(np.uint64)
        if len(self._seeds) != B:
            raise ValueError(f"seed has {len(self._seeds)} values for a batch of {B} rows")
        return self._seeds

    def __call__(self, input_ids, scores):
        torch = _torch()
        length = input_ids.shape[1]
        if self._last is None or length <= self._last:  # a new generation
            self._start = length
        self._last = length
        B = scores.shape[0]
        tokens = tokenpick.sample(
            scores, **self.kwargs, seed=self.seeds(B), offset=length - self._start
        )
        scores.fill_(-torch.inf)
        scores[torch.arange(B), torch.from_numpy(np.ascontiguousarray(tokens))] = 0.0
        return scores


def sampling_settings(generation_config, kwargs):
    """tokenpick's filter arguments for what HF would sample with: each of HF_FILTERS
    from kwargs (removed from it), else the generation config; None means off."""
    out = {}
    for hf, (ours, off) in HF_FILTERS.items():
        value = kwargs.pop(hf) if hf in kwargs else getattr(generation_config, hf, None)
        if hf == "epsilon_cutoff" or hf == "eta_cutoff":
            value = value if value is not None and 0.0 < value < 1.0 else None
        out[ours] = off if value is None else value
    return out


def generate(model, inputs=None, *, seed, generation_config=None, **kwargs):
    """``model.generate(inputs, ...)`` with tokenpick sampling where HF would sample.

    The sampling settings (temperature, top_k, top_p, min_p, typical_p,
    epsilon_cutoff, eta_cutoff, do_sample) come from the keywords, else from
    `generation_config` (default: the model's), as HF reads them; HF's own processors
    (repetition_penalty, min_new_tokens, ...) and stopping criteria run as usual.
    Without ``do_sample`` it is HF's greedy ``generate``.  Returns what ``generate``
    returns.  `seed`: see :class:`TokenpickLogitsProcessor`.
    """
    _torch()
    from transformers import LogitsProcessorList  # noqa: PLC0415

    config = copy.deepcopy(generation_config or model.generation_config)
    do_sample = kwargs.pop("do_sample", config.do_sample)
    if kwargs.get("num_beams", config.num_beams or 1) > 1:
        raise ValueError("beam search is not sampling: tokenpick's generate takes num_beams=1")
    settings = sampling_settings(config, kwargs)
    for hf in HF_FILTERS:  # HF's warpers off: tokenpick applies them
        setattr(config, hf, None)
    config.do_sample = False
    processors = LogitsProcessorList(kwargs.pop("logits_processor", None) or [])
    if do_sample:
        processors.append(TokenpickLogitsProcessor(seed=seed, **settings))
    rest = config.update(**kwargs)  # the generation settings into the config, as HF merges them
    return model.generate(inputs, generation_config=config, logits_processor=processors, **rest)


def cache_keyword(model):
    """The keyword that hands a forward pass's KV cache to the next: ``cache`` in
    transformers 5 (``past_key_values`` is deprecated there), ``past_key_values``
    before."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def decode(model, input_ids, sampler, request_ids, *, attention_mask=None, max_steps=None):
    """A KV-cached decoding loop with a :class:`tokenpick.Sampler`.

    Row b of `input_ids` (int64 ``(B, L)``, left-padded with `attention_mask` 0 where
    prompts differ in length) is the prompt of ``request_ids[b]``, which the caller
    added to `sampler` with its arguments (``max_new_tokens`` among them).  Each step
    runs the model on the requests still running (finished ones are fed their last
    token and their row is not read) and samples them with ``sampler.step``, until
    all have finished or `max_steps` steps have run.  Returns ``{request_id: output
    ids}`` (int64 arrays); the requests stay in the sampler.
    """
    torch = _torch()
    request_ids = list(request_ids)
    B = input_ids.shape[0]
    if len(request_ids) != B:
        raise ValueError(f"{len(request_ids)} request ids for {B} prompts")
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.clone()
    keyword = cache_keyword(model)
    running = list(range(B))
    steps = 0
    with torch.inference_mode():
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                    use_cache=True)  # fmt: skip
        feed = input_ids[:, -1:].clone()
        while running and (max_steps is None or steps < max_steps):
            step = sampler.step(out.logits[running, -1, :], [request_ids[b] for b in running])
            feed[running, 0] = torch.from_numpy(step.tokens)
            running = [b for b, done in zip(running, step.finished) if not done]
            steps += 1
            if not running or (max_steps is not None and steps >= max_steps):
                break
            mask = torch.cat([mask, mask.new_ones((B, 1))], dim=1)
            positions = positions[:, -1:] + 1
            out = model(input_ids=feed, attention_mask=mask, position_ids=positions,
                        use_cache=True, **{keyword: getattr(out, keyword)})  # fmt: skip
    return {r: sampler.output_ids(r) for r in request_ids}
