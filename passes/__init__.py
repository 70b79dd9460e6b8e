"""Passes: one per file, registered by name with a typed config; named pipelines are in `pipelines`."""

from kdcc.passes import (  # noqa: F401  (importing a pass module registers it)
    approximate_mixer,
    batch_agents,
    distill,
    eliminate_dead_code,
    fold_constants,
    fuse_team,
    normalize_eval,
    prune,
)
from kdcc.passes.base import (
    Budget,
    Pass,
    PassContext,
    check_options,
    describe_passes,
    get_pass,
    register,
    registered,
)

__all__ = ["Budget", "Pass", "PassContext", "check_options", "describe_passes", "get_pass", "register",
           "registered"]
