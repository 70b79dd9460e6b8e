"""Never delete what kdcc did not write: an output path over the user's own files, a link, the current directory or
a directory holding the inputs is refused in one line, exit 2, with or without --force, and nothing is touched;
--force replaces only kdcc's own earlier output (kdcc/core/outputs.py). Real CLI runs, in process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kdcc.cli.app import main as kdcc
from kdcc.core import outputs
from tests.conftest import make_tiny_teacher

FAST = ["--target", "host", "--no-build", "--budget-flops", "2x", "--keep", "off", "--certify-episodes", "0", "-q",
        "--opt", "distill.steps=30", "--opt", "distill.dagger_every=0", "--opt", "approximate-mixer.steps=30"]
USER_FILES = {"notes.txt": b"my notes\n", "runs/seed0.csv": b"step,return\n0,-3.5\n", ".hidden": b"\x00\x01"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("inputs")
    teacher = make_tiny_teacher(d / "teacher.pt")
    assert kdcc(["collect", str(teacher), "-o", str(d / "data.npz"), "--episodes", "4", "-q"]) == 0
    return teacher, d / "data.npz"


def _compile(inputs, *args: str) -> list[str]:
    teacher, data = inputs
    return ["compile", str(teacher), "--dataset", str(data), *FAST, *args]


def _run(capsys, argv: list[str]) -> tuple[int, str]:
    capsys.readouterr()
    rc = kdcc([str(a) for a in argv])
    return rc, capsys.readouterr().err


def _refused(capsys, argv: list[str], path: str, problem: str) -> str:
    """Exit 2 and one line on stderr naming `path` and `problem`."""
    rc, err = _run(capsys, argv)
    assert rc == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"kdcc {argv[0]}: error: {path}: ") and problem in err, err
    return err


def _snapshot(root: Path) -> dict[str, object]:
    """Every entry under `root` (not following links): bytes, a link's target, or "dir"; and its mode."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath, name)
            rel = str(p.relative_to(root))
            out[rel] = (f"-> {os.readlink(p)}" if p.is_symlink() else "dir" if p.is_dir() else p.read_bytes(),
                        p.lstat().st_mode)
    return out


def _user_dir(d: Path) -> Path:
    for rel, data in USER_FILES.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_bytes(data)
    return d


@pytest.mark.parametrize("force", [False, True])
def test_a_directory_of_the_users_files_is_refused_and_kept_byte_for_byte(inputs, tmp_path, capsys, force):
    mine = _user_dir(tmp_path / "mine")
    before = _snapshot(tmp_path)
    err = _refused(capsys, _compile(inputs, "-o", mine, *(["--force"] if force else [])), str(mine),
                   "not an empty directory nor kdcc's own bundle or --no-build output")
    assert "even with --force" in err and "not empty and holds .hidden, notes.txt, runs)" in err
    assert _snapshot(tmp_path) == before  # no lock file, no temp directory beside it either
    assert _refused(capsys, _compile(inputs, "--record", mine, "--force"), str(mine), "nor kdcc's own record directory")
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("names", ["users-files", "kdcc-output", "empty-directory", "nothing"])
def test_a_symlink_is_refused_and_what_it_names_is_untouched(inputs, tmp_path, capsys, names):
    """A link is refused whatever it names: publishing over it would replace the link, not the directory, and
    writing through it would clear a directory that lives elsewhere. The directory's own path works."""
    target = tmp_path / "target"
    if names == "users-files":
        _user_dir(target)
    elif names == "kdcc-output":
        target.mkdir()
        (target / "manifest.json").write_text(json.dumps({"format": "kdcc-bundle-manifest", "files": {}}))
    elif names == "empty-directory":
        target.mkdir()
    (tmp_path / "link").symlink_to(target)
    before = _snapshot(tmp_path)
    _refused(capsys, _compile(inputs, "-o", tmp_path / "link", "--force"), str(tmp_path / "link"),
             f"is a symbolic link (to {target})")
    assert _snapshot(tmp_path) == before


def test_the_current_directory_its_parents_and_a_directory_of_inputs_are_refused(inputs, tmp_path, capsys,
                                                                                   monkeypatch):
    here = _user_dir(tmp_path / "work")
    monkeypatch.chdir(here)
    before = _snapshot(tmp_path)
    _refused(capsys, _compile(inputs, "-o", ".", "--force"), ".", f"is the current directory ({here})")
    _refused(capsys, _compile(inputs, "-o", "..", "--force"), "..", f"holds the current directory ({here})")
    _refused(capsys, _compile(inputs, "--record", here, "--force"), str(here), "is the current directory")
    teacher, data = inputs
    _refused(capsys, _compile(inputs, "-o", teacher.parent, "--force"), str(teacher.parent),
             f"holds the teacher {teacher}")
    _refused(capsys, _compile(inputs, "-o", "out", "--record", "out/record", "--force"), "out",
             "holds --record out/record")
    _refused(capsys, ["convert", teacher, "--to", "onnx", "-o", ".", "--force"], ".", "is the current directory")
    assert _snapshot(tmp_path) == before


def test_force_replaces_kdccs_own_output_only(inputs, tmp_path, capsys):
    out, rec = tmp_path / "out", tmp_path / "rec"
    (tmp_path / "empty").mkdir()
    assert _run(capsys, _compile(inputs, "-o", tmp_path / "empty"))[0] == 0  # an empty directory is used as is
    assert (tmp_path / "empty" / "report.md").is_file()
    assert _run(capsys, _compile(inputs, "-o", out, "--record", rec))[0] == 0
    assert outputs.output_kind(out) == ("reports", None) and outputs.output_kind(rec) == ("record", None)
    before = _snapshot(tmp_path)
    _refused(capsys, _compile(inputs, "-o", out), str(out), "(a kdcc --no-build output): use --force to replace it")
    _refused(capsys, _compile(inputs, "--record", rec), str(rec), "(a kdcc record directory): use --force")
    _refused(capsys, _compile(inputs, "-o", rec, "--force"), str(rec), "is not empty and is a kdcc record directory")
    assert _snapshot(tmp_path) == before
    (out / "report.md").write_text("edited by hand: still kdcc's file, replaced")
    assert _run(capsys, _compile(inputs, "-o", out, "--record", rec, "--force"))[0] == 0
    assert (out / "report.md").read_text().startswith("# ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "out", "rec"]
    (out / "record" / "mine.txt").write_text("a file kdcc did not write")  # kdcc's output, with the user's file in it
    before = _snapshot(tmp_path)
    _refused(capsys, _compile(inputs, "-o", out, "--force"), str(out),
             "a kdcc --no-build output, but record/mine.txt in it is not a file kdcc wrote there")
    assert _snapshot(tmp_path) == before


def _fake_bundle(d: Path, files: dict[str, bytes]) -> Path:
    from kdcc.targets.bundle.integrity import MANIFEST, manifest_bytes

    for rel, data in {**files, MANIFEST: manifest_bytes(files)}.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_bytes(data)
    return d


def test_force_replaces_a_kdcc_bundle_but_not_one_holding_the_users_files(inputs, tmp_path, capsys):
    """A bundle is kdcc's by its manifest.json's tag, and whole while the manifest lists every file in it."""
    bundle = _fake_bundle(tmp_path / "bundle", {"profile.json": b"{}\n", "lib/cpu/policy.so": b"\x7fELF"})
    (bundle / "kdcc.sig").write_bytes(b"signature")  # `kdcc sign` adds it beside the manifest
    (bundle / "lib" / "cpu" / "notes.txt").write_text("mine")
    before = _snapshot(tmp_path)
    _refused(capsys, _compile(inputs, "-o", bundle, "--force"), str(bundle),
             "a kdcc bundle, but lib/cpu/notes.txt in it is not a file kdcc wrote there")
    _refused(capsys, _compile(inputs, "--record", bundle, "--force"), str(bundle), "is not empty and is a kdcc bundle")
    assert _snapshot(tmp_path) == before
    (bundle / "lib" / "cpu" / "notes.txt").unlink()
    _refused(capsys, _compile(inputs, "-o", bundle), str(bundle), "(a kdcc bundle): use --force to replace it")
    assert _run(capsys, _compile(inputs, "-o", bundle, "--force"))[0] == 0
    assert sorted(p.name for p in bundle.iterdir()) == ["record", "report.html", "report.md"]


@pytest.mark.slow
def test_a_built_bundle_is_kdccs_own_whole_output(host_bundle):
    """The session's real host bundle (read, never written): recognised whole, so --force may replace it."""
    from kdcc.core.errors import KdccError

    bundle = host_bundle("spread")
    assert outputs.output_kind(bundle) == ("bundle", None)
    with pytest.raises(KdccError, match="a kdcc bundle.*use --force"):
        outputs.check_output_dir(bundle, force=False, kinds=("bundle",))
    outputs.check_output_dir(bundle, force=True, kinds=("bundle",))


def test_convert_writes_over_its_own_onnx_export_only(inputs, tmp_path, capsys):
    teacher, _ = inputs
    onnx = tmp_path / "onnx"
    assert _run(capsys, ["convert", teacher, "--to", "onnx", "-o", onnx])[0] == 0
    _refused(capsys, ["convert", teacher, "--to", "onnx", "-o", onnx], str(onnx),
             "(a kdcc ONNX teacher export): use --force to replace it")
    assert _run(capsys, ["convert", teacher, "--to", "onnx", "-o", onnx, "--force"])[0] == 0
    spec = json.loads((onnx / "spec.json").read_text())
    del spec["provenance"]["exported_from"]  # a spec.json written by hand names the user's own graphs
    (onnx / "spec.json").write_text(json.dumps(spec))
    mine = _user_dir(tmp_path / "mine")
    before = _snapshot(tmp_path)
    for d in (onnx, mine):
        _refused(capsys, ["convert", teacher, "--to", "onnx", "-o", d, "--force"], str(d),
                 "not an empty directory nor kdcc's own ONNX teacher export")
    assert _snapshot(tmp_path) == before


def test_the_tags_are_those_kdcc_writes():
    """kdcc.core sits below the layers that write these files, so it spells their tags: they must agree."""
    from kdcc.inputs import onnx_teacher
    from kdcc.targets.bundle import integrity

    assert outputs.BUNDLE_FORMAT == integrity.FORMAT and outputs.ONNX_TEACHER_FORMAT == onnx_teacher.FORMAT
    assert {integrity.MANIFEST, integrity.SIGNATURE} == {"manifest.json", "kdcc.sig"}
    assert {onnx_teacher.AGENT, onnx_teacher.MIXER, onnx_teacher.SPEC} == {"agent.onnx", "mixer.onnx", "spec.json"}
