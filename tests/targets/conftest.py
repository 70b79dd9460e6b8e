"""Fixtures of the target tests, each set up once per session: `tracker`, a TVM RPC tracker with one server on
127.0.0.1 (`_rpc.py`), and `team_bundle`, the tiny team step's bundle per target profile."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.targets._rpc import tracker  # noqa: F401 - a fixture, session-scoped

TEAM_BUNDLE_META = {"fidelity": {"agreement": 1.0}}
TEAM_BUNDLE_EXTRA = {"report.md": b"# report\n"}


@pytest.fixture(scope="session")
def team_bundle(tmp_path_factory):
    """`team_bundle(target)`: tiny_team()'s bundle for a target profile (the team step alone, with
    TEAM_BUNDLE_META, TEAM_BUNDLE_EXTRA and one input file), written once per session and shared (read
    it, never write into it): SimpleNamespace(team, out, result, teacher)."""
    written: dict[str, SimpleNamespace] = {}

    def get(target: str) -> SimpleNamespace:
        if target not in written:
            from kdcc.targets.bundle.writer import write_bundle
            from kdcc.targets.profile import load_profile
            from tests.targets._team import tiny_team

            root = tmp_path_factory.mktemp(f"team-{target}")
            teacher = root / "teacher.pt"
            teacher.write_bytes(b"teacher bytes")
            team = tiny_team()
            result = write_bundle(team, team.spec, load_profile(target), root / "bundle", meta=TEAM_BUNDLE_META,
                                  extra_files=TEAM_BUNDLE_EXTRA, inputs=[teacher])
            written[target] = SimpleNamespace(team=team, out=root / "bundle", result=result, teacher=teacher)
        return written[target]

    return get
