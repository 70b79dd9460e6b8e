"""kdcc: a static-graph compiler for multi-agent RL student models."""

__version__ = "0.1.0"
