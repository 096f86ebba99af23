"""SFT on a mixture of search traces and golden paths (issue 12, item 2: "SFT is a strawman").

*Data.* A fraction ``search_fraction = p`` of the training *sequences* are search traces -- walks that
enter dead ends and retreat -- and the rest golden paths (:mod:`mazejax.train.sft`). Two kinds of
search trace (``search_kind``, :data:`mazejax.traces.SEARCH_KINDS`):

* ``"dfs"``: the history-aware depth-first search that never re-enters an explored branch
  (``W (2K + 1)`` moves on average on ``Maze(W, K, L)``, :func:`mazejax.traces.dfs_counts`);
* ``"backtracker"``: the walks of the efficient backtracker (``a = b = c = d = 1``, fork uniform over
  all W branches: ``4WK + 2W - 2K - 1`` moves, :func:`mazejax.traces.backtracker_counts`).

*Loss.* Mean cross-entropy over all the moves of the dataset (pooled, as for distillation), so the
population loss is :func:`mazejax.train.sft.cross_entropy` with the mixture's transition
frequencies :func:`mazejax.traces.mixture_transitions` (exact, known in closed form): exact SFT
(:func:`make_sft_search_exact`) descends that loss; sampled SFT (:func:`make_sft_search`) draws
``batch_size`` sequences per step, each a search trace with probability ``p``.

*What the tabular fit converges to.* The loss splits by row and each row's minimiser is the data's
row distribution (:func:`mazejax.train.sft.limit_logits`). Backward states occur only in search
traces, and there both kinds always continue backwards; forward states always continue forwards
in all three sources. So for *every* ``p > 0`` the limit is the efficient backtracker (143 at
W = K = 6, L = 5) -- the fork row is frozen and the no-re-entry rule of the DFS is not
representable by a target-blind tabular policy, so the DFS's own ``W (2K + 1)`` (78) is out of
reach. ``p`` only sets how *fast* the backward rows move: their gradient is proportional to
``p``, which Adam's per-coordinate normalisation largely cancels while plain SGD does not.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

from mazejax import simulate, traces, validate
from mazejax.maze import Maze
from mazejax.ordered import ordered_total
from mazejax.policy import backtracker_logits
from mazejax.train import base
from mazejax.train.sft import fit_transitions, sample_golden_paths

SEARCH_KIND = validate.Choice(*traces.SEARCH_KINDS)


@dataclasses.dataclass(frozen=True)
class SFTSearchExactConfig(base.Config):
    """Static settings of exact (population) SFT on a search-trace / golden-path mixture."""

    steps: int = base.steps(300)
    record_every: int = base.record_every(10)
    optimizer: str = base.optimizer("adam")
    search_kind: str = base.setting("dfs", SEARCH_KIND, "search traces: 'dfs' (history-aware, no re-entry) or "
                                    "'backtracker' (the efficient backtracker's walks)")


@dataclasses.dataclass(frozen=True)
class SFTSearchConfig(base.Config):
    """Static settings of sampled (minibatch) SFT on a search-trace / golden-path mixture."""

    steps: int = base.steps(300)
    batch_size: int = base.setting(32, validate.Integer(1), "sequences per step (each a search trace w.p. p)")
    record_every: int = base.record_every(10)
    optimizer: str = base.optimizer("adam")
    search_kind: str = base.setting("dfs", SEARCH_KIND, "search traces: 'dfs' or 'backtracker'")
    horizon: int = base.setting(100_000, validate.Integer(1, 2**31 - 1),
                                "backtracker traces stop after this many moves (unused for 'dfs')")


@struct.dataclass
class SFTSearchHParams(base.HParams):
    """Hyperparameters a sweep may vary (array leaves, shape [] per run)."""

    lr: jax.Array = base.hparam(0.1, validate.Number(0, low_open=True), "learning rate")
    search_fraction: jax.Array = base.hparam(0.1, validate.Number(0, 1), "fraction p of sequences that are search traces")


def sample_golden_counts(key: jax.Array, maze: Maze, num: int, weights: jax.Array) -> jax.Array:
    """Move counts float32 [S, D] of ``num`` sampled golden paths
    (:func:`mazejax.train.sft.sample_golden_paths`), path ``i`` counted ``weights[i]`` times."""
    S, D = maze.successors.shape

    def count(flat, taken, weight):
        return jnp.zeros(S * D, jnp.float32).at[flat].add(jnp.where(taken, weight, 0.0))

    return jnp.sum(jax.vmap(count)(*sample_golden_paths(key, maze, num), weights), axis=0).reshape(S, D)


def sample_mixture_transitions(key: jax.Array, maze: Maze, num: int, fraction, kind: str = "dfs",
                               horizon: int = 100_000) -> jax.Array:
    """Transition frequencies float32 [S, D] (sum 1) of ``num`` sampled sequences, each a search trace of
    ``kind`` with probability ``fraction`` (else a golden path), moves pooled over the batch. Its
    expectation is not exactly :func:`mazejax.traces.mixture_transitions` (a ratio of sums), but the
    row-normalised frequencies it trains towards are the same."""
    coin_key, search_key, golden_key = jax.random.split(key, 3)
    search = jax.random.uniform(coin_key, (num,)) < fraction
    if kind == "dfs":
        states, _, _ = traces.sample_dfs(search_key, maze, num)
        search_counts = traces.trace_counts(maze, states, search.astype(jnp.float32))
    else:
        search_counts = simulate.sample_walks(maze, backtracker_logits(maze), search_key, num, horizon, counts=True,
                                              weights=search.astype(jnp.float32)).counts
    counts = search_counts + sample_golden_counts(golden_key, maze, num, (~search).astype(jnp.float32))
    return counts / jnp.maximum(ordered_total(counts), 1.0)


def _make(config, batch_weights):
    validate.require_x64("mazejax.train SFT on search traces")

    def train(key: jax.Array, hparams: SFTSearchHParams, maze: Maze, init_logits: jax.Array) -> base.TrainResult:
        validate.require_x64("mazejax.train SFT on search traces")
        tx = base.trainable_optimizer(config, hparams.lr, maze)
        population = traces.mixture_transitions(maze, hparams.search_fraction, base.F64, config.search_kind)
        batch = lambda t, dtype: batch_weights(key, t, maze, hparams, population, dtype)  # noqa: E731
        return fit_transitions(tx, maze, init_logits, population, batch, config)

    return train


def make_sft_search_exact(config: SFTSearchExactConfig = SFTSearchExactConfig()):
    """Build exact (population) SFT on the mixture: ``train(key, hparams, maze, init_logits)``, pure,
    traceable (vmap over ``search_fraction``, ``lr`` and stacked paper mazes); ``key`` unused. Each step
    is one gradient of the exact population cross-entropy with
    :func:`mazejax.traces.mixture_transitions`; records hold the exact H, loss and ``a, b, c, d``."""

    def population(key, t, maze, hparams, weights, dtype):
        del key, t, maze, hparams
        return weights.astype(dtype)

    return _make(config, population)


def make_sft_search(config: SFTSearchConfig = SFTSearchConfig()):
    """Build sampled SFT on the mixture: step ``t`` trains on ``batch_size`` sequences drawn with
    ``jax.random.fold_in(key, t)`` (:func:`sample_mixture_transitions`). Records hold the exact H and
    the exact population loss."""

    def minibatch(key, t, maze, hparams, weights, dtype):
        del weights
        return sample_mixture_transitions(jax.random.fold_in(key, t), maze, config.batch_size,
                                          hparams.search_fraction, config.search_kind, config.horizon).astype(dtype)

    return _make(config, minibatch)


SFT_SEARCH_EXACT = base.Trainer("sft_search_exact", SFTSearchExactConfig, SFTSearchHParams, make_sft_search_exact,
                                "exact population SFT on a mixture of search traces (fraction p) and golden paths")
SFT_SEARCH = base.Trainer("sft_search", SFTSearchConfig, SFTSearchHParams, make_sft_search,
                          "sampled SFT on a mixture of search traces (fraction p) and golden paths")


def sft_search_exact(maze: Maze, *, init_logits: jax.Array | None = None, **settings) -> base.TrainResult:
    """Exact population SFT on the search/golden mixture on one paper maze; ``settings``: fields of
    :class:`SFTSearchExactConfig` and :class:`SFTSearchHParams` (e.g. ``search_fraction=0.1``)."""
    return SFT_SEARCH_EXACT.run(maze, None, init_logits, **settings)


def sft_search(maze: Maze, key: jax.Array, *, init_logits: jax.Array | None = None, **settings) -> base.TrainResult:
    """Sampled SFT on the search/golden mixture on one paper maze; ``settings``: fields of
    :class:`SFTSearchConfig` and :class:`SFTSearchHParams`."""
    return SFT_SEARCH.run(maze, key, init_logits, **settings)


def search_sft_limit(maze: Maze, fraction: float, kind: str = "dfs", init_logits: jax.Array | None = None) -> jax.Array:
    """The policy exact SFT on the mixture converges to: every row seen in the data becomes its
    row-normalised mixture frequencies (:func:`mazejax.train.sft.limit_logits`), the others keep
    ``init_logits`` (default pretrained). For ``fraction > 0`` this is the efficient backtracker."""
    from mazejax.train.sft import limit_logits

    init_logits = base.initial_logits(maze, init_logits)
    weights = traces.mixture_transitions(maze, fraction, base.F64, kind)
    return limit_logits(maze, init_logits, weights, jnp.sum(weights, axis=-1) > 0)


__all__ = [
    "SFTSearchConfig",
    "SFTSearchExactConfig",
    "SFTSearchHParams",
    "SFT_SEARCH",
    "SFT_SEARCH_EXACT",
    "make_sft_search",
    "make_sft_search_exact",
    "sample_golden_counts",
    "sample_mixture_transitions",
    "search_sft_limit",
    "sft_search",
    "sft_search_exact",
]
