"""kdcc measure: through a TVM RPC tracker and server on 127.0.0.1, locally, the refusal of another
machine's bundle, and the Jetson power reader on a fake INA3221 sysfs tree."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from kdcc.cli.app import main
from kdcc.targets.bundle.integrity import check_bundle, update_manifest
from tests.targets._rpc import KEY


def _copy(host_bundle, tmp_path) -> Path:
    out = tmp_path / "bundle"
    shutil.copytree(host_bundle("spread"), out)
    return out


def test_measure_through_rpc_tracker(host_bundle, tmp_path, tracker, capsys):
    bundle = _copy(host_bundle, tmp_path)
    rc = main(["measure", str(bundle), "--rpc-tracker", tracker, "--rpc-key", KEY, "--repeat", "50", "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    rows = json.loads(out.out)["libraries"]
    assert {r["name"] for r in rows} == {"team", "agent", "monitor"}
    doc = json.loads((bundle / "profile.json").read_text())
    team = doc["libraries"][0]["measured"]
    assert team["how"] == f"rpc tracker {tracker} key {KEY}" and team["calls"] == 50
    assert 0 < team["median_us"] <= team["p99_us"] < 10_000
    assert team["estimate_us"] == doc["cost"]["vm_latency_us.cpu"] > doc["cost"]["latency_us.cpu"]  # the VM is timed
    for robot in doc["robots"]:
        assert robot["measured"]["cpu"]["median_us"] > 0


def test_measure_locally_and_refuses_another_machine(host_bundle, tmp_path, capsys):
    bundle = _copy(host_bundle, tmp_path)
    assert main(["measure", str(bundle), "--repeat", "20", "-q"]) == 0
    assert json.loads((bundle / "profile.json").read_text())["libraries"][0]["measured"]["how"] == "local"
    check_bundle(bundle)  # the manifest follows the measured profile.json: eval still opens the bundle
    doc = json.loads((bundle / "profile.json").read_text())
    for lib in doc["libraries"]:
        lib["arch"] = "aarch64"
    (bundle / "profile.json").write_text(json.dumps(doc))
    update_manifest(bundle, "profile.json")  # an aarch64 bundle as kdcc would have written it
    capsys.readouterr()
    assert main(["measure", str(bundle)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "built for aarch64" in err and "--rpc-tracker HOST:PORT --rpc-key KEY" in err


def test_rpc_options_are_checked(host_bundle, capsys):
    assert main(["measure", "nowhere", "--rpc-tracker", "127.0.0.1:9190"]) == 2
    assert "--rpc-key" in capsys.readouterr().err
    assert main(["measure", "nowhere", "--rpc", "127.0.0.1"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err


def _fake_sysfs(root: Path, rails: dict[int, tuple[str, int, int]]) -> Path:
    hwmon = root / "ina3221" / "1-0040" / "hwmon" / "hwmon3"
    hwmon.mkdir(parents=True)
    for channel, (label, mv, ma) in rails.items():
        (hwmon / f"in{channel}_label").write_text(label + "\n")
        (hwmon / f"in{channel}_input").write_text(f"{mv}\n")
        (hwmon / f"curr{channel}_input").write_text(f"{ma}\n")
    (hwmon / "in7_input").write_text("5000\n")  # a sum channel without label or current: ignored
    return root


def test_power_reader_on_a_fake_ina3221_tree(tmp_path):
    from kdcc.targets.tvm.jetson_power import PowerSampler, find_rails

    root = _fake_sysfs(tmp_path, {1: ("VDD_GPU_SOC", 5000, 400), 2: ("VDD_CPU_CV", 5000, 200),
                                  3: ("VIN_SYS_5V0", 5000, 1600)})
    (tmp_path / "ina3221" / "1-0040" / "hwmon" / "hwmon3" / "in4_label").write_text("NC\n")
    rails = find_rails(root)
    assert [r.label for r in rails] == ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"]
    assert rails[1].watts() == pytest.approx(1.0)
    with PowerSampler(rails, period_s=0.002) as s:
        time.sleep(0.2)
    out = s.per_step(calls=1000)
    assert out["mean_power_w"] == pytest.approx(3.0, rel=1e-6)  # 2 W + 1 W; the VIN input rail is not added
    assert out["energy_uj_per_step"] == pytest.approx(3.0 * s.seconds / 1000 * 1e6, rel=1e-6)
    assert out["rails_uj_per_step"]["VIN_SYS_5V0"] == pytest.approx(8.0 * s.seconds / 1000 * 1e6, rel=1e-6)
    assert find_rails(tmp_path / "absent") == []


def test_measure_with_power_on_fake_rails(host_bundle, tmp_path):
    from kdcc.targets.bundle.measure import measure_bundle

    bundle = _copy(host_bundle, tmp_path)
    root = _fake_sysfs(tmp_path / "sys", {2: ("VDD_CPU_CV", 5000, 200)})
    rows = measure_bundle(bundle, repeat=20, power=True, sysfs_root=root)
    team = next(r for r in rows if r["name"] == "team")
    assert team["power"]["mean_power_w"] == pytest.approx(1.0)
    assert team["power"]["energy_uj_per_step"] > 0
