"""The compile's certify stage: the teacher's and the student's certified ε, side by side, per student role.

After the passes, the teacher's role networks and the student's (the very networks
the bundle's agent steps are traced from) each run `episodes` fixed probe episodes as
deployed robots, and every agent step they take is certified (`kdcc.flow.certify`:
CROWN bounds, ε in the teacher's observation std per feature), as `kdcc certify
BUNDLE --teacher TEACHER --episodes N` would. A student role's row pairs its ε with the
teacher's on the steps of the same agents, so a shared teacher split into one network per
agent still compares like with like. The result is plain JSON: the report's section and
each role's `certified_eps` in profile.json read it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kdcc.core.progress import note
from kdcc.flow.certify import Subject, certify_subjects
from kdcc.inputs.teacher import Teacher
from kdcc.ir.program import Program, from_modules
from kdcc.ir.roles import team_roles
from kdcc.ir.spec import MarlSpec
from kdcc.marl.agents import role_network
from kdcc.marl.certify import VisitedSteps
from kdcc.reports.certify import eps_summary

__all__ = ["METHOD", "SCALE", "certify_compile"]

METHOD, SCALE = "crown", "std"


def _steps_of(spec: MarlSpec, eps: dict[str, np.ndarray], visited: VisitedSteps, agents) -> np.ndarray:
    """The ε of the steps `agents` took, in visiting order, whichever of the policy's roles ran them."""
    per_step = np.empty(len(visited.agent))
    for role in team_roles(spec):
        per_step[np.isin(visited.agent, role.agents)] = eps[role.name]
    return per_step[np.isin(visited.agent, agents)]


def certify_compile(teacher: Teacher, student: Program, episodes: int) -> dict[str, Any] | None:
    """{method, eps_scale, episodes, roles: {role: {agents, teacher, student}}, team: {teacher, student}}: per
    student role the two ε summaries (`eps_summary`) on its agents' steps, and per policy its mean team return on
    the episodes with the summary of all its steps; None when there is nothing to bound (an ONNX teacher)."""
    from kdcc.inputs.sources import has_torch_weights

    if not has_torch_weights(teacher):
        note("certify: skipped (an ONNX teacher has no torch weights to bound; certify its converted .pt)")
        return None
    program = from_modules(teacher.spec, teacher.agent, teacher.mixer)
    subjects = [Subject(label, prog.spec, {r.name: role_network(prog, r) for r in team_roles(prog.spec)}, is_teacher)
                for label, prog, is_teacher in (("teacher", program, True), ("student", student, False))]
    r = certify_subjects(subjects, episodes, SCALE, METHOD)
    roles = {role.name: {"agents": list(role.agents),
                         **{s.label: eps_summary(_steps_of(s.spec, r.eps[s.label], r.visited[s.label], role.agents))
                            for s in subjects}}
             for role in team_roles(student.spec)}
    team = {s.label: {"team_return": round(float(r.visited[s.label].returns.mean()), 4),
                       **eps_summary(np.concatenate(list(r.eps[s.label].values())))} for s in subjects}
    return {"method": METHOD, "eps_scale": SCALE, "episodes": episodes, "roles": roles, "team": team}
