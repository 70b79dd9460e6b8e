"""Bad input, safety and reproducibility across every command (issue 7).

Every bad input must end the same way: exit status 2, exactly one line on
stderr that names the file or option and states the problem, no traceback,
nothing written (the case's directory is byte for byte what it was, an old
bundle included) and nothing executed (pickle payloads would create a marker).

Each case runs the real CLI in its own process. Importing torch costs a
process about two seconds, so the independent cases are started together on
a small pool when the first of them is asked for, each forked from a server
that has imported it already (tests/_forked_cli.py); each test then checks its
own result. Compiles use a tiny teacher, a four-episode dataset and a few
training steps, so a compile that gets to run takes seconds.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from kdcc.core.fileio import atomic_write_bytes, atomic_write_tree, npz_bytes
from kdcc.targets.bundle.integrity import manifest_bytes
from tests._forked_cli import ForkedCli
from tests.conftest import make_tiny_teacher

SMALL = ("--opt distill.steps=20 --opt distill.dagger_every=0 --opt approximate-mixer.steps=20 --budget-flops 2x "
         "--keep off")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CI": "1"}
CLI = ("-m", "kdcc.cli.app")
_OLD_FILES = {"report.md": b"old report\n", "lib/libstudent.so": b"\x7fELF old library",
              "record/manifest.json": b"{}\n"}
# kdcc's own earlier outputs (--force replaces only those, kdcc/core/outputs.py): a tagged manifest listing every file,
# and a record's manifest naming its passes
OLD_BUNDLE = {**_OLD_FILES, "manifest.json": manifest_bytes(_OLD_FILES)}
OLD_RECORD = {"manifest.json": b'{"passes": ["import"], "versions": {"kdcc": "0.1.0"}}\n',
              "00_import/program.txt": b"old program\n"}

# Replaces a late pass (fold-constants, after distillation) with one that fails, then runs the CLI:
# `python -c FAIL_LATE error|crash compile ...`.
FAIL_LATE = """
import sys
from kdcc.core.errors import KdccError
from kdcc.passes import base
kind = sys.argv.pop(1)
def fail(program, ctx):
    raise (KdccError if kind == "error" else RuntimeError)("simulated failure")
base._REGISTRY["fold-constants"] = base.Pass("fold-constants", fail, "fails on purpose")
from kdcc.cli.app import main
raise SystemExit(main(sys.argv[1:]))
"""


class Payload:
    """Unpickling this calls open(marker, "w"): the marker file exists iff the pickle ran code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# --------------------------------------------------------------------------- inputs


def _torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _teachers(d: Path, good: Path, marker: Path) -> None:
    blob = torch.load(good, weights_only=True)

    def variant(name, change):
        b = {**blob, "spec": json.loads(json.dumps(blob["spec"])),
             "agent": {k: v.clone() for k, v in blob["agent"].items()},
             "mixer": {k: v.clone() for k, v in blob["mixer"].items()}}
        change(b)
        (d / name).write_bytes(_torch_bytes(b))

    (d / "empty.pt").write_bytes(b"")
    (d / "truncated.pt").write_bytes(good.read_bytes()[:1000])
    (d / "text.pt").write_text("hello, not a torch file\n")
    (d / "other_format.pt").write_bytes(_torch_bytes({"format": "someone-else", "weights": torch.zeros(2)}))
    variant("other_version.pt", lambda b: b.update(version=2))
    (d / "pickle_raw.pt").write_bytes(pickle.dumps({"format": "kdcc-teacher", "x": Payload(marker)}))
    (d / "pickle_torch.pt").write_bytes(_torch_bytes({"format": "kdcc-teacher", "version": 1, "x": Payload(marker)}))
    variant("shape.pt", lambda b: b["agent"].update({"fc1.weight": torch.zeros(7, 26)}))
    variant("nan.pt", lambda b: b["agent"]["fc2.bias"].fill_(float("nan")))
    variant("inf.pt", lambda b: b["mixer"]["V.2.bias"].fill_(float("inf")))
    variant("env.pt", lambda b: b["spec"]["env"].update(id="simple_tag_v3"))
    variant("obs_sizes.pt", lambda b: b["spec"].update(obs_sizes=[3, 11, 18]))
    variant("widths.pt", lambda b: b["spec"]["agent"].update(widths=[16, 16]))
    (d / "teacher_dir").mkdir()


def _datasets(d: Path, good: Path, marker: Path) -> None:
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}

    def variant(name, **change):
        b = {**arrays, **change}
        (d / name).write_bytes(npz_bytes({k: v for k, v in b.items() if v is not None}))

    variant("missing_arrays.npz", q=None, hidden=None)
    variant("wrong_shape.npz", obs=arrays["obs"][:, :, :5])
    variant("wrong_dtype.npz", actions=arrays["actions"].astype(np.float32))
    obs = arrays["obs"].copy()
    obs[3, 1, 0] = np.nan
    variant("nan.npz", obs=obs)
    variant("zero_episodes.npz", **{k: v[:0] for k, v in arrays.items() if k != "meta"})
    meta = json.loads(str(arrays["meta"]))
    meta["spec"]["n_agents"] = 2
    variant("two_agents.npz", meta=np.array(json.dumps(meta)))
    variant("no_meta.npz", meta=None)
    (d / "not_npz.npz").write_text("obs,state\n1,2\n")
    objects = np.empty(1, dtype=object)
    objects[0] = Payload(marker)
    np.savez(d / "pickled.npz", **{**arrays, "obs": objects})


def _directories(d: Path, good: Path, marker: Path) -> None:
    """An EPyMARL model directory whose agent.th is a code-running pickle, a corrupt ONNX teacher, a broken bundle."""
    blob = torch.load(good, weights_only=True)
    (d / "model").mkdir()
    (d / "model" / "agent.th").write_bytes(_torch_bytes({"fc1.weight": Payload(marker)}))
    (d / "model" / "mixer.th").write_bytes(_torch_bytes(blob["mixer"]))
    config = {"env_args": {"key": "pz-mpe-simple-spread-v3", "time_limit": 25}, "obs_last_action": True,
              "obs_agent_id": True}
    (d / "model" / "config.json").write_text(json.dumps(config))
    (d / "onnx_teacher").mkdir()
    (d / "onnx_teacher" / "agent.onnx").write_bytes(b"not protobuf")
    (d / "onnx_teacher" / "mixer.onnx").write_bytes(b"not protobuf")
    (d / "onnx_teacher" / "spec.json").write_text(json.dumps(blob["spec"]))
    (d / "bundle").mkdir()
    (d / "bundle" / "profile.json").write_text("{not json")


def _targets(d: Path) -> None:
    host = (Path(__file__).parents[1] / "targets" / "profiles" / "host.toml").read_text()
    (d / "malformed.toml").write_text('name = "x"\n[[device]\nkind = "cpu"\n')
    (d / "missing_field.toml").write_text(re.sub(r"(?m)^mem_bandwidth_gbs.*$", "", host))
    (d / "negative_bandwidth.toml").write_text(re.sub(r"(?m)^mem_bandwidth_gbs.*$", "mem_bandwidth_gbs = -5.0", host))
    (d / "wrong_type.toml").write_text(re.sub(r"(?m)^preferred_multiple.*$", 'preferred_multiple = "16"', host))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    from kdcc.api import collect

    d = tmp_path_factory.mktemp("inputs")
    good = make_tiny_teacher(d / "teacher.pt")
    collect(good, d / "data.npz", episodes=4, seed=0)
    marker = d.parent / f"{d.name}-marker"
    _teachers(d, good, marker)
    _datasets(d, d / "data.npz", marker)
    _targets(d)
    _directories(d, good, marker)
    (d / "afile").write_text("a regular file: nothing can be created under it\n")
    return d


def _marker(inputs: Path) -> Path:
    return inputs.parent / f"{inputs.name}-marker"


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    argv: str  # the command line after `kdcc`; {IN} is the inputs directory, {T} the good teacher
    names: str  # what the error line must name (the file or option)
    problem: str  # a regex for the problem it must state
    seed: tuple[tuple[str, bytes], ...] = ()  # files in the case directory beforehand, to be left untouched
    runner: tuple[str, ...] = CLI
    rc: int = 2


def _compile(teacher: str, extra: str = "") -> str:
    return f"compile {teacher} --target host -o OUT --record REC --dataset {{IN}}/data.npz {SMALL} {extra}"


T, IN = "{IN}/teacher.pt", "{IN}"
TEACHERS = {  # file -> (what the message names, the problem)
    "missing": ("missing.pt", "no such file"),
    "empty": ("empty.pt", "file is empty"),
    "truncated": ("truncated.pt", "not a readable torch file"),
    "not_torch": ("text.pt", "not a torch file"),
    "other_format": ("other_format.pt", "not a kdcc teacher file"),
    "other_version": ("other_version.pt", "unsupported teacher format version 2"),
    "pickle_raw": ("pickle_raw.pt", "refused: .* run code"),
    "pickle_torch": ("pickle_torch.pt", "refused: .* run code"),
    "shape": ("shape.pt", r"agent\.fc1\.weight has shape \(7, 26\) but the spec implies"),
    "nan": ("nan.pt", r"agent\.fc2\.bias contains NaN"),
    "inf": ("inf.pt", r"mixer\.V\.2\.bias contains NaN or Inf"),
    "unknown_env": ("env.pt", "unknown environment 'simple_tag_v3'"),
    "obs_sizes": ("obs_sizes.pt", r"spec\.obs_sizes \[3, 11, 18\] but simple_spread_v3 has \[18, 18, 18\]"),
    "widths": ("widths.pt", r"spec\.agent\.widths must be 3 positive integers"),
    "directory": ("teacher_dir", "is a directory"),
}
CASES: dict[str, Case] = {}
for key, (name, problem) in TEACHERS.items():
    path = f"{IN}/{name}"
    CASES[f"teacher-{key}-compile"] = Case(_compile(path), name, problem)
    if key in ("missing", "pickle_raw", "nan"):  # every command loads teachers the same way: a few each
        CASES[f"teacher-{key}-collect"] = Case(f"collect {path} -o out.npz --episodes 2", name, problem)
    if key in ("truncated", "pickle_torch"):
        CASES[f"teacher-{key}-eval"] = Case(f"eval {path} --episodes 2", name, problem)
    if key in ("shape", "unknown_env"):
        CASES[f"teacher-{key}-profile"] = Case(f"profile {path} --target host", name, problem)
CASES["teacher-pickle-eval-normaliser"] = Case(f"eval {T} --episodes 2 --teacher {IN}/pickle_torch.pt",
                                               "pickle_torch.pt", "refused")

DATASETS = {
    "missing_arrays": ("missing_arrays.npz", "missing arrays hidden, q"),
    "wrong_shape": ("wrong_shape.npz", r"array 'obs' has shape \(\d+, 3, 5\), expected \(\d+, 3, 18\)"),
    "wrong_dtype": ("wrong_dtype.npz", "array 'actions' has dtype float32"),
    "nan": ("nan.npz", "array 'obs' contains NaN"),
    "zero_episodes": ("zero_episodes.npz", "zero episodes"),
    "agent_count": ("two_agents.npz", "dataset has 2 agents but the teacher has 3"),
    "no_meta": ("no_meta.npz", "no valid 'meta'"),
    "not_npz": ("not_npz.npz", "not a .npz dataset"),
    "pickled_objects": ("pickled.npz", "not a readable .npz dataset"),
    "missing": ("nothere.npz", "dataset not found"),
}
for key, (name, problem) in DATASETS.items():
    CASES[f"dataset-{key}"] = Case(_compile(T).replace("{IN}/data.npz", f"{IN}/{name}"), name, problem)
CASES["dataset-checked-without-training-passes"] = Case(
    f"compile {T} --target host -o OUT --passes fuse-team --dataset {IN}/zero_episodes.npz",
    "zero_episodes.npz", "zero episodes")

PROFILES = {
    "unknown": ("nope", "nope", "unknown target 'nope'"),
    "malformed": (f"{IN}/malformed.toml", "malformed.toml", "malformed TOML"),
    "missing_field": (f"{IN}/missing_field.toml", "missing_field.toml", "missing field 'mem_bandwidth_gbs'"),
    "negative_bandwidth": (f"{IN}/negative_bandwidth.toml", "negative_bandwidth.toml",
                           "'mem_bandwidth_gbs' must be positive, got -5"),
    "wrong_type": (f"{IN}/wrong_type.toml", "wrong_type.toml", "'preferred_multiple' has the wrong type"),
    "missing_file": (f"{IN}/nothere.toml", "nothere.toml", "target profile not found"),
}
for key, (target, name, problem) in PROFILES.items():
    CASES[f"target-{key}-profile"] = Case(f"profile {T} --target {target}", name, problem)
    if key in ("unknown", "negative_bandwidth"):
        CASES[f"target-{key}-compile"] = Case(_compile(T).replace("--target host", f"--target {target}"), name, problem)
    if key == "malformed":
        CASES[f"target-{key}-calibrate"] = Case(f"calibrate --target {target} -o cal.toml", name, problem)
CASES["target-calibrate-cross"] = Case("calibrate --target orin -o cal.toml", "--target orin", "host CPU profile")

BUDGETS = {
    "unparsable": ("--budget-flops=abc", "--budget-flops", "cannot parse 'abc'"),
    "unparsable_ratio": ("--budget-flops=x", "--budget-flops", "cannot parse 'x'"),
    "zero": ("--budget-flops=0", "--budget-flops", "must be a positive number, got '0'"),
    "zero_ratio": ("--budget-flops=0x", "--budget-flops", "must be a positive number, got '0x'"),
    "negative": ("--budget-flops=-5", "--budget-flops", "must be a positive number, got '-5'"),
    "negative_bytes": ("--budget-bytes=-1k", "--budget-bytes", "must be a positive number"),
    "nan": ("--budget-latency-us=nan", "--budget-latency-us", "must be a positive number"),
}
for key, (option, name, problem) in BUDGETS.items():
    CASES[f"budget-{key}"] = Case(_compile(T).replace("--budget-flops 2x", option), name, problem)
# the smallest student of the tiny teacher costs 5,774 FLOPs per team step (whole team graph) on the host
CASES["budget-unreachable-flops"] = Case(_compile(T, "-q").replace("--budget-flops 2x", "--budget-flops 10"),
                                         "--budget-flops", r"smallest reachable student costs flops [0-9,]+")
CASES["budget-unreachable-latency"] = Case(
    _compile(T, "-q").replace("--budget-flops 2x", "--budget-latency-us 0.001"),
    "--budget-latency-us",
    r"asked --budget-latency-us 0\.001 per robot \(one agent step\); the smallest reachable student costs latency_us \d")

OPTIONS = {
    "opt-unknown-pass": ("--opt distil.steps=5", "--opt distil.steps", "no pass named 'distil'"),
    "opt-not-a-number": ("--opt distill.steps=many", "--opt distill.steps", "not a number"),
    "unknown-pass": ("--passes fuse-team,nope", "nope", "unknown pass 'nope'"),
}
for key, (option, name, problem) in OPTIONS.items():
    CASES[f"option-{key}"] = Case(_compile(T, option), name, problem)
CASES["option-eval-episodes"] = Case(f"eval {T} --episodes 0", "--episodes", "must be positive")
CASES["option-collect-epsilon"] = Case(f"collect {T} -o out.npz --epsilon 2", "--epsilon", r"must be in \[0, 1\]")
CASES["option-calibrate-calls"] = Case("calibrate -o cal.toml --calls 0", "--calls", "must be positive")
CASES["usage-missing-teacher"] = Case("compile --target host", "teacher", r"arguments are required.*see kdcc compile --help")
CASES["usage-not-an-int"] = Case(f"eval {T} --episodes many", "--episodes", "invalid int value: 'many'")
CASES["option-pareto-without-prune"] = Case(_compile(T, "--pipeline exact --pareto"), "--pareto",
                                            "must have prune followed by distill")
CASES["option-config-for-a-bundle"] = Case("eval BUNDLE --config cfg.json", "--config cfg.json",
                                           "is a compiled bundle", (("BUNDLE/profile.json", b"{}"),))

OLD = tuple((f"OUT/{k}", v) for k, v in OLD_BUNDLE.items())
OUTPUTS = {
    "existing-bundle": (_compile(T), "OUT", "exists and is not empty .*--force", OLD),
    "existing-record": (_compile(T), "REC", "exists and is not empty .*--force", ()),
    "is-a-file": (_compile(T), "OUT", "exists and is not a directory", (("OUT", b"a file\n"),)),
    "under-a-file": (_compile(T).replace("-o OUT", f"-o {IN}/afile/out"), "afile/out", "is not a directory", ()),
    "record-under-a-file": (_compile(T).replace("--record REC", f"--record {IN}/afile/rec"), "afile/rec",
                            "is not a directory", ()),
    "proc": (_compile(T).replace("-o OUT", "-o /proc/kdcc-out"), "/proc/kdcc-out", "cannot write", ()),
    "dump-ir-under-a-file": (_compile(T, f"--dump-ir {IN}/afile/ir"), "afile/ir", "Not a directory", ()),
    "collect-under-a-file": (f"collect {T} -o {IN}/afile/out.npz --episodes 2", "afile/out.npz",
                             "is not a directory", ()),
    "collect-to-a-directory": (f"collect {T} -o out.npz --episodes 2", "out.npz", "is a directory",
                               (("out.npz/keep", b"keep\n"),)),
    "calibrate-under-a-file": (f"calibrate -o {IN}/afile/cal.toml", "afile/cal.toml", "is not a directory", ()),
    "eval-not-a-bundle": (f"eval {IN}", IN, "is a directory", ()),
}
for key, (argv, name, problem, seed) in OUTPUTS.items():
    if key == "existing-record":
        seed = tuple((f"REC/{k}", v) for k, v in OLD_RECORD.items())
    CASES[f"output-{key}"] = Case(argv, name, problem, seed)

CASES["check-missing-record"] = Case(f"check {IN}/nothere --against {IN}/nothere2", "nothere", "no such directory")
CASES["check-not-a-record"] = Case(f"check {IN} --against {IN}", IN, "not a record")

# Teachers in other forms, and the commands that came later (convert, inspect).
CASES["model-dir-pickle-compile"] = Case(_compile(f"{IN}/model"), "agent.th", "refused: .* run code")
CASES["model-dir-pickle-convert"] = Case(f"convert {IN}/model -o out.pt", "agent.th", "refused: .* run code")
CASES["onnx-teacher-corrupt-eval"] = Case(f"eval {IN}/onnx_teacher --episodes 2", "agent.onnx",
                                          "not a loadable ONNX model")
CASES["bundle-corrupt-eval"] = Case(f"eval {IN}/bundle --episodes 2", "bundle", "not a kdcc bundle")
CASES["bundle-corrupt-inspect"] = Case(f"inspect {IN}/bundle", "profile.json", "not a readable JSON file")
CASES["inspect-pickle"] = Case(f"inspect {IN}/pickle_torch.pt", "pickle_torch.pt", "refused: .* run code")
CASES["inspect-dataset-nan"] = Case(f"inspect {IN}/nan.npz", "nan.npz", "array 'obs' contains NaN")
CASES["inspect-missing"] = Case(f"inspect {IN}/nothere.pt", "nothere.pt", "no such file")
CASES["convert-pickle"] = Case(f"convert {IN}/pickle_raw.pt -o out.pt", "pickle_raw.pt", "refused: .* run code")
CASES["convert-under-a-file"] = Case(f"convert {T} -o {IN}/afile/out.pt", "afile/out.pt", "is not a directory")
CASES["convert-onnx-existing"] = Case(f"convert {T} --to onnx -o OUT", "OUT", "not an empty directory .*--force",
                                      OLD)

# A compile that fails in a late pass (after distillation) leaves nothing behind, and an old bundle as it was.
FORCED = _compile(T, "-q --force")
CASES["halfway-error-fresh"] = Case(_compile(T, "-q"), "fold-constants", "simulated failure",
                                    runner=("-c", FAIL_LATE, "error"))
CASES["halfway-error-existing"] = Case(FORCED, "fold-constants", "simulated failure",
                                       OLD + tuple((f"REC/{k}", v) for k, v in OLD_RECORD.items()),
                                       runner=("-c", FAIL_LATE, "error"))
CASES["halfway-crash-existing"] = Case(FORCED, "fold-constants", "simulated failure", OLD,
                                       runner=("-c", FAIL_LATE, "crash"), rc=1)


# --------------------------------------------------------------------------- running


def _snapshot(d: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(d)): (p.read_bytes() if p.is_file() else None) for p in sorted(d.rglob("*"))}


def _argv(case: Case, inputs: Path) -> list[str]:
    return [sys.executable, *case.runner, *shlex.split(case.argv.replace("{IN}", str(inputs)))]


def _run(argv: list[str], cwd: Path, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env or ENV, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def inputs_before(inputs) -> dict[str, bytes | None]:
    return _snapshot(inputs)


@pytest.fixture(scope="module")
def results(inputs, inputs_before, tmp_path_factory, request):
    """Start every selected case at once (two at a time, each forked from a server that has imported the CLI);
    a test waits only for its own."""
    selected = [item.callspec.params["case_id"] for item in request.session.items
                if "case_id" in getattr(getattr(item, "callspec", None), "params", {})]
    root = tmp_path_factory.mktemp("cases")
    started = {}
    pool, cli = ThreadPoolExecutor(max_workers=2), ForkedCli(2, ENV)
    for case_id in selected:
        case = CASES[case_id]
        cwd = root / case_id
        cwd.mkdir()
        for rel, data in case.seed:
            (cwd / rel).parent.mkdir(parents=True, exist_ok=True)
            (cwd / rel).write_bytes(data)
        started[case_id] = (cwd, _snapshot(cwd), pool.submit(cli.run, _argv(case, inputs)[1:], cwd))
    yield started
    pool.shutdown(cancel_futures=True)
    cli.close()


def assert_refused(r: subprocess.CompletedProcess, command: str, names: str, problem: str, rc: int = 2) -> str:
    """Exit `rc`, one line on stderr naming `names` and matching `problem`, no traceback."""
    assert r.returncode == rc, r.stderr
    if rc != 2:
        return r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    line = lines[0]
    assert line.startswith(f"kdcc {command}: error: "), line
    assert names in line, line
    assert re.search(problem, line), line
    assert r.stdout == "", r.stdout
    return line


@pytest.mark.parametrize("case_id", list(CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case_id, results, inputs):
    case = CASES[case_id]
    cwd, before, future = results[case_id]
    r = future.result()
    command = shlex.split(case.argv)[0]
    assert_refused(r, command, case.names.replace("{IN}", str(inputs)), case.problem, case.rc)
    assert _snapshot(cwd) == before, "the command wrote (or removed) something"
    assert not _marker(inputs).exists(), "a pickle payload ran"
    assert not list(inputs.glob(".*")), "temp files left beside an output path"


def test_bad_inputs_leave_the_inputs_alone(results, inputs, inputs_before):
    for _, _, future in results.values():
        future.result()
    assert _snapshot(inputs) == inputs_before


# --------------------------------------------------------------------------- Ctrl-C


def _interrupt_compile(cwd: Path, inputs: Path, extra: str = "", after: str = "] prune",
                       steps: int = 1_000_000, delay: float = 0.0) -> subprocess.CompletedProcess:
    """Start a compile, wait for the progress line containing `after` (by default prune's: distillation,
    of `steps` steps, is then under way) and `delay` seconds more, press Ctrl-C, wait for the process.

    Its output goes to files, not pipes, and only the process itself is waited for: a child it left
    running (a C++ compiler of an interrupted build) must not hold the test up."""
    argv = [sys.executable, *CLI, *shlex.split(
        f"compile {inputs}/teacher.pt --target host -o OUT --record REC --dataset {inputs}/data.npz "
        f"--budget-flops 2x --keep off --opt distill.steps={steps} --opt approximate-mixer.steps=20 {extra}")]
    with tempfile.TemporaryDirectory() as logs:
        out_path, err_path = Path(logs) / "stdout", Path(logs) / "stderr"
        with open(out_path, "w") as out, open(err_path, "w") as err:
            proc = subprocess.Popen(argv, cwd=cwd, env={**ENV, "PYTHONFAULTHANDLER": "1"}, stdout=out, stderr=err)
        try:
            deadline = time.monotonic() + 300
            while after not in err_path.read_text():
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"compile ended or stalled before {after!r}: {err_path.read_text()}")
                time.sleep(0.05)
            time.sleep(delay)
            assert proc.poll() is None, "the compile finished before Ctrl-C: nothing was interrupted"
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:  # show where it hangs: faulthandler dumps every thread on SIGABRT
                proc.send_signal(signal.SIGABRT)
                proc.wait(timeout=30)
                pytest.fail(f"no exit within 120 s of Ctrl-C; stacks:\n{err_path.read_text()}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return subprocess.CompletedProcess(argv, proc.returncode, out_path.read_text(), err_path.read_text())


def test_ctrl_c_during_compile_leaves_no_output(tmp_path, inputs):
    r = _interrupt_compile(tmp_path, inputs)
    assert r.returncode == 130, r.stderr
    assert r.stderr.splitlines()[-1] == "kdcc compile: interrupted"
    assert "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == [], "partial output or temp directories left behind"


def test_ctrl_c_while_tvm_builds_leaves_no_output(tmp_path, inputs):
    # the last pass's line is printed just before lowering, the TVM build and verification begin (no certify stage
    # in between: with one, this Ctrl-C lands in it, and leaves nothing either)
    r = _interrupt_compile(tmp_path, inputs, "--certify-episodes 0", after="[09] eliminate-dead-code", steps=20,
                           delay=0.5)
    assert r.returncode == 130, r.stderr
    assert r.stderr.splitlines()[-1] == "kdcc compile: interrupted"
    assert "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == [], "partial output or temp directories left behind"


def test_ctrl_c_during_compile_leaves_an_existing_bundle_untouched(tmp_path, inputs):
    for rel, data in OLD_BUNDLE.items():
        (tmp_path / "OUT" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "OUT" / rel).write_bytes(data)
    before = _snapshot(tmp_path)
    r = _interrupt_compile(tmp_path, inputs, "--force")
    assert r.returncode == 130, r.stderr
    assert _snapshot(tmp_path) == before


# --------------------------------------------------------------------------- atomic writes


def test_a_failed_tree_write_keeps_the_old_tree_and_leaves_no_temp(tmp_path, monkeypatch):
    out = tmp_path / "bundle"
    atomic_write_tree(out, OLD_BUNDLE)
    before = _snapshot(tmp_path)
    real_write, writes = Path.write_bytes, []

    def write_then_ctrl_c(self, data):  # Ctrl-C arrives while the second file is written
        writes.append(self)
        if len(writes) == 2:
            raise KeyboardInterrupt
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_tree(out, {"a": b"1", "b": b"2", "c": b"3"})
    monkeypatch.undo()
    assert _snapshot(tmp_path) == before


def test_a_failed_rename_puts_the_old_tree_back(tmp_path, monkeypatch):
    out = tmp_path / "bundle"
    atomic_write_tree(out, OLD_BUNDLE)
    before = _snapshot(tmp_path)
    real_rename = Path.rename

    def rename(self, target):
        if Path(target) == out and self.name.startswith(".bundle.") and ".old." not in self.name:
            raise OSError(28, "No space left on device")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    from kdcc.core import fileio
    from kdcc.core.errors import KdccError

    monkeypatch.setattr(fileio, "_exchange", lambda a, b: False)  # where no atomic exchange exists: two renames
    with pytest.raises(KdccError, match="bundle: cannot write"):
        atomic_write_tree(out, {"new": b"new"})
    monkeypatch.undo()
    assert _snapshot(tmp_path) == before


def test_a_failed_file_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "data.npz"
    path.write_bytes(b"old")
    monkeypatch.setattr(Path, "replace", lambda self, target: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(path, b"new")
    monkeypatch.undo()
    assert _snapshot(tmp_path) == {"data.npz": b"old"}


# --------------------------------------------------------------------------- reproducibility


def _threads(n: int) -> dict[str, str]:
    return {**ENV, "OMP_NUM_THREADS": str(n)}


def test_collect_twice_gives_identical_bytes(tmp_path, inputs):
    argv = [sys.executable, *CLI, "collect", str(inputs / "teacher.pt"), "--episodes", "3", "--seed", "7", "-q"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        a, b = pool.map(lambda n: _run([*argv, "-o", f"run{n}.npz"], tmp_path, _threads(n)), (1, 2))
    assert a.returncode == b.returncode == 0, a.stderr + b.stderr
    assert (tmp_path / "run1.npz").read_bytes() == (tmp_path / "run2.npz").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run1.npz", "run2.npz"]


def test_compile_twice_gives_identical_report_and_record(tmp_path, inputs):
    """--no-build: the passes, report.md and record/; one run on one thread, the other on two."""
    def compile_in(n):
        d = tmp_path / f"run{n}"
        d.mkdir()
        argv = [sys.executable, *CLI, *shlex.split(_compile(str(inputs / "teacher.pt"), "--no-build -q")
                                                   .replace("{IN}", str(inputs)))]
        return _run(argv, d, _threads(n))

    with ThreadPoolExecutor(max_workers=2) as pool:
        for r in pool.map(compile_in, (1, 2)):
            assert r.returncode == 0, r.stderr
    a, b = _snapshot(tmp_path / "run1"), _snapshot(tmp_path / "run2")
    assert sorted(a) == sorted(b)
    assert "OUT/report.md" in a and "REC/manifest.json" in a
    differ = sorted(k for k in a if a[k] != b[k])
    assert differ == ["REC/timings.json"], differ  # wall-clock times, kept out of the bundle on purpose


@pytest.mark.slow
def test_compile_twice_gives_an_identical_bundle(tmp_path, inputs):
    """The whole bundle, TVM libraries included, for the host target (budget 1x: the student stays recurrent);
    the two compiles run side by side, one on one thread, the other on two."""
    def compile_in(n):
        d = tmp_path / f"run{n}"
        d.mkdir()
        line = _compile(str(inputs / "teacher.pt"), "-q").replace("{IN}", str(inputs)).replace(" --record REC", "")
        argv = [sys.executable, *CLI, *shlex.split(line.replace("--budget-flops 2x", "--budget-flops 1x"))]
        return _run(argv, d, _threads(n))

    with ThreadPoolExecutor(max_workers=2) as pool:
        for r in pool.map(compile_in, (1, 2)):
            assert r.returncode == 0, r.stderr
    a, b = _snapshot(tmp_path / "run1"), _snapshot(tmp_path / "run2")
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_swallowed_by_a_finaliser_still_stops_the_work(tmp_path):
    # Python prints and drops a KeyboardInterrupt raised inside __del__; the flag the CLI's handler sets
    # makes the next progress step, pass or final rename raise it again.
    from kdcc.core import interrupt, progress

    interrupt.install_interrupt_handler()
    try:
        class Finaliser:
            def __del__(self):
                signal.raise_signal(signal.SIGINT)

        Finaliser()  # the KeyboardInterrupt is raised in __del__ and dropped: execution goes on here
        with pytest.raises(KeyboardInterrupt), progress.progress_bar("work", 10) as advance:
            advance()
        with pytest.raises(KeyboardInterrupt):
            atomic_write_bytes(tmp_path / "out.bin", b"data")
        assert list(tmp_path.iterdir()) == []
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        interrupt._interrupted = False
