"""What every fuzz test shares: mutation strategies and the one property.

The property: a reader given any input either succeeds or raises one `KdccError` whose message is one
line; any other exception, or a run past `TIMEOUT` seconds (a hang), fails the test with the input that
caused it. CI runs `EXAMPLES` (derandomised, so a failure reproduces); `make fuzz` sets
KDCC_FUZZ_EXAMPLES high and KDCC_FUZZ_RANDOM=1 to explore further.
"""

from __future__ import annotations

import contextlib
import copy
import os
import signal
from typing import Any, Callable

from hypothesis import HealthCheck, Verbosity, settings
from hypothesis import strategies as st

from kdcc.core.errors import KdccError

__all__ = ["EXAMPLES", "FUZZ", "TIMEOUT", "check_reader", "mutated_bytes", "mutated_json", "NASTY"]

EXAMPLES = int(os.environ.get("KDCC_FUZZ_EXAMPLES", "20"))
TIMEOUT = 20
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("KDCC_FUZZ_RANDOM"),
                database=None, suppress_health_check=list(HealthCheck), print_blob=True, verbosity=Verbosity.normal)

# Values that break readers: wrong types, huge or negative sizes, non-finite numbers, odd strings.
NASTY = st.one_of(
    st.none(), st.booleans(),
    st.sampled_from([0, -1, 1, 2, 3, 10**9, 10**12, 2**63, -(2**63), 10**30]),
    st.integers(-1000, 1000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "x", "qmix", "rnn", "ff", "vdn", "none", "\x00", "../../etc", "1e9", "é" * 3]),
    st.lists(st.integers(-2, 10**9), max_size=4),
    st.dictionaries(st.sampled_from(["a", "id", "kind", "path"]), st.integers(-1, 5), max_size=2),
)


class Hang(AssertionError):
    pass


@contextlib.contextmanager
def _deadline(seconds: int):
    def ring(*_):
        raise Hang(f"the reader ran for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def check_reader(read: Callable[[], Any]) -> str:
    """Run `read()`; "ok" or "refused" (a one-line KdccError); anything else propagates as a failure."""
    with _deadline(TIMEOUT):
        try:
            read()
        except KdccError as e:
            message = str(e)
            assert message.strip() and "\n" not in message, f"KdccError is not one line: {message!r}"
            return "refused"
    return "ok"


@st.composite
def mutated_bytes(draw, seed: bytes) -> bytes:
    """1-4 edits of `seed`: truncation, flipped bytes, a run of 0x00/0xff, inserted or deleted bytes."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        n = len(data)
        at = draw(st.integers(0, max(n - 1, 0)))
        op = draw(st.sampled_from(["truncate", "flip", "fill", "insert", "delete"]))
        if op == "truncate":
            del data[at:]
        elif op == "flip" and n:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "fill":
            data[at:at + draw(st.integers(1, 16))] = bytes([draw(st.sampled_from([0, 0xFF]))]) * 8
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 16))]
    return bytes(data)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated_json(draw, doc: Any, values=NASTY) -> Any:
    """`doc` (plain JSON data) with 1-3 of its nodes replaced by `values` or deleted."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        if not path:
            doc = draw(values)
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) or not isinstance(parent, dict):
            parent[path[-1]] = draw(values)
        else:
            del parent[path[-1]]
    return doc
