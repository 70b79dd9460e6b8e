"""Where a teacher comes from: the kinds of input kdcc accepts, and what a compile starts from.

    teacher.pt                       kdcc teacher file v1 (docs/teacher-format.md)
    MODEL_DIR [--config config.json] EPyMARL/PyMARL checkpoint (agent.th, mixer.th) + sacred config
    ONNX_DIR  [--config spec.json]   agent.onnx + mixer.onnx + spec.json, run with ONNX Runtime

A torch teacher is imported into the program as it is, weights and all. An ONNX
teacher's weights are not torch modules, so the program starts as a fresh
student of the teacher's architecture (seeded): prune then sizes it to the
budget, as it would the teacher, and distill trains it against the ONNX
teacher. A pipeline without distill would compile that untrained student, so
it is refused.
"""

from __future__ import annotations

from pathlib import Path

import torch

from kdcc.core.errors import KdccError
from kdcc.inputs.teacher import Teacher, load_teacher

__all__ = ["teacher_kind", "load_teacher_source", "teacher_files", "initial_program",
           "has_torch_weights"]


def teacher_kind(path: str | Path) -> str:
    """'pt', 'model-dir' or 'onnx', judged from what is on disk (a missing path is a 'pt' to report)."""
    from kdcc.inputs.epymarl import is_model_dir
    from kdcc.inputs.onnx_teacher import is_onnx_teacher

    if is_onnx_teacher(path):
        return "onnx"
    if is_model_dir(path):
        return "model-dir"
    return "pt"


def load_teacher_source(path: str | Path, config: str | Path | None = None) -> Teacher:
    """The teacher, its spec completed with each agent's own sizes when the scenario's agents differ."""
    from dataclasses import replace

    from kdcc.marl.worlds import with_agent_sizes

    teacher = _load(path, config)
    try:
        return replace(teacher, spec=with_agent_sizes(teacher.spec))
    except KdccError as e:
        raise KdccError(f"{path}: {e}") from None


def _load(path: str | Path, config: str | Path | None) -> Teacher:
    kind = teacher_kind(path)
    if kind == "model-dir":
        from kdcc.inputs.epymarl import load_model_dir

        return load_model_dir(path, config)
    if kind == "onnx":
        from kdcc.inputs.onnx_teacher import load_onnx_teacher

        return load_onnx_teacher(path, config)
    if config is not None:
        raise KdccError(f"--config {config}: applies to an EPyMARL/PyMARL model directory or an ONNX teacher, "
                        f"not to the teacher file {path}")
    return load_teacher(path)


def teacher_files(path: str | Path, config: str | Path | None = None) -> list[Path]:
    """The files a teacher input consists of, to hash into the manifest and list in the depfile."""
    kind = teacher_kind(path)
    if kind == "model-dir":
        from kdcc.inputs.epymarl import model_dir_files

        return model_dir_files(path, config)
    if kind == "onnx":
        from kdcc.inputs.onnx_teacher import onnx_teacher_files

        return onnx_teacher_files(path, config)
    return [Path(path)]


def has_torch_weights(teacher: Teacher) -> bool:
    from kdcc.inputs.onnx_teacher import OnnxModule

    return not isinstance(teacher.agent, OnnxModule) and not isinstance(teacher.mixer, OnnxModule)


def initial_program(teacher: Teacher, pass_names=None, seed: int = 0):
    """The program a pipeline starts from (see the module docstring); `pass_names` None = no pipeline check."""
    from kdcc.ir.program import from_modules
    from kdcc.marl.qmix import build_agent, build_mixer

    if has_torch_weights(teacher):
        return from_modules(teacher.spec, teacher.agent, teacher.mixer)
    if pass_names is not None and "distill" not in pass_names:
        raise KdccError(f"{teacher.path}: an ONNX teacher's weights cannot be imported, so the compile trains a "
                        "fresh student against it: the pipeline must include distill")
    torch.manual_seed(seed)
    agent, mixer = build_agent(teacher.spec), build_mixer(teacher.spec)
    return from_modules(teacher.spec, agent.eval(), mixer.eval())
