"""report.html (self-contained, byte-deterministic), `kdcc inspect` of every input kind, --json outputs
that parse, and --help with defaults and examples on every subcommand."""

from __future__ import annotations

import base64
import json
import re

import matplotlib
import pytest

from kdcc.cli.app import build_parser, main
from kdcc.passes.manager import PassRecord
from kdcc.reports.document import Column, Paragraph, Section, Table, text
from kdcc.reports.html import html_report
from tests.conftest import tiny_spec
from tests.epymarl_fixture import write_model_dir


def _records() -> list[PassRecord]:
    def metrics(flops, latency):
        return {"flops": flops, "params": flops // 4, "param_bytes": flops, "bytes": 2 * flops,
                "latency_us": latency, "energy_uj": latency / 2, "device": "cpu"}

    def fidelity(agree, dq):
        return {"max_abs_dq": dq, "action_agreement": agree, "max_abs_dq_tot": dq, "mean_abs_dq_tot": dq / 3}

    curve = [{"step": s, "kl": 1 / (s + 1), "ce": 2 / (s + 1), "total": 3 / (s + 1)} for s in range(0, 200, 50)]
    return [PassRecord(0, "import", 0.0, "", metrics(40_000, 9.0), fidelity(1.0, 0.0), {}),
            PassRecord(1, "prune", 0.1, "", metrics(2_000, 4.0), fidelity(0.5, 0.4), {"width": 8}),
            PassRecord(2, "distill", 2.0, "", metrics(2_000, 4.0), fidelity(0.9, 0.1), {"curve": curve})]


def _pngs(page: str) -> list[bytes]:
    return [base64.b64decode(d) for d in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def _chunk_types(png: bytes) -> set[str]:
    types, pos = set(), 8
    while pos < len(png):
        length = int.from_bytes(png[pos:pos + 4], "big")
        types.add(png[pos + 4:pos + 8].decode())
        pos += 12 + length
    return types


def test_html_report_is_self_contained_and_byte_deterministic():
    records = _records()
    table = Table((Column("a", "a", align=None), Column("b", "b", align=None)), ({"a": "1", "b": "<2>"},))
    section = [Section("Ablation", (table, Paragraph(text("Team return: 20 episodes."))))]
    page = html_report("tiny.pt", "orin", records, extra_sections=section)
    with matplotlib.rc_context({"lines.linewidth": 7, "figure.facecolor": "red"}):  # a user's matplotlibrc
        again = html_report("tiny.pt", "orin", records, extra_sections=section)
    assert page == again
    pngs = _pngs(page)
    assert len(pngs) == 3  # cost per pass, fidelity per pass, the distill curve
    for png in pngs:
        assert png.startswith(b"\x89PNG") and not _chunk_types(png) & {"tEXt", "iTXt", "zTXt", "tIME"}
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")
    assert "40,000 → 2,000" in page
    assert "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>&lt;2&gt;</td></tr></table>" in page
    assert "<p>Team return: 20 episodes.</p>" in page


def test_html_report_without_distill_has_no_curve():
    assert len(_pngs(html_report("t.pt", "orin", _records()[:2]))) == 2


def _inspect(capsys, *argv) -> dict:
    capsys.readouterr()
    assert main(["inspect", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_inspect_every_kind(tiny_teacher, tmp_path, capsys):
    info = _inspect(capsys, str(tiny_teacher))
    assert info["kind"] == "teacher" and info["summary"]["n_agents"] == 3 and info["params"]["total"] > 0

    ckpt, config, *_ = write_model_dir(tmp_path / "results/models/run/10", tiny_spec(), "epymarl",
                                       reward_scalarisation="mean")
    info = _inspect(capsys, str(ckpt), "--config", str(config))
    assert info["format"] == "EPyMARL/PyMARL model directory" and info["provenance"]["source"] == "epymarl"
    assert any("n_agents ×" in n for n in info["import_notes"])

    data = tmp_path / "data.npz"
    assert main(["collect", str(tiny_teacher), "-o", str(data), "--episodes", "2", "-q"]) == 0
    info = _inspect(capsys, str(data))
    assert info["kind"] == "dataset" and info["episodes"] == 2 and info["arrays"]["obs"]["shape"] == [50, 3, 18]

    record, out = tmp_path / "rec", tmp_path / "out"
    assert main(["compile", str(tiny_teacher), "--passes", "normalize-eval", "--no-build", "-o", str(out),
                 "--record", str(record), "--certify-episodes", "0", "-q"]) == 0
    info = _inspect(capsys, str(record))
    assert info["kind"] == "record" and [p["name"] for p in info["passes"]] == ["import", "normalize-eval"]

    bundle = tmp_path / "bundle"  # the parts of profile.json inspect reads (a real one needs a TVM build)
    bundle.mkdir()
    (bundle / "profile.json").write_text(json.dumps({
        "format": "kdcc-bundle", "version": 1, "spec": tiny_spec().to_dict(), "target": {"name": "orin"},
        "libraries": [{"device": "cpu", "kind": "cpu", "arch": "aarch64", "path": "lib/cpu/policy.so"}],
        "cost": {"flops": 1000, "param_bytes": 400, "latency_us": 3.5, "device": "cpu"},
        "fidelity": {"action_agreement": 0.9, "max_abs_dq": 0.2}, "pipeline": ["prune"]}))
    (bundle / "report.html").write_text("<html></html>")
    info = _inspect(capsys, str(bundle))
    assert info["kind"] == "bundle" and info["reports"] == ["report.html"] and info["target"]["name"] == "orin"

    for path in (tiny_teacher, ckpt, data, record, bundle):  # and the human-readable form
        args = [str(path)] + (["--config", str(config)] if path == ckpt else [])
        assert main(["inspect", *args]) == 0
        assert "path" in capsys.readouterr().out


def test_inspect_an_unknown_directory_is_a_one_line_error(tmp_path, capsys):
    assert main(["inspect", str(tmp_path)]) == 2
    assert "not a bundle (profile.json), record (manifest.json)" in capsys.readouterr().err


def test_json_outputs_parse(tiny_teacher, tmp_path, capsys):
    capsys.readouterr()
    assert main(["eval", str(tiny_teacher), "--episodes", "2", "--json", "-q"]) == 0
    assert set(json.loads(capsys.readouterr().out)) >= {"mean", "std", "random_mean"}
    assert main(["profile", str(tiny_teacher), "--target", "orin", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"]
    record = tmp_path / "rec"
    assert main(["compile", str(tiny_teacher), "--passes", "normalize-eval", "--record", str(record), "-q"]) == 0
    capsys.readouterr()
    assert main(["check", str(record), "--against", str(record), "--json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), dict)


@pytest.mark.parametrize("command", ["eval", "collect", "profile", "compile", "calibrate", "check", "convert",
                                     "inspect"])
def test_every_subcommand_help_has_defaults_and_examples(command):
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    text = sub.choices[command].format_help()
    assert "examples:\n  kdcc " in text
    if command not in ("convert", "inspect"):
        assert "(default: " in text
