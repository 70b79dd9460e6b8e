"""Speaker–listener end to end: a tiny heterogeneous teacher compiled for the host, evaluated from its
bundle, with the budget-vs-score front in its report."""

import json
import subprocess
import sys

import numpy as np
import pytest

from kdcc.marl.worlds import make_env
from kdcc.marl.rollout import TorchPolicy, run_episodes
from kdcc.targets.bundle.policy import open_bundle_policy
from tests.conftest import FAST, make_speaker_listener_teacher


@pytest.fixture(scope="module")
def compiled(host_compile):
    """The session's speaker-listener compile (tests/conftest.py), with its --pareto front."""
    return host_compile("speaker_listener")


def test_the_bundle_holds_one_network_per_agent_and_runs_them(compiled):
    _, out = compiled
    doc = json.loads((out.out_dir / "profile.json").read_text())
    spec = out.result.program.spec
    assert spec.agent.split and doc["spec"]["agent"]["widths"] == list(spec.agent.widths)
    assert doc["spec"]["obs_sizes"] == [3, 11] and doc["spec"]["action_sizes"] == [3, 5]
    roles = doc["team"]["roles"][:2]
    assert [r["network"] for r in roles] == ["own", "own"] and [r["width"] for r in roles] == list(spec.agent.widths)
    assert roles[0]["reads_input_columns"] == [0, 1, 2, 11, 12, 13] and roles[0]["n_actions"] == 3
    assert doc["hidden_state"]["used_per_agent"] == list(spec.agent.widths)
    bundle_spec, policy, runs = open_bundle_policy(out.out_dir)
    assert runs == "compiled host library (VM-free)" and bundle_spec == spec
    env = make_env(spec.env)
    torch_policy = TorchPolicy(spec, out.result.program.team_module())
    obs, state = env.reset(seed=7)
    last = np.full(2, -1, np.int64)
    policy.reset()
    for _ in range(10):  # the compiled library and the torch student act alike, each agent within its actions
        acts = policy.step(obs, last, state)
        assert np.array_equal(acts, torch_policy.step(obs, last, state))
        assert acts[0] < 3 and acts[1] < 5
        step = env.step(acts)
        obs, state, last = step.obs, step.state, acts.astype(np.int64)


def test_eval_json_of_the_bundle_matches_the_student_in_torch(compiled):
    _, out = compiled
    program = out.result.program
    expected = run_episodes(make_env(program.spec.env), TorchPolicy(program.spec, program.team_module()), 3, 0)
    proc = subprocess.run([sys.executable, "-m", "kdcc", "eval", str(out.out_dir), "--episodes", "3", "--json"],
                          capture_output=True, text=True, check=True)
    got = json.loads(proc.stdout)
    assert got["mean"] == pytest.approx(float(expected.mean), abs=1e-6)


def test_pareto_front_is_in_the_reports(compiled):
    _, out = compiled
    sweep = json.loads((out.out_dir / "pareto.json").read_text())
    labels = [p["label"] for p in sweep["points"]]
    assert labels == ["× 0.25", "× 0.5", "asked", "asked, one shared network", "× 2"]
    shared = sweep["points"][3]
    assert isinstance(shared["width"], int) and isinstance(sweep["points"][2]["width"], list)
    reached = [p for p in sweep["points"] if "unreachable" not in p]
    assert any(p["on_front"] for p in reached)
    flops = [p["flops"] for p in reached if p is not shared]
    assert flops == sorted(flops)  # a bigger budget never gives a smaller student
    best = max(reached, key=lambda p: p["return"])
    assert best["on_front"]  # the best return is on the front by definition
    assert "## Budget vs score" in (out.out_dir / "report.md").read_text()
    assert 'alt="budget_vs_score"' in (out.out_dir / "report.html").read_text()


def test_pareto_without_prune_and_distill_is_refused_before_any_work(tmp_path, capsys):
    from kdcc.cli.app import main

    teacher = make_speaker_listener_teacher(tmp_path / "sl.pt")
    assert main(["compile", str(teacher), "--pipeline", "exact", "--pareto", "-o", str(tmp_path / "out")]) == 2
    assert "--pareto re-runs prune and distill" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_pareto_without_an_output_directory_is_printed_as_json(tmp_path, capsys):
    from kdcc.cli.app import main

    teacher, data = make_speaker_listener_teacher(tmp_path / "sl.pt"), tmp_path / "data.npz"
    assert main(["collect", str(teacher), "-o", str(data), "--episodes", "4", "--seed", "1", "-q"]) == 0
    opts = [a for k, v in FAST.items() for a in ("--opt", f"{k}={v}")]
    argv = ["compile", str(teacher), "--target", "host", "--budget-flops", "2x", "--keep", "off", "--pareto",
            "--dataset", str(data),
            "--json", "-q", *opts]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["factor"] for p in doc["pareto"]["points"]] == [0.25, 0.5, 1.0, 1.0, 2.0]
    assert doc["pareto"]["metric"] == "flops" and doc["out"] is None
