"""Argument checks shared by the public API.

Every check runs on host values before anything is traced or compiled and raises a
``ValueError`` that names the parameter and the allowed values.
"""

from __future__ import annotations

import numbers

import jax
import numpy as np


def positive_int(name: str, value, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise if it is not an integer >= ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def positive_float(name: str, value, *, allow_zero: bool = False) -> None:
    """Raise unless a concrete ``value`` is a finite number > 0 (>= 0 with ``allow_zero``)."""
    if is_traced(value):
        return
    arr = np.asarray(value, dtype=float)
    bound = ">= 0" if allow_zero else "> 0"
    ok = np.all(np.isfinite(arr)) and (np.all(arr >= 0) if allow_zero else np.all(arr > 0))
    if not ok:
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")


def is_traced(value) -> bool:
    """True when ``value`` (or any leaf of it) is an abstract tracer, not a concrete array."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(value))


def logits_shape(maze, logits) -> None:
    """Raise unless ``logits`` has the maze's shape [states, out_degree] and sane values."""
    expected = (maze.capacity.states, maze.capacity.out_degree)
    shape = tuple(np.shape(logits))
    if shape != expected:
        raise ValueError(
            f"logits must have shape (states, out_degree) = {expected} for this maze, got {shape}"
        )
    if is_traced(logits):
        return
    values = np.asarray(logits, dtype=np.float64)
    valid = np.asarray(maze.valid)
    if np.isnan(values[valid]).any() or np.isposinf(values[valid]).any():
        raise ValueError("logits must be finite or -inf on valid moves (found NaN or +inf)")
    rows = np.asarray(maze.state_mask)
    has_move = np.any(valid & (values > -np.inf), axis=1)
    if np.any(rows & ~has_move):
        bad = int(np.flatnonzero(rows & ~has_move)[0])
        raise ValueError(
            f"logits must give every state at least one move with logit > -inf; state {bad} has none"
        )
