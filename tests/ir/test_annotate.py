"""Annotation: FLOPs, parameter and byte counts of the example teacher's layer sizes, by hand.

The example teacher (examples/spread_teacher.pt) is a QMIX team for simple_spread
with n = 3 agents, obs 18, state 54, 5 actions, agent hidden 256 (GRU), mixer
embed 64 with two-layer hypernetworks of width 256. Fresh modules built from
that spec have the same shapes, so no training (and no file) is needed. The
counting rules are those of `kdcc.ir.annotate`, per team step (agents batched):

    Linear [B, i] -> [B, o]            2·B·i·o + B·o (bias)
    GRUCell [B, i], [B, H] -> [B, H]   2·B·3H·(i+H) + 2·B·3H (two biases) + 10·B·H (gates)
    bmm [b, m, k] @ [b, k, n]          2·b·m·k·n
    elementwise (relu, abs, elu, add)  one per output element
"""

from __future__ import annotations

import pytest
import torch

from kdcc.ir.annotate import graph_costs
from kdcc.ir.printer import annotate_program
from kdcc.ir.program import from_modules
from kdcc.ir.spec import AgentSpec, EnvSpec, MarlSpec, MixerSpec
from kdcc.marl.qmix import build_agent, build_mixer
from kdcc.passes import PassContext, get_pass

N, OBS, STATE, ACTIONS = 3, 18, 54, 5
H, E, HYPER = 256, 64, 256
IN = OBS + ACTIONS + N  # own obs ‖ one-hot(last action) ‖ one-hot(agent id) = 26
B = N  # the agent graph runs once with the agents as its batch; the mixer once (batch 1)


def linear_flops(batch: int, i: int, o: int) -> int:
    return 2 * batch * i * o + batch * o


def linear_params(i: int, o: int) -> int:
    return i * o + o


AGENT_FLOPS = {
    "fc1": linear_flops(B, IN, H),  # 2·3·26·256 + 3·256 = 40,704
    "relu": B * H,
    "rnn": 2 * B * 3 * H * (H + H) + 2 * B * 3 * H + 10 * B * H,  # 2,359,296 + 4,608 + 7,680
    "fc2": linear_flops(B, H, ACTIONS),
}
MIXER_FLOPS = {
    "hyper_w_1_0": linear_flops(1, STATE, HYPER),
    "hyper_w_1_1": HYPER,  # ReLU
    "hyper_w_1_2": linear_flops(1, HYPER, E * N),
    "abs_1": E * N,
    "hyper_b_1": linear_flops(1, STATE, E),
    "bmm": 2 * 1 * 1 * N * E,  # q [1, 1, n] @ |W1| [1, n, E]
    "add": E,
    "elu": E,
    "hyper_w_final_0": linear_flops(1, STATE, HYPER),
    "hyper_w_final_1": HYPER,
    "hyper_w_final_2": linear_flops(1, HYPER, E),
    "abs_2": E,
    "v_0": linear_flops(1, STATE, E),
    "v_1": E,
    "v_2": linear_flops(1, E, 1),
    "bmm_1": 2 * 1 * 1 * E * 1,  # hidden [1, 1, E] @ |W_final| [1, E, 1]
    "add_1": 1,
}
AGENT_PARAMS = linear_params(IN, H) + (2 * 3 * H * H + 2 * 3 * H) + linear_params(H, ACTIONS)
MIXER_PARAMS = (
    linear_params(STATE, HYPER) + linear_params(HYPER, E * N)  # hyper_w_1
    + linear_params(STATE, HYPER) + linear_params(HYPER, E)  # hyper_w_final
    + linear_params(STATE, E)  # hyper_b_1
    + linear_params(STATE, E) + linear_params(E, 1)  # V
)


@pytest.fixture(scope="module")
def example_sized():
    spec = MarlSpec(n_agents=N, obs_dim=OBS, state_dim=STATE, n_actions=ACTIONS, agent=AgentSpec("rnn", H),
                    mixer=MixerSpec("qmix", E, 2, HYPER), env=EnvSpec("simple_spread_v3", {"N": 3}))
    torch.manual_seed(0)
    return annotate_program(from_modules(spec, build_agent(spec), build_mixer(spec)))


def _costs(gm) -> dict:
    return {name: cost for name, cost in graph_costs(gm) if cost.kind != "free"}


def test_hand_computed_totals_are_what_they_say():
    assert sum(AGENT_FLOPS.values()) == 2_420_751
    assert sum(MIXER_FLOPS.values()) == 202_690
    assert (AGENT_PARAMS, MIXER_PARAMS) == (402_949, 101_057)


def test_agent_flops_per_layer(example_sized):
    assert {k: c.flops for k, c in _costs(example_sized.agent).items()} == AGENT_FLOPS


def test_mixer_flops_per_node(example_sized):
    assert {k: c.flops for k, c in _costs(example_sized.mixer).items()} == MIXER_FLOPS


def test_parameter_counts(example_sized):
    assert example_sized.parameter_count() == AGENT_PARAMS + MIXER_PARAMS == 504_006
    layer_param_bytes = sum(c.param_bytes for gm in example_sized.graphs().values() for _, c in graph_costs(gm))
    assert layer_param_bytes == 4 * (AGENT_PARAMS + MIXER_PARAMS)


def test_linear_and_gru_bytes(example_sized):
    costs = _costs(example_sized.agent)
    assert costs["fc1"].kind == "gemm"
    assert costs["fc1"].param_bytes == 4 * linear_params(IN, H)
    assert costs["fc1"].act_bytes == 4 * (B * IN + B * H)  # reads the inputs, writes the output
    assert costs["rnn"].param_bytes == 4 * (2 * 3 * H * H + 2 * 3 * H)
    assert costs["rnn"].act_bytes == 4 * (B * H + B * H + B * H)  # x, h in; h' out
    assert costs["relu"].kind == "elementwise" and costs["relu"].act_bytes == 4 * 2 * B * H


def test_views_and_inputs_are_free(example_sized):
    free = {name for name, c in graph_costs(example_sized.mixer) if c.kind == "free"}
    assert {"agent_qs", "states", "reshape", "reshape_1", "view", "view_1", "view_2", "view_3",
            "reshape_2", "output"} == free


def test_fused_team_flops_are_agents_plus_mixer_plus_glue(example_sized):
    fused = get_pass("fuse-team").run(example_sized, PassContext(teacher=None, profile=None))
    team = _costs(annotate_program(fused).team)
    glue = {"eq": N * ACTIONS, "add": N * ACTIONS, "argmax": N * ACTIONS}  # one-hot, action mask, greedy
    assert {k: team[k].flops for k in glue} == glue
    assert team["agent_rnn"].flops == AGENT_FLOPS["rnn"]  # one batched GEMM for all agents
    assert sum(c.flops for c in team.values()) == sum(AGENT_FLOPS.values()) + sum(MIXER_FLOPS.values()) + sum(
        glue.values())
