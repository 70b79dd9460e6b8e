"""The MPE dataset format (`kdcc collect` writes it, the compression passes read it).

An uncompressed `.npz` of flat per-step arrays; N steps, n agents:

    obs [N, n, obs_dim] f32      state [N, state_dim] f32     avail [N, n, A] f32
    last_actions [N, n] i64      actions [N, n] i64           rewards [N] f32 (team)
    episode_end [N] bool         hidden [N, n, H] f32         q [N, n, A] f32
    q_tot [N] f32                meta: 0-d str (JSON: format, version, spec, seeds, epsilon)

`hidden` is the teacher's recurrent state *entering* the step, `q`/`q_tot` its
outputs there, so any step can be replayed without re-running the episode.
Zip entries get a fixed timestamp: the same collection gives the same bytes.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdcc.core.errors import KdccError
from kdcc.core.fileio import atomic_write_bytes, check_npz_sizes, npz_bytes
from kdcc.ir.spec import MarlSpec

__all__ = ["Dataset", "save_dataset", "load_dataset", "FIELDS"]

FORMAT, VERSION = "kdcc-dataset", 1
# name -> (dtype kind, shape after N, as a function of the spec)
FIELDS = {
    "obs": ("f", lambda s: (s.n_agents, s.obs_dim)),
    "state": ("f", lambda s: (s.state_dim,)),
    "avail": ("f", lambda s: (s.n_agents, s.n_actions)),
    "last_actions": ("i", lambda s: (s.n_agents,)),
    "actions": ("i", lambda s: (s.n_agents,)),
    "rewards": ("f", lambda s: ()),
    "episode_end": ("b", lambda s: ()),
    "hidden": ("f", lambda s: (s.n_agents, s.agent.hidden_dim)),
    "q": ("f", lambda s: (s.n_agents, s.n_actions)),
    "q_tot": ("f", lambda s: ()),
}


@dataclass
class Dataset:
    spec: MarlSpec
    arrays: dict[str, np.ndarray]
    meta: dict

    def __len__(self) -> int:
        return int(self.arrays["obs"].shape[0])

    @property
    def episodes(self) -> int:
        return int(self.arrays["episode_end"].sum())


def save_dataset(path: str | Path, data: Dataset) -> None:
    meta = {**data.meta, "format": FORMAT, "version": VERSION, "spec": data.spec.to_dict()}
    arrays = {**data.arrays, "meta": np.array(json.dumps(meta, sort_keys=True))}
    atomic_write_bytes(Path(path), npz_bytes(arrays, order=[*FIELDS, "meta"]))


def load_dataset(path: str | Path, spec: MarlSpec | None = None) -> Dataset:
    """Read and validate a dataset; with `spec`, also check it fits that team."""
    name = str(path)
    if not Path(path).is_file():
        raise KdccError(f"{name}: dataset not found")
    if not zipfile.is_zipfile(path):
        raise KdccError(f"{name}: not a .npz dataset (not a zip archive)")
    check_npz_sizes(Path(path), f"{name}: not a readable .npz dataset")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, NotImplementedError) as e:
        raise KdccError(f"{name}: not a readable .npz dataset ({str(e).splitlines()[0][:120]})") from None
    try:
        meta = json.loads(str(arrays.pop("meta")))
        own = MarlSpec.from_dict(meta["spec"])
    except (KeyError, ValueError, TypeError) as e:
        raise KdccError(f"{name}: dataset has no valid 'meta' record ({e})") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise KdccError(f"{name}: not a {FORMAT} v{VERSION} file")
    check = spec or own
    if spec is not None and spec.n_agents != own.n_agents:
        raise KdccError(f"{name}: dataset has {own.n_agents} agents but the teacher has {spec.n_agents}")
    missing = [k for k in FIELDS if k not in arrays]
    if missing:
        raise KdccError(f"{name}: missing arrays {', '.join(missing)}")
    if arrays["obs"].ndim == 0:
        raise KdccError(f"{name}: array 'obs' is a scalar, expected one row per step")
    n = arrays["obs"].shape[0]
    for key, (kind, shape_of) in FIELDS.items():
        arr = arrays[key]
        want = (n, *shape_of(check if key != "hidden" else own))
        if arr.shape != want:
            raise KdccError(f"{name}: array '{key}' has shape {arr.shape}, expected {want}")
        if arr.dtype.kind != kind:
            raise KdccError(f"{name}: array '{key}' has dtype {arr.dtype}, expected kind '{kind}'")
        if kind == "f" and not np.isfinite(arr).all():
            raise KdccError(f"{name}: array '{key}' contains NaN or Inf")
    if n == 0 or not arrays["episode_end"].any():
        raise KdccError(f"{name}: dataset holds zero episodes")
    return Dataset(own, arrays, meta)
