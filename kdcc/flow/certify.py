"""`kdcc certify` as stages: the policies' role networks, the states each visits, one scale, ε per step.

A subject is (label, spec, {role: network}): a teacher (its shared agent, or its
per-agent networks) or a compiled student (each role's network rebuilt from
`agents/<role>.onnx`). Each subject runs its own episodes (same env seeds), since a
certificate is about the states a policy reaches itself. The observation scale comes
from the first subject that is a teacher (else the first subject), so a teacher and
its student are certified on one scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from kdcc.core.errors import KdccError
from kdcc.core.progress import progress_bar
from kdcc.ir.spec import MarlSpec
from kdcc.marl.certify import VisitedSteps, certify_roles, check_certify_options, observation_scale, visited_steps
from kdcc.reports.certify import eps_summary

__all__ = ["Subject", "CertifyResult", "certify_subjects"]


@dataclass(frozen=True)
class Subject:
    label: str
    spec: MarlSpec
    networks: dict[str, nn.Module]
    is_teacher: bool


@dataclass
class CertifyResult:
    method: str
    scale: str
    episodes: int
    summary: dict[str, dict[str, dict[str, Any]]]  # label -> role -> eps_summary
    eps: dict[str, dict[str, np.ndarray]] = field(repr=False)  # label -> role -> ε per visited step
    visited: dict[str, VisitedSteps] = field(repr=False)  # label -> the steps (and returns) of its episodes

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "eps_scale": self.scale, "episodes": self.episodes, "policies": self.summary}


def certify_subjects(subjects: list[Subject], episodes: int, scale: str, method: str) -> CertifyResult:
    check_certify_options(episodes, method, scale)
    envs = {s.spec.env.id for s in subjects}
    if len(envs) > 1:
        raise KdccError(f"--teacher: the policies play different scenarios ({', '.join(sorted(envs))})")
    visited = {s.label: visited_steps(s.spec, s.networks, episodes) for s in subjects}
    ref = next((s for s in subjects if s.is_teacher), subjects[0])
    s_unit = observation_scale(ref.spec, visited[ref.label], scale)
    eps = {}
    with progress_bar("certify", len(subjects)) as advance:
        for s in subjects:
            eps[s.label] = certify_roles(s.spec, s.networks, visited[s.label], s_unit, method)
            advance()
    summary = {label: {role: eps_summary(e) for role, e in roles.items()} for label, roles in eps.items()}
    return CertifyResult(method, scale, episodes, summary, eps, visited)
