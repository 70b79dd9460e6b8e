"""The bundle's C/C++/CMake templates: package data found through importlib.resources, filled in full."""

from __future__ import annotations

import tomllib
from importlib import resources
from types import SimpleNamespace

import pytest

from kdcc.targets.bundle.sources import TEMPLATES, bundle_sources, render
from tests.conftest import REPO, tiny_spec


def test_every_template_is_package_data():
    templates = resources.files("kdcc.targets.bundle") / "templates"
    for name in TEMPLATES.values():
        assert (templates / name).is_file(), name
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "templates/*.in" in data["kdcc.targets.bundle"]


def test_sources_are_filled_in_and_keep_c_and_cmake_syntax():
    libraries = [SimpleNamespace(device="cpu", arch="aarch64"), SimpleNamespace(device="gpu", arch="aarch64")]
    files = bundle_sources(tiny_spec(), libraries, "ab" * 32)
    assert sorted(files) == sorted(TEMPLATES)
    assert not [path for path, text in files.items() if "@" in text]
    header = files["include/kdcc_policy.h"]
    assert "#define KDCC_POLICY_N_AGENTS 3\n" in header and '#define KDCC_POLICY_DEVICES "cpu,gpu"' in header
    assert 'extern "C" {\n' in header  # braces are C's own, not escaped
    cmake = files["kdcc_policy.cmake"]
    assert 'set(KDCC_POLICY_DEVICES_aarch64 "cpu;gpu")\nset(KDCC_POLICY_ARCHES "aarch64")\n' in cmake
    assert 'set(KDCC_POLICY_ROOT "${CMAKE_CURRENT_LIST_DIR}")' in cmake


def test_a_value_the_template_needs_must_be_given():
    with pytest.raises(ValueError, match="kdcc_policy.h.in: no value for"):
        render("kdcc_policy.h.in", version="0")
