"""Supervised fine-tuning on golden paths (paper's Theorem 2; docs/model.md §4.1).

*Data.* A golden path starts in ``s0 -> f``, draws the target leaf uniformly and walks straight to
it along the target's branch, crossing every link (diamond) by a uniformly drawn parallel copy:
``2K + 1`` moves in the paper's maze. On any maze this is a walk under the *golden policy* of the
target (:func:`golden_policy`): uniform over the moves that stay on a shortest path
(``maze.distance``), which on the paper's mazes means from ``s0 -> f`` the move into the target's
branch, then one of the next link's copies, until the target. Backward states never occur.

*Loss.* The mean cross-entropy of each next state given the current state, averaged over paths:
``sum_{s, m} w[s, m] * (-log pi(m | s))`` where ``w`` are the transition frequencies of the data,
normalised within each path (:func:`golden_transitions` gives the exact population ``w``;
:func:`sample_golden_transitions` the ``w`` of a minibatch, an unbiased estimate). Rows never in the
data have zero gradient, so their logits (the backward types ``b, d``) never move.

*Default optimizer:* Adam with learning rate 0.1. Adam moves each logit by about ``lr``
per step while the gradient keeps its sign, so ``a, c -> 1`` geometrically; plain gradient
descent (``optax.sgd``) also converges but only like ``1 - a ~ 1 / t``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct
from jax import lax

from mazejax import validate
from mazejax.maze import Maze
from mazejax.ordered import F64, minus_product, ordered_sum, ordered_total
from mazejax.policy import probabilities
from mazejax.train import base


@dataclasses.dataclass(frozen=True)
class SFTExactConfig(base.Config):
    """Static settings of exact (population) SFT: every step is one gradient of the exact loss."""

    steps: int = base.steps(300)
    record_every: int = base.record_every(1)
    optimizer: str = base.optimizer("adam")


@dataclasses.dataclass(frozen=True)
class SFTConfig(base.Config):
    """Static settings of sampled (minibatch) SFT on golden paths."""

    steps: int = base.steps(300)
    batch_size: int = base.setting(32, validate.Integer(1), "golden paths per step")
    record_every: int = base.record_every(1)
    optimizer: str = base.optimizer("adam")


@struct.dataclass
class SFTHParams(base.HParams):
    """Hyperparameters a sweep may vary (array leaves, shape [] per run)."""

    lr: jax.Array = base.hparam(0.1, validate.Number(0, low_open=True), "learning rate")


# ----------------------------------------------------------------------------------------
# Golden-path data


def golden_policy(maze: Maze, dtype=jnp.float32) -> jax.Array:
    """Per-target golden policy, ``dtype`` [T, S, D]: from each state, uniform over the moves that
    stay on a shortest path to the target (``maze.distance`` falls by one); zero rows at the
    target, where it is unreachable, and for padded targets.

    On the paper's mazes: from ``s0 -> f`` the move into the target's branch, then forward across
    every diamond by a uniformly drawn copy (docs/model.md §4.1). On trees (multiedges included)
    this is uniform over the shortest paths; on graphs where different moves lead to different
    numbers of shortest paths it is uniform per move, not per path. Defined on any maze; traceable.
    """
    succ, valid = jnp.asarray(maze.successors), jnp.asarray(maze.valid)
    distance = jnp.asarray(maze.distance)  # [T, S]
    onward = distance[:, succ] == (distance - 1)[:, :, None]  # [T, S, D]
    allowed = valid[None] & (distance > 0)[:, :, None] & onward
    count = jnp.sum(allowed, axis=-1, keepdims=True)
    return (allowed / jnp.maximum(count, 1)).astype(dtype)


def golden_transitions(maze: Maze, dtype=jnp.float32) -> jax.Array:
    """Exact population transition frequencies ``w`` of golden-path data, ``dtype`` [S, D].

    ``w[s, m]`` is the expected number of times a golden path makes move ``m`` from state ``s``,
    divided by the path's length, averaged over real targets (so ``w`` sums to 1). Computed by
    pushing each target's path distribution forward ``capacity.paths`` times (the longest path).
    """
    policy = golden_policy(maze, dtype)  # [T, S, D]
    T, S, _ = policy.shape
    succ = jnp.asarray(maze.successors).ravel()

    def push(mass, _):  # mass [T, S]: probability that the path is in each state now
        flow = mass[:, :, None] * policy
        return jnp.zeros((T, S), dtype).at[:, succ].add(flow.reshape(T, -1)), flow

    start = jnp.zeros((T, S), dtype).at[:, 0].set(1.0)
    _, flows = lax.scan(push, start, None, length=maze.capacity.paths)
    counts = ordered_sum(flows, axis=0)  # [T, S, D]
    per_target = counts / jnp.maximum(jax.vmap(ordered_total)(counts)[:, None, None], 1.0)
    target_mask = jnp.asarray(maze.target_mask)
    return ordered_sum(jnp.where(target_mask[:, None, None], per_target, 0.0), axis=0) / jnp.sum(target_mask)


def sample_golden_paths(key: jax.Array, maze: Maze, num: int) -> tuple[jax.Array, jax.Array]:
    """The moves of ``num`` sampled golden paths: ``(flat, taken)``, each [num, paths], the move
    ``state * out_degree + slot`` at each position and whether the path made it (paths end at their target).

    Path ``i`` uses ``jax.random.fold_in(key, i)`` (its target, then one key per move), so a path does
    not depend on ``num``."""
    policy = golden_policy(maze, jnp.float32)
    succ = jnp.asarray(maze.successors)
    target_logits = jnp.where(jnp.asarray(maze.target_mask), 0.0, -jnp.inf).astype(jnp.float32)
    D = succ.shape[1]

    def path(index):
        target_key, walk_key = jax.random.split(jax.random.fold_in(key, index))
        target = jax.random.categorical(target_key, target_logits)

        def move(state, move_key):
            row = policy[target, state]
            taken = jnp.sum(row) > 0
            slot = jax.random.categorical(move_key, jnp.log(row))
            return jnp.where(taken, succ[state, slot], state), (state * D + slot, taken)

        _, moves = lax.scan(move, jnp.int32(0), jax.random.split(walk_key, maze.capacity.paths))
        return moves

    return jax.vmap(path)(jnp.arange(num))


def sample_golden_transitions(key: jax.Array, maze: Maze, batch_size: int, dtype=jnp.float32) -> jax.Array:
    """Transition frequencies ``w`` of a minibatch of ``batch_size`` sampled golden paths, [S, D]
    (:func:`sample_golden_paths`). Each path's moves get weight ``1 / (length * batch_size)``; the
    expectation over ``key`` is :func:`golden_transitions`.
    """
    S, D = maze.successors.shape

    def count(flat, taken):
        weight = taken / jnp.maximum(jnp.sum(taken), 1)
        return jnp.zeros(S * D, dtype).at[flat].add(weight.astype(dtype))

    paths = jax.vmap(count)(*sample_golden_paths(key, maze, batch_size))
    return (ordered_sum(paths, axis=0) / batch_size).reshape(S, D)


def cross_entropy(maze: Maze, logits: jax.Array, weights: jax.Array) -> jax.Array:
    """``sum_{s, m} weights[s, m] * -log pi(m | s)``, scalar in the dtype of ``logits``.

    Moves with zero weight contribute nothing (also when ``pi = 0`` there); the gradient is finite
    wherever the loss is.
    """
    pi = probabilities(maze, logits)
    used = weights > 0
    return -ordered_total(jnp.where(used, weights * jnp.log(jnp.where(used, pi, 1.0)), 0.0))


def cross_entropy_gradient(maze: Maze, logits: jax.Array, weights: jax.Array) -> jax.Array:
    """The gradient of :func:`cross_entropy` in ``logits``, [S, D]: ``(sum_m w[s, m]) pi(. | s) - w[s]``.

    In closed form (the softmax's), rather than by autodiff, so its row sums run in a fixed order and
    its products are exact for float32 logits (:mod:`mazejax.ordered`); zero on invalid moves.
    """
    dtype = logits.dtype
    weights = weights.astype(dtype)
    pi = probabilities(maze, logits)
    # summed in float64 (no product of weights can be fused into the adds), then a - b * c exactly
    total = ordered_sum(weights.astype(F64), axis=-1, keepdims=True).astype(dtype)
    return jnp.where(jnp.asarray(maze.valid), -minus_product(weights, pi, total), 0.0).astype(dtype)


# ----------------------------------------------------------------------------------------
# Limit of SFT


def limit_logits(maze: Maze, init_logits: jax.Array, targets: jax.Array, rows: jax.Array) -> jax.Array:
    """Logits that SFT converges to when ``rows`` (bool [S]) are supervised with ``targets``.

    In the tabular policy each row's cross-entropy depends on that row alone and is minimised
    exactly when the row equals its data distribution ``targets[s]`` (row-normalised [S, D]),
    while unsupervised rows get zero gradient; so trainable supervised rows take
    ``log targets[s]`` (``-inf`` off the data) and every other row keeps ``init_logits``.
    """
    total = ordered_sum(targets, axis=-1, keepdims=True)
    distribution = targets / jnp.where(total > 0, total, 1.0)
    supervised = (rows & jnp.asarray(maze.trainable))[:, None]
    return jnp.where(supervised, jnp.log(distribution).astype(init_logits.dtype), init_logits)


def sft_limit(maze: Maze, init_logits: jax.Array | None = None) -> jax.Array:
    """The policy exact SFT converges to, [S, D] in the dtype of ``init_logits`` (default float32).

    Rows on golden paths become their golden distribution (``a = c = 1``); the rest keep
    ``init_logits`` (pretrained by default: ``b = L/(L+1)``, ``d = 1/(L+1)``). Its exact H is the
    SFT limit of docs/model.md §3 (2966043.18944 at W = K = L + 1 = 6).
    """
    return _sft_limit(maze, base.initial_logits(maze, init_logits))


@jax.jit
def _sft_limit(maze: Maze, init_logits: jax.Array) -> jax.Array:
    weights = golden_transitions(maze, init_logits.dtype)
    return limit_logits(maze, init_logits, weights, jnp.sum(weights, axis=-1) > 0)


# ----------------------------------------------------------------------------------------
# Trainers

def fit_transitions(tx, maze: Maze, init_logits, population, batch, config: base.Config) -> base.TrainResult:
    """Cross-entropy training on transition weights (SFT and distillation share it).

    ``batch(t, dtype)`` gives the weights [S, D] of step ``t``; ``population`` [S, D] the exact
    data distribution, whose loss is recorded with the exact H and ``a, b, c, d``. Traceable.
    """

    def probe(carry):
        logits = carry[0]
        return {**base.exact_metrics(maze, logits), "loss": cross_entropy(maze, logits.astype(base.F64), population)}

    def step(carry, t):
        logits, opt_state = carry
        grad = cross_entropy_gradient(maze, logits, batch(t, logits.dtype))
        return base.descend(tx, logits, opt_state, grad, maze), {}

    (logits, _), records = base.train_loop(
        step, (init_logits, tx.init(init_logits)), steps=config.steps, record_every=config.record_every,
        probe=probe,
    )
    return base.result(logits, records, config)


def _make(config: base.Config, batch_weights):
    """The SFT trainer on golden paths; ``batch_weights(key, t, maze, dtype)`` gives step ``t``'s data."""
    validate.require_x64("mazejax.train SFT")

    def train(key: jax.Array, hparams: SFTHParams, maze: Maze, init_logits: jax.Array) -> base.TrainResult:
        validate.require_x64("mazejax.train SFT")
        tx = base.trainable_optimizer(config, hparams.lr, maze)
        batch = lambda t, dtype: batch_weights(key, t, maze, dtype)  # noqa: E731
        return fit_transitions(tx, maze, init_logits, golden_transitions(maze, base.F64), batch, config)

    return train


def make_sft_exact(config: SFTExactConfig = SFTExactConfig()):
    """Build the exact (population) SFT trainer.

    Returns ``train(key, hparams, maze, init_logits) -> TrainResult`` (pure, traceable; ``key``
    unused, the method is deterministic). Each step is one gradient of the exact population
    cross-entropy :func:`cross_entropy` with :func:`golden_transitions`.
    """

    def population(key, t, maze, dtype):
        del key, t
        return golden_transitions(maze, dtype)

    return _make(config, population)


def make_sft(config: SFTConfig = SFTConfig()):
    """Build the sampled (minibatch) SFT trainer.

    Step ``t`` trains on ``config.batch_size`` golden paths drawn with ``jax.random.fold_in(key, t)``
    (:func:`sample_golden_transitions`). Records hold the *exact* population loss and H, not the
    noisy minibatch loss.
    """

    def minibatch(key, t, maze, dtype):
        return sample_golden_transitions(jax.random.fold_in(key, t), maze, config.batch_size, dtype)

    return _make(config, minibatch)


SFT_EXACT = base.Trainer("sft_exact", SFTExactConfig, SFTHParams, make_sft_exact,
                         "exact population SFT on golden paths")
SFT = base.Trainer("sft", SFTConfig, SFTHParams, make_sft, "sampled minibatch SFT on golden paths")


def sft_exact(maze: Maze, *, init_logits: jax.Array | None = None, **settings) -> base.TrainResult:
    """Exact population SFT on one maze; ``settings``: fields of :class:`SFTExactConfig` and
    :class:`SFTHParams` (e.g. ``steps=500, lr=0.1``). Compiled once per configuration.

    ``result.hitting_time`` is float64 [steps // record_every + 1]. ``init_logits`` default: the
    pretrained model (float32); float64 logits train in float64.
    """
    return SFT_EXACT.run(maze, None, init_logits, **settings)


def sft(maze: Maze, key: jax.Array, *, init_logits: jax.Array | None = None, **settings) -> base.TrainResult:
    """Sampled minibatch SFT on one maze; ``settings``: fields of :class:`SFTConfig` and
    :class:`SFTHParams`. Compiled once per configuration."""
    return SFT.run(maze, key, init_logits, **settings)


__all__ = [
    "SFT",
    "SFTConfig",
    "SFTExactConfig",
    "SFTHParams",
    "SFT_EXACT",
    "cross_entropy",
    "cross_entropy_gradient",
    "fit_transitions",
    "golden_policy",
    "golden_transitions",
    "limit_logits",
    "make_sft",
    "make_sft_exact",
    "sample_golden_transitions",
    "sft",
    "sft_exact",
    "sft_limit",
]
