"""Distillation of a teacher's search traces into the pretrained model (paper's Theorem 5; docs/model.md §4.4).

*Data.* Walks of the teacher policy (e.g. the converged exact-RLVR model) from ``s0 -> f`` to a
uniformly drawn target, with everything they do on the way: wrong branches explored, dead ends
hit, retreats to the fork. Every move of every trace is a training example.

*Loss.* Cross-entropy of each next state given the current state over all the moves of a batch
of traces, pooled (:func:`mazejax.train.sft.cross_entropy` with transition frequencies ``w`` that
sum to 1). ``w`` of a batch is :func:`sample_teacher_transitions`; its population counterpart,
:func:`teacher_transitions`, is the teacher's expected move counts divided by its expected length
``H``. The tabular loss splits by row and each row's minimiser is the teacher's row, so the
student converges to the teacher on every row the teacher visits; rows it never visits keep their
initial logits (and the student never visits them either).

Contrast with SFT (:mod:`mazejax.train.sft`): golden paths contain no backward moves, so SFT
leaves ``b, d`` at their base values and ends at the SFT limit, while the teacher's traces
supervise the backward rows too and the student inherits the efficient backtracking (about 4WK).

*Defaults:* ``optax.adam`` at 0.1 (as for SFT), 32 traces per step, 600 steps: at W = K = 6,
L = 5 the student of the converged exact-RLVR teacher (H = 143.03) ends about 1% above it, while
SFT on golden paths with the same budget ends about 1% below the SFT limit (2966043).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

from mazejax import exact, simulate, validate
from mazejax.maze import Maze
from mazejax.ordered import ordered_sum, ordered_total
from mazejax.policy import probabilities
from mazejax.train import base
from mazejax.train import policy_gradient as pg
from mazejax.train.sft import fit_transitions


@dataclasses.dataclass(frozen=True)
class DistillConfig(base.Config):
    """Static settings of distillation."""

    steps: int = base.steps(600)
    num_traces: int | None = base.setting(32, validate.OptionalInteger(1),
                                          "teacher traces per step; None: the exact population frequencies "
                                          "(infinitely many traces, deterministic)")
    record_every: int = base.record_every(20)
    optimizer: str = base.optimizer("adam")


@struct.dataclass
class DistillHParams(base.HParams):
    """The teacher and the hyperparameters a sweep may vary (array leaves)."""

    teacher_logits: jax.Array = base.data("the teacher policy [S, D], e.g. a converged exact-RLVR model")
    lr: jax.Array = base.hparam(0.1, validate.Number(0, low_open=True), "learning rate")
    horizon: jax.Array = base.hparam(100_000, pg.HORIZON, "teacher traces stop at the target or after this many "
                                     "moves (unused with num_traces = None)", dtype="int32")


def teacher_transitions(maze: Maze, teacher_logits: jax.Array) -> jax.Array:
    """Exact population transition frequencies of the teacher's traces, float64 [S, D] (sum 1).

    ``w[s, m] = E_x[d_x(s)] * pi(m | s) / H``: expected visits to ``s`` before the hit (mean over
    real targets, :func:`mazejax.exact.expected_visits`) times the move probability, over the
    expected length ``H``. Traceable.
    """
    visits = exact.expected_visits(maze, teacher_logits)  # float64 [T, S]
    mask = jnp.asarray(maze.target_mask)
    mean_visits = ordered_sum(jnp.where(mask[:, None], visits, 0.0), axis=0) / jnp.sum(mask)
    flow = mean_visits[:, None] * probabilities(maze, jnp.asarray(teacher_logits).astype(base.F64))
    return flow / ordered_total(flow)


def sample_teacher_transitions(key: jax.Array, maze: Maze, teacher_logits: jax.Array, num_traces: int, horizon) -> jax.Array:
    """Transition frequencies of ``num_traces`` sampled teacher traces, float32 [S, D] (sum 1).

    Trace ``i`` depends only on ``key`` and ``i`` (:func:`mazejax.simulate.sample_walks`); its moves are
    pooled with those of the other traces (each move weighs ``1 / total moves``), traces cut at
    ``horizon`` included. The ratio of expected counts to expected length is
    :func:`teacher_transitions` (for a horizon that cuts no trace).
    """
    counts = simulate.sample_walks(maze, teacher_logits, key, num_traces, horizon, counts=True).counts
    return counts / jnp.maximum(ordered_total(counts), 1.0)


def make_distill(config: DistillConfig = DistillConfig()):
    """Build the distillation trainer.

    Returns ``train(key, hparams, maze, init_logits) -> TrainResult``, pure and traceable: step
    ``t`` samples ``num_traces`` traces of ``hparams.teacher_logits`` with ``fold_in(key, t)``
    (:func:`sample_teacher_transitions`), or uses the exact population frequencies
    (:func:`teacher_transitions`) when ``num_traces`` is None; ``init_logits`` is the student's
    start (normally the pretrained model). Records hold the student's exact H, the exact
    population loss (cross-entropy on :func:`teacher_transitions`) and ``a, b, c, d``.
    """
    validate.require_x64("mazejax.train.distill")

    def train(key: jax.Array, hparams: DistillHParams, maze: Maze, init_logits: jax.Array) -> base.TrainResult:
        validate.require_x64("mazejax.train.distill")
        tx = base.trainable_optimizer(config, hparams.lr, maze)
        teacher = hparams.teacher_logits
        population = teacher_transitions(maze, teacher)

        def batch(t, dtype):
            if config.num_traces is None:
                return population.astype(dtype)
            key_t = jax.random.fold_in(key, t)
            return sample_teacher_transitions(key_t, maze, teacher, config.num_traces, hparams.horizon).astype(dtype)

        return fit_transitions(tx, maze, init_logits, population, batch, config)

    return train


DISTILL = base.Trainer("distill", DistillConfig, DistillHParams, make_distill,
                       "distillation of a teacher's traces into the pretrained model")


def distill(maze: Maze, key: jax.Array, teacher_logits: jax.Array, *, init_logits: jax.Array | None = None,
            **settings) -> base.TrainResult:
    """Distil ``teacher_logits`` into ``init_logits`` (default: the pretrained model) on one maze;
    ``settings``: fields of :class:`DistillConfig` and :class:`DistillHParams`. Compiled once per
    configuration; vmap over ``key`` for seeds."""
    validate.logits_shape(maze, teacher_logits)
    return DISTILL.run(maze, key, init_logits, teacher_logits=teacher_logits, **settings)


__all__ = ["DISTILL", "DistillConfig", "DistillHParams", "distill", "make_distill", "sample_teacher_transitions",
           "teacher_transitions"]
