"""Teachers other than QMIX in kdcc's format: VDN (a sum), IQL (no mixer), MAPPO (an actor emitting logits).
They load without mixer weights, compile end to end, and every pass that cannot apply says why; the example
trainer writes VDN and IQL teachers, and every shipped example teacher names its algorithm and has learned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kdcc.api import evaluate
from kdcc.core.errors import KdccError
from kdcc.flow.compile import compile_teacher
from kdcc.flow.driver import CompileOptions
from kdcc.inputs.teacher import load_teacher, save_teacher
from kdcc.ir.spec import AgentSpec, EnvSpec, MarlSpec, MixerSpec
from kdcc.marl.qmix import build_agent, build_mixer
from kdcc.passes import Budget
from tests.conftest import FAST

REPO = Path(__file__).resolve().parents[1]
MIXER_KIND = {"vdn": "vdn", "iql": "none", "mappo": "none"}


def algorithm_spec(algorithm: str, hidden: int = 32) -> MarlSpec:
    return MarlSpec(n_agents=3, obs_dim=18, state_dim=54, n_actions=5, agent=AgentSpec("rnn", hidden),
                    mixer=MixerSpec(MIXER_KIND[algorithm]), env=EnvSpec("simple_spread_v3", {"N": 3, "max_cycles": 25}),
                    algorithm=algorithm)


def make_teacher(path: Path, algorithm: str, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    spec = algorithm_spec(algorithm)
    save_teacher(path, spec, build_agent(spec), build_mixer(spec), {"trainer": "tests", "seed": seed})
    return path


def _decisions(record: Path) -> dict[str, dict]:
    return {d.name.split("_", 1)[1]: json.loads((d / "metrics.json").read_text())["decisions"]
            for d in sorted(record.iterdir()) if d.is_dir()}


def test_a_teacher_without_mixer_weights_loads_and_its_q_tot_is_the_sum(tmp_path):
    path = make_teacher(tmp_path / "vdn.pt", "vdn")
    blob = torch.load(path, weights_only=True)
    del blob["mixer"]  # "no mixer state dict" is as good as an empty one
    torch.save(blob, path)
    teacher = load_teacher(path)
    assert teacher.spec.algorithm == "vdn" and teacher.spec.to_dict()["algorithm"] == "vdn"
    q = torch.tensor([[1.0, -2.0, 0.5]])
    assert teacher.mixer(q, torch.zeros(1, 54)).item() == pytest.approx(-0.5)
    assert "algorithm" not in MarlSpec(3, 18, 54, 5).to_dict()  # QMIX specs keep their v1 form


def test_an_algorithm_and_a_mixer_that_do_not_fit_are_refused(tmp_path):
    path = make_teacher(tmp_path / "iql.pt", "iql")
    blob = torch.load(path, weights_only=True)
    blob["spec"]["mixer"]["kind"] = "vdn"
    torch.save(blob, path)
    with pytest.raises(KdccError, match="iql.pt: invalid spec .*mixer.kind 'vdn' does not fit algorithm 'iql'"):
        load_teacher(path)


@pytest.mark.parametrize("algorithm", ["vdn", "iql", "mappo"])
def test_compiles_end_to_end_and_mixer_passes_record_why_they_skip(tmp_path, algorithm):
    teacher = make_teacher(tmp_path / f"{algorithm}.pt", algorithm)
    compile_teacher(str(teacher), "host", tmp_path / "out", CompileOptions(
        budget=Budget(ratio=2.0), keep=None, collect_episodes=4, options=FAST, certify_episodes=0), record=tmp_path / "rec",
        build=False)
    d = _decisions(tmp_path / "rec")
    assert d["approximate-mixer"]["applied"] is False
    assert d["approximate-mixer"]["reason"] == {
        "vdn": "VDN's mixer is a sum: nothing to approximate",
        "iql": "IQL has no mixer (q_tot is the sum of the agents' chosen Q): nothing to approximate",
        "mappo": "MAPPO's actors have no mixer (its critic is not needed to act): nothing to approximate"}[algorithm]
    assert d["prune"]["mixer"] == "no mixer weights (a sum, or no mixer): no hypernetwork units to prune"
    assert d["prune"]["width"] < 32
    options, terms = d["distill"]["options"], d["distill"]["terms"]
    if algorithm == "mappo":  # logits: policy terms only, at the actor's own temperature
        assert (options["w_q"], options["w_value"], options["tau"]) == (0.0, 0.0, 1.0)
        assert terms["critic"].startswith("the teacher's critic is not used")
    else:
        assert (options["w_q"], options["w_value"]) == (0.0, 0.0) and "sum of the chosen Q" in terms["value"]
        assert "off by default" in terms["value"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert f"teacher: {algorithm.upper()}" in report


def test_mappo_host_bundle_builds_says_its_q_is_logits_and_evaluates(tmp_path):
    teacher = make_teacher(tmp_path / "mappo.pt", "mappo", seed=3)
    out = tmp_path / "bundle"
    compile_teacher(str(teacher), "host", out, CompileOptions(budget=Budget(ratio=2.0), keep=None, collect_episodes=4,
                                                              options=FAST, certify_episodes=0))
    profile = json.loads((out / "profile.json").read_text())
    q = next(o for o in profile["io"]["outputs"] if o["name"] == "q")
    assert q["layout"].startswith("action logits per agent and action (MAPPO actor")
    assert profile["algorithm"]["name"] == "mappo"
    assert "q: action logits per agent and action" in (out / "include" / "kdcc_policy.h").read_text()
    result = evaluate(out, episodes=2, seed=0, teacher_path=teacher)
    assert result.teacher_mean is not None and result.mean < 0


def test_docs_and_readme_list_the_new_kinds():
    fmt, inputs = (REPO / "docs/teacher-format.md").read_text(), (REPO / "docs/teacher-inputs.md").read_text()
    readme = (REPO / "README.md").read_text()
    for kind in ("vdn", "iql", "mappo", "ippo"):
        assert f'"{kind}"' in fmt
    for text in ("mixer: vdn", "mixer: null", "critic.th", "pi_logits", "central_mixer"):
        assert text in inputs
    assert "EPyMARL VDN, IQL, MAPPO or IPPO checkpoint" in readme


SHIPPED = [("spread_teacher.pt", "QMIX"), ("speaker_listener_teacher.pt", "QMIX"),
           ("vdn_spread_teacher.pt", "VDN"), ("iql_spread_teacher.pt", "IQL"), ("mappo_spread_teacher.pt", "MAPPO")]


@pytest.mark.parametrize(("name", "algorithm"), SHIPPED)
def test_each_shipped_example_teacher_names_its_algorithm_and_has_learned(name, algorithm, capsys):
    """`kdcc inspect` names the algorithm; `kdcc eval` of the teacher on 8 seeds beats a uniform random
    policy on the same seeds by a wide margin (every one was ≥ 20 better per episode over 100 seeds)."""
    from kdcc.cli.app import main

    path = REPO / "examples" / name
    assert main(["inspect", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["algorithm"].startswith(algorithm + " ")
    assert main(["eval", str(path), "--episodes", "8", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["mean"] > r["random_mean"] + 10.0, r


@pytest.mark.parametrize("algorithm", ["vdn", "iql"])
def test_the_example_trainer_writes_a_teacher_of_its_algorithm(tmp_path, algorithm):
    """examples/train_teacher.py --algorithm vdn|iql, a few hundred steps: the file loads as that algorithm."""
    import importlib.util

    loader = importlib.util.spec_from_file_location("train_teacher", REPO / "examples" / "train_teacher.py")
    trainer = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(trainer)
    out, threads = tmp_path / f"{algorithm}.pt", torch.get_num_threads()
    try:  # the trainer runs on one thread; the rest of the session keeps its own setting
        assert trainer.main(["--algorithm", algorithm, "--hidden", "8", "--envs", "2", "--batch", "2", "--max-steps",
                             "400", "--eval-every", "200", "--eval-episodes", "2", "--standardise-rewards",
                             "-o", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    teacher = load_teacher(out)
    assert (teacher.spec.algorithm, teacher.spec.mixer.kind) == (algorithm, MIXER_KIND[algorithm])
    assert teacher.provenance["standardised_rewards"] is True and teacher.provenance["env_steps"] == 400
    assert list(teacher.mixer.parameters()) == [] and out.with_name(f"{algorithm}_curve.csv").is_file()
