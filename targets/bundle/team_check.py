"""`kdcc team-check`: do these roles, taken from one or more profile.json files, make the team they were trained in?

A fleet is assembled robot by robot, often from bundles copied at different times. A QMIX
team only behaves as trained when every agent index runs exactly once, each runs the role
it was trained as, and all of them come from the same compile of the same student: agents
of two students (two budgets, two targets, a retrained teacher) were never trained together.
The check reads what profile.json (format version 2) states per role — `trained_for`: the
team size, which role each agent index runs, the environment and the student's digests —
and answers yes, or no with the first reason.

A selection is `PROFILE[#ROLE[:AGENT],...]`: a profile.json (or its bundle directory), all its
agent roles by default, or the named roles, or one agent index of a shared role.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdcc.core.errors import KdccError
from kdcc.targets.bundle.collab_profile import FORMAT

__all__ = ["Selection", "TeamCheck", "load_selection", "team_check"]

MIN_VERSION = 2  # the first profile.json version with `trained_for` per role


@dataclass(frozen=True)
class Selection:
    label: str  # as the user wrote it
    trained_for: dict[str, Any]
    spec: dict[str, Any]
    agents: tuple[tuple[int, str], ...]  # (agent index, role) this selection runs


@dataclass
class TeamCheck:
    ok: bool
    reason: str
    covered: dict[int, str] = field(default_factory=dict)  # agent index -> the selection that runs it

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "reason": self.reason, "covered": {str(k): v for k, v in sorted(self.covered.items())}}


def _read_profile(path: Path) -> dict[str, Any]:
    if path.is_dir():
        path = path / "profile.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise KdccError(f"{path}: not a readable profile.json ({str(e).splitlines()[0][:100]})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("robots"), list):
        raise KdccError(f"{path}: not a kdcc profile.json (format {FORMAT!r} with robots)")
    if not isinstance(doc.get("version"), int) or doc["version"] < MIN_VERSION:
        raise KdccError(f"{path}: profile version {doc.get('version')} does not say what team each role was "
                        f"trained for (version {MIN_VERSION} does); recompile the bundle")
    return doc


def _pick(label: str, robots: dict[str, dict], item: str) -> list[tuple[int, str]]:
    name, _, index = item.partition(":")
    if name not in robots:
        raise KdccError(f"{label}: no role {name!r} (it has {', '.join(sorted(robots))})")
    agents = robots[name].get("agents", [])
    if not index:
        return [(a, name) for a in agents]
    if not index.isdigit() or int(index) not in agents:
        raise KdccError(f"{label}: role {name} runs agents {agents}, not {index!r}")
    return [(int(index), name)]


def _check_role(path: str, name: Any, robot: dict) -> None:
    """What team_check reads of a role, in the types profile.json version 2 gives it (docs/profile.schema.json)."""
    team = robot["trained_for"]
    ok = (isinstance(name, str) and isinstance(robot["agents"], list)
          and all(isinstance(a, int) and not isinstance(a, bool) and a >= 0 for a in robot["agents"])
          and isinstance(team, dict) and isinstance(team.get("n_agents"), int) and not isinstance(team["n_agents"], bool)
          and isinstance(team.get("composition"), list) and all(isinstance(c, str) for c in team["composition"])
          and len(team["composition"]) == team["n_agents"]
          and isinstance(team.get("env"), dict) and isinstance(team["env"].get("id"), str)
          and isinstance(team.get("student"), dict))
    if not ok:
        raise KdccError(f"{path}: role {name!r} is not as profile.json version 2 describes a role (agents, trained_for)")


def load_selection(text: str) -> Selection:
    """`PROFILE[#ROLE[:AGENT],...]` read and checked (KdccError on bad input: unreadable, old, unknown role)."""
    path, _, picks = text.partition("#")
    doc = _read_profile(Path(path))
    robots = {r["role"]: r for r in doc["robots"] if isinstance(r, dict) and isinstance(r.get("role"), str)}
    agent_roles = [name for name, r in robots.items() if r.get("agents")]
    if not agent_roles or any("trained_for" not in robots[n] for n in agent_roles):
        raise KdccError(f"{path}: its robots do not say what team they were trained for; recompile the bundle")
    for n in agent_roles:
        _check_role(path, n, robots[n])
    items = [p for p in picks.split(",") if p] if picks else agent_roles
    agents = tuple(pair for item in items for pair in _pick(text, robots, item))
    return Selection(text, robots[agent_roles[0]]["trained_for"], doc.get("spec", {}), agents)


def _short(digest: str) -> str:
    return digest[:12] + "…"


def team_check(selections: list[Selection]) -> TeamCheck:
    """Yes when the selections come from one student and run every agent index of its team once, in its role."""
    if not selections:
        raise KdccError("team-check: give at least one profile.json")
    base = selections[0]
    team = base.trained_for
    for s in selections[1:]:
        if s.spec != base.spec or s.trained_for["composition"] != team["composition"]:
            return TeamCheck(False, f"{s.label} was trained for another team than {base.label} "
                                    f"({s.trained_for['n_agents']} agents {s.trained_for['composition']} in "
                                    f"{s.trained_for['env']['id']}, vs {team['n_agents']} {team['composition']} "
                                    f"in {team['env']['id']})")
        for key, what in (("weights_sha256", "weights"), ("onnx_sha256", "team graph")):
            mine, theirs = base.trained_for["student"].get(key), s.trained_for["student"].get(key)
            if mine != theirs:
                return TeamCheck(False, f"{s.label} and {base.label} come from different students (student {what} "
                                        f"sha256 {_short(str(theirs))} vs {_short(str(mine))}): their agents were "
                                        "never trained together")
    covered: dict[int, str] = {}
    for s in selections:
        for agent, role in s.agents:
            expected = team["composition"][agent] if agent < len(team["composition"]) else None
            if role != expected:
                return TeamCheck(False, f"{s.label}: agent {agent} runs role {role}, but was trained as {expected}")
            if agent in covered:
                return TeamCheck(False, f"agent {agent} is run twice: by {covered[agent]} and by {s.label}", covered)
            covered[agent] = s.label
    missing = [i for i in range(team["n_agents"]) if i not in covered]
    if missing:
        need = ", ".join(f"{i} ({team['composition'][i]})" for i in missing)
        return TeamCheck(False, f"agents not run by any selection: {need}", covered)
    return TeamCheck(True, f"{len(selections)} selection(s) make the team of {team['n_agents']} agents "
                           f"({', '.join(team['composition'])}) in {team['env']['id']} of student "
                           f"{_short(team['student']['weights_sha256'])}, each agent once", covered)
