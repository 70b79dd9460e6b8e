"""Where a search's trials run: in this process, in forked local processes, or as Ray tasks.

A trial is `fn(payload, *job)` → plain data, `fn` a module-level function and
`payload` what every trial shares (the program before prune, the pass context,
...). Local workers are forked, so they inherit the payload as it is. Ray tasks
get it through Ray's object store, pickled once: `Program.picklable` drops the
type annotations fx cannot pickle, nothing that computes. Each trial sets one
torch thread and its own seeds, so a job gives the same numbers wherever it runs.

`--ray auto` starts a local Ray instance for the search (and stops it after);
`--ray ADDRESS` joins a running cluster (`ray start --head` on a machine, every
node with kdcc installed). Ray is the optional extra `kdcc[ray]`.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, Callable, Sequence

import torch

from kdcc.core.errors import KdccError
from kdcc.core.progress import set_quiet

__all__ = ["Trials", "Pending", "open_trials", "RAY_OBJECT_STORE_BYTES"]

RAY_OBJECT_STORE_BYTES = 80 * 2**20  # the payload is a few MB; Ray's default would reserve 30% of the RAM

_LOCAL: dict[str, Any] = {}  # fn and payload, inherited by forked workers


def _quiet_one_thread() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)  # as the compile's own process (kdcc.core.numerics)
    set_quiet(True)  # a worker's progress bars would interleave on the terminal


def _local_call(*job: Any) -> Any:
    return _LOCAL["fn"](_LOCAL["payload"], *job)


def _ray_call(fn: Callable, payload: dict[str, Any], *job: Any) -> Any:
    _quiet_one_thread()
    return fn(payload, *job)


def _portable(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v.picklable() if hasattr(v, "picklable") else v for k, v in payload.items()}


class Pending:
    """Results still being computed."""

    def __init__(self, get: Callable[[], list[Any]]):
        self.result = get


class Trials:
    """Runs jobs of `fn` over `payload`; `workers` is how many run at once (a search sizes its rounds by it)."""

    def __init__(self, fn: Callable, payload: dict[str, Any], workers: int, ray: str | None = None):
        self.fn, self.payload, self.workers, self.backend = fn, payload, workers, "process"
        self._pool = self._ray = self._started_ray = None
        if ray is not None:
            self._ray, self._started_ray = _connect(ray, workers)
            self.workers = max(1, int(self._ray.cluster_resources().get("CPU", 1)))
            self.backend = "ray"
            self._remote = self._ray.remote(num_cpus=1)(_ray_call)
            self._payload_ref = self._ray.put(_portable(payload))
        elif workers > 1:
            _LOCAL.update(fn=fn, payload=payload)
            self._pool = ProcessPoolExecutor(workers, mp_context=get_context("fork"), initializer=_quiet_one_thread)
        else:
            self.backend = "this process"

    def submit(self, jobs: Sequence[tuple]) -> "Pending":
        """Start the jobs (in this process: when their results are asked for); `.result()` gives them in order."""
        if self._ray is not None:
            refs = [self._remote.remote(self.fn, self._payload_ref, *job) for job in jobs]
            return Pending(lambda: self._ray.get(refs))
        if self._pool is not None:
            futures = [self._pool.submit(_local_call, *job) for job in jobs]
            return Pending(lambda: [f.result() for f in futures])
        return Pending(lambda: [self.fn(self.payload, *job) for job in jobs])

    def run(self, jobs: Sequence[tuple]) -> list[Any]:
        """Each job's result, in the order of `jobs`."""
        return self.submit(jobs).result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            _LOCAL.clear()
        if self._started_ray:
            self._ray.shutdown()


def _connect(address: str, workers: int):
    """(the ray module, whether this call started the instance): `auto` starts a local one with `workers` CPUs,
    anything else is a cluster address to join."""
    try:
        import ray
    except ImportError:
        raise KdccError("--ray needs Ray, the optional extra: pip install 'kdcc[ray]'") from None
    if ray.is_initialized():
        return ray, False
    quiet = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        if address == "auto":
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private instance: no token in ~/.ray
            ray.init(address="local", num_cpus=workers, object_store_memory=RAY_OBJECT_STORE_BYTES, **quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise KdccError(f"--ray {address}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    return ray, True


def open_trials(fn: Callable, payload: dict[str, Any], workers: int = 0, ray: str | None = None) -> Trials:
    """Trials of `fn`: on Ray when `ray` is given (`auto` or a cluster address), else in `workers` local
    processes (0: one per CPU; 1: this process)."""
    return Trials(fn, payload, workers or os.cpu_count() or 1, ray)
