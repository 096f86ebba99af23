"""Backward-supervision ablation (paper's Fig. 5 right; docs/model.md §4.5).

Golden-path SFT plus "continue backwards" supervision on a random fraction ``p`` of the backward
state types ``R-_j`` and ``L-_j`` (``2K`` types in a ``W, K, L`` maze). We evaluate the *limit*
of that training exactly instead of running it: in the tabular policy each row's cross-entropy
involves that row alone, so training converges row by row to the data distribution of the row
(:func:`mazejax.train.sft.limit_logits`) -- forward rows to the golden path (``a = c = 1``),
supervised backward rows to "continue backwards" (probability 1, uniform over parallel copies),
and unsupervised backward rows never move from the initial policy (pretrained: ``b = L/(L+1)``,
``d = 1/(L+1)``). Training to convergence would only approach these numbers (``H`` is continuous
in the logits) at the cost of thousands of steps per draw; the limit is exact and costs one
exact H per draw. ``p = 0`` gives the SFT limit, ``p = 1`` the efficient backtracker.

A draw supervises ``round(p * n)`` of the ``n`` types (nearest integer), chosen uniformly without
replacement. Draw ``r`` ranks the types with ``jax.random.fold_in(key, r)`` for every ``p``, so the
supervised sets of one draw are nested in ``p`` (common random numbers: the curve of each draw is
comparable across ``p``, and the mean over draws is still the mean over independent draws at each
``p``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mazejax import exact, validate
from mazejax.maze import L_MINUS, R_MINUS, Maze
from mazejax.ordered import ordered_mean
from mazejax.policy import continues
from mazejax.train import base
from mazejax.train.sft import golden_transitions, limit_logits

#: Backward state types that the ablation may supervise, in the order of the draws' rows.
BACKWARD_TYPES = (R_MINUS, L_MINUS)


@struct.dataclass
class AblationResult:
    """Exact H of the limit policy per fraction and draw.

    Attributes:
      fraction: float64 [P] (numpy), the supervised fractions ``p``.
      hitting_time: float64 [P, draws], exact H of each draw.
      mean_hitting_time: float64 [P], mean over draws.
      supervised: bool [P, draws, 2, depths], which types each draw supervised (row 0: ``R-_j``,
        row 1: ``L-_j``, depth ``j`` at column ``j - 1``).
    """

    fraction: jax.Array
    hitting_time: jax.Array
    mean_hitting_time: jax.Array
    supervised: jax.Array


def draw_backward_types(key: jax.Array, fraction: jax.Array, maze: Maze) -> jax.Array:
    """Choose ``round(fraction * n)`` of the ``n`` backward types of ``maze`` uniformly. bool [2, depths].

    Types that do not occur in the maze (padding depths) are never chosen and not counted in ``n``.
    """
    depths = maze.capacity.depths
    state_type, depth = jnp.asarray(maze.state_type), jnp.asarray(maze.depth)
    types = jnp.asarray(BACKWARD_TYPES)[:, None, None]
    levels = jnp.arange(1, depths + 1)[None, :, None]
    exists = jnp.any((state_type[None, None, :] == types) & (depth[None, None, :] == levels), axis=-1)
    order = jnp.where(exists, jax.random.uniform(key, (2, depths), jnp.float32), jnp.inf)
    rank = jnp.argsort(jnp.argsort(order.ravel())).reshape(2, depths)
    count = jnp.round(fraction * jnp.sum(exists))
    return exists & (rank < count)


def ablation_hitting_time(key: jax.Array, fraction: jax.Array, maze: Maze, init_logits: jax.Array):
    """Exact H of the SFT limit with a random fraction of backward types supervised.

    Pure and traceable (vmap over keys, fractions and stacked paper mazes). Returns
    ``(hitting_time float64 [], supervised bool [2, depths])``.
    """
    supervised = draw_backward_types(key, fraction, maze)
    state_type, depth = jnp.asarray(maze.state_type), jnp.asarray(maze.depth)
    kind = jnp.argmax(state_type[:, None] == jnp.asarray(BACKWARD_TYPES)[None, :], axis=1)
    backward = jnp.isin(state_type, jnp.asarray(BACKWARD_TYPES)) & supervised[kind, jnp.maximum(depth - 1, 0)]
    golden = golden_transitions(maze, jnp.float32)
    on_golden = jnp.sum(golden, axis=-1) > 0
    targets = jnp.where(on_golden[:, None], golden, continues(maze).astype(jnp.float32))
    logits = limit_logits(maze, init_logits, targets, on_golden | backward)
    return exact.hitting_time(maze, logits), supervised


@jax.jit
def _ablation(key, fractions, draw_index, maze, init_logits):
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, draw_index)
    per_draw = jax.vmap(ablation_hitting_time, in_axes=(0, None, None, None))
    hitting_time, supervised = jax.vmap(per_draw, in_axes=(None, 0, None, None))(keys, fractions, maze, init_logits)
    return hitting_time, ordered_mean(hitting_time, axis=1), supervised


def backward_supervision_ablation(
    maze: Maze,
    key: jax.Array,
    fractions=None,
    draws: int = 100,
    init_logits: jax.Array | None = None,
) -> AblationResult:
    """The ablation curve: exact H for each fraction ``p`` and each of ``draws`` random draws.

    Args:
      maze: a paper maze (``Maze(W, K, L)`` or heterogeneous); the paper uses W = K = 6, L = 5.
      key: PRNG key; draw ``r`` uses ``jax.random.fold_in(key, r)`` at every fraction.
      fractions: supervised fractions in [0, 1] (default ``0, 0.1, ..., 1``).
      draws: random draws per fraction, >= 1 (the paper uses 100).
      init_logits: the policy before SFT, [S, D]; default the pretrained model.
    """
    if not maze.structured or not np.any(np.asarray(maze.state_type) >= 0):
        raise ValueError("maze must be a paper maze (Maze(W, K, L) or heterogeneous) for the ablation")
    fractions = np.round(np.linspace(0.0, 1.0, 11), 12) if fractions is None else np.asarray(fractions, float)
    if fractions.ndim != 1 or fractions.size == 0 or not np.all((fractions >= 0) & (fractions <= 1)):
        raise ValueError(f"fractions must be a non-empty 1-d sequence of numbers in [0, 1], got {fractions!r}")
    draws = validate.positive_int("draws", draws)
    validate.require_x64("mazejax.train.backward_supervision_ablation")
    init_logits = base.initial_logits(maze, init_logits)
    hitting_time, mean, supervised = _ablation(
        key, jnp.asarray(fractions, jnp.float32), jnp.arange(draws, dtype=jnp.int32), maze, init_logits
    )
    return AblationResult(fraction=fractions, hitting_time=hitting_time, mean_hitting_time=mean, supervised=supervised)


__all__ = [
    "AblationResult",
    "BACKWARD_TYPES",
    "ablation_hitting_time",
    "backward_supervision_ablation",
    "draw_backward_types",
]
