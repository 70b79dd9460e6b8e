"""Which existing paths kdcc may write an output directory over: never one that holds what kdcc did not write.

kdcc publishes an output directory whole (`fileio.atomic_write_tree` swaps the new tree in and removes the
old one), so whatever was there is gone. An output path (`compile -o`, `compile --record`,
`convert --to onnx -o`) is therefore, checked before any work:

    missing, or an empty directory          written
    kdcc's own output of the kind asked     replaced with --force; refused without it
    anything else                           refused, with or without --force, and nothing is touched

kdcc's own output is recognised by what kdcc writes into it, and only while nothing in it is foreign:

    bundle        manifest.json tagged "kdcc-bundle-manifest" (targets/bundle/integrity.py) that lists every
                  file of the tree but itself and kdcc.sig: a file it does not list is the user's
    reports       `compile --no-build -o`: report.md and a record/ as below, beside only report.html,
                  keep.json and pareto.json
    record        `--record`: manifest.json naming the passes and the kdcc version (kdcc/reports/record.py),
                  beside only timings.json and NN_<pass>/{program.txt, metrics.json, probe.npz}
    onnx-teacher  `convert --to onnx`: spec.json tagged "kdcc-onnx-teacher" with the exporter's
                  provenance.exported_from, beside only agent.onnx and mixer.onnx (a hand-written spec.json
                  has the tag too, but names the user's own graphs)

Refused whatever they hold:
    a symbolic link   publishing over it replaces the link, not the directory it names, and writing through
                      it would clear a directory that lives elsewhere: the directory's own path is asked for
    a directory that is or holds the current directory, or holds one of the command's inputs or other outputs
    a file

The tags and names are spelled here rather than imported: core sits below targets, inputs and reports
(.importlinter); tests/test_output_safety.py checks that they match what those layers write.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from itertools import islice
from pathlib import Path

from kdcc.core.errors import KdccError
from kdcc.core.fileio import check_writable

__all__ = ["KINDS", "check_output_dir", "output_kind"]

KINDS = {"bundle": "bundle", "reports": "--no-build output", "record": "record directory",
         "onnx-teacher": "ONNX teacher export"}  # what kdcc writes, as a message names it
BUNDLE_FORMAT, ONNX_TEACHER_FORMAT = "kdcc-bundle-manifest", "kdcc-onnx-teacher"
REPORT_FILES = ("report.md", "report.html", "keep.json", "pareto.json")
RECORD_PASS_FILES = ("program.txt", "metrics.json", "probe.npz")
_MAX_JSON = 8 << 20  # kdcc's manifests are kilobytes: a larger one is not kdcc's, and is not read


def _json_object(path: Path) -> dict | None:
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > _MAX_JSON:
            return None
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _bundle_files(d: Path) -> set[str] | None:
    doc = _json_object(d / "manifest.json")
    if doc is None or doc.get("format") != BUNDLE_FORMAT or not isinstance(doc.get("files"), dict):
        return None
    return set(doc["files"]) | {"manifest.json", "kdcc.sig"}


def _record_files(d: Path) -> set[str] | None:
    doc = _json_object(d / "manifest.json")
    passes, versions = (doc or {}).get("passes"), (doc or {}).get("versions")
    if not (isinstance(passes, list) and all(isinstance(p, str) for p in passes) and isinstance(versions, dict)
            and "kdcc" in versions):
        return None
    return {"manifest.json", "timings.json"} | {f"{i:02d}_{p}/{f}" for i, p in enumerate(passes)
                                                 for f in RECORD_PASS_FILES}


def _reports_files(d: Path) -> set[str] | None:
    record = _record_files(d / "record")
    if record is None or not (d / "report.md").is_file():
        return None
    return set(REPORT_FILES) | {f"record/{rel}" for rel in record}


def _onnx_teacher_files(d: Path) -> set[str] | None:
    doc = _json_object(d / "spec.json")
    provenance = (doc or {}).get("provenance")
    if (doc or {}).get("format") != ONNX_TEACHER_FORMAT or not isinstance(provenance, dict) or (
            "exported_from" not in provenance):
        return None
    return {"spec.json", "agent.onnx", "mixer.onnx"}


_RECOGNISERS = {"bundle": _bundle_files, "reports": _reports_files, "record": _record_files,
                "onnx-teacher": _onnx_teacher_files}


def _raise(e: OSError):
    raise e


def _tree(d: Path) -> Iterable[str]:
    """Every file, link and special file under `d`, relative, without following links (a linked directory is one
    entry: what it names is not in the tree). A directory that cannot be listed raises: it cannot be shown to be
    kdcc's."""
    for root, dirs, files in os.walk(d, onerror=_raise):
        base = Path(root).relative_to(d)
        links = [name for name in dirs if os.path.islink(os.path.join(root, name))]
        dirs[:] = sorted(name for name in dirs if name not in links)
        for name in sorted(files + links):
            yield (base / name).as_posix()


def output_kind(d: Path) -> tuple[str, str | None] | None:
    """(kind, the first entry under `d` that kdcc did not write, or None) for a directory kdcc wrote; None for
    anything else."""
    for kind, recognise in _RECOGNISERS.items():
        expected = recognise(d)
        if expected is not None:
            return kind, next((rel for rel in _tree(d) if rel not in expected), None)
    return None


def _holds(outer: Path, inner: Path) -> bool:
    return outer == inner or outer in inner.parents


def _sample(d: Path) -> str:
    names = sorted(p.name for p in islice(d.iterdir(), 100))
    return ", ".join(names[:3]) + (", …" if len(names) > 3 else "")


def check_output_dir(out: str | Path, *, force: bool, kinds: tuple[str, ...], option: str = "-o",
                     others: Mapping[str, str | Path | None] | None = None) -> None:
    """Refuse `out` (the value of `option`) unless kdcc may publish a directory there: it is missing or empty, or,
    with `force`, it is kdcc's own output of one of `kinds` (see the module docstring). `others` (a label such as
    "the teacher" or "--record" -> its path) are what the command reads or writes besides: `out` may not hold one.
    Nothing is touched; the refusal is one KdccError line naming `out`, the problem and what to do."""
    out = Path(out)
    whole = f"{option} must name a directory for kdcc's output alone: choose a new one"
    if out.is_symlink():
        raise KdccError(f"{out}: is a symbolic link (to {os.readlink(out)}); kdcc writes {option} only to a real "
                        "directory, never over or through a link: give the directory's own path, or a new one")
    if out.exists() and not out.is_dir():
        raise KdccError(f"{out}: exists and is not a directory; choose a new directory for {option}")
    where, cwd = out.resolve(), Path.cwd().resolve()
    if where == cwd:
        raise KdccError(f"{out}: is the current directory ({cwd}); {whole}, e.g. {out / 'out'}")
    if _holds(where, cwd):
        raise KdccError(f"{out}: holds the current directory ({cwd}); {whole}")
    for label, path in (others or {}).items():
        if path is not None and _holds(where, Path(path).resolve()):
            raise KdccError(f"{out}: holds {label} {path}; {whole}")
    try:
        _check_contents(out, force, kinds, option)
    except OSError as e:
        raise KdccError(f"{out}: cannot list what it holds ({e.strerror or e}), so kdcc will not replace it: "
                        f"choose another {option}") from None
    check_writable(out, is_file=False)


def _check_contents(out: Path, force: bool, kinds: tuple[str, ...], option: str) -> None:
    """A directory that holds anything must be kdcc's own output of one of `kinds`, whole, and --force given."""
    if not out.is_dir() or not any(out.iterdir()):
        return
    found = output_kind(out)
    only = "kdcc replaces only what it wrote, even with --force"
    if found is None or found[0] not in kinds:
        wanted = " or ".join(KINDS[k] for k in kinds)
        what = f"holds {_sample(out)}" if found is None else f"is a kdcc {KINDS[found[0]]}"
        raise KdccError(f"{out}: not an empty directory nor kdcc's own {wanted} (it exists and is not empty and "
                        f"{what}); {only}: choose a new or empty directory for {option}, or move these files away "
                        "yourself")
    kind, foreign = found
    if foreign is not None:
        raise KdccError(f"{out}: a kdcc {KINDS[kind]}, but {foreign} in it is not a file kdcc wrote there; {only}: "
                        f"move it out, or choose another {option}")
    if not force:
        raise KdccError(f"{out}: exists and is not empty (a kdcc {KINDS[kind]}): use --force to replace it")
