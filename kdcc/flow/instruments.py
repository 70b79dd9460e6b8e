"""Instruments the pass manager calls after each pass (like TVM's pass instruments)."""

from __future__ import annotations

from pathlib import Path

from kdcc.core.fileio import atomic_write_bytes
from kdcc.ir.program import Program
from kdcc.passes.manager import PassRecord

__all__ = ["DumpIR", "ProgressLine"]


class DumpIR:
    """`--dump-ir DIR`: the program text after each pass, as `NN_<pass>.txt` (NN = position).

    A debugging aid, so unlike the bundle it is written as the passes go: when a pass fails, the
    texts of the passes before it are there to read. Each file is written whole (temp + rename)."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def __call__(self, record: PassRecord, program: Program) -> None:
        atomic_write_bytes(self.dir / f"{record.index:02d}_{record.name}.txt", record.text.encode())


class ProgressLine:
    """One line per pass on stderr: what it did to cost and fidelity."""

    def __init__(self, console):
        self.console = console

    def __call__(self, r: PassRecord, program: Program) -> None:
        m, f = r.metrics, r.fidelity
        self.console.print(f"  [{r.index:02d}] {r.name:<22} {r.wall_s:7.2f}s  {m['flops']:>11,} FLOPs  "
                           f"{m['param_bytes']:>10,} B  {m['latency_us']:8.2f} µs  "
                           f"max|ΔQ| {f['max_abs_dq']:.3g}  agree {f['action_agreement']:.3f}",
                           highlight=False)
