"""compile --tune and calibrate through a TVM RPC tracker and server on 127.0.0.1: the probes timed
on the "board", the team step tuned there and its records reused by a rebuild, and the calibrated
profile's estimates against `kdcc measure`."""

from __future__ import annotations

import io
import json
import os
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from kdcc.cli.app import main
from kdcc.targets.bundle.direct_stages import NOT_ASKED
from kdcc.targets.profile import load_profile
from tests.conftest import make_tiny_teacher
from tests.targets._rpc import KEY

TRIALS = 6


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A tuning cache of this module's own ($KDCC_CACHE_DIR; a host bundle needs nothing else from it)."""
    old = os.environ.get("KDCC_CACHE_DIR")
    os.environ["KDCC_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield Path(os.environ["KDCC_CACHE_DIR"])
    if old is None:
        del os.environ["KDCC_CACHE_DIR"]
    else:
        os.environ["KDCC_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, tracker) -> Path:
    out = tmp_path_factory.mktemp("cal") / "board.toml"
    assert main(["calibrate", "--target", "host", "-o", str(out), "--calls", "200", "--rpc-tracker", tracker,
                 "--rpc-key", KEY, "-q"]) == 0
    return out


def test_calibrate_through_rpc_writes_a_loadable_profile(calibrated, tracker):
    text = calibrated.read_text()
    assert f"through rpc tracker {tracker} key {KEY}" in text.splitlines()[0]
    device = load_profile(str(calibrated)).device()
    assert device.kind == "cpu" and 0 < device.call_overhead_us < 100 and 0 < device.kernel_overhead_us < 100
    assert device.peak_gflops["fp32"] > 0.1 and device.mem_bandwidth_gbs > 0.1
    assert text.count("# calibrated") == 3


def _records(entry: Path) -> int:
    return len((entry / "database_tuning_record.json").read_text().splitlines())


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, tracker, calibrated, cache):
    """`compile --tune` on the calibrated "board" through the tracker, once for this module's tests:
    (teacher, bundle, profile.json's "tuning" as compiled, the compile's stdout). Without the VM-free
    libraries (--no-direct): what is tuned and measured here are the VM libraries."""
    d = tmp_path_factory.mktemp("tuned")
    teacher = make_tiny_teacher(d / "teacher.pt", seed=3)
    out = d / "bundle"
    stdout = io.StringIO()
    with redirect_stdout(stdout):
        rc = main(["compile", str(teacher), "--target", str(calibrated), "--pipeline", "exact", "-o", str(out),
                   "--tune", str(TRIALS), "--rpc-tracker", tracker, "--rpc-key", KEY, "--certify-episodes", "0",
                   "--no-direct", "--json"])
    assert rc == 0
    doc = json.loads((out / "profile.json").read_text())
    assert doc["libraries"][0]["direct"] == {"skipped": NOT_ASKED} and not list(out.rglob("*.direct.so"))
    return teacher, out, doc["tuning"], stdout.getvalue()


def test_tune_through_rpc_records_the_tuning_and_caches_it(tuned, tracker, cache):
    _, out, tuning, stdout = tuned
    json.loads(stdout)  # MetaSchedule's logging kept off stdout
    assert 0 < tuning["new_trials"] <= TRIALS and tuning["trials"] == tuning["new_trials"]
    assert tuning["how"] == f"rpc tracker {tracker} key {KEY}" and tuning["device"] == "cpu"
    assert all("matmul" in t for t in tuning["tasks"])
    assert tuning["untuned_us"] > 0 and tuning["tuned_us"] > 0
    assert tuning["max_abs_diff"] <= 1e-5  # the library built with the records computes what the untuned one does
    assert "Tuning (--tune)" in (out / "report.md").read_text()
    assert _records(cache / "tune" / tuning["key"]) == tuning["trials"]


def test_the_calibrated_estimates_match_the_board_measurements(tuned, tracker, capsys):
    """Loose: a shared 2-core machine."""
    _, out, _, _ = tuned
    assert main(["measure", str(out), "--rpc-tracker", tracker, "--rpc-key", KEY, "--repeat", "200", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["libraries"]
    ratios = {r["name"]: r["estimate_us"] / r["median_us"] for r in rows if r["estimate_us"] is not None}
    print("estimate / measured:", json.dumps({r["name"]: [r["estimate_us"], r["median_us"]] for r in rows}))
    assert {"team", "agent"} <= set(ratios) and all(1 / 3 < v < 3 for v in ratios.values()), ratios


def test_a_rebuild_reuses_the_cached_records(tuned, tracker, calibrated, cache, capsys):
    """The same step for the same target, tuned again: the records are reused, no trial runs."""
    from kdcc.flow.driver import CompileOptions, run_passes
    from kdcc.targets.tvm.rpc import Remote
    from kdcc.targets.tvm.tune import tune_team_step

    teacher, _, tuning, _ = tuned
    entry = cache / "tune" / tuning["key"]
    result = run_passes(str(teacher), str(calibrated), CompileOptions(pipeline="exact"))
    again = tune_team_step(result.program.team_module(), result.program.spec, result.profile, TRIALS,
                           Remote("127.0.0.1", int(tracker.rsplit(":", 1)[1]), KEY))
    assert again.new_trials == 0 and again.key == tuning["key"] and _records(entry) == tuning["trials"]
    assert f"reusing {tuning['trials']} tuning records" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--tune", "4"], "without -o"),
    (["--tune", "-1", "-o", "{out}"], "positive"),
    (["--rpc", "127.0.0.1:9090", "-o", "{out}"], "give --tune N"),
    (["--target", "orin", "--tune", "4", "-o", "{out}"], "--rpc-tracker HOST:PORT --rpc-key KEY"),
])
def test_tune_refusals(tmp_path, capsys, argv, message):
    teacher = make_tiny_teacher(tmp_path / "teacher.pt")
    argv = [a.replace("{out}", str(tmp_path / "out")) for a in argv]
    assert main(["compile", str(teacher), "--pipeline", "exact", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_a_damaged_tuning_cache_entry_is_one_line(tmp_path):
    from kdcc.core.errors import KdccError
    from kdcc.targets.tvm.tune import open_database

    (tmp_path / "database_workload.json").write_text('["not a workload"\n{')
    (tmp_path / "database_tuning_record.json").write_text("\x00\x01")
    with pytest.raises(KdccError, match="tuning cache entry is unreadable.*delete it"):
        open_database(tmp_path)
