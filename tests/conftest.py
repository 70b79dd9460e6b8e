"""Shared fixtures: tiny teachers built in code (no downloads), one thread for determinism."""

from __future__ import annotations

from pathlib import Path

import pytest

import kdcc  # noqa: F401 - before torch runs anything: kdcc pins the CPU numerics (kdcc/core/numerics.py)
import torch

from kdcc.inputs.teacher import save_teacher
from kdcc.ir.spec import AgentSpec, EnvSpec, MarlSpec, MixerSpec
from kdcc.marl.qmix import build_agent, build_mixer
from tests.regression_fixture import check_pipeline_against_golden  # noqa: F401 - fixture: tests/regression_fixture.py

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_TEACHER = REPO / "examples" / "spread_teacher.pt"
# Pass options that shorten training to seconds, for tests that compile end to end.
FAST = {"distill.steps": 30, "distill.dagger_every": 0, "approximate-mixer.steps": 30}
# (Compiles with -o also certify teacher and student on 1 probe episode, ~1 s for a tiny team: a test that does
# not look at it passes certify_episodes=0, or --certify-episodes 0.)


def assert_eps_distribution(s: dict, steps: int) -> None:
    """A certified-ε summary (kdcc.reports.certify.eps_summary) of `steps` steps with sane numbers."""
    assert s["steps"] == steps and 0 <= s["p10"] <= s["median"] and s["mean"] >= 0
    fractions = [s["certified_at"][t] for t in ("0.01", "0.05", "0.1", "0.5")]
    assert all(0 <= f <= 1 for f in fractions) and fractions == sorted(fractions, reverse=True)


def tiny_spec(hidden: int = 16, embed: int = 8, hypernet_embed: int = 16, kind: str = "rnn") -> MarlSpec:
    return MarlSpec(n_agents=3, obs_dim=18, state_dim=54, n_actions=5, agent=AgentSpec(kind, hidden),
                    mixer=MixerSpec("qmix", embed, 2, hypernet_embed),
                    env=EnvSpec("simple_spread_v3", {"N": 3, "max_cycles": 25}))


def make_tiny_teacher(path: Path, seed: int = 0, **spec_kw) -> Path:
    torch.manual_seed(seed)
    spec = tiny_spec(**spec_kw)
    save_teacher(path, spec, build_agent(spec), build_mixer(spec), {"trainer": "tests", "seed": seed})
    return path


def speaker_listener_spec(hidden: int = 32) -> MarlSpec:
    """Heterogeneous: a speaker (obs 3, 3 actions) and a listener (obs 11, 5 actions), padded to 11 and 5."""
    return MarlSpec(n_agents=2, obs_dim=11, state_dim=14, n_actions=5, agent=AgentSpec("rnn", hidden),
                    mixer=MixerSpec("qmix", 8, 2, 16), env=EnvSpec("simple_speaker_listener_v4", {"max_cycles": 25}),
                    obs_sizes=(3, 11), action_sizes=(3, 5))


def make_speaker_listener_teacher(path: Path, seed: int = 0, hidden: int = 32) -> Path:
    torch.manual_seed(seed)
    spec = speaker_listener_spec(hidden)
    save_teacher(path, spec, build_agent(spec), build_mixer(spec), {"trainer": "tests", "seed": seed})
    return path


@pytest.fixture(autouse=True)
def _not_quiet():
    """`main([..., "-q"])` sets a process-wide flag: every test starts from the default."""
    from kdcc.core.progress import set_quiet

    set_quiet(False)


@pytest.fixture
def tiny_teacher(tmp_path) -> Path:
    return make_tiny_teacher(tmp_path / "tiny.pt")


@pytest.fixture(scope="session")
def example_teacher() -> Path:
    if not EXAMPLE_TEACHER.exists():
        pytest.fail(f"{EXAMPLE_TEACHER} is missing: it is committed with the repository")
    return EXAMPLE_TEACHER


@pytest.fixture(scope="session")
def host_compile(tmp_path_factory):
    """`host_compile("spread" | "speaker_listener")`: (teacher path, CompileOutput) of a tiny teacher compiled
    into a host bundle once per test session and shared (read it, never write into it). Both teachers are
    32 wide, so the budget prunes them; the speaker-listener compile also runs --pareto (tests/test_heterogeneous.py
    reads its front)."""
    compiled: dict[str, tuple] = {}

    def get(team: str) -> tuple:
        if team not in compiled:
            from kdcc.flow.compile import compile_teacher
            from kdcc.flow.driver import CompileOptions
            from kdcc.passes import Budget

            d = tmp_path_factory.mktemp(f"bundle-{team}")
            if team == "spread":
                teacher = make_tiny_teacher(d / "teacher.pt", seed=2, hidden=32, hypernet_embed=32)
            else:
                teacher = make_speaker_listener_teacher(d / "teacher.pt", seed=2, hidden=32)
            compiled[team] = teacher, compile_teacher(str(teacher), "host", d / "bundle", CompileOptions(
                budget=Budget(ratio=2.0), keep=None, collect_episodes=4, options=FAST, pareto=team == "speaker_listener"))
        return compiled[team]

    return get


@pytest.fixture(scope="session")
def host_bundle(host_compile):
    """`host_bundle("spread" | "speaker_listener")`: the directory of that team's session bundle (`host_compile`)."""
    return lambda team: host_compile(team)[1].out_dir
