"""Passes: one per file, registered by name; named pipelines are in `pipelines`."""

from kdcc.passes import eliminate_dead_code, fold_constants, fuse_team, normalize_eval  # noqa: F401  (registers)
from kdcc.passes.base import Budget, Pass, PassContext, get_pass, register, registered

__all__ = ["Budget", "Pass", "PassContext", "get_pass", "register", "registered"]
