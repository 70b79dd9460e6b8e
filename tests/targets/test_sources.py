"""The bundle's C/C++/CMake templates: package data found through importlib.resources, filled in full."""

from __future__ import annotations

import tomllib
from importlib import resources
from types import SimpleNamespace

import pytest

from kdcc.targets.bundle.sources import TEMPLATES, bundle_sources, render
from tests.conftest import REPO, speaker_listener_spec, tiny_spec


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


def test_the_robot_api_holds_the_role_table_and_a_target_per_role():
    spec = speaker_listener_spec().with_agent(widths=(8, 16), hidden_dim=16)  # one network per agent
    files = bundle_sources(spec, [SimpleNamespace(device="cpu", arch="x86_64")], "ab" * 32,
                           ["agent0", "agent1", "monitor"])
    assert not [path for path, text in files.items() if "@" in text]
    table = files["src/kdcc_agents.h"]  # role, own obs, own actions, role obs, role actions, hidden, shared
    assert '{"agent0", 3, 3, 3, 3, 8, false},  // agent 0\n    {"agent1", 11, 5, 11, 5, 16, false},  // agent 1' in table
    header = files["include/kdcc_agent.h"]
    assert "#define KDCC_AGENT_MAX_OBS_SIZE 11 " in header and "#define KDCC_AGENT_MAX_N_ACTIONS 5 " in header
    assert " *   agent 0: lib/<device>/agent0.direct.so (its own network, hidden 8), obs 3 floats, 3 actions\n" in header
    cmake = files["kdcc_policy.cmake"]
    assert "foreach(_kdcc_role agent0 agent1)\n" in cmake and "if(TRUE)\n  _kdcc_policy_add(kdcc_policy_monitor" in cmake


def test_a_shared_role_pads_to_the_widest_agent_and_a_bundle_without_roles_has_no_role_target():
    files = bundle_sources(speaker_listener_spec(hidden=16), [SimpleNamespace(device="cpu", arch="x86_64")], "ab" * 32)
    table = files["src/kdcc_agents.h"]
    assert '{"agent", 3, 3, 11, 5, 16, true},  // agent 0\n    {"agent", 11, 5, 11, 5, 16, true},  // agent 1' in table
    cmake = files["kdcc_policy.cmake"]
    assert "foreach(_kdcc_role )\n" in cmake and "if(FALSE)\n" in cmake


def test_a_value_the_template_needs_must_be_given():
    with pytest.raises(ValueError, match="kdcc_policy.h.in: no value for"):
        render("kdcc_policy.h.in", version="0")
