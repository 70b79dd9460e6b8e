"""The one error type the CLI turns into a one-line message and exit status 2."""

__all__ = ["KdccError"]


class KdccError(Exception):
    """Bad input or an impossible request; the message names the file/option and the problem."""
