"""Building students: structured slicing of QMIX modules and the cost of a candidate.

Pruning removes whole hidden units. For the agent, keeping units K1 of fc1
and units K of the GRU means: fc1 rows K1; GRU input columns K1; for each of
the three gates (r, z, n) rows K of weight_ih/weight_hh/biases and columns K
of weight_hh; fc2 columns K. For a feed-forward agent `rnn` is a Linear:
rows K, columns K1. For a 2-layer hypernetwork, keeping hidden units J means
rows J of its first Linear and columns J of its second. Every slice keeps the
remaining units' computation exactly as it was.
"""

from __future__ import annotations

import torch
from torch import nn

from kdcc.ir.program import Program, trace
from kdcc.ir.spec import MarlSpec
from kdcc.marl.qmix import build_agent, build_mixer

__all__ = ["slice_agent", "split_agent", "slice_hypernets", "candidate_program", "gru_rows"]


def gru_rows(keep: torch.Tensor, hidden: int) -> torch.Tensor:
    """Row indices of units `keep` in all three gate blocks of a GRUCell weight [3H, ...]."""
    return torch.cat([keep + g * hidden for g in range(3)])


def _sliced_state(sd: dict, spec: MarlSpec, k1: torch.Tensor, k: torch.Tensor, recurrent: bool) -> dict:
    """The shared agent's weights for kept fc1 units k1 and rnn units k (sorted), as a `recurrent` agent."""
    H = spec.agent.hidden_dim
    out = {"fc1.weight": sd["fc1.weight"][k1], "fc1.bias": sd["fc1.bias"][k1],
           "fc2.weight": sd["fc2.weight"][:, k], "fc2.bias": sd["fc2.bias"]}
    if spec.recurrent and recurrent:
        rows = gru_rows(k, H)
        out.update({"rnn.weight_ih": sd["rnn.weight_ih"][rows][:, k1], "rnn.weight_hh": sd["rnn.weight_hh"][rows][:, k],
                    "rnn.bias_ih": sd["rnn.bias_ih"][rows], "rnn.bias_hh": sd["rnn.bias_hh"][rows]})
    elif spec.recurrent:  # GRU -> feed-forward: start from the candidate gate n's input weights
        out.update({"rnn.weight": sd["rnn.weight_ih"][2 * H + k][:, k1], "rnn.bias": sd["rnn.bias_ih"][2 * H + k]})
    else:
        out.update({"rnn.weight": sd["rnn.weight"][k][:, k1], "rnn.bias": sd["rnn.bias"][k]})
    return out


def slice_agent(agent: nn.Module, spec: MarlSpec, keep_fc1: torch.Tensor, keep_rnn: torch.Tensor,
                kind: str | None = None) -> tuple[nn.Module, MarlSpec]:
    """A new agent of width len(keep_rnn) holding the kept units' weights (same kind unless converted)."""
    assert len(keep_fc1) == len(keep_rnn), "fc1 and rnn widths are one hidden_dim"
    new_spec = spec.with_agent(hidden_dim=len(keep_rnn), kind=kind or spec.agent.kind)
    new = build_agent(new_spec)
    out = _sliced_state(agent.state_dict(), spec, keep_fc1.sort().values, keep_rnn.sort().values, new_spec.recurrent)
    new.load_state_dict({key: v.clone() for key, v in out.items()})
    return new.eval(), new_spec


def split_agent(agent: nn.Module, spec: MarlSpec, keeps: list[tuple[torch.Tensor, torch.Tensor]],
                kind: str | None = None) -> tuple[nn.Module, MarlSpec]:
    """One network per agent out of a shared agent: agent i keeps units keeps[i] = (fc1, rnn).

    Exact before any unit is dropped: agent i's network reads only the input columns that can be
    non-zero for it (its own obs and actions), its constant agent-id one-hot is folded into the fc1
    bias, and it outputs only its own actions.
    """
    widths = tuple(len(k) for _, k in keeps)
    new_spec = spec.with_agent(hidden_dim=max(widths), widths=widths, kind=kind or spec.agent.kind)
    new = build_agent(new_spec)
    sd, state = agent.state_dict(), {}
    id_col = spec.obs_dim + (spec.n_actions if spec.obs_last_action else 0)
    for i, (k1, k) in enumerate(keeps):
        k1, k = k1.sort().values, k.sort().values
        part = _sliced_state(sd, spec, k1, k, new_spec.recurrent)
        fc1 = part["fc1.weight"]
        part["fc1.weight"] = fc1[:, spec.agent_input_cols(i)]
        if spec.obs_agent_id:
            part["fc1.bias"] = part["fc1.bias"] + fc1[:, id_col + i]
        a = spec.action_size(i)
        part["fc2.weight"], part["fc2.bias"] = part["fc2.weight"][:a], part["fc2.bias"][:a]
        state.update({f"nets.{i}.{key}": v.clone() for key, v in part.items()})
    new.load_state_dict(state)
    return new.eval(), new_spec


def slice_hypernets(mixer: nn.Module, spec: MarlSpec, keep_w1: torch.Tensor,
                    keep_wf: torch.Tensor) -> tuple[nn.Module, MarlSpec]:
    """A QMixer whose two-layer hypernetworks keep the given hidden units."""
    assert len(keep_w1) == len(keep_wf)
    new_spec = spec.with_mixer(hypernet_embed=len(keep_w1))
    new = build_mixer(new_spec)
    sd = mixer.state_dict()
    out = dict(sd)
    for name, keep in (("hyper_w_1", keep_w1.sort().values), ("hyper_w_final", keep_wf.sort().values)):
        out[f"{name}.0.weight"] = sd[f"{name}.0.weight"][keep]
        out[f"{name}.0.bias"] = sd[f"{name}.0.bias"][keep]
        out[f"{name}.2.weight"] = sd[f"{name}.2.weight"][:, keep]
    new.load_state_dict({key: v.clone() for key, v in out.items()})
    return new.eval(), new_spec


def candidate_program(spec: MarlSpec, mixer: nn.Module | None = None) -> Program:
    """A student of this spec with fresh weights (shapes only: for the cost model), `mixer` kept if given."""
    mixer = mixer if mixer is not None else build_mixer(spec)
    return Program(spec, trace(build_agent(spec), "Agent"), trace(mixer, "Mixer"))
