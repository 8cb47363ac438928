"""Declaring node parameters from one table per node: type, default, description, range or choices.

Each node lists its parameters as `ParamSpec`s; `declare_parameters` declares them all with a
ParameterDescriptor (description, range, read-only), then checks and coerces the values itself so that a
YAML or `-p` value of the "wrong" numeric kind (`control_rate_hz: 100` for a double) is accepted instead of
aborting with a type error, while a value out of range or not among the choices is refused with a message
that names the parameter, the allowed values and where to fix it. The config/<node>.yaml files hold the
same table (test_ros_nodes_params checks that they match).

Parameters are read once at start and are read-only afterwards: changing the control rate or the model
under a running control loop is a restart, not a parameter event.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

KINDS = ("bool", "int", "float", "str", "float_list")


class ParameterError(ValueError):
    """A parameter value the node cannot run with; the message says which and how to fix it."""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    kind: str  # one of KINDS
    default: Any
    description: str
    low: float | None = None  # inclusive bounds for int/float (and for each element of a float_list)
    high: float | None = None
    choices: tuple[str, ...] | None = None  # allowed values of a str parameter

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: unknown kind {self.kind!r}")
        # The defaults must pass their own checks (catches typos in the node tables at import time).
        self.coerce(self.default)

    def constraints(self) -> str:
        parts = [self.kind]
        if self.low is not None or self.high is not None:
            lo = "-inf" if self.low is None else f"{self.low:g}"
            hi = "inf" if self.high is None else f"{self.high:g}"
            parts.append(f"in [{lo}, {hi}]")
        if self.choices:
            parts.append("one of " + ", ".join(self.choices))
        return "; ".join(parts)

    def descriptor(self) -> ParameterDescriptor:
        d = ParameterDescriptor(
            name=self.name,
            description=self.description,
            additional_constraints=self.constraints(),
            read_only=True,
            # Typing is checked (and ints widened to doubles) in coerce(), with our own error messages.
            dynamic_typing=True,
        )
        if self.kind == "int" and self.low is not None and self.high is not None:
            d.integer_range = [IntegerRange(from_value=int(self.low), to_value=int(self.high), step=0)]
        elif self.kind == "float" and self.low is not None and self.high is not None:
            d.floating_point_range = [
                FloatingPointRange(from_value=float(self.low), to_value=float(self.high), step=0.0)]
        return d

    def _check_range(self, value: float) -> None:
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise ParameterError(
                f"parameter {self.name!r} = {value!r} is out of range ({self.constraints()})")

    def coerce(self, value: Any) -> Any:
        """The value as this parameter's Python type, or ParameterError."""
        bad = ParameterError(f"parameter {self.name!r} = {value!r} has the wrong type ({self.constraints()})")
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise bad
            return value
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad
            self._check_range(value)
            return int(value)
        if self.kind == "float":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise bad
            value = float(value)
            if not math.isfinite(value):
                raise ParameterError(f"parameter {self.name!r} must be finite, got {value!r}")
            self._check_range(value)
            return value
        if self.kind == "str":
            if not isinstance(value, str):
                raise bad
            if self.choices and value not in self.choices:
                raise ParameterError(
                    f"parameter {self.name!r} = {value!r} is not one of {', '.join(self.choices)}")
            return value
        # float_list: an empty YAML list arrives untyped (None).
        if value is None:
            return []
        if isinstance(value, str | bytes) or not isinstance(value, Sequence | Iterable):
            raise bad
        out = []
        for v in value:
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise bad
            self._check_range(float(v))
            out.append(float(v))
        return out


def declare_parameters(node, specs: Sequence[ParamSpec]) -> dict[str, Any]:
    """Declare every spec on `node` and return {name: checked value}; ParameterError on a bad value."""
    values: dict[str, Any] = {}
    for spec in specs:
        # rclpy cannot type an empty list; declared untyped (None), it reads back as [].
        default = None if spec.kind == "float_list" and not spec.default else spec.default
        param = node.declare_parameter(spec.name, default, spec.descriptor())
        value = param.value if param.type_ != param.Type.NOT_SET else None
        try:
            values[spec.name] = spec.coerce(value)
        except ParameterError as exc:
            raise ParameterError(f"{exc}; fix it in the node's parameter file (config/*.yaml) or with "
                                 f"`-p {spec.name}:=<value>`") from None
    return values
