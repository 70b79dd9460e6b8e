"""manifest.json: every file of a bundle with its sha256 and size, and the check that a bundle still matches it.

A bundle is copied to robots, CI caches and USB sticks; a library swapped or a profile.json edited
on the way must not be run as if it were what was compiled and verified. The last bundle stage
lists every file (except manifest.json itself and the signature, `kdcc.sig`, which signs the
manifest among the rest); whatever opens a bundle to run it (`kdcc eval`, `--decentralised`,
`kdcc certify`) first checks that the files on disk are exactly those, byte for byte, and names the
first file changed, added or missing. The C wrappers check their own library's sha256 when they
load it (include/kdcc_*.h); this check covers the rest of the tree from Python. The manifest
proves integrity, not origin: anyone can rewrite it, which is what `kdcc sign` is for.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from kdcc.core.errors import KdccError
from kdcc.core.fileio import sha256_file

__all__ = ["IntegrityError", "update_manifest", "MANIFEST", "SIGNATURE", "check_bundle", "diff_files", "manifest_bytes",
           "read_manifest", "tree_digests"]

MANIFEST = "manifest.json"
SIGNATURE = "kdcc.sig"
FORMAT = "kdcc-bundle-manifest"
VERSION = 1


class IntegrityError(KdccError):
    """The bundle's files differ from its manifest or signature (`kdcc verify` exits 1 on it, not 2)."""


def manifest_bytes(files: dict[str, bytes]) -> bytes:
    """manifest.json for the bundle `files` (path -> bytes); sorted JSON, so the same files give the same bytes."""
    listed = {rel: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
              for rel, data in sorted(files.items()) if rel not in (MANIFEST, SIGNATURE)}
    doc = {"format": FORMAT, "version": VERSION, "algorithm": "sha256",
           "excludes": [MANIFEST, SIGNATURE], "files": listed}
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def tree_digests(root: Path, exclude: tuple[str, ...] = (MANIFEST, SIGNATURE)) -> dict[str, str]:
    """path -> sha256 of every file under `root` but `exclude` (a symlink counts as a file: what it points to is
    what would be loaded)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel not in exclude and (path.is_file() or path.is_symlink()):
            out[rel] = sha256_file(path) if path.is_file() else "(dangling link)"
    return out


def read_manifest(root: Path) -> dict[str, str]:
    """The manifest's path -> sha256; IntegrityError when there is none (a bundle older than manifests),
    KdccError when it is unreadable."""
    path = root / MANIFEST
    if not path.is_file():
        raise IntegrityError(f"{root}: no {MANIFEST} (a bundle made before kdcc wrote manifests, or not a "
                             "whole bundle); recompile it")
    try:
        doc = json.loads(path.read_text())
        if doc.get("format") != FORMAT:
            raise ValueError(f"format is {doc.get('format')!r}")
        return {rel: entry["sha256"] for rel, entry in doc["files"].items()}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise IntegrityError(f"{path}: not a readable kdcc manifest ({str(e).splitlines()[0][:120]})") from None


def diff_files(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    """One phrase per difference, "lib/cpu/agent.so changed", "x added", "y missing", in path order."""
    out = []
    for rel in sorted(set(expected) | set(actual)):
        if rel not in actual:
            out.append(f"{rel} missing")
        elif rel not in expected:
            out.append(f"{rel} added")
        elif expected[rel] != actual[rel]:
            out.append(f"{rel} changed")
    return out


def _summary(diffs: list[str]) -> str:
    more = f" (and {len(diffs) - 3} more)" if len(diffs) > 3 else ""
    return ", ".join(diffs[:3]) + more


def check_bundle(root: str | Path) -> dict[str, Any]:
    """Refuse a bundle whose files differ from its manifest: an IntegrityError naming the changed, added or
    missing file(s). Returns what was checked (for reports)."""
    root = Path(root)
    if not root.is_dir():
        raise KdccError(f"{root}: not a bundle directory")
    expected = read_manifest(root)
    diffs = diff_files(expected, tree_digests(root))
    if diffs:
        raise IntegrityError(f"{root}: does not match its {MANIFEST}: {_summary(diffs)}")
    return {"manifest": MANIFEST, "files": len(expected)}


def update_manifest(root: str | Path, rel: str) -> bool:
    """After kdcc itself rewrote `rel` in a checked bundle (kdcc measure's profile.json): its new digest in
    manifest.json. Returns whether the bundle was signed: the signature then no longer matches (re-sign)."""
    from kdcc.core.fileio import atomic_write_bytes

    root = Path(root)
    doc = json.loads((root / MANIFEST).read_text())
    data = (root / rel).read_bytes()
    doc["files"][rel] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    atomic_write_bytes(root / MANIFEST, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
    return (root / SIGNATURE).is_file()
