"""What sampled RLVR trainers share (SPEC 4.2): reward, baselines, horizon rule, score-function gradient.

*Reward.* A walk of ``length`` moves earns ``r = 1{target hit within the horizon} - beta * length``.
With an unlimited horizon every walk hits, so ``J = E[r] = 1 - beta * H`` and
``dJ/dtheta = -beta * dH/dtheta`` (the objective of :mod:`mazejax.train.rlvr`); a finite horizon
cuts the walks that miss at ``length = horizon`` with no hit bonus.

*Horizon.* Either fixed, or ``ceil(horizon_scale * H)`` for the current policy's exact ``H`` (the
paper's PPO uses twice ``H``), capped by a fixed maximum. Both are array leaves: the stepper
(:func:`mazejax.simulate.sample_walks`) takes a traced horizon, so changing it never recompiles.

*Score function.* For the tabular softmax policy the score of a walk is
``d log p(walk) / d theta[s, m] = N[s, m] - N[s] * pi(m | s)`` with ``N[s, m]`` the number of
times the walk made move ``m`` from state ``s`` and ``N[s] = sum_m N[s, m]``. A sum of scores
weighted by advantages therefore only needs the advantage-weighted move counts
``C = sum_i A_i N_i`` (:func:`score_gradient`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mazejax import _checks
from mazejax.maze import Maze
from mazejax.policy import probabilities
from mazejax.train import common

#: Largest horizon the stepper accepts (exclusive).
HORIZON_LIMIT = 2**31


def check_horizon(horizon) -> None:
    """Raise unless a concrete ``horizon`` (int or int array of sweep values) is in [1, 2**31)."""
    if _checks.is_traced(horizon):
        return
    values = np.asarray(horizon)
    if values.dtype == bool or not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"horizon must be an integer in [1, 2**31), got {horizon!r}")
    if np.any(values < 1) or np.any(values >= HORIZON_LIMIT):
        raise ValueError(f"horizon must be an integer in [1, 2**31), got {horizon!r}")


def check_rollout_hparams(lr, beta, horizon, horizon_scale) -> None:
    """Validate the hyperparameters every sampled RLVR trainer has (concrete values only)."""
    _checks.positive_float("lr", lr)
    _checks.positive_float("beta", beta, allow_zero=True)
    check_horizon(horizon)
    _checks.positive_float("horizon_scale", horizon_scale, allow_zero=True)


def check_rollouts(num_rollouts) -> int:
    """``num_rollouts`` as an int >= 2 (a leave-one-out baseline needs two walks)."""
    return _checks.positive_int("num_rollouts", num_rollouts, minimum=2)


def rollout_horizon(horizon: jax.Array, horizon_scale: jax.Array, hitting_time: jax.Array) -> jax.Array:
    """int32 scalar: the horizon of this batch of rollouts.

    ``horizon`` when ``horizon_scale == 0``, else ``min(horizon, ceil(horizon_scale * H))`` with
    ``H`` the exact hitting time of the current policy (float64; ``+inf`` gives ``horizon``).
    Never below 1.
    """
    cap = jnp.asarray(horizon).astype(common.F64)
    scale = jnp.asarray(horizon_scale).astype(common.F64)
    scaled = jnp.minimum(jnp.ceil(scale * hitting_time), cap)
    return jnp.maximum(jnp.where(scale > 0, scaled, cap), 1.0).astype(jnp.int32)


def rewards(length: jax.Array, success: jax.Array, beta: jax.Array) -> jax.Array:
    """float32 [n]: ``1{success} - beta * length`` of each walk (``length`` int [n], ``success`` bool [n])."""
    return success.astype(jnp.float32) - jnp.asarray(beta, jnp.float32) * length.astype(jnp.float32)


def leave_one_out_advantages(reward: jax.Array) -> jax.Array:
    """float32 [n]: ``r_i - mean_{j != i} r_j`` (n >= 2), an unbiased baseline for REINFORCE."""
    n = reward.shape[0]
    return (reward - jnp.mean(reward)) * (n / (n - 1))


def score_gradient(maze: Maze, logits: jax.Array, weighted_counts: jax.Array, num: int) -> jax.Array:
    """``(1 / num) * sum_i A_i * d log p(walk_i) / d theta``, float32 [S, D].

    Args:
      maze: the maze.
      logits: float [S, D], the policy the walks were sampled from.
      weighted_counts: float32 [S, D], ``C = sum_i A_i N_i`` (move counts weighted by advantage,
        e.g. :func:`mazejax.simulate.sample_walks` with ``counts=True, weights=A``).
      num: number of walks ``n`` (the mean's denominator).

    Returns:
      ``(C - C.sum(-1) * pi) / num``: zero on invalid moves; every row sums to zero.
    """
    pi = probabilities(maze, logits.astype(jnp.float32))
    return (weighted_counts - jnp.sum(weighted_counts, axis=-1, keepdims=True) * pi) / num


def log_probabilities(maze: Maze, logits: jax.Array) -> jax.Array:
    """``log pi(m | s)`` [S, D] on valid moves, 0 elsewhere; finite gradients everywhere (dtype of logits)."""
    valid = jnp.asarray(maze.valid)
    top = jnp.max(jnp.where(valid, logits, -jnp.inf), axis=-1, keepdims=True)
    top = jax.lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0.0))
    shifted = jnp.where(valid, logits - top, -jnp.inf)
    total = jnp.sum(jnp.exp(shifted), axis=-1, keepdims=True)
    return jnp.where(valid, shifted - jnp.log(jnp.where(total > 0, total, 1.0)), 0.0)


__all__ = [
    "HORIZON_LIMIT",
    "check_horizon",
    "check_rollout_hparams",
    "check_rollouts",
    "leave_one_out_advantages",
    "log_probabilities",
    "rewards",
    "rollout_horizon",
    "score_gradient",
]
