"""The QMIX modules: EPyMARL parameter names, shapes, input order, monotonic mixing."""

import torch

from kdcc.marl.qmix import QMixer, build_agent, build_inputs, build_mixer
from tests.conftest import tiny_spec


def test_agent_parameter_names_and_shapes_match_epymarl():
    spec = tiny_spec(hidden=16)
    shapes = {k: tuple(v.shape) for k, v in build_agent(spec).state_dict().items()}
    assert shapes == {
        "fc1.weight": (16, 18 + 5 + 3), "fc1.bias": (16,),
        "rnn.weight_ih": (48, 16), "rnn.weight_hh": (48, 16), "rnn.bias_ih": (48,), "rnn.bias_hh": (48,),
        "fc2.weight": (5, 16), "fc2.bias": (5,),
    }


def test_feedforward_agent_has_linear_rnn_and_ignores_hidden():
    spec = tiny_spec(kind="ff")
    agent = build_agent(spec)
    assert isinstance(agent.rnn, torch.nn.Linear)
    x = torch.randn(3, spec.input_dim)
    q1, _ = agent(x, torch.zeros(3, 16))
    q2, _ = agent(x, torch.randn(3, 16))
    assert torch.equal(q1, q2)


def test_mixer_parameter_names_two_layer_hypernet():
    spec = tiny_spec(embed=8, hypernet_embed=16)
    shapes = {k: tuple(v.shape) for k, v in build_mixer(spec).state_dict().items()}
    assert shapes == {
        "hyper_w_1.0.weight": (16, 54), "hyper_w_1.0.bias": (16,),
        "hyper_w_1.2.weight": (8 * 3, 16), "hyper_w_1.2.bias": (24,),
        "hyper_w_final.0.weight": (16, 54), "hyper_w_final.0.bias": (16,),
        "hyper_w_final.2.weight": (8, 16), "hyper_w_final.2.bias": (8,),
        "hyper_b_1.weight": (8, 54), "hyper_b_1.bias": (8,),
        "V.0.weight": (8, 54), "V.0.bias": (8,), "V.2.weight": (1, 8), "V.2.bias": (1,),
    }


def test_one_layer_hypernet_names():
    mixer = QMixer(3, 54, 8, hypernet_layers=1)
    assert tuple(mixer.state_dict()["hyper_w_1.weight"].shape) == (24, 54)
    assert tuple(mixer.state_dict()["hyper_w_final.weight"].shape) == (8, 54)


def test_input_order_is_obs_then_last_action_then_agent_id():
    spec = tiny_spec()
    obs = torch.arange(3 * 18, dtype=torch.float32).reshape(1, 3, 18)
    x = build_inputs(spec, obs, torch.tensor([[2, -1, 4]]))
    assert x.shape == (1, 3, 26)
    assert torch.equal(x[0, :, :18], obs[0])
    assert x[0, 0, 18:23].tolist() == [0, 0, 1, 0, 0]
    assert x[0, 1, 18:23].tolist() == [0, 0, 0, 0, 0]  # no last action yet
    assert x[0, 2, 18:23].tolist() == [0, 0, 0, 0, 1]
    assert torch.equal(x[0, :, 23:], torch.eye(3))


def test_mixer_formula_and_monotonicity():
    torch.manual_seed(0)
    spec = tiny_spec()
    mixer = build_mixer(spec)
    qs, s = torch.randn(4, 3), torch.randn(4, 54)
    w1 = mixer.hyper_w_1(s).abs().view(4, 3, 8)
    b1 = mixer.hyper_b_1(s).view(4, 1, 8)
    hidden = torch.nn.functional.elu(qs.view(4, 1, 3) @ w1 + b1)
    expected = (hidden @ mixer.hyper_w_final(s).abs().view(4, 8, 1)).view(4, 1) + mixer.V(s)
    assert torch.allclose(mixer(qs, s), expected, atol=1e-6)
    bumped = qs.clone()
    bumped[:, 1] += 0.5
    assert bool((mixer(bumped, s) >= mixer(qs, s)).all())
