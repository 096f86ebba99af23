"""Argument checks: every check of the package lives here.

Checks run on host values before anything is traced or compiled and raise a ``ValueError`` that
names the parameter and the allowed values (``W[0] must be an integer >= 1, got 0``). Values
that are JAX tracers (inside ``jit``/``vmap``/``grad``) are checked for what is known at trace
time (shapes, dtypes) and otherwise passed through.

Two kinds of checks:

* functions ``check(name, value)`` for one argument (:func:`integer`, :func:`number`, ...);
* :class:`Rule` objects, the same checks as values, which trainer configurations and
  hyperparameters attach to their fields (:mod:`mazejax.train.base`) and the sweep reads.

:func:`require_x64` enforces the package's precision design (README, "Precision"): exact
analysis is float64, which JAX only provides when ``jax_enable_x64`` is set for the process.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Callable, Sequence

import jax
import numpy as np

#: The one line that enables float64 in JAX; named by every precision error.
ENABLE_X64 = 'jax.config.update("jax_enable_x64", True)'


class PrecisionError(RuntimeError):
    """A float64 computation was requested while JAX runs with x64 disabled."""


def require_x64(what: str) -> None:
    """Raise :class:`PrecisionError` unless JAX has float64 enabled process-wide.

    JAX reads the flag when a function is traced and again when its derivative is traced (after
    the function returned), so float64 cannot be switched on per call; it must be on for the
    whole process, before the first JAX computation.
    """
    if not jax.config.jax_enable_x64:
        raise PrecisionError(
            f"{what} computes in float64, which JAX disables by default; run {ENABLE_X64} once at "
            "start-up, right after importing jax (the mazejax command line does this itself)"
        )


def is_traced(value) -> bool:
    """True when ``value`` (or any leaf of it) is an abstract tracer, not a concrete array."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(value))


# ----------------------------------------------------------------------------------------
# One-argument checks


def integer(name: str, value, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an int, or raise unless it is an integer in ``[minimum, maximum]``."""
    bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    if is_traced(value):
        return value
    if np.ndim(value) > 0 and np.issubdtype(np.asarray(value).dtype, np.integer):  # an array of sweep values
        values = np.asarray(value)
        if np.any(values < minimum) or (maximum is not None and np.any(values > maximum)):
            raise ValueError(f"{name} must be an integer {bound}, got {value!r}")
        return value
    if isinstance(value, (np.ndarray, jax.Array)) and np.ndim(value) == 0 and np.issubdtype(value.dtype, np.integer):
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer {bound}, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an integer {bound}, got {value!r}")
    return int(value)


def positive_int(name: str, value, minimum: int = 1) -> int:
    """``value`` as an int, or raise unless it is an integer >= ``minimum``."""
    return integer(name, value, minimum)


def number(name: str, value, low: float = -math.inf, high: float = math.inf, *, low_open: bool = False,
           high_open: bool = False):
    """Raise unless every entry of a concrete ``value`` (scalar or array of sweep values) is a finite
    number in the interval; returns ``value`` unchanged (tracers pass)."""
    if is_traced(value):
        return value
    interval = _interval(low, high, low_open, high_open)
    if isinstance(value, (bool, np.bool_, str, bytes)) or value is None:
        raise ValueError(f"{name} must be a finite number {interval}, got {value!r}")
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number {interval}, got {value!r}") from None
    ok = np.all(np.isfinite(arr))
    ok = ok and np.all(arr > low if low_open else arr >= low) and np.all(arr < high if high_open else arr <= high)
    if not ok:
        raise ValueError(f"{name} must be a finite number {interval}, got {value!r}")
    return value


def positive_float(name: str, value, *, allow_zero: bool = False):
    """Raise unless a concrete ``value`` is a finite number > 0 (>= 0 with ``allow_zero``)."""
    return number(name, value, 0.0, low_open=not allow_zero)


def _interval(low, high, low_open, high_open) -> str:
    if math.isinf(high):
        return f"{'>' if low_open else '>='} {low:g}" if math.isfinite(low) else ""
    if math.isinf(low):
        return f"{'<' if high_open else '<='} {high:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def choice(name: str, value, options: Sequence) -> Any:
    """Raise unless ``value`` is one of ``options``."""
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}, got {value!r}")
    return value


def boolean(name: str, value) -> bool:
    """Raise unless ``value`` is a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def logits_shape(maze, logits) -> None:
    """Raise unless ``logits`` has the maze's shape [states, out_degree] and sane values.

    Values are checked only when both are concrete: finite or ``-inf`` on valid moves, and every
    real state keeps at least one move with logit > -inf.
    """
    expected = (maze.capacity.states, maze.capacity.out_degree)
    shape = tuple(np.shape(logits))
    if shape != expected:
        raise ValueError(f"logits must have shape (states, out_degree) = {expected} for this maze, got {shape}")
    if is_traced(logits) or is_traced(maze):
        return
    values = np.asarray(logits, dtype=np.float64)
    valid = np.asarray(maze.valid)
    if np.isnan(values[valid]).any() or np.isposinf(values[valid]).any():
        raise ValueError("logits must be finite or -inf on valid moves (found NaN or +inf)")
    rows = np.asarray(maze.state_mask)
    has_move = np.any(valid & (values > -np.inf), axis=1)
    if np.any(rows & ~has_move):
        bad = int(np.flatnonzero(rows & ~has_move)[0])
        raise ValueError(f"logits must give every state at least one move with logit > -inf; state {bad} has none")


# ----------------------------------------------------------------------------------------
# Rules: checks as values (for configuration fields)


@dataclasses.dataclass(frozen=True)
class Rule:
    """A named check: ``rule(name, value)`` returns the normalised value or raises ValueError.

    ``text`` describes the allowed values (for docs and error messages), ``kind`` is the value's
    kind (``"int"``, ``"float"``, ``"bool"``, ``"str"``, ``"int_or_none"``) for parsing
    command-line values.
    """

    check: Callable[[str, Any], Any]
    text: str
    kind: str

    def __call__(self, name: str, value):
        return self.check(name, value)


def Integer(minimum: int = 1, maximum: int | None = None) -> Rule:  # noqa: N802 (a rule constructor)
    """Rule: an integer in ``[minimum, maximum]``."""
    text = f"integer >= {minimum}" if maximum is None else f"integer in [{minimum}, {maximum}]"
    return Rule(lambda n, v: integer(n, v, minimum, maximum), text, "int")


def OptionalInteger(minimum: int = 1) -> Rule:  # noqa: N802
    """Rule: ``None`` or an integer >= ``minimum``."""
    return Rule(lambda n, v: None if v is None else integer(n, v, minimum), f"none or integer >= {minimum}",
                "int_or_none")


def Number(low: float = -math.inf, high: float = math.inf, *, low_open: bool = False,
           high_open: bool = False) -> Rule:  # noqa: N802
    """Rule: a finite number (or array of them) in the interval; ints are accepted."""

    def check(name, value):
        number(name, value, low, high, low_open=low_open, high_open=high_open)
        return float(value) if isinstance(value, numbers.Real) else value

    return Rule(check, f"number {_interval(low, high, low_open, high_open)}".strip(), "float")


def Choice(*options) -> Rule:  # noqa: N802
    """Rule: one of ``options``."""
    return Rule(lambda n, v: choice(n, v, options), "one of " + ", ".join(map(repr, options)), "str")


BOOLEAN = Rule(boolean, "true or false", "bool")


__all__ = [
    "BOOLEAN",
    "ENABLE_X64",
    "Choice",
    "Integer",
    "Number",
    "OptionalInteger",
    "PrecisionError",
    "Rule",
    "boolean",
    "choice",
    "integer",
    "is_traced",
    "logits_shape",
    "number",
    "positive_float",
    "positive_int",
    "require_x64",
]
