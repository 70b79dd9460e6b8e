"""Atomic, deterministic file output: never half-written, same content -> same bytes."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from kdcc.core.errors import KdccError
from kdcc.core.interrupt import check_interrupted

__all__ = ["check_npz_sizes", "read_json_object", "atomic_write_bytes", "atomic_write_tree", "check_writable",
           "npz_bytes", "sha256_file", "sha256_files", "output_lock", "CACHE_ENV", "cache_dir"]

CACHE_ENV = "KDCC_CACHE_DIR"


def cache_dir() -> Path:
    """Where kdcc keeps what it makes or fetches once (the zig wrapper, the aarch64 TVM runtime, score
    baselines): $KDCC_CACHE_DIR, else ~/.cache/kdcc. Read at each use, so a test can point it elsewhere."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "kdcc")


def check_writable(path: str | Path, is_file: bool = True) -> None:
    """Fail before any work is done when `path` could not be written later.

    `os.access` says yes to root everywhere, so the directory is probed by
    creating (and removing) an empty temp directory in it.
    """
    path = Path(path)
    if is_file and path.is_dir():
        raise KdccError(f"{path}: is a directory, expected a file path")
    parent = path.absolute().parent
    if not is_file:  # an output directory may name new parents: they are made when it is written
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
    if not parent.is_dir():
        problem = "is not a directory" if parent.exists() else "does not exist"
        raise KdccError(f"{path}: cannot write here: {parent} {problem}")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=f".{path.name}.probe.", dir=parent))
    except OSError as e:
        raise KdccError(f"{path}: cannot write to {parent} ({e.strerror or e})") from None


def read_json_object(path: str | Path, what: str = "JSON file") -> dict:
    """A JSON file that must hold one object; any problem is a one-line KdccError naming the file."""
    import json

    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise KdccError(f"{path}: not a readable {what} ({str(e).splitlines()[0][:120]})") from None
    if not isinstance(doc, dict):
        raise KdccError(f"{path}: a {what} holds one JSON object")
    return doc


# Deflate cannot expand data more than ~1032:1: a zip entry claiming more is lying about its size.
_MAX_DEFLATE_RATIO = 1100


def check_npz_sizes(path: Path, unreadable: str) -> None:
    """Every entry's declared sizes against the bytes the file holds, before numpy reads any of it.

    numpy allocates the shape an .npy header declares and only then reads the data, so a 4 KB file
    declaring a [10^9, 10^6] array would cost what it claims; the zip entry's own size can lie too."""
    path = Path(path)
    real = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                limit = info.compress_size * (1 if info.compress_type == zipfile.ZIP_STORED else _MAX_DEFLATE_RATIO)
                if info.compress_size > real or info.file_size > limit + 1024:
                    raise KdccError(f"{path}: entry {info.filename!r} declares {info.file_size} bytes, more than "
                                    "the file holds")
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version not in ((1, 0), (2, 0)):
                        raise ValueError(f"unsupported .npy version {version}")
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(f)
                declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if declared > info.file_size:
                    raise KdccError(f"{path}: array {info.filename!r} declares shape {shape} ({declared} bytes) but "
                                    f"holds {info.file_size} bytes")
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, NotImplementedError) as e:
        raise KdccError(f"{unreadable} ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})") from None


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write through a temp file in the same directory, then rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        check_interrupted()
        tmp.replace(path)
    except OSError as e:
        raise KdccError(f"{path}: cannot write ({e.strerror or e})") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def npz_bytes(arrays: dict[str, np.ndarray], order: list[str] | None = None) -> bytes:
    """An uncompressed .npz with fixed zip timestamps and no pickles."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in order or sorted(arrays):
            entry = io.BytesIO()
            np.lib.format.write_array(entry, np.asarray(arrays[name]), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), entry.getvalue())
    return buf.getvalue()


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


@contextlib.contextmanager
def output_lock(out: str | Path):
    """Hold `.<name>.kdcc-lock` beside an output for the whole of a compile: a second compile into the
    same output fails at once instead of racing the first. The lock file is removed when the compile ends."""
    import fcntl

    out = Path(out)
    parent = out.absolute().parent
    lock_path = parent / f".{out.name}.kdcc-lock"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o644)
    except OSError as e:
        raise KdccError(f"{out}: cannot write to {parent} ({e.strerror or e})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise KdccError(f"{out}: another kdcc compile is writing it now (lock {lock_path}); "
                            "wait for it or choose another -o") from None
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                lock_path.unlink()
    finally:
        os.close(fd)


def atomic_write_tree(out: str | Path, files: dict[str, bytes]) -> None:
    """Write `files` (relative path -> bytes) as directory `out`, replacing it only once all is written."""
    out = Path(out)
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    except OSError as e:
        raise KdccError(f"{out}: cannot write to {parent} ({e.strerror or e})") from None
    try:
        for rel, data in files.items():
            p = tmp / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        check_interrupted()  # the last moment a Ctrl-C can still leave `out` as it was
        if out.is_dir() and _exchange(tmp, out):  # one atomic swap: a reader sees the old tree or the new
            return  # (tmp now holds the old tree: removed below)
        old = None
        if out.exists():
            old = parent / f".{out.name}.old.{os.getpid()}"
            out.rename(old)
        try:
            tmp.rename(out)
        except BaseException:  # put the previous tree back: `out` is either the old one or the new one
            if old is not None:
                old.rename(out)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        raise KdccError(f"{out}: cannot write ({e.strerror or e})") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of a file's bytes: what `sha256sum` prints, so anyone can check it."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_files(files: list[Path]) -> str:
    """One digest for an input made of several files (a model directory, an ONNX teacher).

    A single file's digest is its own `sha256_file`; several files hash the `sha256sum`-style
    listing of their names and digests, so each file can still be checked on its own."""
    if len(files) == 1:
        return sha256_file(files[0])
    listing = "".join(f"{sha256_file(f)}  {Path(f).name}\n" for f in files)
    return hashlib.sha256(listing.encode()).hexdigest()
