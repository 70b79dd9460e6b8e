"""`kdcc profile`: the per-layer table, its JSON form, and a one-line error for an unknown target."""

from __future__ import annotations

import json

from kdcc.cli.app import main
from kdcc.inputs.teacher import load_teacher
from kdcc.ir.annotate import graph_costs
from kdcc.ir.printer import annotate_program
from kdcc.ir.program import from_modules
from kdcc.targets.profile import known_profiles


def _annotated_flops(path) -> int:
    teacher = load_teacher(path)
    program = annotate_program(from_modules(teacher.spec, teacher.agent, teacher.mixer))
    return sum(c.flops for gm in program.graphs().values() for _, c in graph_costs(gm))


def test_table_with_total_row(tiny_teacher, capsys):
    assert main(["profile", str(tiny_teacher), "--target", "orin"]) == 0
    out = capsys.readouterr().out
    assert "target orin" in out
    lines = out.splitlines()
    total = [line for line in lines if "total" in line and f"{_annotated_flops(tiny_teacher):,}" in line]
    assert len(total) == 1
    assert any("agent.fc1" in line for line in lines) and any("mixer.bmm" in line for line in lines)
    assert "best device:" in out
    assert f"parameters: {load_teacher(tiny_teacher).param_count():,}" in out


def test_json_total_equals_sum_of_annotated_flops(tiny_teacher, capsys):
    assert main(["profile", str(tiny_teacher), "--target", "orin", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {r["node"]: r for r in report["rows"]}
    flops = _annotated_flops(tiny_teacher)
    assert rows["total"]["flops"] == flops
    assert sum(r["flops"] for r in report["rows"] if r["node"] not in ("total", "(call)")) == flops
    assert report["target"] == "orin" and report["best_device"] in ("cpu", "gpu")
    assert report["params"] == load_teacher(tiny_teacher).param_count()
    for device in ("cpu", "gpu"):
        per_node = sum(r[f"{device}.latency_us"] for r in report["rows"] if r["node"] != "total")
        assert abs(per_node - rows["total"][f"{device}.latency_us"]) < 1e-6 * max(1.0, per_node)


def test_fused_profile_has_the_same_layer_flops_in_one_graph(tiny_teacher, capsys):
    assert main(["profile", str(tiny_teacher), "--target", "orin", "--fused", "--json"]) == 0
    rows = {r["node"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert all(name.startswith("team.") for name in rows if name not in ("total", "(call)"))
    spec = load_teacher(tiny_teacher).spec
    assert rows["total"]["flops"] == _annotated_flops(tiny_teacher) + 3 * spec.n_agents * spec.n_actions


def test_unknown_target_is_a_one_line_error(tiny_teacher, capsys):
    assert main(["profile", str(tiny_teacher), "--target", "orin-tx9"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert "\n" not in err
    assert err.startswith("kdcc profile: error: unknown target 'orin-tx9'")
    assert all(name in err for name in known_profiles())
