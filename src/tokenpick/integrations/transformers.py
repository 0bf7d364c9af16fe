"""tokenpick in HF transformers: ``generate`` sampling with tokenpick, and a decoding
loop around a :class:`tokenpick.Sampler`.

- :class:`TokenpickLogitsProcessor` goes last in ``generate``'s ``logits_processor``
  with ``do_sample=False`` (greedy mode, the same ``_sample`` loop as sampling): it
  samples each row with :func:`tokenpick.sample` from the scores HF's own processors
  left (repetition penalty, ``min_new_tokens``, bad words, sequence bias, ...), and
  returns scores whose argmax is that token, so that HF's greedy step appends it.
  Row b's seed is ``seed[b]`` (or ``seed + b`` for one int), its offset the number of
  tokens generated so far: a sequence's tokens do not depend on the batch around it
  when it keeps its seed.  With ``num_return_sequences=n`` through :func:`generate`,
  row ``i * n + j`` is prompt i's j-th sequence.
- :func:`generate` resolves the generation config as ``generate`` itself does (the
  call's keywords, then `generation_config`, then the model's, then HF's defaults,
  whose ``top_k`` is 50), and runs ``generate`` with the processor, HF's warpers off
  and ``order="hf"``: the kept sets of HF's warpers (temperature, top-k, top-p,
  min-p, typical, epsilon, eta), drawn by tokenpick.
- :func:`decode` runs a KV-cached decoding loop with a Sampler whose requests the
  caller added.

The returned scores: the processor keeps one ``(B, V)`` tensor of ``-inf`` per
generation and, each step, writes ``-inf`` back at the last step's tokens and 0 at the
new ones: 2B writes, and the scores HF handed over are left as they were (they may be
the raw logits HF returns with ``output_logits=True``).  With ``keep_scores=True``
(which :func:`generate` sets when ``output_scores`` is asked for, since HF keeps each
step's tensor) it returns a new tensor each step, ``-inf`` but at the chosen token,
which holds its log-probability under the distribution it was drawn from, so
``model.compute_transition_scores`` gives the tokens' log-probabilities.

Cost per step (``python benchmarks/hf_generate.py``: V=128256, T=0.7, top_k=50,
top_p=0.9, torch 2.13 and tokenpick on one thread of a 2-core AVX-512 Xeon): at B=1
the processor's call takes 15 us (tokenpick's draw 12, the 2B writes and the rest 3),
HF's own ``argmax`` over the returned scores 137 us (the same as in HF's greedy
decoding), where HF's warpers, softmax and ``torch.multinomial`` take 5.2 ms; a
whole ``generate`` step on a tiny Llama with that vocabulary took 1.95 ms, against
1.83 ms for HF's greedy and 7.2 ms for HF's sampling.  At B=8: 177 us, 1.1 ms and
41 ms.  Filling the handed-over scores with ``-inf`` in place instead of the 2B writes
would cost 11 us at B=1 and 148 us at B=8.  :func:`decode` has no ``argmax`` to pay:
1.5 ms a step on the same model at B=1 (2.2 ms at B=8, where ``generate`` took 4.0).
``benchmarks/RESULTS.md`` has the run.

What differs from HF's sampling: the draw (Philox by seed and offset, not torch's
generator); ``temperature=0`` is greedy here (HF refuses it when sampling);
``min_tokens_to_keep``, which HF's warpers take and ``generate`` sets to 1 without
beams: tokenpick's filters, like those, keep at least one token (the most likely, or
for typical the nearest the entropy), and no larger number can be asked; ``top_h``,
beam search, assisted decoding, DoLa, contrastive search and watermarking (applied
after the draw, it would change nothing) are refused.  A CUDA tensor's scores are
copied to the host each step.

torch and transformers are imported when used: ``pip install transformers torch``.
"""

import inspect

import numpy as np

import tokenpick
from tokenpick import _params

# The values with which greedy generate neither applies nor warns about them
GREEDY_NEUTRAL = dict(temperature=1.0, top_k=50, top_p=1.0, min_p=None, typical_p=1.0,
                      epsilon_cutoff=0.0, eta_cutoff=0.0)  # fmt: skip


def _torch():
    try:
        import torch  # noqa: PLC0415 - an optional peer
        import transformers  # noqa: F401, PLC0415
    except ImportError as exc:
        raise ImportError(
            "tokenpick.integrations.transformers needs transformers and torch: "
            "pip install transformers torch"
        ) from exc
    return torch


class TokenpickLogitsProcessor:
    """Samples each row with tokenpick; for ``generate(..., do_sample=False,
    logits_processor=[..., this])`` (placed last).

    Parameters
    ----------
    seed : int or sequence of int
        Row b's seed: ``seed[b]``, or ``seed + b`` (modulo 2**64) for one int.
    temperature, top_k, top_p, min_p, typical_p, epsilon, eta, order, **sample_kwargs
        As :func:`tokenpick.sample` takes them (``order="hf"`` by default: HF's
        warpers' order and tie rules).  They are checked here.
    keep_scores : bool
        Return a new tensor each step, holding the chosen token's log-probability
        (pass True with ``output_scores=True``); by default one tensor is reused.

    Notes
    -----
    The offset of a step is the length of ``input_ids`` minus its length at the first
    step of the generation.  A call whose ``input_ids`` are not one longer than the
    last call's starts a new generation; :meth:`reset` starts one in any case (needed
    before a ``generate`` whose prompt is exactly one longer than the last sequence
    this processor saw: build a processor per ``generate`` call, or reset it).
    """

    def __init__(self, *, seed, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0,
                 typical_p=1.0, epsilon=0.0, eta=0.0, order="hf", keep_scores=False,
                 **sample_kwargs):  # fmt: skip
        self.kwargs = dict(
            temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
            typical_p=typical_p, epsilon=epsilon, eta=eta, order=order, **sample_kwargs,
        )  # fmt: skip
        _params.filters(1, 2, temperature, top_k, top_p, min_p,
                        sample_kwargs.get("top_n_sigma", 0.0), typical_p, epsilon, eta,
                        sample_kwargs.get("xtc_threshold", 0.1),
                        sample_kwargs.get("xtc_probability", 0.0), order)  # fmt: skip
        if isinstance(seed, (int, np.integer)):
            self._seed, self._seeds = int(seed), None
        else:
            self._seed, self._seeds = None, np.asarray(seed, dtype=np.uint64)
        given = self._seed if self._seeds is None else self._seeds
        _params.uint64_rows("seed", given, np.size(given), _params.SEED)
        self.keep_scores = bool(keep_scores)
        self.reset()

    def reset(self):
        """Start a new generation: the next call's length is the prompt's."""
        self._start = self._last = None
        self._buffer = self._chosen = self._flat = None
        self._row_seeds = None

    def seeds(self, B):
        """The B rows' seeds."""
        if self._seeds is None:
            return np.arange(B, dtype=np.uint64) + np.uint64(self._seed)
        if len(self._seeds) != B:
            raise ValueError(f"seed has {len(self._seeds)} values for a batch of {B} rows")
        return self._seeds

    def __call__(self, input_ids, scores):
        torch = _torch()
        length = input_ids.shape[1]
        if self._last is None or length != self._last + 1:  # a new generation
            self.reset()
            self._start = length
        self._last = length
        B = scores.shape[0]
        if self._row_seeds is None or len(self._row_seeds) != B:
            self._row_seeds = self.seeds(B)
        on_host = scores.device.type == "cpu"
        drawn = tokenpick.sample(
            scores if on_host else scores.detach().cpu(), **self.kwargs,
            seed=self._row_seeds, offset=length - self._start, return_logprobs=self.keep_scores,
        )  # fmt: skip
        if self.keep_scores:
            return self._fresh(torch, scores, *drawn)
        buffer = self._buffer
        if buffer is None or buffer.shape != scores.shape or buffer.dtype != scores.dtype:
            buffer = self._buffer = torch.full_like(scores, -torch.inf)
            self._chosen = None
            # where numpy can see the buffer, 2B stores through a view are the cheapest
            if on_host and scores.dtype in (torch.float32, torch.float64, torch.float16):
                self._flat = buffer.numpy().reshape(-1)
                self._base = np.arange(B, dtype=np.int64) * scores.shape[1]
            else:
                self._flat, self._rows = None, torch.arange(B, device=scores.device)
        if self._flat is not None:
            if self._chosen is not None:
                self._flat[self._chosen] = -np.inf
            self._chosen = drawn + self._base
            self._flat[self._chosen] = 0.0
        else:
            if self._chosen is not None:
                buffer[self._rows, self._chosen] = -torch.inf
            self._chosen = torch.from_numpy(drawn).to(scores.device)
            buffer[self._rows, self._chosen] = 0.0
        return buffer

    @staticmethod
    def _fresh(torch, scores, tokens, logprobs):
        """A new tensor like scores: -inf, but each row's log-probability at its token."""
        out = torch.full_like(scores, -torch.inf)
        rows = torch.arange(scores.shape[0], device=scores.device)
        out[rows, torch.from_numpy(tokens).to(scores.device)] = torch.from_numpy(logprobs).to(out)
        return out


def sampling_settings(generation_config):
    """tokenpick's filter arguments for what HF's warpers would do with this (resolved)
    generation config, read as ``generate`` builds its warpers: a setting HF would not
    apply (``top_p >= 1``, an epsilon or eta cutoff outside (0, 1), None) is off."""
    c = generation_config
    if getattr(c, "top_h", None) is not None:
        raise ValueError("top_h (HF's top-H warper) has no counterpart in tokenpick")

    def inside(value, lo, hi):  # HF applies the warper only for lo < value < hi
        return value is not None and lo < value < hi

    return dict(
        temperature=1.0 if c.temperature is None else c.temperature,
        top_k=c.top_k or 0,
        top_p=c.top_p if inside(c.top_p, -np.inf, 1.0) else 1.0,
        min_p=c.min_p or 0.0,
        typical_p=c.typical_p if inside(c.typical_p, -np.inf, 1.0) else 1.0,
        epsilon=c.epsilon_cutoff if inside(c.epsilon_cutoff, 0.0, 1.0) else 0.0,
        eta=c.eta_cutoff if inside(c.eta_cutoff, 0.0, 1.0) else 0.0,
    )


def _expand(value, n, batch):
    """A tensor of `batch` rows with each row repeated n times in place, as HF expands
    inputs for ``num_return_sequences``; anything else as it is."""
    torch = _torch()
    if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == batch:
        return value.repeat_interleave(n, dim=0)
    return value


def generate(model, inputs=None, *, seed, generation_config=None, logits_processor=None,
             **kwargs):  # fmt: skip
    """``model.generate(inputs, ...)`` with tokenpick sampling where HF would sample.

    The generation config is resolved by the model as ``generate`` resolves it (the
    keywords, then `generation_config`, then ``model.generation_config``, then HF's
    defaults, ``top_k=50`` among them); where its ``do_sample`` is true, its
    temperature, top_k, top_p, min_p, typical_p, epsilon_cutoff and eta_cutoff go to
    a :class:`TokenpickLogitsProcessor` (``order="hf"``) placed after
    `logits_processor` and HF's own processors (repetition_penalty, min_new_tokens,
    ...), HF's warpers off.  Without ``do_sample`` it is HF's greedy ``generate``.
    Stopping criteria, streamers and the other keywords work as in ``generate``,
    whose return value this is.

    `seed`: row b of the batch (row ``i * n + j`` for prompt i's j-th sequence with
    ``num_return_sequences=n``) uses ``seed[b]``, or ``seed + b`` for one int.
    """
    torch = _torch()
    from transformers import LogitsProcessorList  # noqa: PLC0415

    config, rest = model._prepare_generation_config(generation_config, **kwargs)
    for key in ("output_attentions", "output_hidden_states"):  # in the config already
        rest.pop(key, None)
    for key in ("max_length", "min_length"):  # HF's defaults count new tokens: left to HF
        if all(getattr(c, key, None) is None for c in (generation_config, model.generation_config)):
            if kwargs.get(key) is None:
                setattr(config, key, None)
    processors = LogitsProcessorList(logits_processor or [])
    if config.do_sample is True:
        if rest.get("custom_generate") is not None:
            raise ValueError("a custom decoding method would not call tokenpick's processor")
        if config.watermarking_config is not None:
            raise ValueError("watermarking acts after the draw, where it would change nothing")
        settings = sampling_settings(config)
        keep = bool(config.output_scores and config.return_dict_in_generate)
        n = config.num_return_sequences or 1
        config.update(do_sample=False, num_return_sequences=1, **GREEDY_NEUTRAL)
        if n > 1:  # greedy generate refuses n > 1: the rows are expanded here instead
            first = inputs if inputs is not None else rest.get("input_ids")
            first = first if first is not None else rest.get("inputs_embeds")
            if not isinstance(first, torch.Tensor):
                raise ValueError("num_return_sequences > 1 needs the inputs as a tensor")
            batch = first.shape[0]
            inputs = _expand(inputs, n, batch)
            rest = {key: _expand(value, n, batch) for key, value in rest.items()}
        mode = getattr(config.get_generation_mode(rest.get("assistant_model")), "value", None)
        if mode != "greedy_search":  # beam search, assisted decoding, DoLa, contrastive
            raise ValueError(f"tokenpick samples one token a step; this config asks for {mode}")
        processors.append(TokenpickLogitsProcessor(seed=seed, keep_scores=keep, **settings))
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
    runs the model on the whole batch (finished requests are fed their last token and
    their rows are not read, so nothing is appended to their output) and samples the
    running requests with ``sampler.step``, until all have finished or `max_steps`
    steps have run: without `max_steps`, every request needs ``max_new_tokens`` or an
    EOS that comes.  Only the last position's logits are computed where the model
    takes ``logits_to_keep``.  Returns ``{request_id: output ids}`` (int64 arrays);
    the requests stay in the sampler.
    """
    torch = _torch()
    request_ids = list(request_ids)
    B = input_ids.shape[0]
    if len(request_ids) != B:
        raise ValueError(f"{len(request_ids)} request ids for {B} prompts")
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.clone()
    params = inspect.signature(model.forward).parameters
    last_only = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
    keyword = cache_keyword(model)
    running = list(range(B))
    steps = 0
    with torch.inference_mode():
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                    use_cache=True, **last_only)  # fmt: skip
        feed = input_ids[:, -1:].clone()
        while running and (max_steps is None or steps < max_steps):
            rows = out.logits[:, -1, :] if len(running) == B else out.logits[running, -1, :]
            step = sampler.step(rows, [request_ids[b] for b in running])
            feed[running, 0] = torch.from_numpy(step.tokens)
            running = [b for b, done in zip(running, step.finished) if not done]
            steps += 1
            if not running or (max_steps is not None and steps >= max_steps):
                break
            mask = torch.cat([mask, mask.new_ones((B, 1))], dim=1)
            positions = positions[:, -1:] + 1
            cache = {keyword: getattr(out, keyword)}
            out = model(input_ids=feed, attention_mask=mask, position_ids=positions,
                        use_cache=True, **last_only, **cache)  # fmt: skip
    return {r: sampler.output_ids(r) for r in request_ids}
