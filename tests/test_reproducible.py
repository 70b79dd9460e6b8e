"""The same bits on every x86-64 CPU: the golden compile under each CPU level this machine has.

A machine with another CPU runs torch's kernels at another level (ATen's `default`,
`avx2`, `avx512`) and MKL on another code path; forcing the level here is the stand-in
for that machine that CI can run. kdcc pins its numerics (kdcc/core/numerics.py), so the
golden compile gives the committed record byte for byte at every level; with the pin
off (`KDCC_NUMERICS=native`) the levels do give different records, which is what makes
the stand-in real.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kdcc.core.numerics import MODE_ENV, PINNED, numerics_provenance
from kdcc.reports.record_compare import compare_records, load_record, record_tree
from tests.golden.make_golden import RECORD, compile_args

REPO = Path(__file__).resolve().parents[1]
_LEVELS = ("default", "avx2", "avx512")


def _native_level() -> str:
    """The highest level torch's kernels run at here, asked of a process that kdcc does not pin."""
    env = {**os.environ, "KDCC_NUMERICS": "native"}
    env.pop("ATEN_CPU_CAPABILITY", None)
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                         env=env, capture_output=True, text=True, check=True, timeout=120)
    return out.stdout.strip().lower()


_NATIVE = _native_level()
LEVELS = _LEVELS[:_LEVELS.index(_NATIVE) + 1] if _NATIVE in _LEVELS else ("default",)
_MKL = {"default": "SSE4_2", "avx2": "AVX2", "avx512": "AVX512"}  # MKL's names for the same levels


def _golden_compiles(tmp_path: Path, runs: dict[str, dict[str, str]]) -> dict[str, Path]:
    """The golden compile once per run (name -> extra environment), two processes at a time."""
    out, pending = {}, []
    for name, extra in runs.items():
        out[name] = tmp_path / name
        env = {**os.environ, **extra}
        pending.append(subprocess.Popen([sys.executable, "-m", "kdcc", *compile_args(out[name])], cwd=REPO,
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        if len(pending) == 2 or name == list(runs)[-1]:
            for p in pending:
                log, _ = p.communicate(timeout=300)
                assert p.returncode == 0, log
            pending = []
    return out


def _files(record: Path) -> dict[str, bytes]:
    return record_tree(load_record(record))


def test_this_process_is_pinned():
    """Imported first (tests/conftest.py), kdcc pinned torch's kernels and MKL before torch ran anything."""
    assert torch.backends.cpu.get_cpu_capability() == PINNED["ATEN_CPU_CAPABILITY"].upper()
    assert numerics_provenance()["mkl_cbwr"] == "COMPATIBLE" and numerics_provenance()["mode"] == "reproducible"


@pytest.mark.skipif(len(LEVELS) < 2, reason="this CPU has one torch kernel level only")
def test_golden_record_is_the_same_bytes_at_every_cpu_level(tmp_path):
    runs = {f"pinned-{level}": {"ATEN_CPU_CAPABILITY": level, "MKL_ENABLE_INSTRUCTIONS": _MKL[level]}
            for level in LEVELS}
    runs |= {f"native-{level}": {MODE_ENV: "native", "ATEN_CPU_CAPABILITY": level} for level in (LEVELS[0], LEVELS[-1])}
    records = _golden_compiles(tmp_path, runs)
    golden = _files(RECORD)
    for level in LEVELS:
        record = records[f"pinned-{level}"]
        assert _files(record) == golden, f"the golden compile at {level} differs from tests/golden/record"
        assert compare_records(record, RECORD).first is None
    # without the pin the levels disagree: the trained passes' bytes move with the CPU
    low, high = (_files(records[f"native-{level}"]) for level in (LEVELS[0], LEVELS[-1]))
    moved = sorted(k for k in low if low[k] != high.get(k))
    assert any(k.startswith("03_approximate-mixer/") for k in moved), moved
