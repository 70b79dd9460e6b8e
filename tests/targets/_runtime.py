"""Tests that build for Orin need the aarch64 TVM runtime that `make setup` fetches into the cache.

A checkout without it skips them, naming the command, unless in CI: there `make test` runs the
setup first, so a missing runtime is a failure (write_bundle's one-line error says why).
"""

from __future__ import annotations

import os

import pytest

from kdcc.core.errors import KdccError
from kdcc.targets.bundle.runtime_libs import fetch_command, runtime_libraries


def _cached(arch: str) -> bool:
    try:
        runtime_libraries(arch)
    except KdccError:
        return False
    return True


needs_aarch64_runtime = pytest.mark.skipif(
    not os.environ.get("CI") and not _cached("aarch64"),
    reason=f"the aarch64 TVM runtime is not fetched: run `{fetch_command('aarch64')}` (or `make setup`)")
