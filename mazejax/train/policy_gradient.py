"""What sampled RLVR trainers share (docs/model.md §4.2): reward, baselines, horizon rule, score-function gradient.

*Reward.* A walk of ``length`` moves earns ``r = 1{target hit within the horizon} - beta * length``.
With an unlimited horizon every walk hits, so ``J = E[r] = 1 - beta * H`` and
``dJ/dtheta = -beta * dH/dtheta`` (the objective of :mod:`mazejax.train.rlvr`); a finite horizon
cuts the walks that miss at ``length = horizon`` with no hit bonus.

*Horizon.* Either fixed, or ``ceil(horizon_scale * H)`` (the paper's PPO uses twice ``H``),
capped by a fixed maximum, where ``H`` is (static setting ``horizon_rule``) ``"exact"``: the
current policy's exact hitting time (the paper's setting), or ``"estimate"``: the mean length of
the previous batch's walks (what a real RLVR pipeline can measure; the first batch uses the cap).
All are array leaves: the stepper (:func:`mazejax.simulate.sample_walks`) takes a traced horizon,
so changing it never recompiles.

*Score function.* For the tabular softmax policy the score of a walk is
``d log p(walk) / d theta[s, m] = N[s, m] - N[s] * pi(m | s)`` with ``N[s, m]`` the number of
times the walk made move ``m`` from state ``s`` and ``N[s] = sum_m N[s, m]``. A sum of scores
weighted by advantages therefore only needs the advantage-weighted move counts
``C = sum_i A_i N_i`` (:func:`score_gradient`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mazejax import validate
from mazejax.maze import Maze
from mazejax.ordered import F64, minus_product, ordered_mean, ordered_sum
from mazejax.policy import probabilities
from mazejax.train import base

#: Largest horizon the stepper accepts (exclusive).
HORIZON_LIMIT = 2**31

#: Rules of the hyperparameters every sampled RLVR trainer has.
LR = validate.Number(0, low_open=True)
BETA = validate.Number(0)
HORIZON = validate.Integer(1, HORIZON_LIMIT - 1)
HORIZON_SCALE = validate.Number(0)
ROLLOUTS = validate.Integer(2)  # a leave-one-out baseline needs two walks
HORIZON_RULE = validate.Choice("exact", "estimate")


def rollout_horizon(horizon: jax.Array, horizon_scale: jax.Array, hitting_time: jax.Array) -> jax.Array:
    """int32 scalar: the horizon of this batch of rollouts.

    ``horizon`` when ``horizon_scale == 0``, else ``min(horizon, ceil(horizon_scale * H))`` with
    ``H`` the exact hitting time of the current policy (float64; ``+inf`` gives ``horizon``).
    Never below 1.
    """
    cap = jnp.asarray(horizon).astype(base.F64)
    scale = jnp.asarray(horizon_scale).astype(base.F64)
    scaled = jnp.minimum(jnp.ceil(scale * hitting_time), cap)
    return jnp.maximum(jnp.where(scale > 0, scaled, cap), 1.0).astype(jnp.int32)


def rewards(length: jax.Array, success: jax.Array, beta: jax.Array) -> jax.Array:
    """float32 [n]: ``1{success} - beta * length`` of each walk (``length`` int [n], ``success`` bool [n])."""
    return success.astype(jnp.float32) - jnp.asarray(beta, jnp.float32) * length.astype(jnp.float32)


def leave_one_out_advantages(reward: jax.Array) -> jax.Array:
    """float32 [n]: ``r_i - mean_{j != i} r_j`` (n >= 2), an unbiased baseline for REINFORCE."""
    n = reward.shape[0]
    return (reward - ordered_mean(reward)) * (n / (n - 1))


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
    # the row sums in float64 and ``C - total * pi`` with exact products (mazejax.ordered): layout-independent bits
    total = ordered_sum(weighted_counts.astype(F64), axis=-1, keepdims=True).astype(jnp.float32)
    return (minus_product(weighted_counts, pi, total) / num).astype(jnp.float32)


__all__ = [
    "BETA",
    "HORIZON",
    "HORIZON_LIMIT",
    "HORIZON_RULE",
    "HORIZON_SCALE",
    "LR",
    "ROLLOUTS",
    "leave_one_out_advantages",
    "rewards",
    "rollout_horizon",
    "score_gradient",
]
