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

import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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

    def descriptor(self):
        """The rcl_interfaces ParameterDescriptor (imported here: the tables themselves need no ROS)."""
        from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

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


def unknown_names(given: Iterable[str], specs: Sequence[ParamSpec], node: str) -> str:
    """'' when every name in `given` is a parameter of `specs`; otherwise a message naming each unknown one,
    the closest known name, and the full list."""
    known = [spec.name for spec in specs]
    problems = []
    for name in given:
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1)
        problems.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    if not problems:
        return ""
    return (f"{node} has no parameter {', '.join(problems)}; its parameters are: {', '.join(known)}")


def check_values(values: Mapping[str, Any], specs: Sequence[ParamSpec], node: str) -> dict:
    """Check parameter values the way `node` would (names, types, ranges, choices) without starting it.

    Returns the coerced values; ParameterError naming the node and the parameter (the caller adds where
    to fix it).
    """
    unknown = unknown_names(values, specs, node)
    if unknown:
        raise ParameterError(unknown)
    by_name = {spec.name: spec for spec in specs}
    out = {}
    for name, value in values.items():
        try:
            out[name] = by_name[name].coerce(value)
        except ParameterError as exc:
            raise ParameterError(f"{node} {exc}") from None
    return out


# Parameters rclpy itself declares on every node; an override of these is not a typo.
_RCLPY_PARAMETERS = ("use_sim_time", "start_type_description_service")


def declare_parameters(node, specs: Sequence[ParamSpec]) -> dict[str, Any]:
    """Declare every spec on `node` and return {name: checked value}; ParameterError on a bad value.

    A parameter given to the node (parameter file or `-p`) that it does not declare is refused as well:
    rclpy would silently ignore it, so a misspelled `-p max_episode_step:=...` would change nothing.
    """
    from rclpy.exceptions import ParameterException

    overrides = dict(getattr(node, "_parameter_overrides", {}) or {})
    given = [name for name in overrides
             if name not in _RCLPY_PARAMETERS and not name.startswith("qos_overrides.")]
    unknown = unknown_names(given, specs, node.get_name())
    if unknown:
        raise ParameterError(f"{unknown}. Fix: correct the name in the parameter file (config/*.yaml) or "
                             "the `-p <name>:=<value>` argument")
    values: dict[str, Any] = {}
    for spec in specs:
        # rclpy cannot type an empty list; declared untyped (None), it reads back as [].
        default = None if spec.kind == "float_list" and not spec.default else spec.default
        fix = (f"fix it in the node's parameter file (config/*.yaml) or with `-p {spec.name}:=<value>`")
        try:
            param = node.declare_parameter(spec.name, default, spec.descriptor())
        except ParameterException as exc:
            # rclpy refuses a value outside the descriptor's range with its own exception and traceback:
            # give our message instead (the override's value checked by the same rules).
            given_value = overrides.get(spec.name)
            try:
                spec.coerce(getattr(given_value, "value", given_value))
            except ParameterError as ours:
                raise ParameterError(f"{ours}; {fix}") from None
            raise ParameterError(f"parameter {spec.name!r}: {exc}; {fix}") from None
        value = param.value if param.type_ != param.Type.NOT_SET else None
        try:
            values[spec.name] = spec.coerce(value)
        except ParameterError as exc:
            raise ParameterError(f"{exc}; {fix}") from None
    return values
