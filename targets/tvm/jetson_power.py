"""Energy per step on a Jetson from its INA3221 power monitors, read through hwmon sysfs.

The Orin's INA3221 chips report each rail's bus voltage and current as hwmon files, which
is what tegrastats and jtop read:

    /sys/bus/i2c/drivers/ina3221/<bus>-<addr>/hwmon/hwmon<k>/in<c>_label   rail name (VDD_CPU_CV ...)
                                                            in<c>_input   bus voltage, mV
                                                            curr<c>_input current, mA

A channel counts when it has a label (not "NC") and both readings. A thread samples every
rail while a step runs and integrates P = V·I (trapezoids) over the window; energy per step is
that energy over the number of calls. The chips average over ~ms, so the window must be long
(`measure` runs a ≥ 1 s window for this, apart from its latency samples). `total` sums the
rails except input rails (`VIN*`, which already contain the others).

Untested on a device: the tests lay out a fake sysfs tree with these names.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Rail", "find_rails", "PowerSampler", "SYSFS_ROOT"]

SYSFS_ROOT = Path("/sys/bus/i2c/drivers")


@dataclass(frozen=True)
class Rail:
    label: str
    voltage: Path  # in<c>_input, mV
    current: Path  # curr<c>_input, mA

    def watts(self) -> float:
        return float(self.voltage.read_text()) * float(self.current.read_text()) * 1e-6


def find_rails(root: Path = SYSFS_ROOT) -> list[Rail]:
    """Every labelled INA3221 channel under `root` (empty when this is not a Jetson)."""
    rails = []
    for hwmon in sorted(Path(root).glob("ina3221*/*/hwmon/hwmon*")):
        for label in sorted(hwmon.glob("in*_label")):
            channel = re.fullmatch(r"in(\d+)_label", label.name)
            if channel is None:
                continue
            name = label.read_text().strip()
            volt, curr = hwmon / f"in{channel[1]}_input", hwmon / f"curr{channel[1]}_input"
            if name and name.upper() != "NC" and volt.is_file() and curr.is_file():
                rails.append(Rail(name, volt, curr))
    return rails


class PowerSampler:
    """`with PowerSampler(rails) as s: run()`, then `s.energy_j` (rail -> joules) and `s.seconds`."""

    def __init__(self, rails: list[Rail], period_s: float = 0.005):
        self.rails, self.period_s = rails, period_s
        self.energy_j: dict[str, float] = {}
        self.seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> tuple[float, list[float]]:
        return time.perf_counter(), [r.watts() for r in self.rails]

    def _run(self) -> None:
        energy = [0.0] * len(self.rails)
        t0, last = self._read()
        t_prev = t0
        while True:
            stopping = self._stop.wait(self.period_s)
            t, now = self._read()
            energy = [e + 0.5 * (a + b) * (t - t_prev) for e, a, b in zip(energy, last, now)]
            t_prev, last = t, now
            if stopping:
                break
        self.seconds = t_prev - t0
        self.energy_j = {r.label: e for r, e in zip(self.rails, energy)}

    def __enter__(self) -> "PowerSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def per_step(self, calls: int) -> dict[str, float]:
        """µJ per call for every rail, their mean W, and `total` (rails other than VIN*)."""
        uj = {label: e / calls * 1e6 for label, e in self.energy_j.items()}
        total = sum(v for k, v in uj.items() if not k.upper().startswith("VIN"))
        watts = sum(e for k, e in self.energy_j.items() if not k.upper().startswith("VIN")) / max(self.seconds, 1e-9)
        return {"energy_uj_per_step": round(total, 4), "mean_power_w": round(watts, 4),
                "rails_uj_per_step": {k: round(v, 4) for k, v in sorted(uj.items())}, "window_s": round(self.seconds, 4)}
