"""What one CPU makes of the installed wheel: run by .ci/wheels natively and
under CPU emulation (qemu-user), from outside the source tree.

Prints one JSON object: show_config()'s SIMD path and the paths the CPU
offers, and a digest of the tokens (and the rounded log-probabilities) that a
fixed set of calls draws.  Tokens must agree on every CPU: the paths differ
only in the last bits of their exponentials, which moves no draw here.
"""

import hashlib
import json
import sys

import numpy as np

import tokenpick as tp


def logits(rng, kind, B, V):
    if kind == "flat":
        return rng.standard_normal((B, V)).astype(np.float32)
    x = 2.0 * rng.standard_normal((B, V))
    for row in x:  # LM-like: a few hundred tokens well above the rest
        hot = rng.choice(V, size=300, replace=False)
        row[hot] += 18.0 - 2.5 * np.log(np.arange(1, 301))
    x[:, rng.choice(V, size=V // 10, replace=False)] = -np.inf
    return x.astype(np.float32)


def draws():
    rng = np.random.default_rng(20261122)
    calls = [dict(temperature=0.8), dict(top_k=50), dict(top_p=0.9),
             dict(top_k=50, top_p=0.9, min_p=0.05), dict(temperature=0.0)]
    for kind in ("peaked", "flat"):
        for V in (1000, 50000):
            x = logits(rng, kind, 4, V)
            for kwargs in calls:
                tokens, lps = tp.sample(x, seed=7, offset=3, return_logprobs=True, **kwargs)
                yield kind, V, kwargs, tokens.tolist(), np.round(lps.astype(np.float64), 3).tolist()
            yield kind, V, "greedy", tp.greedy(x).tolist(), None
            ids, _ = tp.top_logprobs(x, 5)
            yield kind, V, "top_logprobs", ids.tolist(), None


def main():
    config = tp.show_config("dicts")
    results = list(draws())
    digest = hashlib.sha256(json.dumps(results, sort_keys=True, default=str).encode()).hexdigest()
    json.dump({"module": tp.__file__, "simd": config["simd"], "simd_available": config["simd_available"],
               "version": config["version"], "calls": len(results), "tokens_sha256": digest},
              sys.stdout)
    print()


if __name__ == "__main__":
    main()
