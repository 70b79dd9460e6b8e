"""Pass options: typed by each pass's config, refused in one line when wrong, listed by `kdcc passes`."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import pytest

from kdcc.cli.app import main as kdcc
from kdcc.core.errors import KdccError
from kdcc.passes import check_options, describe_passes, get_pass, registered
from kdcc.passes.config import build_config, option
from kdcc.passes.distill import DistillConfig


@dataclass(frozen=True)
class _Config:
    steps: int = option(10, "how many")
    rate: float = option(0.5, "how fast")
    on: bool = option(True, "whether")


def test_defaults_and_typed_values_from_strings_and_numbers():
    assert build_config("toy", _Config, {}) == _Config()
    cli = build_config("toy", _Config, {"toy.steps": "20", "toy.rate": "1e-3", "toy.on": "false", "other.x": "y"})
    api = build_config("toy", _Config, {"toy.steps": 20, "toy.rate": 0.001, "toy.on": 0})
    assert cli == api == _Config(steps=20, rate=0.001, on=False)
    assert build_config("toy", _Config, {"toy.steps": "2e3", "toy.rate": 1}) == _Config(steps=2000, rate=1.0)


@pytest.mark.parametrize("text, value", [("true", True), ("TRUE", True), ("1", True), (1, True), (True, True),
                                         ("false", False), ("0", False), (0, False), (False, False)])
def test_bool_takes_true_false_one_zero(text, value):
    assert build_config("toy", _Config, {"toy.on": text}).on is value


@pytest.mark.parametrize("key, value, reason", [
    ("toy.steps", "abc", "not a number: 'abc'"),
    ("toy.steps", "1.5", "not a whole number: '1.5'"),
    ("toy.steps", 1.5, "not a whole number: 1.5"),
    ("toy.steps", True, "not a number: True"),
    ("toy.rate", "nan", "not a finite number: 'nan'"),
    ("toy.on", "maybe", "not true, false, 1 or 0: 'maybe'"),
    ("toy.on", 2, "not true, false, 1 or 0: 2"),
    ("toy.stepz", "5", "no option 'stepz'"),
])
def test_a_wrong_key_or_type_is_one_line_listing_the_options(key, value, reason):
    with pytest.raises(KdccError) as info:
        build_config("toy", _Config, {key: value})
    assert str(info.value) == f"--opt {key}: {reason} (toy's options: steps (int), rate (float), on (bool))"


def test_check_options_keeps_the_json_form_of_ints_and_floats():
    """What the record manifest stores: the golden compile's options stay ints, weights floats."""
    typed = check_options({"approximate-mixer.steps": "50", "distill.steps": "20", "distill.w_relation": "0",
                           "distill.lr": 0.01, "prune.split": "0"})
    assert typed == {"approximate-mixer.steps": 50, "distill.steps": 20, "distill.w_relation": 0.0,
                     "distill.lr": 0.01, "prune.split": False}
    assert json.dumps(typed) == ('{"approximate-mixer.steps": 50, "distill.steps": 20, "distill.w_relation": 0.0, '
                                 '"distill.lr": 0.01, "prune.split": false}')


@pytest.mark.parametrize("key, message", [
    ("distil.steps", "--opt distil.steps: no pass named 'distil' (passes: approximate-mixer, batch-agents,"),
    ("fuse-team.x", "--opt fuse-team.x: no option 'x' (fuse-team takes no options)"),
    ("distill", "--opt distill: expected PASS.NAME=VALUE"),
])
def test_check_options_names_unknown_passes_and_keys(key, message):
    with pytest.raises(KdccError) as info:
        check_options({key: "1"})
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_config_for_reads_the_context_options(ctx):
    assert ctx.config_for("distill") == DistillConfig()
    mine = replace(ctx, options={"distill.w_kl": "0", "distill.steps": 7, "prune.split": 0})
    assert mine.config_for("distill") == DistillConfig(w_kl=0.0, steps=7)
    assert mine.config_for("prune").split is False
    assert mine.config_for("fuse-team") == get_pass("fuse-team").config()


def test_every_pass_declares_documented_options():
    listed = describe_passes()
    assert [p["name"] for p in listed] == sorted(registered())
    by_name = {p["name"]: p for p in listed}
    assert [o["name"] for o in by_name["approximate-mixer"]["options"]] == ["goal", "embed", "max_hyper", "steps", "lr", "batch",
                                                                          "synthetic", "holdout"]
    assert by_name["prune"]["options"] == [{"name": "split", "type": "bool", "default": True,
                                            "doc": by_name["prune"]["options"][0]["doc"]},
                                           {"name": "width", "type": "int", "default": 0,
                                            "doc": by_name["prune"]["options"][1]["doc"]},
                                           {"name": "feed_forward", "type": "bool", "default": False,
                                            "doc": by_name["prune"]["options"][2]["doc"]}]
    assert all(o["doc"] and o["type"] in ("int", "float", "bool") for p in listed for o in p["options"])
    assert by_name["distill"]["needs_training"] and not by_name["fuse-team"]["needs_training"]


def test_kdcc_passes_lists_passes_and_options(capsys):
    assert kdcc(["passes"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in registered())
    assert "distill.w_relation" in out and "float" in out and "default 0.5" in out
    assert "prune.split" in out and "default true" in out and "[needs training data]" in out
    assert kdcc(["passes", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["passes"]
    assert listed == describe_passes()


def test_compile_help_points_at_kdcc_passes(capsys):
    with pytest.raises(SystemExit):
        kdcc(["compile", "--help"])
    assert "kdcc passes" in capsys.readouterr().out


@pytest.mark.parametrize("opt, message", [
    ("distill.steps=abc", "--opt distill.steps: not a number: 'abc' (distill's options: steps (int), batch (int),"),
    ("distill.steps=1.5", "--opt distill.steps: not a whole number: '1.5' (distill's options: steps (int),"),
    ("distill.stepz=5", "--opt distill.stepz: no option 'stepz' (distill's options: steps (int),"),
    ("prune.split=maybe", "--opt prune.split: not true, false, 1 or 0: 'maybe' (prune's options: split (bool), width (int), feed_forward (bool))"),
    ("distil.steps=5", "--opt distil.steps: no pass named 'distil' (passes: approximate-mixer,"),
])
def test_a_bad_opt_is_exit_2_with_one_line(tiny_teacher, capsys, opt, message):
    status = kdcc(["compile", str(tiny_teacher), "--no-build", "--keep", "off", "-q", "--opt", opt])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith(f"kdcc compile: error: {message}") and err.count("\n") == 1
