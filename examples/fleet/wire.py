"""The fleet's UDP datagrams (README.md, "Wire format"): one header, then the payload.

Little-endian, 20-byte header `<4sBBBBHHII`: magic b"KDFL", version 1, kind, flags, a zero
byte, agent index, payload count, episode, step. A STEP request carries the agent's own
observation (`count` float32); its STEP_REPLY echoes agent/episode/step and carries the
action as one int64 (count 1). robot.cc writes and reads the same layout.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

__all__ = ["HEADER", "MAGIC", "VERSION", "STEP", "PING", "BYE", "STEP_REPLY", "PONG", "RESET", "ERROR",
           "Header", "pack", "unpack_header", "step_request", "reply_action"]

HEADER = struct.Struct("<4sBBBBHHII")
MAGIC, VERSION = b"KDFL", 1
# kinds: simulator -> robot, and the robot's answers (the request's kind with the high bit set)
STEP, PING, BYE = 1, 2, 3
STEP_REPLY, PONG = 0x81, 0x82
# flags
RESET = 0x01  # the first step of an episode: the robot starts its agent from the reset state
ERROR = 0x02  # in a STEP_REPLY: the robot could not step (its stderr says why); the action is not valid


@dataclass(frozen=True)
class Header:
    kind: int
    flags: int
    agent: int
    count: int
    episode: int
    step: int


def pack(kind: int, agent: int, episode: int = 0, step: int = 0, flags: int = 0, payload: bytes = b"",
         count: int = 0) -> bytes:
    return HEADER.pack(MAGIC, VERSION, kind, flags, 0, agent, count, episode, step) + payload


def unpack_header(datagram: bytes) -> Header | None:
    """The header of a datagram of this protocol and version, or None for anything else."""
    if len(datagram) < HEADER.size:
        return None
    magic, version, kind, flags, _, agent, count, episode, step = HEADER.unpack_from(datagram)
    if magic != MAGIC or version != VERSION:
        return None
    return Header(kind, flags, agent, count, episode, step)


def step_request(agent: int, episode: int, step: int, own_obs: np.ndarray) -> bytes:
    obs = np.ascontiguousarray(own_obs, dtype="<f4")
    return pack(STEP, agent, episode, step, RESET if step == 0 else 0, obs.tobytes(), obs.size)


def reply_action(datagram: bytes, header: Header) -> int | None:
    """The action of a well-formed STEP_REPLY, or None (malformed, or the robot reported an error)."""
    if header.flags & ERROR or header.count != 1 or len(datagram) != HEADER.size + 8:
        return None
    return struct.unpack_from("<q", datagram, HEADER.size)[0]
