"""Fixtures of the target tests: `tracker`, a TVM RPC tracker with one server on 127.0.0.1 (`_rpc.py`)."""

from tests.targets._rpc import tracker  # noqa: F401 - a fixture, module-scoped
