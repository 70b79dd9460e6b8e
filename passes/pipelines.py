"""Named pipelines: the story of a compile, one stage a line."""

from __future__ import annotations

from kdcc.core.errors import KdccError

__all__ = ["PIPELINES", "pipeline"]

PIPELINES: dict[str, list[str]] = {
    # Exact clean-up and fusion of the teacher itself: what the backend compiles when
    # no compression is wanted, and the reference the compressed pipeline is measured against.
    "exact": [
        "normalize-eval",       # inference form: eval mode, float32, no gradients
        "eliminate-dead-code",  # drop what no output needs
        "fuse-team",            # agents batched into one GEMM per layer, mixer appended
        "fold-constants",       # precompute what depends on weights only
        "eliminate-dead-code",  # and drop what folding left unused
    ],
}
PIPELINES["default"] = [
    "normalize-eval",       # inference form: eval mode, float32, no gradients
    "eliminate-dead-code",  # drop what no output needs
    "approximate-mixer",    # hypernetwork mixer -> the cheapest fitted monotonic mixer within the fidelity goal
    "prune",                # drop the least important hidden units, as many as the target budget asks
    "distill",              # restore fidelity: KL+CE, relations, Q_tot, resource term; DAgger rollouts
    "batch-agents",         # per-agent networks (heterogeneous teams) as one batched matmul, if cheaper
    "fuse-team",            # agents batched into one GEMM per layer, mixer appended
    "fold-constants",       # precompute |W| of the static mixer and other weight-only nodes
    "eliminate-dead-code",  # and drop what folding left unused
]


def pipeline(name: str) -> list[str]:
    if name not in PIPELINES:
        raise KdccError(f"unknown pipeline {name!r} (known: {', '.join(sorted(PIPELINES))})")
    return list(PIPELINES[name])
