"""One pass table, four renderings: the terminal, report.md, report.html and `compile --json` show the same
headers and cells for the records of one tiny compile; report.html is rendered from the model (no markdown in it)
and byte-deterministic; decisions read as text, not Python reprs; the certify stage's ε of teacher and student is
in the JSON and both reports, with the score against it when the student was trained for robustness."""

from __future__ import annotations

import html
import io
import json
import re
from contextlib import redirect_stdout

import pytest
from rich.console import Console

from kdcc.cli.app import main
from kdcc.passes.manager import PassRecord
from kdcc.reports.certify import compile_certify_section, score_eps_figure
from kdcc.reports.document import Table
from kdcc.reports.html import html_blocks, html_report
from kdcc.reports.markdown import markdown_blocks, markdown_report
from kdcc.reports.pareto import pareto_section
from kdcc.reports.pass_table import PASS_COLUMNS, pass_table
from kdcc.reports.terminal import rich_table
from tests.conftest import FAST, assert_eps_distribution, make_tiny_teacher


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """A tiny teacher through the default pipeline (short training on a 4-episode dataset), without a TVM build:
    --json, report.md/html."""
    tmp = tmp_path_factory.mktemp("compile")
    teacher, out, data = make_tiny_teacher(tmp / "tiny.pt"), tmp / "out", tmp / "data.npz"
    opts = [a for k, v in FAST.items() for a in ("--opt", f"{k}={v}")]
    assert main(["collect", str(teacher), "-o", str(data), "--episodes", "4", "--seed", "1", "-q"]) == 0
    stdout = io.StringIO()
    with redirect_stdout(stdout):
        assert main(["compile", str(teacher), "--target", "host", "--budget-flops", "2x", "--keep", "off", "--no-build",
                     "--dataset", str(data), "-o", str(out), "--json", "-q", *opts]) == 0
    return {"json": json.loads(stdout.getvalue()), "md": (out / "report.md").read_text(),
            "html": (out / "report.html").read_text()}


def _json_table(doc) -> Table:
    return Table(PASS_COLUMNS, tuple(doc["pass_table"]["rows"]))


def test_json_pass_table_is_the_model(compiled):
    doc = compiled["json"]
    assert [c["header"] for c in doc["pass_table"]["columns"]] == [c.header for c in PASS_COLUMNS]
    assert [r["pass"] for r in doc["pass_table"]["rows"]] == [p["name"] for p in doc["passes"]]
    for row, p in zip(doc["pass_table"]["rows"], doc["passes"]):
        assert row["flops"] == p["metrics"]["flops"] and row["action_agreement"] == p["fidelity"]["action_agreement"]
        assert isinstance(row["flops"], int) and isinstance(row["latency_us"], float)


def test_markdown_html_and_terminal_show_the_json_rows(compiled):
    table = _json_table(compiled["json"])
    headers, cells = table.headers, table.cells()
    assert len(cells) == 10 and cells[4][1] == "prune"

    md_rows = [line for line in compiled["md"].splitlines() if line.startswith("| ")]
    md_cells = [[c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in md_rows]
    assert md_cells[0] == headers and md_cells[1:1 + len(cells)] == cells

    page = compiled["html"]
    tables = re.findall(r"<table>(.*?)</table>", page)
    html_cells = [[html.unescape(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", tr)]
                  for tr in re.findall(r"<tr>(.*?)</tr>", tables[0])]
    assert html_cells == [headers, *cells]

    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(rich_table(table))
    lines = out.getvalue().splitlines()
    for header in headers:
        assert header in lines[1]
    for row in cells:
        assert any(all(c in line for c in row) and line.index(row[1]) < line.index(row[2]) for line in lines)


def test_cli_terminal_table_uses_the_same_columns(tmp_path, capsys):
    teacher = make_tiny_teacher(tmp_path / "tiny.pt")
    assert main(["compile", str(teacher), "--target", "host", "--passes", "normalize-eval"]) == 0
    out = capsys.readouterr().out
    for header in (c.header for c in PASS_COLUMNS):
        assert header in out
    assert "normalize-eval" in out and "1.61 (cpu)" in out  # the VM-free step's estimate


def test_json_without_an_output_directory_has_null_out(tmp_path, capsys):
    teacher = make_tiny_teacher(tmp_path / "tiny.pt")
    capsys.readouterr()
    assert main(["compile", str(teacher), "--target", "host", "--passes", "normalize-eval", "--json", "-q"]) == 0
    text = capsys.readouterr().out
    doc = json.loads(text)
    assert doc["out"] is None and '"out": null' in text and '"None"' not in text
    assert doc["bundle"] is None and doc["pareto"] is None and doc["certified"] is None  # no -o: no report to show it


def test_json_markdown_and_html_carry_the_certified_eps_of_teacher_and_student(compiled):
    cert = compiled["json"]["certified"]
    assert (cert["method"], cert["eps_scale"], cert["episodes"]) == ("crown", "std", 1)
    assert list(cert["roles"]) == ["agent"] and cert["roles"]["agent"]["agents"] == [0, 1, 2]
    for policy in ("teacher", "student"):
        assert_eps_distribution(cert["roles"]["agent"][policy], 75)
        assert cert["team"][policy]["team_return"] < 0  # simple_spread's reward is a negative distance
    md = compiled["md"].split("## Certified robustness", 1)[1]
    page = compiled["html"].split("<h2>Certified robustness</h2>", 1)[1]
    for policy in ("teacher", "student"):
        s = cert["roles"]["agent"][policy]
        cells = [policy, "agent", "75", f"{s['median']:.4g}", f"{s['p10']:.4g}",
                 *(f"{s['certified_at'][t]:.0%}" for t in ("0.01", "0.05", "0.1", "0.5"))]
        assert "| " + " | ".join(cells) + " |" in md
        assert '<td class="l">' + cells[0] + '</td><td class="l">agent</td><td>75</td>' in page
    assert "score_vs_certified_eps" not in page  # w_robust is 0: no score-against-ε plot


def test_the_certify_section_shows_score_against_certified_eps_when_trained_for_it():
    s = {"steps": 75, "median": 0.25, "p10": 0.125, "mean": 0.3,
         "certified_at": {"0.01": 1.0, "0.05": 0.75, "0.1": 0.5, "0.5": 0.0}}
    robust = {**s, "median": 0.5, "p10": 0.25, "certified_at": {**s["certified_at"], "0.1": 1.0}}
    cert = {"method": "crown", "eps_scale": "std", "episodes": 2,
            "roles": {"agent": {"agents": [0, 1, 2], "teacher": s, "student": robust}},
            "team": {"teacher": {"team_return": -150.0, **s}, "student": {"team_return": -160.5, **robust}}}
    plain = markdown_blocks(compile_certify_section(cert, {}).blocks)
    assert "| student | agent | 75 | 0.5 | 0.25 | 100% | 75% | 100% | 0% |" in plain and "2 fixed episodes" in plain
    assert "Score against certified ε" not in plain
    md = markdown_blocks(compile_certify_section(cert, {"distill.w_robust": 1.0}).blocks)
    assert "**Score against certified ε.**" in md and "`distill.w_robust=1`, `distill.robust_eps=0.1`" in md
    assert "| teacher | -150.00 | 0.25 | 0.125 | 50% |" in md and "| student | -160.50 | 0.5 | 0.25 | 100% |" in md
    assert score_eps_figure(cert).axes[0].get_ylabel() == "team return (mean of 2 episodes)"


def test_decisions_read_as_text(compiled):
    md = compiled["md"]
    decisions = md.split("## Decisions", 1)[1]
    for repr_mark in ("{'", "['", "{}", "True", "False", "=None"):
        assert repr_mark not in md
    assert "- **prune**\n" in decisions and "  - limits:\n    - flops: " in decisions
    assert "- **batch-agents**\n  - applied: no\n" in decisions
    assert "{&#x27;" not in compiled["html"] and "<li><b>prune</b><ul><li>width: " in compiled["html"]


def test_html_is_rendered_from_the_model_not_from_markdown(compiled):
    page = compiled["html"]
    for mark in ("| ---", "|---", "---|", "**", "`", "\n- ", "\n## "):
        assert mark not in page
    assert "<h1>kdcc compile report: <code>tiny.pt</code> → target <code>host</code></h1>" in page
    assert "<th>max |ΔQ|</th>" in page and '<td class="l">prune</td>' in page


def _records() -> list[PassRecord]:
    metrics = {"flops": 80_000, "params": 500, "param_bytes": 2_000, "bytes": 9_000, "latency_us": 3.25,
               "energy_uj": 1.5, "device": "cpu"}
    fid = {"max_abs_dq": 0.125, "action_agreement": 0.75, "max_abs_dq_tot": 0.5, "mean_abs_dq_tot": 0.25}
    decisions = {"pass": "prune", "width": 8, "limits": {"flops": 80726.8667}, "kept_fc1": [1, 2],
                 "folded": {"team": ["abs_1", "abs_2"]}, "applied": True, "removed": {}}
    return [PassRecord(0, "import", 0.0, "", metrics, fid, {}),
            PassRecord(1, "prune", 0.5, "", metrics, fid, decisions)]


def test_two_html_renders_are_byte_identical_and_decisions_are_formatted():
    records = _records()
    assert html_report("t.pt", "orin", records) == html_report("t.pt", "orin", records)
    md = markdown_report("t.pt", "orin", records)
    assert ("- **prune**\n  - width: 8\n  - limits:\n    - flops: 80,726.9\n  - folded:\n    - team: abs_1, abs_2\n"
            "  - applied: yes\n  - removed: none\n") in md
    assert "kept" not in md and "{'" not in md


def test_pass_table_cells():
    assert pass_table(_records()).cells()[1] == ["01", "prune", "80,000", "500", "9,000", "3.25 (cpu)", "1.50",
                                                 "0.125", "0.750", "0.25"]


def test_pareto_section_renders_one_table_everywhere():
    sweep = {"episodes": 50, "seed": 0, "metric": "flops",
             "teacher": {"return": -150.0, "latency_us": 5.5, "flops": 19_574},
             "points": [{"label": "× 0.25", "factor": 0.25, "unreachable": "budget unreachable"},
                        {"label": "asked", "factor": 1.0, "kind": "rnn", "width": 16, "flops": 5_774, "bytes": 1,
                         "latency_us": 3.5, "energy_uj": 6.0, "device": "cpu", "agreement": 0.9, "return": -200.0,
                         "return_std": 40.0, "on_front": True}]}
    section = pareto_section(sweep)
    md = markdown_blocks(section.blocks)
    assert "| × 0.25 | unreachable |" in md
    assert "| asked | rnn 16 | 5,774 | 3.50 (cpu) | 6.00 | 0.900 | -200.00 ± 40.00 | ● |" in md
    page = html_blocks(section.blocks)
    assert '<td class="l">rnn 16</td><td>5,774</td><td>3.50 (cpu)</td>' in page and "|" not in page
    assert "<p>Budget: the one asked for (1×)" in page


def test_precision_section_shows_each_precision_and_the_choice():
    from kdcc.reports.precision import precision_section

    def point(p, agreement, score, delta, lib, latency):
        return {"precision": p, "action_agreement": agreement, "score": score, "delta": delta,
                "delta_se": None if delta is None else 0.01, "episodes": 30, "weight_bytes": 1000,
                "host_library_bytes": lib, "latency_us": {"cpu": latency}, "host_step_us": 2 * latency}

    section = precision_section({"requested": "auto", "chosen": "int8", "rule": "The rule.", "points": [
        point("fp32", 1.0, 0.98, 0.0, 270_000, 5.27), point("int8", 0.96, None, None, 290_000, 5.07)]})
    md = markdown_blocks(section.blocks)
    assert "| fp32 | 100.0% | 0.980 | +0.000 ± 0.010 | 1,000 | 270,000 | 10.54 | 5.27 |" in md
    assert "| int8 | 96.0% | — | — | 1,000 | 290,000 | 10.14 | 5.07 |" in md
    assert "built at int8. The rule." in md
