"""Sampled RLVR by REINFORCE with a leave-one-out baseline (SPEC 4.2).

Each step samples ``num_rollouts`` walks of the current policy with uniformly drawn targets, scores
them with ``r = 1{hit} - beta * length`` (:mod:`mazejax.train.policy_gradient`) and estimates

    dJ/dtheta ~= (1/n) sum_i (r_i - mean_{j != i} r_j) * d log p(walk_i) / d theta,

an unbiased estimate of the gradient of ``J = E[r]`` (``= -beta * dH/dtheta`` when the horizon never
cuts a walk). The estimate needs only advantage-weighted move counts, so the walks are stepped
twice from the same key (:func:`mazejax.simulate.sample_walks` gives walk ``i`` the same random
stream both times): once for lengths, hence advantages, once for the counts weighted by them.
Memory stays O(S * D) whatever the horizon.

*Defaults* (converge on small mazes without tuning: W = K = 3, L = 2 reaches ``H`` within 15% of
the backtracker's 35 in 400 steps): 128 walks per step, ``optax.adam`` at 0.2 (it normalises the
scale of the estimate), ``beta = 0.01``, horizon twice the current exact ``H``. The estimate's
noise grows with ``H`` (a walk's length spreads by about ``H``, drowning the effect of any single
move), so on larger mazes prefer :mod:`mazejax.train.ppo`, whose critic assigns credit move by move.
"""

from __future__ import annotations

import jax
import numpy as np
import optax
from flax import struct

from mazejax import simulate
from mazejax.maze import Maze
from mazejax.train import common
from mazejax.train import policy_gradient as pg


@struct.dataclass
class ReinforceHParams:
    """Hyperparameters a sweep may vary (array leaves; shape [] per run).

    Attributes:
      lr: learning rate, > 0 (float).
      beta: length penalty of the reward, >= 0 (float).
      horizon: int32, the fixed horizon (``horizon_scale == 0``) or the cap of the scaled one, in
        [1, 2**31).
      horizon_scale: float >= 0; > 0: horizon ``min(horizon, ceil(horizon_scale * H))`` with ``H``
        the exact hitting time of the current policy (:func:`policy_gradient.rollout_horizon`).
    """

    lr: jax.Array
    beta: jax.Array
    horizon: jax.Array
    horizon_scale: jax.Array

    @classmethod
    def create(cls, lr=0.2, beta=0.01, horizon=1_000_000, horizon_scale=2.0, dtype=np.float32) -> "ReinforceHParams":
        """Validated hyperparameters broadcast to one shape (scalars for one run, arrays of sweep
        values for a vmap over runs); floats in ``dtype``, ``horizon`` int32."""
        pg.check_rollout_hparams(lr, beta, horizon, horizon_scale)
        lr, beta, horizon, horizon_scale = np.broadcast_arrays(
            np.asarray(lr, dtype), np.asarray(beta, dtype), np.asarray(horizon, np.int32), np.asarray(horizon_scale, dtype)
        )
        return cls(lr=lr, beta=beta, horizon=horizon, horizon_scale=horizon_scale)


def reinforce_gradient(maze: Maze, logits: jax.Array, key: jax.Array, num_rollouts: int, horizon, beta):
    """REINFORCE estimate of ``dJ/dtheta`` from ``num_rollouts`` fresh walks (the ascent direction).

    Args:
      maze: the maze (may be traced).
      logits: float [S, D], the current policy.
      key: PRNG key; walk ``i`` uses ``fold_in(key, i)`` only.
      num_rollouts: static int >= 2.
      horizon: int32 scalar (may be traced).
      beta: length penalty (scalar, may be traced).

    Returns:
      ``(gradient, walks)``: float32 [S, D] (rows sum to zero, zero on invalid moves; its mean over
      keys is the gradient of ``E[1{hit} - beta * min(T, horizon)]``) and the :class:`~mazejax.simulate.Walks`
      (length, success, target) of the batch.
    """
    walks = simulate.sample_walks(maze, logits, key, num_rollouts, horizon)
    advantage = pg.leave_one_out_advantages(pg.rewards(walks.length, walks.success, beta))
    weighted = simulate.sample_walks(maze, logits, key, num_rollouts, horizon, counts=True, weights=advantage).counts
    return pg.score_gradient(maze, logits, weighted, num_rollouts), walks


def make_reinforce(
    steps: int,
    num_rollouts: int = 128,
    *,
    record_every: int = 1,
    optimizer: common.OptimizerFactory = optax.adam,
):
    """Build the REINFORCE trainer for a static configuration.

    Args:
      steps: optimizer steps (static); each samples ``num_rollouts`` fresh walks.
      num_rollouts: walks per step (static), >= 2.
      record_every: record exact H, the loss ``beta * H - 1`` (``-J`` with an unlimited horizon)
        and ``a, b, c, d`` every this many steps (static; divides ``steps``).
      optimizer: ``lr -> optax.GradientTransformation`` (static); it only sees trainable logits.

    Returns:
      ``train(key, hparams, maze, init_logits) -> TrainResult``, pure and traceable: step ``t``
      samples with ``fold_in(key, t)``; ``hparams`` a :class:`ReinforceHParams` (leaves of shape []
      per run), ``maze`` any :class:`~mazejax.Maze` (vmap over :func:`mazejax.stack`-ed mazes),
      ``init_logits`` [S, D]. Each step costs one exact ``H`` (the horizon rule and the records)
      and ``2 * num_rollouts`` walks. Compile it (and any vmap of it) with
      :func:`mazejax.train.x64_jit`.
    """
    steps, record_every = common.check_schedule(steps, record_every)
    num_rollouts = pg.check_rollouts(num_rollouts)

    @common.in_x64
    def train(key: jax.Array, hparams: ReinforceHParams, maze: Maze, init_logits: jax.Array) -> common.TrainResult:
        tx = common.trainable_optimizer(optimizer, hparams.lr, maze)
        beta = hparams.beta.astype(common.F64)

        def measure(carry):
            hitting_time = common.exact_hitting_time(maze, carry[0])
            return {"hitting_time": hitting_time, "loss": beta * hitting_time - 1.0}

        def step(carry, t):
            logits, opt_state = carry
            measured = measure(carry)
            horizon = pg.rollout_horizon(hparams.horizon, hparams.horizon_scale, measured["hitting_time"])
            gradient, _ = reinforce_gradient(maze, logits, jax.random.fold_in(key, t), num_rollouts, horizon, hparams.beta)
            updates, opt_state = tx.update(-gradient.astype(logits.dtype), opt_state, logits)
            return (optax.apply_updates(logits, updates), opt_state), measured

        def probe(carry):
            return {"types": common.exact_types(maze, carry[0])}

        (logits, _), records = common.train_loop(
            step, (init_logits, tx.init(init_logits)), steps=steps, record_every=record_every,
            probe=probe, measure=measure,
        )
        return common.result(logits, records, steps, record_every)

    return train


def reinforce(
    maze: Maze,
    key: jax.Array,
    *,
    steps: int = 400,
    lr: float = 0.2,
    beta: float = 0.01,
    num_rollouts: int = 128,
    horizon: int = 1_000_000,
    horizon_scale: float = 2.0,
    record_every: int = 10,
    init_logits: jax.Array | None = None,
    optimizer: common.OptimizerFactory = optax.adam,
) -> common.TrainResult:
    """REINFORCE on one maze (see :func:`make_reinforce`); compiled once per static configuration.

    Args:
      maze: the maze.
      key: PRNG key (vmap over it for seeds).
      steps, num_rollouts, record_every, optimizer: static, see :func:`make_reinforce`.
      lr, beta, horizon, horizon_scale: see :class:`ReinforceHParams` (defaults: rollouts up to
        twice the current exact ``H``, the paper's choice).
      init_logits: [S, D]; default the pretrained model (float32).

    Returns:
      :class:`~mazejax.train.TrainResult` (``.logits``, exact ``.hitting_time`` every
      ``record_every`` steps). Inside ``jax.jit``/``vmap`` compile with x64 enabled
      (:func:`mazejax.train.x64_jit`), as for every trainer.
    """
    steps, record_every = common.check_schedule(steps, record_every)
    num_rollouts = pg.check_rollouts(num_rollouts)
    for name, value in (("lr", lr), ("beta", beta), ("horizon", horizon), ("horizon_scale", horizon_scale)):
        common.check_scalar(name, value)
    init_logits = common.initial_logits(maze, init_logits)
    hparams = ReinforceHParams.create(lr, beta, horizon, horizon_scale, dtype=init_logits.dtype)
    train = common.compiled(make_reinforce, steps, num_rollouts, record_every=record_every, optimizer=optimizer)
    return train(key, hparams, maze, init_logits)


__all__ = ["ReinforceHParams", "make_reinforce", "reinforce", "reinforce_gradient"]
