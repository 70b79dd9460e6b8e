"""`kdcc certify`: a teacher and its compiled student side by side (the student rebuilt from its ONNX agent
steps), per role, as the compile's certify stage put them in profile.json; the robust distill term raises the
certified ε; bad inputs are one-line errors (exit 2)."""

from __future__ import annotations

import json

import pytest
import torch

from kdcc.cli.app import main
from kdcc.ir.bounds import certified_eps
from kdcc.ir.spec import AgentSpec, MarlSpec
from kdcc.marl.qmix import RNNAgent
from kdcc.passes.distill_robust import obs_radius, robust_margin_ce
from tests.conftest import assert_eps_distribution


@pytest.fixture(scope="module")
def pair(host_bundle):
    """The session's speaker–listener host bundle and the teacher it was compiled from."""
    bundle = host_bundle("speaker_listener")
    return bundle.parent / "teacher.pt", bundle


def test_certify_teacher_and_student_side_by_side_as_the_compile_did(pair, capsys):
    """`kdcc certify` on the bundle (its networks rebuilt from the ONNX agent steps) gives the certified ε the
    compile's certify stage wrote into profile.json, role by role; the teacher's there is its steps of the role's
    agents."""
    teacher, bundle = pair
    assert main(["certify", str(bundle), "--teacher", str(teacher), "--episodes", "1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["method"] == "crown" and doc["eps_scale"] == "std" and doc["episodes"] == 1
    policies = doc["policies"]
    assert list(policies["teacher (teacher.pt)"]) == ["agent"]  # one shared network ...
    assert list(policies["student (bundle)"]) == ["agent0", "agent1"]  # ... split into one per agent
    assert_eps_distribution(policies["teacher (teacher.pt)"]["agent"], 25 * 2)
    robots = {r["role"]: r for r in json.loads((bundle / "profile.json").read_text())["robots"]}
    for role, s in policies["student (bundle)"].items():
        assert_eps_distribution(s, 25)
        compiled = robots[role]["certified_eps"]
        assert compiled["episodes"] == 1 and compiled["student"] == s
        assert_eps_distribution(compiled["teacher"], 25)
    assert main(["certify", str(bundle), "--episodes", "2", "--method", "ibp"]) == 0
    out = capsys.readouterr().out
    assert "Certified robustness" in out and "agent1" in out and "IBP bounds" in out


def test_certify_refuses_what_is_not_a_bundle_or_teacher(tmp_path, capsys):
    junk = tmp_path / "junk.pt"
    junk.write_text("not a teacher")
    assert main(["certify", str(junk)]) == 2
    assert main(["certify", str(tmp_path / "missing")]) == 2
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "profile.json").write_text("{}")
    assert main(["certify", str(tmp_path / "broken")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("kdcc certify: error: ") for line in err)
    assert main(["compile", str(junk), "--certify-episodes", "-1", "-o", str(tmp_path / "out")]) == 2
    assert "--certify-episodes must be 0 (no certify stage) or more, got -1" in capsys.readouterr().err


def test_robust_term_raises_the_certified_eps():
    """The same student trained on the same labels with and without the IBP margin loss: the robust one's
    median certified ε (IBP and CROWN) is higher."""
    spec = MarlSpec(n_agents=2, obs_dim=6, state_dim=12, n_actions=4, agent=AgentSpec("rnn", 16),
                    obs_last_action=False, obs_agent_id=False)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=g)
    labels = (x[:, :4] + 0.3 * torch.randn(256, 4, generator=g)).argmax(-1)  # a noisy teacher
    h = torch.zeros(256, 16)
    radius = obs_radius(spec, torch.ones(2, 6))
    medians = {}
    for w in (0.0, 1.0):
        torch.manual_seed(1)
        net = RNNAgent(6, 16, 4)
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        for step in range(150):
            loss = torch.nn.functional.cross_entropy(net(x, h)[0], labels)
            if w:
                loss = loss + w * robust_margin_ce(net, spec, x, h, labels, radius, 0.1 * min(1.0, step / 75))
            opt.zero_grad()
            loss.backward()
            opt.step()
        avail = torch.ones(256, 4, dtype=torch.bool)
        medians[w] = {m: float(certified_eps(net, x, h, radius.repeat(128, 1), avail, m).median())
                      for m in ("ibp", "crown")}
    for m in ("ibp", "crown"):
        assert medians[1.0][m] > 1.5 * medians[0.0][m], medians


def test_robust_labels_are_each_agents_own_actions():
    """On a heterogeneous team the robust term's label is the teacher's greedy action among the agent's own: the
    speaker (3 actions of 5) is never asked to keep a padded action its logits mask out (a loss of ~1e9)."""
    from kdcc.ir.program import from_modules
    from kdcc.marl.qmix import build_agent, build_mixer
    from kdcc.passes.distill import DistillConfig, _loss
    from tests.conftest import speaker_listener_spec

    torch.manual_seed(0)
    spec = speaker_listener_spec(hidden=8)
    program = from_modules(spec, build_agent(spec), build_mixer(spec))
    B, T, n, H = 2, 2, spec.n_agents, spec.agent.hidden_dim
    q = torch.zeros(B, T, n, spec.n_actions)
    q[..., 0, 4] = 5.0  # the speaker's padded action 4 looks best unmasked; its own best is action 1
    q[..., 0, 1] = 1.0
    batch = {"obs": torch.randn(B, T, n, spec.obs_dim), "last_actions": torch.zeros(B, T, n, dtype=torch.long),
             "q": q, "state": torch.randn(B, T, spec.state_dim), "q_tot": torch.zeros(B, T),
             "hidden": torch.zeros(B, T, n, H)}
    radius = obs_radius(spec, torch.ones(n, spec.obs_dim))
    terms = _loss(program, batch, DistillConfig(w_robust=1.0), {"fc1": 0.0, "rnn": 0.0}, (radius, 0.1))
    assert 0 < float(terms["robust"]) < 100
