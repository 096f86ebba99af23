"""Sampled RLVR by REINFORCE with a leave-one-out baseline (docs/model.md §4.2).

Each step samples ``num_rollouts`` walks of the current policy with uniformly drawn targets, scores
them with ``r = 1{hit} - beta * length`` (:mod:`mazejax.train.policy_gradient`) and estimates

    dJ/dtheta ~= (1/n) sum_i (r_i - mean_{j != i} r_j) * d log p(walk_i) / d theta,

an unbiased estimate of the gradient of ``J = E[r]`` (``= -beta * dH/dtheta`` when the horizon never
cuts a walk). The estimate needs only advantage-weighted move counts, so the walks are stepped
twice from the same key (:func:`mazejax.simulate.sample_walks` gives walk ``i`` the same random
stream both times): once for lengths, hence advantages, once for the counts weighted by them, both
passes through one compiled kernel (the first with zero weights, which skips the counting).
Memory stays O(S * D) whatever the horizon.

*Defaults* (converge on small mazes without tuning: W = K = 3, L = 2 reaches ``H`` within 15% of
the backtracker's 35 in 400 steps): 128 walks per step, ``optax.adam`` at 0.2 (it normalises the
scale of the estimate), ``beta = 0.01``, horizon twice the current exact ``H``. The estimate's
noise grows with ``H`` (a walk's length spreads by about ``H``, drowning the effect of any single
move), so on larger mazes prefer :mod:`mazejax.train.ppo`, whose critic assigns credit move by move.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct
from jax import lax

from mazejax import exact, simulate, validate
from mazejax.maze import Maze
from mazejax.ordered import ordered_sum
from mazejax.train import base
from mazejax.train import policy_gradient as pg


@dataclasses.dataclass(frozen=True)
class ReinforceConfig(base.Config):
    """Static settings of REINFORCE."""

    steps: int = base.steps(400, "optimizer steps; each samples num_rollouts fresh walks")
    num_rollouts: int = base.setting(128, pg.ROLLOUTS, "walks per step (>= 2 for the leave-one-out baseline)")
    horizon_rule: str = base.setting("exact", pg.HORIZON_RULE, "H behind the scaled horizon: the current policy's "
                                     "exact H (the paper) or the previous batch's mean length")
    record_every: int = base.record_every(10)
    optimizer: str = base.optimizer("adam")
    train_fork: bool = base.fork_setting()


@struct.dataclass
class ReinforceHParams(base.HParams):
    """Hyperparameters a sweep may vary (array leaves, shape [] per run)."""

    lr: jax.Array = base.hparam(0.2, pg.LR, "learning rate")
    beta: jax.Array = base.hparam(0.01, pg.BETA, "length penalty of the reward")
    horizon: jax.Array = base.hparam(1_000_000, pg.HORIZON, "fixed horizon (horizon_scale = 0) or the cap of the "
                                     "scaled one", dtype="int32")
    horizon_scale: jax.Array = base.hparam(2.0, pg.HORIZON_SCALE, "> 0: horizon min(horizon, ceil(horizon_scale * H)) "
                                           "for the current policy's exact H")


def reinforce_gradient(maze: Maze, logits: jax.Array, key: jax.Array, num_rollouts: int, horizon, beta):
    """REINFORCE estimate of ``dJ/dtheta`` from ``num_rollouts`` fresh walks (the ascent direction).

    Args:
      maze: the maze (may be traced).
      logits: float [S, D], the current policy.
      key: PRNG key; walk ``i`` depends only on ``key`` and ``i`` (:mod:`mazejax.simulate.rng`).
      num_rollouts: static int >= 2.
      horizon: int32 scalar (may be traced).
      beta: length penalty (scalar, may be traced).

    Returns:
      ``(gradient, walks)``: float32 [S, D] (rows sum to zero, zero on invalid moves; its mean over
      keys is the gradient of ``E[1{hit} - beta * min(T, horizon)]``) and the :class:`~mazejax.simulate.Walks`
      (length, success, target) of the batch.
    """
    def walk(_, carry):
        walks = simulate.sample_walks(maze, logits, key, num_rollouts, horizon, counts=True, weights=carry[1])
        return walks, pg.leave_one_out_advantages(pg.rewards(walks.length, walks.success, beta))

    # two passes through one compiled kernel: zero weights (nothing is counted) for the lengths, then
    # the same walks counted with the advantages those lengths give
    n, shape = num_rollouts, (maze.capacity.states, maze.capacity.out_degree)
    empty = simulate.Walks(jnp.zeros(n, jnp.int32), jnp.zeros(n, bool), jnp.zeros(n, jnp.int32),
                           counts=jnp.zeros(shape, jnp.float32))
    walks, _ = lax.fori_loop(0, 2, walk, (empty, jnp.zeros(n, jnp.float32)))
    return pg.score_gradient(maze, logits, walks.counts, num_rollouts), walks._replace(counts=None)


def make_reinforce(config: ReinforceConfig = ReinforceConfig()):
    """Build the REINFORCE trainer.

    Returns ``train(key, hparams, maze, init_logits) -> TrainResult``, pure and traceable: step
    ``t`` samples with ``fold_in(key, t)``; ``hparams`` a :class:`ReinforceHParams` (leaves of shape
    [] per run), ``maze`` any :class:`~mazejax.Maze` (vmap over :func:`mazejax.stack`-ed mazes),
    ``init_logits`` [S, D]. Each step costs ``2 * num_rollouts`` walks (lengths, then advantage-
    weighted move counts) and, with ``horizon_rule = "exact"``, one exact ``H``. Records hold the
    exact H, the loss ``beta * H - 1`` (``-J`` with an unlimited horizon), ``a, b, c, d`` and
    ``extra["moves"]``, the moves sampled so far (both passes).
    """
    validate.require_x64("mazejax.train.reinforce")

    def train(key: jax.Array, hparams: ReinforceHParams, maze: Maze, init_logits: jax.Array) -> base.TrainResult:
        validate.require_x64("mazejax.train.reinforce")
        tx = base.trainable_optimizer(config, hparams.lr, maze)
        beta = hparams.beta.astype(base.F64)

        exact_rule = config.horizon_rule == "exact"

        def measure(carry):
            hitting_time = exact.hitting_time(maze, carry[0])
            return {"hitting_time": hitting_time, "loss": beta * hitting_time - 1.0}

        def probe(carry):  # the exact rule's steps measure H themselves (one solve per step, not two)
            metrics = {"types": base.exact_types(maze, carry[0]), "moves": carry[3]}
            return metrics if exact_rule else {**metrics, **measure(carry)}

        def step(carry, t):
            logits, opt_state, estimate, moves = carry
            measured = measure(carry) if exact_rule else {}
            H = measured["hitting_time"] if exact_rule else estimate
            horizon = pg.rollout_horizon(hparams.horizon, hparams.horizon_scale, H)
            key_t = jax.random.fold_in(key, t)
            gradient, walks = reinforce_gradient(maze, logits, key_t, config.num_rollouts, horizon, hparams.beta)
            logits, opt_state = base.descend(tx, logits, opt_state, -gradient, maze, base.train_fork(config))
            length = ordered_sum(walks.length.astype(base.F64))
            return (logits, opt_state, length / config.num_rollouts, moves + 2 * length), measured

        start = (init_logits, tx.init(init_logits), jnp.asarray(jnp.inf, base.F64), jnp.zeros((), base.F64))
        (logits, *_), records = base.train_loop(
            step, start, steps=config.steps, record_every=config.record_every, probe=probe)
        return base.result(logits, records, config, extra={"moves": records["moves"]})

    return train


REINFORCE = base.Trainer("reinforce", ReinforceConfig, ReinforceHParams, make_reinforce,
                         "REINFORCE with a leave-one-out baseline, horizon twice the current exact H (Adam)")


def reinforce(maze: Maze, key: jax.Array, *, init_logits: jax.Array | None = None, **settings) -> base.TrainResult:
    """REINFORCE on one maze (see :func:`make_reinforce`); ``settings``: fields of
    :class:`ReinforceConfig` and :class:`ReinforceHParams`. Compiled once per configuration; vmap
    over ``key`` for seeds."""
    return REINFORCE.run(maze, key, init_logits, **settings)


__all__ = ["REINFORCE", "ReinforceConfig", "ReinforceHParams", "make_reinforce", "reinforce", "reinforce_gradient"]
