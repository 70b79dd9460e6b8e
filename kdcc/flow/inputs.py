"""Every input of a compile, resolved and checked once, before any work.

The teacher is loaded once (an EPyMARL directory's import notes are printed
once), its files are listed once and hashed once (the one digest profile.json,
the record and the depfile agree on), the dataset is read and checked against
the teacher's spec, and the target profile is parsed. The stages after this
receive objects, never paths to resolve again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kdcc.core.fileio import sha256_file, sha256_files
from kdcc.inputs.dataset import Dataset, load_dataset
from kdcc.inputs.sources import load_teacher_source, teacher_files
from kdcc.inputs.teacher import Teacher
from kdcc.targets.profile import TargetProfile, load_profile

__all__ = ["CompileInputs", "resolve_inputs"]


@dataclass(frozen=True)
class CompileInputs:
    teacher_path: Path
    teacher: Teacher
    teacher_files: tuple[Path, ...]
    teacher_sha256: str
    profile: TargetProfile
    target: str  # as given: a profile name or a .toml path
    dataset: Dataset | None = None  # a given `kdcc collect` file; None = collect when a pass trains
    dataset_path: Path | None = None
    dataset_sha256: str | None = None

    @property
    def files(self) -> list[Path]:
        """Every file the compile read: the depfile's prerequisites."""
        target_file = [Path(self.target)] if Path(self.target).is_file() else []
        return [*self.teacher_files, *([self.dataset_path] if self.dataset_path else []), *target_file]

    def manifest(self) -> dict:
        """What the record and profile.json say the compile was made from."""
        teacher = {"path": self.teacher_path.name, "sha256": self.teacher_sha256}
        if len(self.teacher_files) > 1:  # a model directory or an ONNX teacher: name what the digest covers
            teacher["files"] = [f.name for f in self.teacher_files]
        out = {"teacher": teacher}
        if self.dataset_path is not None:
            out["dataset"] = {"path": self.dataset_path.name, "sha256": self.dataset_sha256}
        return out


def resolve_inputs(teacher_path: str | Path, target: str, config: str | Path | None = None,
                   dataset: str | Path | None = None) -> CompileInputs:
    teacher = load_teacher_source(teacher_path, config)
    files = tuple(teacher_files(teacher_path, config))
    profile = load_profile(target)
    data = load_dataset(dataset, teacher.spec) if dataset else None
    return CompileInputs(Path(teacher_path), teacher, files, sha256_files(list(files)), profile, target, data,
                         Path(dataset) if dataset else None, sha256_file(dataset) if dataset else None)
