"""Sound bounds on an agent step's outputs over a box of observations, and the certified ε they give.

`graph` turns a QMIX agent network (hidden state and last action fixed) into a small DAG of
affine, scale, add, relu, σ, tanh and product nodes; `ibp` propagates intervals through it,
`crown` linear bounds by back-substitution; `certify` bisects for the largest ε at which the
greedy action's margin over every other action stays provably positive. `episode` lets the hidden
state move too (a box carried from step to step), so certificates compose over an episode.
"""

from kdcc.ir.bounds.certify import METHODS, certified_eps, certified_radius, margin_spec
from kdcc.ir.bounds.crown import crown_bounds, margin_bounds_crown
from kdcc.ir.bounds.episode import episode_first_loss, step_bounds, step_graph
from kdcc.ir.bounds.graph import BoundGraph, agent_graph
from kdcc.ir.bounds.ibp import interval_bounds, margin_bounds_ibp

__all__ = ["METHODS", "BoundGraph", "agent_graph", "interval_bounds", "crown_bounds", "margin_bounds_ibp",
           "margin_bounds_crown", "margin_spec", "certified_radius", "certified_eps", "step_graph", "step_bounds",
           "episode_first_loss"]
