"""RLVR with exact gradients (paper's Theorem 3, Figs. 3-4; SPEC 4.2).

Reward ``r = 1{target hit} - beta * length``; with an unlimited horizon every walk ends at the
target, so ``J = 1 - beta * H`` and the exact gradient is ``dJ/dtheta = -beta * dH/dtheta``,
computed by differentiating :mod:`mazejax.exact`'s float64 chain solver. The paper's optimizer is
sign ascent ``theta += lr * sign(dJ/dtheta)`` on every trainable logit (``optax.sign_sgd`` on
``-J``): each trainable logit moves by exactly ``lr`` per step, and ``sign(dJ)`` does not depend on
``beta > 0`` (``beta = 0`` gives a zero gradient: nothing moves).
"""

from __future__ import annotations

import jax
import numpy as np
import optax
from flax import struct

from mazejax import _checks
from mazejax.maze import Maze
from mazejax.train import common


@struct.dataclass
class RLVRHParams:
    """Hyperparameters a sweep may vary (array leaves; add batch axes to vmap over them).

    Attributes:
      lr: learning rate, > 0 (float, shape [] per run).
      beta: length penalty of the reward, >= 0 (float, shape [] per run); only scales ``J``.
    """

    lr: jax.Array
    beta: jax.Array

    @classmethod
    def create(cls, lr, beta=1.0, dtype=np.float32) -> "RLVRHParams":
        """Validated hyperparameters as ``dtype`` arrays, broadcast to one shape (scalars for one
        run, arrays of sweep values for a vmap over runs)."""
        _checks.positive_float("lr", lr)
        _checks.positive_float("beta", beta, allow_zero=True)
        lr, beta = np.broadcast_arrays(np.asarray(lr, dtype), np.asarray(beta, dtype))
        return cls(lr=lr, beta=beta)


def make_rlvr_exact(steps: int, *, record_every: int = 1, optimizer: common.OptimizerFactory = optax.sign_sgd):
    """Build the exact-gradient RLVR trainer for a static configuration.

    Args:
      steps: number of optimizer steps (static).
      record_every: record H, the loss and ``a, b, c, d`` every this many steps (static; must
        divide ``steps``). ``1`` records after every step.
      optimizer: ``lr -> optax.GradientTransformation`` (static); default ``optax.sign_sgd``, the
        paper's sign ascent. It only ever sees the trainable logits (:func:`common.masked`).

    Returns:
      ``train(key, hparams, maze, init_logits) -> TrainResult``, pure and traceable: ``key`` is
      unused (the method is deterministic; it is there so every trainer has one signature),
      ``hparams`` an :class:`RLVRHParams`, ``maze`` any :class:`~mazejax.Maze` (vmap over
      :func:`mazejax.stack`-ed mazes), ``init_logits`` [S, D]. Each step costs one exact H and
      its gradient; H after the last step costs one more H. Compile it (and any vmap of it) with
      :func:`mazejax.train.x64_jit`.
    """
    steps, record_every = common.check_schedule(steps, record_every)

    @common.in_x64
    def train(key: jax.Array, hparams: RLVRHParams, maze: Maze, init_logits: jax.Array) -> common.TrainResult:
        del key
        tx = common.trainable_optimizer(optimizer, hparams.lr, maze)

        def objective(logits):  # -J = beta * H - 1 (float64) with H as auxiliary output
            hitting_time = common.exact_hitting_time(maze, logits)
            return hparams.beta.astype(common.F64) * hitting_time - 1.0, hitting_time

        def measure(carry):
            loss, hitting_time = objective(carry[0])
            return {"hitting_time": hitting_time, "loss": loss}

        def step(carry, t):
            logits, opt_state = carry
            (loss, hitting_time), grad = jax.value_and_grad(objective, has_aux=True)(logits)
            updates, opt_state = tx.update(grad.astype(logits.dtype), opt_state, logits)
            return (optax.apply_updates(logits, updates), opt_state), {"hitting_time": hitting_time, "loss": loss}

        def probe(carry):
            return {"types": common.exact_types(maze, carry[0])}

        (logits, _), records = common.train_loop(
            step, (init_logits, tx.init(init_logits)), steps=steps, record_every=record_every,
            probe=probe, measure=measure,
        )
        return common.result(logits, records, steps, record_every)

    return train


def rlvr_exact(
    maze: Maze,
    steps: int,
    lr: float,
    *,
    beta: float = 1.0,
    record_every: int = 1,
    init_logits: jax.Array | None = None,
    optimizer: common.OptimizerFactory = optax.sign_sgd,
) -> common.TrainResult:
    """Exact-gradient RLVR on one maze (see :func:`make_rlvr_exact`); compiled once per static config.

    Args:
      maze: the maze.
      steps: number of steps, >= 1.
      lr: learning rate, > 0 (the paper uses 0.01 with sign ascent).
      beta: length penalty, >= 0 (does not change sign ascent for beta > 0).
      record_every: recording resolution (divides ``steps``); the default records every step, so
        ``result.hitting_time`` is float64 [steps + 1] (before the first step, then after each).
      init_logits: [S, D]; default the pretrained model (float32). float64 logits train in float64.
      optimizer: ``lr -> optax.GradientTransformation``; default sign ascent (``optax.sign_sgd``).
    """
    steps, record_every = common.check_schedule(steps, record_every)
    common.check_scalar("lr", lr)
    common.check_scalar("beta", beta)
    init_logits = common.initial_logits(maze, init_logits)
    hparams = RLVRHParams.create(lr, beta, dtype=init_logits.dtype)
    train = common.compiled(make_rlvr_exact, steps, record_every=record_every, optimizer=optimizer)
    return train(jax.random.key(0), hparams, maze, init_logits)


__all__ = ["RLVRHParams", "make_rlvr_exact", "rlvr_exact"]
