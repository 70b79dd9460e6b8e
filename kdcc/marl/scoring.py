"""One scorer for every decision and every reported score: seeds with owners, baselines once, paired statistics.

Seeds have owners (kdcc.marl.seeds names each range once; no two overlap), so a
score kdcc reports as the student's is measured on seeds that neither training
nor any decision used: selection seeds for decisions, confirmation seeds for the
chosen student's score, report seeds for figures to read.

Episode i of a run on a range uses env seed `first + i`; a teacher, a student and
the random policy on the same seeds face the same starting positions, so their
returns pair episode by episode. With R_rand the random policy's mean on those
seeds, the normalised score and its paired standard error are

    score = (mean R_S − R_rand) / (mean R_T − R_rand) = 1 + mean(d) / (mean R_T − R_rand)
    d_e = R_S,e − R_T,e,    SE = std(d) / √E / (mean R_T − R_rand)

(seed-to-seed variation both policies share cancels in d; R_rand is taken as
known, its own error is not propagated). The teacher's and the random policy's
returns on a seed range are computed once per (teacher digest, environment,
seeds) and kept for the process, and on disk under `$KDCC_CACHE_DIR/baselines/`:
with kdcc's pinned numerics they are the same on every machine.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from kdcc.core.errors import KdccError
from kdcc.core.fileio import atomic_write_bytes, cache_dir, npz_bytes
from kdcc.core.progress import progress_bar
from kdcc.marl.worlds import make_env
from kdcc.marl.rollout import RandomPolicy, TorchPolicy, run_episodes

__all__ = ["Baseline", "paired_score", "play", "baseline", "score_returns", "teacher_digest"]


def paired_score(student: Sequence[float], teacher: Sequence[float], random_mean: float) -> dict[str, float]:
    """{score, se, episodes} of a student's returns against the teacher's on the same seeds (module docstring)."""
    if len(student) != len(teacher) or len(student) < 2:
        raise KdccError(f"paired score: need the same seeds, at least 2 (got {len(student)} and {len(teacher)})")
    gap = sum(teacher) / len(teacher) - random_mean
    if gap <= 0:
        raise KdccError(f"paired score: the teacher ({gap + random_mean:.2f}) does not beat random ({random_mean:.2f})")
    d = [s - t for s, t in zip(student, teacher)]
    mean = sum(d) / len(d)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1))
    return {"score": 1 + mean / gap, "se": sd / math.sqrt(len(d)) / gap, "episodes": len(d)}


@dataclass(frozen=True)
class Baseline:
    """The teacher's returns and the uniform random policy's on `episodes` seeds from `first`."""

    first: int
    teacher: np.ndarray  # [episodes] team returns
    random: np.ndarray  # [episodes]

    @property
    def episodes(self) -> int:
        return len(self.teacher)

    @property
    def random_mean(self) -> float:
        return float(self.random.mean())

    @property
    def teacher_mean(self) -> float:
        return float(self.teacher.mean())

    def score(self, returns: Sequence[float]) -> dict[str, float]:
        """The paired score of a policy's returns on the same seeds."""
        return paired_score(list(map(float, returns)), self.teacher.tolist(), self.random_mean)


def teacher_digest(teacher) -> str:
    """sha256 over the teacher's spec and weights: what its returns depend on, whatever file it came from."""
    h = hashlib.sha256(repr(teacher.spec.to_dict()).encode())
    for module in (teacher.agent, teacher.mixer):
        if module is None:
            continue
        for name, tensor in sorted(module.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


_MEMORY: dict[tuple, Baseline] = {}


def _code_version() -> str:
    """What else a return depends on: the packages that step the world and run the teacher, and the
    source of the modules that play an episode (a change to any of them retires every cached baseline)."""
    from importlib import import_module
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for package in ("torch", "numpy", "mpe2", "pettingzoo"):
        try:
            parts.append(f"{package}={version(package)}")
        except PackageNotFoundError:
            parts.append(f"{package}=-")
    for module in ("kdcc.marl.rollout", "kdcc.marl.worlds.base", "kdcc.marl.worlds.mpe", "kdcc.marl.worlds.gymma", "kdcc.marl.worlds.vmas", "kdcc.marl.qmix", "kdcc.ir.team", "kdcc.marl.scoring"):
        parts.append(hashlib.sha256(Path(import_module(module).__file__).read_bytes()).hexdigest())
    return ";".join(parts)


def _cache_file(key: tuple) -> Path:
    name = hashlib.sha256(repr((*key, _code_version())).encode()).hexdigest()[:32]
    return cache_dir() / "baselines" / f"{name}.npz"


def _read_cached(path: Path, episodes: int) -> Baseline | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            teacher, random, first = z["teacher"], z["random"], int(z["first"])
    except (OSError, ValueError, KeyError):
        return None  # absent or unreadable: recompute (and rewrite)
    if teacher.shape != (episodes,) or random.shape != (episodes,):
        return None
    return Baseline(first, teacher.astype(np.float64), random.astype(np.float64))


def _write_cached(path: Path, b: Baseline) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, npz_bytes({"teacher": b.teacher, "random": b.random, "first": np.int64(b.first)}))
    except OSError:
        pass  # a cache that cannot be written costs time, never a result


def play(policy, env, first: int, episodes: int, label: str = "score") -> np.ndarray:
    """A policy's team return on each of `episodes` env seeds from `first` (one progress bar)."""
    with progress_bar(label, episodes) as advance:
        return run_episodes(env, policy, episodes, first, on_episode=lambda _: advance()).returns


def baseline(teacher, first: int, episodes: int, env=None) -> Baseline:
    """The teacher's and the random policy's returns on `episodes` seeds from `first`, computed once per
    (teacher, world, seeds): kept for the process and on disk (module docstring)."""
    key = (teacher_digest(teacher), repr(teacher.spec.env), first, episodes)
    if key in _MEMORY:
        return _MEMORY[key]
    path = _cache_file(key)
    b = _read_cached(path, episodes)
    if b is None:
        env = env or make_env(teacher.spec.env)
        policy = TorchPolicy.from_modules(teacher.spec, teacher.agent, teacher.mixer, env.avail)
        b = Baseline(first, play(policy, env, first, episodes, "score teacher"),
                     play(RandomPolicy(env.avail, first), env, first, episodes, "score random"))
        _write_cached(path, b)
    _MEMORY[key] = b
    return b


def score_returns(returns: Sequence[float], b: Baseline) -> dict[str, Any]:
    """score, se (rounded as reports print them), mean return, episodes and seeds of a policy's returns."""
    s = b.score(returns)
    return {"score": round(s["score"], 4), "se": round(s["se"], 4), "episodes": b.episodes,
            "seeds": [b.first, b.first + b.episodes - 1], "return": round(float(np.mean(returns)), 3)}
