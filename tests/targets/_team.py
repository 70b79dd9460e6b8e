"""Tiny team steps for the TVM backend tests (hidden 16: builds take seconds)."""

from __future__ import annotations

import torch

from kdcc.ir.team import TeamStep
from kdcc.marl.qmix import build_agent, build_mixer
from tests.conftest import speaker_listener_spec, tiny_spec


def tiny_team(seed: int = 0, **spec_kw) -> TeamStep:
    torch.manual_seed(seed)
    spec = tiny_spec(**spec_kw)
    return TeamStep(spec, build_agent(spec), build_mixer(spec)).eval()


def tiny_split_team(seed: int = 0, widths: tuple[int, ...] = (8, 16)) -> TeamStep:
    """Speaker–listener with one network per agent, of different widths (a heterogeneous student)."""
    torch.manual_seed(seed)
    spec = speaker_listener_spec().with_agent(widths=widths, hidden_dim=max(widths))
    return TeamStep(spec, build_agent(spec), build_mixer(spec)).eval()
