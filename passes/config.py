"""Typed pass options: each pass declares a frozen config dataclass, built from `--opt PASS.KEY=VALUE`.

A pass's options are the fields of its config class, each with a default and a
one-line doc (`option(default, doc)`), so `kdcc passes` can list them and a
misspelt key or a value of the wrong type is refused before any pass runs,
rather than silently ignored or truncated. Values arrive as strings from the
command line and as numbers from the Python API; both are coerced by the
field's type: int takes whole numbers ("20", "2e3", 20.0), float any finite
number, bool takes true/false/1/0. Coerced values keep their JSON form (20
stays an int, 0.5 a float), which is what compile records store.
"""

from __future__ import annotations

import math
import numbers
import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Mapping

from kdcc.core.errors import KdccError

__all__ = ["NoOptions", "option", "option_specs", "coerce_option", "build_config"]

_TYPES = (bool, int, float)


@dataclass(frozen=True)
class NoOptions:
    """The config of a pass that takes no options."""


def option(default: Any, doc: str) -> Any:
    """A config field: its default and the one line `kdcc passes` shows for it."""
    return field(default=default, metadata={"doc": doc})


def option_specs(config: type) -> list[dict[str, Any]]:
    """[{name, type, default, doc}] of a config class, in declaration order (plain data, for listings)."""
    hints = typing.get_type_hints(config)
    out = []
    for f in fields(config):
        if hints[f.name] not in _TYPES or f.default is MISSING:
            raise TypeError(f"{config.__name__}.{f.name}: a pass option is a bool, int or float with a default")
        out.append({"name": f.name, "type": hints[f.name].__name__, "default": f.default,
                    "doc": f.metadata.get("doc", "")})
    return out


def _keys(pass_name: str, config: type) -> str:
    specs = option_specs(config)
    if not specs:
        return f"{pass_name} takes no options"
    return f"{pass_name}'s options: " + ", ".join(f"{s['name']} ({s['type']})" for s in specs)


_BOOLS = {"true": True, "1": True, "false": False, "0": False}


def _coerce(kind: type, value: Any) -> Any:
    """`value` as `kind`; ValueError with the reason when it is not one."""
    if kind is bool:
        text = str(value).strip().lower()  # True -> "true", 1 -> "1"
        if text not in _BOOLS:
            raise ValueError(f"not true, false, 1 or 0: {value!r}")
        return _BOOLS[text]
    if isinstance(value, bool) or not isinstance(value, (str, numbers.Real)):
        raise ValueError(f"not a number: {value!r}")
    if kind is int and (isinstance(value, numbers.Integral) or
                        isinstance(value, str) and value.strip().lstrip("+-").isdigit()):
        return int(value)
    return _finite(value, kind)


def _finite(value: Any, kind: type) -> int | float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"not a number: {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {value!r}")
    if kind is float:
        return number
    if not number.is_integer():  # "2e3" is a whole number; "1.5" is not
        raise ValueError(f"not a whole number: {value!r}")
    return int(number)


def coerce_option(pass_name: str, config: type, key: str, value: Any) -> Any:
    """The typed value of option `key` of a pass; a one-line KdccError naming the option and listing the pass's
    options when the key is unknown or the value is not of its type."""
    hints = typing.get_type_hints(config)
    names = [f.name for f in fields(config)]
    if key not in names:
        raise KdccError(f"--opt {pass_name}.{key}: no option {key!r} ({_keys(pass_name, config)})")
    try:
        return _coerce(hints[key], value)
    except ValueError as e:
        raise KdccError(f"--opt {pass_name}.{key}: {e} ({_keys(pass_name, config)})") from None


def build_config(pass_name: str, config: type, options: Mapping[str, Any]) -> Any:
    """The config of pass `pass_name` from "pass.key" options (other passes' keys are left alone)."""
    prefix = f"{pass_name}."
    values = {k[len(prefix):]: v for k, v in options.items() if k.startswith(prefix)}
    return config(**{k: coerce_option(pass_name, config, k, v) for k, v in values.items()})
