"""kdcc: a static-graph compiler for multi-agent RL student models."""

from kdcc.core.numerics import pin_cpu_numerics

pin_cpu_numerics()  # before torch runs anything: the same bits on every x86-64 CPU (kdcc/core/numerics.py)

__version__ = "0.1.0"
