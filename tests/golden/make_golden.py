"""Regenerate the golden records of the default pipeline: tests/golden/{teacher.pt, data.npz, record/}
and, for a heterogeneous team, tests/golden/speaker_listener/{teacher.pt, data.npz, record/}.

    python tests/golden/make_golden.py            # from the repository root

The teacher is the tests' tiny QMIX teacher (3 agents, GRU width 64, seed 0),
the dataset 6 ε-greedy episodes of it (seed 1), and the compile is the default
pipeline with the default budget (30× fewer FLOPs: prune keeps 8 units) and
training shortened by COMPILE_OPTIONS so the whole compile takes seconds. The
speaker–listener golden does the same for a tiny speaker–listener teacher (GRU
width 32, seed 0), whose student has one network per agent.
tests/test_regression.py recompiles with exactly these arguments and runs
`kdcc check` against record/: any change that moves a pass fails there, with
the pass named. Regenerate only on purpose, and review the diff
(`kdcc check NEW --against tests/golden/record` shows it pass by pass before
`--update`). Everything runs single-threaded with kdcc's pinned CPU numerics, as
the tests do, so the records are the same bytes on any x86-64 CPU
(tests/test_reproducible.py compiles them under every CPU level this machine has).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TEACHER = HERE / "teacher.pt"
DATASET = HERE / "data.npz"
RECORD = HERE / "record"
SL = HERE / "speaker_listener"
SL_TEACHER, SL_DATASET, SL_RECORD = SL / "teacher.pt", SL / "data.npz", SL / "record"

TEACHER_SEED, TEACHER_HIDDEN = 0, 64
DATASET_EPISODES, DATASET_SEED = 6, 1
COMPILE_OPTIONS = {
    "approximate-mixer.steps": 50,
    "distill.steps": 20,
    "distill.batch": 8,
    "distill.dagger_every": 10,
    "distill.dagger_episodes": 2,
}


def compile_args(record: str | Path, *extra: str, teacher: Path = TEACHER, dataset: Path = DATASET) -> list[str]:
    """`kdcc compile` arguments of the golden compile, writing the record to `record`; `extra` perturbs it."""
    opts = [a for k, v in COMPILE_OPTIONS.items() for a in ("--opt", f"{k}={v}")]
    return ["compile", str(teacher), "--target", "orin", "--seed", "0", "--dataset", str(dataset),
            "--no-build", "--keep", "off", "--record", str(record), "--force", "-q", *opts, *extra]


def sl_compile_args(record: str | Path, *extra: str) -> list[str]:
    return compile_args(record, *extra, teacher=SL_TEACHER, dataset=SL_DATASET)


def main() -> int:
    sys.path[:0] = [str(REPO), str(REPO / "tests")]  # as `python -m pytest` from the root has them
    import kdcc  # noqa: F401 - first: it pins the CPU numerics before torch runs (kdcc/core/numerics.py)
    import torch

    from kdcc.api import collect
    from kdcc.cli.app import main as kdcc
    from tests.conftest import make_speaker_listener_teacher, make_tiny_teacher

    torch.set_num_threads(1)
    make_tiny_teacher(TEACHER, seed=TEACHER_SEED, hidden=TEACHER_HIDDEN)
    collect(TEACHER, DATASET, episodes=DATASET_EPISODES, seed=DATASET_SEED)
    status = kdcc(compile_args(RECORD))
    SL.mkdir(exist_ok=True)
    make_speaker_listener_teacher(SL_TEACHER, seed=TEACHER_SEED, hidden=32)
    collect(SL_TEACHER, SL_DATASET, episodes=DATASET_EPISODES, seed=DATASET_SEED)
    status = status or kdcc(sl_compile_args(SL_RECORD))
    for record in (RECORD, SL_RECORD):
        (record / "timings.json").unlink(missing_ok=True)  # wall times are never compared: keep them out of git
    print(f"wrote {TEACHER.name}, {DATASET.name} and {RECORD.name}/ in {HERE}, and the same in {SL}")
    print("fixture goldens (tests/golden/*-upto-*) use this teacher: refresh them with "
          "KDCC_UPDATE_GOLDEN=1 python -m pytest -q tests/test_regression.py")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
