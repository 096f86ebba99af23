"""Monte Carlo estimates of the expected hitting time, beside the exact value.

Sits above the walks (:mod:`mazejax.simulate`) and the exact solver (:mod:`mazejax.exact`).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import numpy as np

from mazejax import exact as exact_module
from mazejax.maze import Maze
from mazejax.simulate import rollout


class MonteCarlo(NamedTuple):
    """Monte Carlo estimate of the expected hitting time (host floats).

    Attributes:
      mean: mean of ``length`` over the rollouts (moves, or proposals with the scaffold); walks that
        missed the target count ``horizon``, so this is ``E[min(T, horizon)]``.
      stderr: standard error of ``mean`` (sample standard deviation / sqrt(num)).
      success_rate: fraction of rollouts that hit the target within the horizon.
      success_stderr: its standard error, ``sqrt(p (1 - p) / num)``.
      exact: the exact expected hitting time ``H`` (:func:`mazejax.exact.hitting_time`), or NaN where
        no exact value exists (the search scaffold).
      z: ``(mean - exact) / stderr``; NaN unless every walk hit the target and ``exact`` is finite.
      num: number of rollouts.
    """

    mean: float
    stderr: float
    success_rate: float
    success_stderr: float
    exact: float
    z: float
    num: int



def monte_carlo(
    maze: Maze, logits: jax.Array, key: jax.Array, num: int, horizon: int, search: Optional[str] = None, *, devices=None
) -> MonteCarlo:
    """Monte Carlo mean hitting time of ``num`` rollouts, compared with the exact ``H``.

    Host-level helper (returns Python floats; not for use under ``jit``). With ``search`` the mean
    is the scaffold's expected cost in proposals, for which no exact solver exists (``exact`` and
    ``z`` are NaN); without it the exact value needs ``jax_enable_x64``. Arguments as in
    :func:`mazejax.rollout`.
    """
    result = rollout(maze, logits, key, num, horizon, search, devices=devices)
    length = np.asarray(result.length, np.float64)
    success = np.asarray(result.success)
    mean = float(length.mean())
    stderr = float(length.std(ddof=1) / np.sqrt(num)) if num > 1 else float("nan")
    rate = float(success.mean())
    exact = float("nan")
    if search is None:
        exact = float(exact_module.hitting_time(maze, logits))
    z = (mean - exact) / stderr if (rate == 1.0 and np.isfinite(exact) and stderr > 0) else float("nan")
    return MonteCarlo(mean, stderr, rate, float(np.sqrt(rate * (1 - rate) / num)), exact, float(z), num)


__all__ = ["MonteCarlo", "monte_carlo"]
