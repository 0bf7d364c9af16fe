"""The speculative-decoding section of ``python -m tokenpick bench``: ``verify`` of K = 4
drafts per row against ``sample`` on the same B * (K+1) rows (the target distribution at
every position, no more) and against PyTorch doing the same algorithm with vLLM's
semantics (its ``RejectionSampler``'s steps in torch CPU ops), their repeats interleaved.

The target rows are peaked logits; the draft model's are a perturbed copy (noise of
``DRAFT_NOISE`` on the logits), whose softmax is the draft distribution q, from which the
drafts are drawn: about 70% of drafts are accepted.
"""

import functools
from dataclasses import asdict, dataclass

import numpy as np

import tokenpick

from . import timing
from .cases import DATA_SEED, peaked_row

VERIFY_GRIDS = {
    "quick": {"vocabs": [128256], "batches": [8]},
    "full": {"vocabs": [32000, 128256], "batches": [8, 64]},
}
K = 4
DRAFT_NOISE = 0.9  # std of the noise the draft model's logits add: acceptance about 0.7
POOL_BYTES = 32 << 20  # target logits per case, in batches (at least one)
POOL_MAX_BATCHES = 4
VERIFY_OPS = (
    ("T=1", {"temperature": 1.0}),
    ("T=0.8 top_k=50 top_p=0.9", {"temperature": 0.8, "top_k": 50, "top_p": 0.9}),
)
SEED = 7


@dataclass
class Batch:
    """One batch of the section: target logits (B, K+1, V), drafts (B, K) drawn from q
    (B, K, V) float32, and the acceptance rate theory gives them (mean of sum min(p, q)
    at T = 1)."""

    target: np.ndarray
    drafts: np.ndarray
    q: np.ndarray
    acceptance: float


def make_batch(rng, V, B):
    target = np.stack([[peaked_row(rng, V) for _ in range(K + 1)] for _ in range(B)])
    target = target.astype(np.float32)
    draft_logits = target[:, :K] + rng.standard_normal((B, K, V)).astype(np.float32) * DRAFT_NOISE
    q = np.exp(draft_logits - draft_logits.max(-1, keepdims=True))
    q /= q.sum(-1, keepdims=True)
    p = np.exp(target[:, :K] - target[:, :K].max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    cum = np.cumsum(q, axis=-1)
    drafts = (cum < rng.random((B, K, 1)) * cum[..., -1:]).sum(-1)
    q = q.astype(np.float32)
    return Batch(target, np.minimum(drafts, V - 1), q, float(np.minimum(p, q).sum(-1).mean()))


def verify_pool(V, B):
    rng = np.random.default_rng(DATA_SEED + V + B)
    count = max(1, min(POOL_MAX_BATCHES, POOL_BYTES // (B * (K + 1) * V * 4)))
    return [make_batch(rng, V, B) for _ in range(count)]


def verify_cases(settings):
    grid = settings["verify"]
    return [(V, B) for V in grid["vocabs"] for B in grid["batches"]]


def verify_absent(settings):
    """Why the section is not timed, or None if it is."""
    return "not timed (--no-verify)" if settings.get("verify") is None else None


def _tokenpick_verify(batch, kwargs):
    seeds = np.arange(len(batch.target), dtype=np.uint64)
    return functools.partial(
        tokenpick.verify, batch.target, batch.drafts, draft_probs=batch.q, seed=seeds, **kwargs
    )


def _tokenpick_sample(batch, kwargs):
    rows = batch.target.reshape(-1, batch.target.shape[-1])
    seeds = np.arange(len(rows), dtype=np.uint64)
    return functools.partial(tokenpick.sample, rows, seed=seeds, **kwargs)


def torch_verify(torch, target, drafts, q, generator, temperature=1.0, top_k=0, top_p=1.0):
    """Rejection sampling as vLLM's ``RejectionSampler`` does it, in torch CPU ops: the
    target distributions of every position (temperature, then top-k and top-p by a sort,
    vLLM's ``apply_top_k_top_p``), the drafts accepted while ``u * q(d) < p(d)``, the
    recovered token of every position drawn from ``max(0, p - q)`` by the exponential
    race, the bonus token by ``multinomial``; returns tokens (B, K+1), -1 past the end."""
    B, npos, V = target.shape
    k = npos - 1
    logits = target / temperature
    if 0 < top_k < V:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        ordered, index = logits.sort(dim=-1)
        cum = ordered.softmax(dim=-1).cumsum(dim=-1)
        remove = cum <= 1 - top_p
        remove[..., -1] = False
        masked = ordered.masked_fill(remove, float("-inf"))
        logits = masked.scatter(-1, index, masked)
    probs = logits.softmax(dim=-1)
    p_draft = probs[:, :k].gather(-1, drafts.unsqueeze(-1)).squeeze(-1)
    q_draft = q.gather(-1, drafts.unsqueeze(-1)).squeeze(-1)
    u = torch.rand((B, k), generator=generator)
    accepted = (u * q_draft < p_draft).int().cumprod(dim=-1).sum(dim=-1)
    residual = (probs[:, :k] - q).clamp_min(0)
    race = torch.empty_like(residual).exponential_(generator=generator)
    recovered = (residual / race).argmax(dim=-1)
    bonus = torch.multinomial(probs[:, k], 1, generator=generator).squeeze(-1)
    position = torch.arange(npos).expand(B, npos)
    tokens = torch.full((B, npos), -1, dtype=torch.long)
    tokens[:, :k] = torch.where(position[:, :k] < accepted[:, None], drafts, tokens[:, :k])
    last = torch.where(
        accepted == k, bonus, recovered.gather(-1, accepted.clamp(max=k - 1)[:, None]).squeeze(-1)
    )
    tokens[torch.arange(B), accepted] = last
    return tokens


def _torch_verify(torch, batch, kwargs):
    target = torch.from_numpy(batch.target)
    drafts = torch.from_numpy(batch.drafts)
    q = torch.from_numpy(batch.q)
    generator = torch.Generator().manual_seed(SEED)
    return functools.partial(torch_verify, torch, target, drafts, q, generator, **kwargs)


@dataclass
class VerifyResult:
    """One case (op, V, B) of the section: Measurements of tokenpick's verify and sample
    (per target row: B * (K+1) rows a call) and of torch's verify, if timed."""

    op: str
    V: int
    B: int
    acceptance: float
    timings: dict

    def ratio(self, top, bottom):
        return timing._ratio(self.timings.get(top), self.timings.get(bottom))

    def failed(self):
        return any(m.error not in (None, "n/a") for m in self.timings.values())

    def to_json(self):
        return {
            "op": self.op,
            "V": self.V,
            "B": self.B,
            "K": K,
            "acceptance": self.acceptance,
            "timings": {name: asdict(m) for name, m in self.timings.items()},
            "x_sample": self.ratio("verify", "sample"),
            "torch_speedup": self.ratio("torch", "verify"),
        }


def _line(name, make, pool, kwargs, rows, repeats, threads=None):
    return timing.Calls(
        name,
        lambda: [make(batch, kwargs) for batch in pool],
        rows=rows,
        repeats=repeats,
        threads=threads,
    )


def time_verify(settings, torch_peer, progress):
    """Every case of the section: a list of `VerifyResult`, empty if not timed."""
    if verify_absent(settings):
        return []
    torch = None
    if torch_peer is not None:
        import torch  # noqa: PLC0415 - the peer's module, imported once the peer is set up
    results = []
    for V, B in verify_cases(settings):
        pool = verify_pool(V, B)
        acceptance = float(np.mean([b.acceptance for b in pool]))
        rows = B * (K + 1)
        for label, kwargs in VERIFY_OPS:
            progress.step(
                f"verify, sample{', torch' if torch else ''} interleaved: {label}, V={V}, B={B}"
            )
            lines = [
                _line("verify", _tokenpick_verify, pool, kwargs, rows, timing.TOKENPICK.repeats),
                _line("sample", _tokenpick_sample, pool, kwargs, rows, timing.TOKENPICK.repeats),
            ]
            if torch is not None:
                lines.append(
                    _line(
                        "torch",
                        functools.partial(_torch_verify, torch),
                        pool,
                        kwargs,
                        rows,
                        torch_peer.repeats,
                    )  # fmt: skip
                )
            results.append(
                VerifyResult(
                    label, V, B, acceptance, timing.measure_calls(lines, settings["min_time"])
                )
            )
    return results


def count_verify_steps(settings):
    if verify_absent(settings):
        return 0
    return len(verify_cases(settings)) * len(VERIFY_OPS)


def format_verify(results):
    """The section's table and legend (a line saying why when not timed)."""
    if not results:
        return "Speculative decoding (verify): not timed (--no-verify)"
    from .report import format_ratio, format_table, format_us  # noqa: PLC0415 - no cycle at import

    with_torch = any("torch" in r.timings for r in results)
    headers = ["op", "V", "B", "K", "accepted", "verify us/row", "x sample",
               *(["torch speedup"] if with_torch else [])]  # fmt: skip
    rows = []
    for r in results:
        m = r.timings.get("verify")
        rows.append(
            [
                r.op,
                str(r.V),
                str(r.B),
                str(K),
                f"{r.acceptance:.2f}",
                format_us(m.us_per_row) if m and m.us_per_row else (m.error if m else "-"),
                format_ratio(r.ratio("verify", "sample")),
                *([format_ratio(r.ratio("torch", "verify"))] if with_torch else []),
            ]
        )
    legend = [
        "",
        f"Speculative decoding: verify(target_logits (B, K+1, V), drafts (B, K), draft_probs) "
        f"with K={K}; drafts drawn from q, the softmax of the target logits plus noise "
        f"(std {DRAFT_NOISE}); accepted: the mean of sum min(p, q), the acceptance rate at T=1",
        "us/row: median time of one call per target row (B*(K+1) rows a call)",
        "x sample: verify time / tokenpick.sample time on the same B*(K+1) rows, interleaved",
        *(
            ["torch speedup: the same algorithm in torch CPU ops (vLLM's semantics) / verify"]
            if with_torch
            else []
        ),
    ]
    return "\n".join([format_table(headers, rows), *legend])
