"""The one scorer: seed ranges that never overlap, baselines computed once, and seeds used only by their owner."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from kdcc.core.errors import KdccError
from kdcc.flow.compile import compile_teacher
from kdcc.flow.driver import CompileOptions
from kdcc.inputs.teacher import load_teacher
from kdcc.marl import scoring
from kdcc.marl.worlds import make_env
from kdcc.marl.worlds.mpe import TeamEnv
from kdcc.marl.rollout import RandomPolicy, TorchPolicy, run_episodes
from kdcc.marl.seeds import COLLECT, CONFIRMATION, DAGGER, PROBE, SEED_RANGES, SELECTION
from kdcc.passes import Budget
from tests.conftest import FAST, make_tiny_teacher


def test_seed_ranges_are_disjoint_and_refuse_to_overflow():
    ranges = sorted(SEED_RANGES, key=lambda r: r.start)
    assert all(a.stop <= b.start for a, b in zip(ranges, ranges[1:]))
    assert len({r.name for r in SEED_RANGES}) == len(SEED_RANGES)
    assert SELECTION.span(100) == [1000, 1099] and CONFIRMATION.first(1000) == 200_000
    with pytest.raises(KdccError, match="leave the selection seeds 1000–9999"):
        SELECTION.first(9_001)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return load_teacher(make_tiny_teacher(tmp_path_factory.mktemp("scoring") / "t.pt", seed=3, hidden=32,
                                          hypernet_embed=32))


def test_baseline_is_the_teacher_and_random_on_the_seeds_and_is_kept(teacher, tmp_path, monkeypatch):
    monkeypatch.setenv("KDCC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(scoring, "_MEMORY", {})
    env = make_env(teacher.spec.env)
    b = scoring.baseline(teacher, 1000, 6, env)
    played = run_episodes(env, TorchPolicy.from_modules(teacher.spec, teacher.agent, teacher.mixer, env.avail), 6,
                          1000).returns
    assert np.array_equal(b.teacher, played)
    assert np.array_equal(b.random, run_episodes(env, RandomPolicy(env.avail, 1000), 6, 1000).returns)
    [cached] = (tmp_path / "baselines").glob("*.npz")
    monkeypatch.setattr(scoring, "_MEMORY", {})
    monkeypatch.setattr(scoring, "play", lambda *a, **k: pytest.fail("played again instead of reading the cache"))
    again = scoring.baseline(teacher, 1000, 6, env)
    assert np.array_equal(again.teacher, b.teacher) and np.array_equal(again.random, b.random)
    cached.write_bytes(b"not an npz")  # a damaged cache file is recomputed, never trusted
    monkeypatch.undo()
    monkeypatch.setenv("KDCC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(scoring, "_MEMORY", {})
    assert np.array_equal(scoring.baseline(teacher, 1000, 6, env).teacher, b.teacher)


def test_paired_score_of_the_teacher_itself_is_one(teacher, monkeypatch, tmp_path):
    monkeypatch.setenv("KDCC_CACHE_DIR", str(tmp_path))
    b = scoring.baseline(teacher, 1000, 6)
    s = scoring.score_returns(b.teacher, b)
    assert s["score"] == 1.0 and s["se"] == 0.0 and s["seeds"] == [1000, 1005]


def test_a_keep_compile_uses_each_seed_range_only_for_its_owner(teacher, tmp_path, monkeypatch):
    """Every env reset of a --keep compile, in this process (one worker): confirmation seeds only when the chosen
    student is confirmed, and nothing else touches them; selection, training and probe seeds stay in theirs."""
    monkeypatch.setenv("KDCC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(scoring, "_MEMORY", {})
    resets: list[tuple[int, bool]] = []
    reset = TeamEnv.reset

    def spy(self, seed):
        confirming = any(f.function == "_confirm" for f in inspect.stack(0))
        resets.append((int(seed), confirming))
        return reset(self, seed)

    monkeypatch.setattr(TeamEnv, "reset", spy)
    path = tmp_path / "t.pt"
    make_tiny_teacher(path, seed=3, hidden=32, hypernet_embed=32)
    opts = CompileOptions(collect_episodes=4, options=dict(FAST), keep=0.0, keep_episodes=5, confirm_episodes=7,
                          keep_workers=1, certify_episodes=0, budget=Budget(ratio=1.0))
    out = compile_teacher(str(path), "host", None, opts, build=False)
    confirmed = {s for s, c in resets if c}
    assert confirmed == set(range(CONFIRMATION.start, CONFIRMATION.start + 7))
    others = {s for s, c in resets if not c}
    assert not others & set(range(CONFIRMATION.start, CONFIRMATION.stop))
    owners = (SELECTION, COLLECT, DAGGER, PROBE)
    assert all(any(r.start <= s < r.stop for r in owners) for s in others - {0}), sorted(others)  # 0: env setup
    assert others & set(range(COLLECT.start, COLLECT.start + 4)) and others & set(range(1000, 1005))
    chosen = out.keep["chosen"]
    assert chosen["seeds"] == [200_000, 200_006] and chosen["selection"]["seeds"] == [1000, 1004]
    assert out.keep["confirmations"][-1]["keeps"] and out.keep["confirmations"][-1]["width"] == chosen["width"]
