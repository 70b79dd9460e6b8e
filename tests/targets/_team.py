"""Tiny team steps for the TVM backend tests (hidden 16: builds take seconds)."""

from __future__ import annotations

import torch

from kdcc.qmix import build_agent, build_mixer
from kdcc.team import TeamStep
from tests.conftest import tiny_spec


def tiny_team(seed: int = 0, **spec_kw) -> TeamStep:
    torch.manual_seed(seed)
    spec = tiny_spec(**spec_kw)
    return TeamStep(spec, build_agent(spec), build_mixer(spec)).eval()
