"""Compare two `--record` directories pass by pass and find the first pass that diverges.

A record (see kdcc/record.py) holds, for pass NN of the pipeline, the program's
stable text, its metrics (cost, fidelity, decisions) and its outputs on the
fixed probe. Two records of the same pipeline are compared in pipeline order:

    program.txt    exactly (a unified diff when not)
    metrics.json   numbers within `metric_tol` relative (floor: `atol`); in decisions,
                   floats within the same tolerance (the output says by how much one
                   broke it), strings, ints, bools and choices exactly
    probe.npz      float arrays within `rtol`/`atol` (numpy.allclose, golden as
                   the reference); integer arrays (greedy actions) exactly

The first pass where any of the three differs is the one a change moved: the
passes after it only inherit the difference. Manifests must name the same
passes (else the records cannot be compared: a KdccError); differing options,
budget, seed, target, inputs or versions are reported as notes, since they
usually explain the divergence.
"""

from __future__ import annotations

import difflib
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kdcc.core.errors import KdccError
from kdcc.core.fileio import check_npz_sizes

__all__ = ["Tolerances", "MetricDelta", "PassDiff", "Comparison", "Record", "load_record", "compare_records",
           "record_tree"]

_PASS_FILES = ("program.txt", "metrics.json", "probe.npz")


@dataclass(frozen=True)
class Tolerances:
    rtol: float = 1e-4
    atol: float = 1e-5
    metric_tol: float = 1e-3  # relative

    def close(self, before: float, after: float) -> bool:
        if math.isnan(before) or math.isnan(after):
            return math.isnan(before) and math.isnan(after)
        return abs(after - before) <= self.atol + self.metric_tol * max(abs(before), abs(after))

    def describe(self, before: float, after: float) -> str:
        """The change against the tolerance it broke, for a float in metrics or decisions."""
        scale = max(abs(before), abs(after))
        change = f"{100 * abs(after - before) / scale:.3g}%" if scale else f"|Δ| {abs(after - before):.3g}"
        return f"{change} beyond metric-tol {100 * self.metric_tol:g}% + atol {self.atol:g}"


@dataclass(frozen=True)
class MetricDelta:
    key: str  # "metrics.flops", "fidelity.max_abs_dq"
    before: Any  # golden
    after: Any  # record
    within: bool

    @property
    def percent(self) -> float | None:
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (self.before, self.after)):
            return None
        if self.before == 0:
            return 0.0 if self.after == 0 else math.inf
        return 100.0 * (self.after - self.before) / abs(self.before)


@dataclass
class PassDiff:
    index: int
    name: str
    text_diff: str  # unified diff golden -> record, "" when the text is identical
    metrics: list[MetricDelta]  # every metric and fidelity number that changed at all
    decisions: list[str]  # "path: golden → record" for each decision beyond tolerance
    probe: dict[str, dict[str, Any]]  # array -> {"max_abs_diff", "within", ...}

    @property
    def label(self) -> str:
        return f"{self.index:02d}_{self.name}"

    @property
    def diverges(self) -> bool:
        return bool(self.text_diff or self.decisions or any(not m.within for m in self.metrics)
                    or any(not p["within"] for p in self.probe.values()))

    def reasons(self) -> list[str]:
        out = ["graph text"] if self.text_diff else []
        if any(not m.within for m in self.metrics):
            out.append("metrics")
        if self.decisions:
            out.append("decisions")
        out += [f"probe {k}" for k, p in self.probe.items() if not p["within"]]
        return out


@dataclass
class Comparison:
    record: Path
    golden: Path
    tolerances: Tolerances
    passes: list[str]
    notes: list[str] = field(default_factory=list)  # manifest differences that do not stop the comparison
    diffs: list[PassDiff] = field(default_factory=list)  # every pass, in pipeline order

    @property
    def first(self) -> PassDiff | None:
        return next((d for d in self.diffs if d.diverges), None)

    @property
    def diverged(self) -> list[PassDiff]:
        return [d for d in self.diffs if d.diverges]


@dataclass(frozen=True)
class Record:
    path: Path
    manifest: dict[str, Any]

    @property
    def passes(self) -> list[str]:
        return list(self.manifest["passes"])

    def pass_dir(self, index: int) -> Path:
        return self.path / f"{index:02d}_{self.passes[index]}"


def load_record(path: str | Path, role: str = "record") -> Record:
    """Validate a record directory (or a bundle holding one in record/); errors name the missing piece."""
    p = Path(path)
    if not p.is_dir():
        raise KdccError(f"{role} {p}: no such directory")
    is_bundle = (p / "profile.json").is_file()  # its own manifest.json lists files, not passes
    if (p / "record" / "manifest.json").is_file() and (is_bundle or not (p / "manifest.json").is_file()):
        p = p / "record"  # a bundle written by `kdcc compile -o`
    manifest_path = p / "manifest.json"
    if not manifest_path.is_file():
        raise KdccError(f"{role} {p}: not a record (no manifest.json; write one with `kdcc compile --record DIR`)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise KdccError(f"{manifest_path}: not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("passes"), list) or not manifest["passes"]:
        raise KdccError(f"{manifest_path}: no list of passes; not a `kdcc compile --record` manifest")
    rec = Record(p, manifest)
    for i in range(len(rec.passes)):
        for name in _PASS_FILES:
            if not (rec.pass_dir(i) / name).is_file():
                raise KdccError(f"{role} {p}: missing {rec.pass_dir(i).name}/{name} (an incomplete record)")
    return rec


def record_tree(rec: Record) -> dict[str, bytes]:
    """The files that make the record (manifest and per-pass snapshots; no wall times), for copying."""
    files = {"manifest.json": (rec.path / "manifest.json").read_bytes()}
    for i in range(len(rec.passes)):
        d = rec.pass_dir(i)
        files.update({f"{d.name}/{name}": (d / name).read_bytes() for name in _PASS_FILES})
    return files


def _pipeline_mismatch(rec: Record, gold: Record) -> str:
    a, b = rec.passes, gold.passes
    at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    where = (f"at {at:02d}: {a[at] if at < len(a) else '(end)'} vs {b[at] if at < len(b) else '(end)'}")
    return (f"{rec.path} and {gold.path} ran different pipelines ({len(a)} vs {len(b)} passes, first difference "
            f"{where}); pass-by-pass comparison needs the same passes in the same order — recompile with the "
            f"golden's --pipeline/--passes/--skip, or replace the golden with --update")


def _manifest_notes(rec: dict[str, Any], gold: dict[str, Any]) -> list[str]:
    notes = []
    for key in ("target", "seed", "pipeline", "numerics"):
        if rec.get(key) != gold.get(key):
            notes.append(f"{key}: {gold.get(key)!r} → {rec.get(key)!r}")
    for key in ("budget", "options"):
        a, b = rec.get(key) or {}, gold.get(key) or {}
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                notes.append(f"{key} {k}: {b.get(k, '(unset)')} → {a.get(k, '(unset)')}")
    a, b = rec.get("inputs") or {}, gold.get("inputs") or {}
    for k in sorted(set(a) | set(b)):
        if (a.get(k) or {}).get("sha256") != (b.get(k) or {}).get("sha256"):
            notes.append(f"input {k}: different file ({(b.get(k) or {}).get('path', '(none)')} → "
                         f"{(a.get(k) or {}).get('path', '(none)')}, sha256 differs)")
    a, b = rec.get("versions") or {}, gold.get("versions") or {}
    changed = [f"{k} {b.get(k, '-')} → {a.get(k, '-')}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    if changed:
        notes.append("versions: " + ", ".join(changed) + " (numbers may move with these)")
    return notes


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _metric_deltas(section: str, gold: dict[str, Any], rec: dict[str, Any], tol: Tolerances) -> list[MetricDelta]:
    out = []
    for k in sorted(set(gold) | set(rec)):
        before, after = gold.get(k), rec.get(k)
        if before == after:
            continue
        within = _is_number(before) and _is_number(after) and tol.close(float(before), float(after))
        out.append(MetricDelta(f"{section}.{k}", before, after, within))
    return out


def _decision_diffs(path: str, gold: Any, rec: Any, tol: Tolerances, out: list[str]) -> None:
    if isinstance(gold, dict) and isinstance(rec, dict):
        for k in sorted(set(gold) | set(rec), key=str):
            _decision_diffs(f"{path}.{k}", gold.get(k, "(absent)"), rec.get(k, "(absent)"), tol, out)
    elif isinstance(gold, list) and isinstance(rec, list) and len(gold) == len(rec):
        for i, (g, r) in enumerate(zip(gold, rec)):
            _decision_diffs(f"{path}[{i}]", g, r, tol, out)
    elif isinstance(gold, float) and isinstance(rec, float):
        if not tol.close(gold, rec):
            out.append(f"{path}: {gold!r} → {rec!r} ({tol.describe(gold, rec)})")
    elif type(gold) is not type(rec) or gold != rec:
        out.append(f"{path}: {_short(gold)} → {_short(rec)}")


def _short(v: Any, limit: int = 80) -> str:
    text = json.dumps(v, sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _probe_diffs(gold_path: Path, rec_path: Path, tol: Tolerances) -> dict[str, dict[str, Any]]:
    with np.load(gold_path, allow_pickle=False) as g, np.load(rec_path, allow_pickle=False) as r:
        gold, rec = dict(g), dict(r)
    out: dict[str, dict[str, Any]] = {}
    for k in sorted(set(gold) | set(rec)):
        if k not in gold or k not in rec:
            out[k] = {"within": False, "max_abs_diff": None, "problem": "only in " + ("golden" if k in gold else
                                                                                      "record")}
        elif gold[k].shape != rec[k].shape:
            out[k] = {"within": False, "max_abs_diff": None,
                      "problem": f"shape {list(gold[k].shape)} → {list(rec[k].shape)}"}
        elif np.issubdtype(gold[k].dtype, np.integer):
            mismatched = int((gold[k] != rec[k]).sum())
            out[k] = {"within": mismatched == 0, "max_abs_diff": float(np.abs(gold[k] - rec[k]).max(initial=0)),
                      "mismatched": mismatched, "size": int(gold[k].size)}
        else:
            diff = np.abs(rec[k].astype(np.float64) - gold[k].astype(np.float64))
            out[k] = {"within": bool(np.allclose(rec[k], gold[k], rtol=tol.rtol, atol=tol.atol, equal_nan=True)),
                      "max_abs_diff": float(np.nan_to_num(diff, nan=np.inf).max(initial=0.0))}
    return out


def _compare_pass(i: int, rec: Record, gold: Record, tol: Tolerances) -> PassDiff:
    rd, gd = rec.pass_dir(i), gold.pass_dir(i)
    g_text, r_text = (gd / "program.txt").read_text(), (rd / "program.txt").read_text()
    text_diff = "".join(difflib.unified_diff(g_text.splitlines(True), r_text.splitlines(True),
                                             f"golden/{gd.name}/program.txt", f"record/{rd.name}/program.txt"))
    g_m, r_m = (json.loads((d / "metrics.json").read_text()) for d in (gd, rd))
    deltas = [*_metric_deltas("metrics", g_m.get("metrics", {}), r_m.get("metrics", {}), tol),
              *_metric_deltas("fidelity", g_m.get("fidelity", {}), r_m.get("fidelity", {}), tol)]
    decisions: list[str] = []
    _decision_diffs("decisions", g_m.get("decisions", {}), r_m.get("decisions", {}), tol, decisions)
    return PassDiff(i, rec.passes[i], text_diff, deltas, decisions,
                    _probe_diffs(gd / "probe.npz", rd / "probe.npz", tol))


def compare_records(record: str | Path, golden: str | Path, tol: Tolerances = Tolerances()) -> Comparison:
    rec, gold = load_record(record, "record"), load_record(golden, "golden")
    if rec.passes != gold.passes:
        raise KdccError(_pipeline_mismatch(rec, gold))
    result = Comparison(rec.path, gold.path, tol, rec.passes, _manifest_notes(rec.manifest, gold.manifest))
    result.diffs = [_read_pass(i, rec, gold, tol) for i in range(len(rec.passes))]
    return result


def _read_pass(i: int, rec: Record, gold: Record, tol: Tolerances) -> PassDiff:
    """One pass compared; a pass file that is not what `--record` writes is a one-line error naming it."""
    for d in (rec.pass_dir(i), gold.pass_dir(i)):
        if (d / "probe.npz").is_file():
            check_npz_sizes(d / "probe.npz", f"{d / 'probe.npz'}: not a readable probe")
    try:
        return _compare_pass(i, rec, gold, tol)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, AttributeError, TypeError, KeyError) as e:
        where = getattr(e, "filename", None) or f"{rec.pass_dir(i)} or {gold.pass_dir(i)}"
        first = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise KdccError(f"{where}: not a readable record file ({first})") from None
