"""The tabular target-blind policy: logits over (state, move slot) (docs/model.md §2).

``pi(move | state) = softmax(logits[state, :])`` over the valid move slots; invalid slots have
logit ``-inf``. Logits are float32 unless a function is asked for another dtype (float64 logits
need ``jax_enable_x64``, see :func:`mazejax.validate.require_x64`); :func:`type_probabilities`
reports float64.

The masked softmax lives here once: :func:`probabilities` and :func:`log_probabilities` are what
the exact solvers, the samplers and every trainer use.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mazejax import validate
from mazejax.ordered import ordered_sum
from mazejax.maze import TYPE_NAMES, Maze


def probabilities(maze: Maze, logits: jax.Array) -> jax.Array:
    """Move probabilities [S, D] in the dtype of ``logits``: a softmax over valid slots.

    Rows without a valid move (padding) are all zero, never NaN.
    """
    valid = jnp.asarray(maze.valid)
    masked = jnp.where(valid, logits, -jnp.inf)
    top = jnp.max(masked, axis=-1, keepdims=True)
    top = jnp.where(jnp.isfinite(top), top, 0.0)
    weights = jnp.where(valid, jnp.exp(masked - top), 0.0)
    total = ordered_sum(weights, axis=-1, keepdims=True)
    return weights / jnp.where(total > 0, total, 1.0)


def log_probabilities(maze: Maze, logits: jax.Array) -> jax.Array:
    """``log pi(m | s)`` [S, D] on valid moves, 0 elsewhere, in the dtype of ``logits``.

    Gradients are finite everywhere (also where a probability is 0); padded rows are all 0.
    """
    return masked_log_softmax(jnp.asarray(maze.valid), logits)


def masked_log_softmax(valid: jax.Array, logits: jax.Array) -> jax.Array:
    """``log softmax`` over the last axis restricted to ``valid`` (bool, same shape), 0 elsewhere.

    Any leading shape (a policy's rows [S, D], or the rows of a history-dependent policy along a
    walk [T, D]); gradients are finite everywhere, all-invalid rows are all 0.
    """
    top = jnp.max(jnp.where(valid, logits, -jnp.inf), axis=-1, keepdims=True)
    top = jax.lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0.0))
    shifted = jnp.where(valid, logits - top, -jnp.inf)
    total = ordered_sum(jnp.exp(shifted), axis=-1, keepdims=True)
    return jnp.where(valid, shifted - jnp.log(jnp.where(total > 0, total, 1.0)), 0.0)


def _dtype(dtype, what: str):
    """``dtype`` as a numpy float dtype; 64-bit dtypes need x64 (else JAX would truncate them)."""
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"dtype must be a floating dtype, got {dtype}")
    if dtype.itemsize == 8:
        validate.require_x64(f"{what}(dtype={dtype})")
    return dtype


def pretrained_logits(maze: Maze, dtype=jnp.float32) -> jax.Array:
    """The pretrained ("base") model: logit 0 on every valid move, ``-inf`` elsewhere. [S, D]."""
    dtype = _dtype(dtype, "pretrained_logits")
    return jnp.where(jnp.asarray(maze.valid), jnp.zeros((), dtype), -jnp.inf).astype(dtype)


def continues(maze: Maze) -> jax.Array:
    """bool [S, D]: the move keeps the state's direction of travel along its branch.

    Defined for typed states (docs/model.md §2.1); for those the "desired" move of each type is exactly the
    one that continues (R+ and L+ forward, R- and L- backward).
    """
    forward = jnp.asarray(maze.forward)
    typed = jnp.asarray(maze.state_type) >= 0
    return typed[:, None] & jnp.asarray(maze.valid) & (forward[jnp.asarray(maze.successors)] == forward[:, None])


def _require_paper_maze(maze: Maze, what: str) -> None:
    """Raise unless ``maze`` is a paper maze (typed states); value checks only on concrete mazes."""
    if not maze.structured or (not validate.is_traced(maze.state_type) and not np.any(np.asarray(maze.state_type) >= 0)):
        raise ValueError(f"maze must be a paper maze (Maze(W, K, L) or heterogeneous) to use {what}")


def _per_depth(maze: Maze, name: str, value) -> None:
    """Check a per-depth probability argument: a scalar or one value per depth, in [0, 1]."""
    depths = maze.capacity.depths
    shape = np.shape(value)
    if shape not in ((), (depths,)):
        raise ValueError(f"{name} must be a scalar or an array of shape ({depths},), got shape {shape}")
    if not validate.is_traced(value):
        arr = np.asarray(value, dtype=float)
        if not np.all((arr >= 0) & (arr <= 1)):
            raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")


def typed_logits(maze: Maze, a, b, c, d, dtype=jnp.float32) -> jax.Array:
    """Logits of the policy with per-depth type probabilities ``a, b, c, d`` (docs/model.md §2.1). [S, D].

    Each argument is a scalar or an array of shape ``[maze.capacity.depths]`` (depth j at index
    j - 1). A typed state puts probability ``p`` of its type on the moves that continue its
    direction (uniformly over parallel copies) and ``1 - p`` on the others; ``p = 1`` or ``0``
    gives ``-inf`` logits. Untyped states (fork rows, the leaf's incoming edge) stay uniform.
    Computed in ``dtype``.
    """
    _require_paper_maze(maze, "typed_logits")
    dtype = _dtype(dtype, "typed_logits")
    for name, value in zip("abcd", (a, b, c, d)):
        _per_depth(maze, name, value)
    depths = maze.capacity.depths
    table = jnp.stack([jnp.broadcast_to(jnp.asarray(p, dtype), (depths,)) for p in (a, b, c, d)])
    state_type = jnp.asarray(maze.state_type)
    typed = state_type >= 0
    p = table[jnp.maximum(state_type, 0), jnp.maximum(jnp.asarray(maze.depth) - 1, 0)][:, None]
    valid = jnp.asarray(maze.valid)
    cont = continues(maze)
    n_cont = jnp.maximum(jnp.sum(cont, axis=1, keepdims=True), 1).astype(dtype)
    n_other = jnp.maximum(jnp.sum(valid & ~cont, axis=1, keepdims=True), 1).astype(dtype)
    typed_values = jnp.where(cont, jnp.log(p / n_cont), jnp.log((1 - p) / n_other))
    logits = jnp.where(typed[:, None], typed_values, jnp.zeros((), dtype))
    return jnp.where(valid, logits, -jnp.inf).astype(dtype)


def sft_limit_logits(maze: Maze, dtype=jnp.float32) -> jax.Array:
    """The SFT limit (docs/model.md §4.1): forward states always continue (``a = c = 1``), backward states
    keep the base model's uniform moves (``b = L/(L+1)``, ``d = 1/(L+1)`` per diamond). [S, D]."""
    _require_paper_maze(maze, "sft_limit_logits")
    dtype = _dtype(dtype, "sft_limit_logits")
    forward_typed = (jnp.asarray(maze.state_type) >= 0) & (jnp.asarray(maze.forward) == 1)
    blocked = forward_typed[:, None] & ~continues(maze)
    return jnp.where(jnp.asarray(maze.valid) & ~blocked, jnp.zeros((), dtype), -jnp.inf).astype(dtype)


def backtracker_logits(maze: Maze, dtype=jnp.float32) -> jax.Array:
    """The efficient backtracker (``a = b = c = d = 1``): every typed state continues. [S, D]."""
    return typed_logits(maze, 1.0, 1.0, 1.0, 1.0, dtype=dtype)


def type_probabilities(maze: Maze, logits: jax.Array) -> dict[str, jax.Array]:
    """Per-depth ``a, b, c, d`` of any policy on a paper maze, in float64.

    For each type and depth: the probability of continuing the direction of travel, averaged over
    the parallel copies and the branches that reach that depth. Returns a dict with keys
    ``"a"``, ``"b"``, ``"c"``, ``"d"``, each float64 [maze.capacity.depths]. Composes with
    ``jit`` and ``vmap`` (over stacked paper mazes).
    """
    validate.require_x64("mazejax.type_probabilities")
    _require_paper_maze(maze, "type_probabilities")
    validate.logits_shape(maze, logits)
    return _type_probabilities(maze, jnp.asarray(logits).astype(jnp.float64))


@jax.jit
def _type_probabilities(maze: Maze, logits: jax.Array) -> dict[str, jax.Array]:
    pi = probabilities(maze, logits)
    p_cont = ordered_sum(jnp.where(continues(maze), pi, 0.0), axis=1)
    depths = maze.capacity.depths
    state_type, depth = jnp.asarray(maze.state_type), jnp.asarray(maze.depth)
    out = {}
    for code, key in enumerate("abcd"):
        member = (state_type == code)[None, :] & (depth[None, :] == jnp.arange(1, depths + 1)[:, None])
        out[key] = ordered_sum(jnp.where(member, p_cont, 0.0), axis=1) / jnp.maximum(jnp.sum(member, axis=1), 1)
    return out


def fork_rows(maze: Maze) -> jax.Array:
    """bool [S]: the rows the paper freezes at the fork: real states whose head is the source
    (node 0: the fork of a paper maze, the start ``s0 -> f`` included) with more than one move."""
    valid = jnp.asarray(maze.valid)
    return (jnp.asarray(maze.head) == 0) & jnp.asarray(maze.state_mask) & (jnp.sum(valid, axis=1) > 1)


def trainable_moves(maze: Maze, train_fork: bool = False) -> jax.Array:
    """bool [S, D]: the logits training may change (valid moves of trainable rows).

    ``train_fork`` (static): also the fork rows (:func:`fork_rows`), which the paper keeps
    uniform over all branches (docs/model.md §2); the "trainable fork row" critique of issue 12.
    """
    rows = jnp.asarray(maze.trainable)
    if train_fork:
        rows = rows | fork_rows(maze)
    return rows[:, None] & jnp.asarray(maze.valid)


__all__ = [
    "TYPE_NAMES",
    "backtracker_logits",
    "sft_limit_logits",
    "continues",
    "fork_rows",
    "log_probabilities",
    "masked_log_softmax",
    "pretrained_logits",
    "probabilities",
    "trainable_moves",
    "type_probabilities",
    "typed_logits",
]
