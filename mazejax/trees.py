"""Other graphs (issue 12, item 4): base, SFT and RLVR on trees, exactly, against depth.

On a tree (:meth:`~mazejax.Maze.tree`, :meth:`~mazejax.Maze.random_tree`, any tree given by
:meth:`~mazejax.Maze.from_edges`) the "SFT limit" and the "backtracker" have no closed form, so
every number here is computed on the full edge-state chain: the exact H by the tree solver
(:mod:`mazejax.exact.tree`, checked against the dense solver in the tests), exact SFT by Adam on the
exact population cross-entropy of golden paths (:func:`mazejax.train.sft.golden_transitions`, with
its row-wise limit :func:`mazejax.train.sft.sft_limit`), exact RLVR by sign ascent on ``-dH/dtheta``
(the paper's optimizer; the gradient of the tree solver). Trees of one family are padded to
common sizes and trained as one vmapped program (:func:`mazejax.exact.tree.stack_trees`).

The growth per depth of each column is the slope of a least-squares fit of ``log H`` on depth
(:func:`growth_per_depth`), reported as the factor ``exp(slope)``. On a complete ``b``-ary tree
every target-blind policy must visit a positive fraction of the ``b^depth`` leaves, so all
columns grow at least like ``b`` per level; the question is how much faster SFT grows.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from mazejax import validate
from mazejax.exact import tree
from mazejax.maze import Maze
from mazejax.policy import pretrained_logits, trainable_moves
from mazejax.train import base
from mazejax.train.sft import cross_entropy_gradient, golden_transitions, limit_logits


def rlvr(maze: Maze, arrays: tree.TreeArrays, logits: jax.Array, steps: int, lr, record_every: int):
    """Exact-gradient RLVR by sign ascent (``theta -= lr sign(dH/dtheta)`` on trainable logits) with the
    tree solver. Returns ``(logits, H float64 [steps // record_every + 1])``; traceable, vmappable."""
    tx = base.masked(optax.sign_sgd(lr), trainable_moves(maze))
    objective = jax.value_and_grad(lambda l: tree.hitting_time(arrays, maze, l))

    def step(carry, _):
        logits, state = carry
        H, grad = objective(logits)
        return base.descend(tx, logits, state, grad, maze), H

    def chunk(carry, _):
        carry, H = lax.scan(step, carry, None, length=record_every)
        return carry, H[0]

    (logits, _), H = lax.scan(chunk, (logits, tx.init(logits)), None, length=steps // record_every)
    return logits, jnp.concatenate([H, tree.hitting_time(arrays, maze, logits)[None]])


def sft(maze: Maze, arrays: tree.TreeArrays, logits: jax.Array, steps: int, lr):
    """Exact SFT on golden paths (Adam on the exact population cross-entropy). Returns the trained
    logits and their exact H; traceable, vmappable."""
    tx = base.masked(optax.adam(lr), trainable_moves(maze))
    weights = golden_transitions(maze, logits.dtype)

    def step(carry, _):
        logits, state = carry
        return base.descend(tx, logits, state, cross_entropy_gradient(maze, logits, weights), maze), None

    (logits, _), _ = lax.scan(step, (logits, tx.init(logits)), None, length=steps)
    return logits, tree.hitting_time(arrays, maze, logits)


def study(mazes, *, rlvr_steps: int = 600, rlvr_lr: float = 0.01, sft_steps: int = 300, sft_lr: float = 0.1,
          record_every: int = 50) -> dict:
    """Base, SFT (limit and trained) and RLVR H of each maze in ``mazes`` (trees), as one program.

    Returns a dict of numpy arrays over the mazes: ``base``, ``sft_limit``, ``sft``, ``rlvr`` (final
    H), ``rlvr_curve`` [n, steps // record_every + 1] and ``states``, ``targets``."""
    validate.require_x64("mazejax.trees.study")
    if rlvr_steps % record_every:
        raise ValueError(f"record_every must divide rlvr_steps = {rlvr_steps}, got {record_every}")
    maze, arrays = tree.stack_trees(list(mazes))
    init = jax.vmap(lambda m: pretrained_logits(m, jnp.float64))(maze)

    @jax.jit
    def run(maze, arrays, init):
        def one(maze, arrays, init):
            H0 = tree.hitting_time(arrays, maze, init)
            golden = golden_transitions(maze, init.dtype)
            limit = limit_logits(maze, init, golden, jnp.sum(golden, axis=-1) > 0)
            H_limit = tree.hitting_time(arrays, maze, limit)
            _, H_sft = sft(maze, arrays, init, sft_steps, sft_lr)
            _, curve = rlvr(maze, arrays, init, rlvr_steps, rlvr_lr, record_every)
            return H0, H_limit, H_sft, curve

        return jax.vmap(one)(maze, arrays, init)

    H0, H_limit, H_sft, curve = (np.asarray(x) for x in run(maze, arrays, init))
    return {"base": H0, "sft_limit": H_limit, "sft": H_sft, "rlvr": curve[:, -1], "rlvr_curve": curve,
            "states": np.array([m.num_states for m in mazes]), "targets": np.array([m.num_targets for m in mazes])}


def growth_per_depth(depths, values) -> tuple[float, float]:
    """``(factor, r2)``: ``exp`` of the least-squares slope of ``log values`` on ``depths`` and the fit's R^2."""
    x, y = np.asarray(depths, float), np.log(np.asarray(values, float))
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    r2 = 1 - np.sum(residual**2) / max(np.sum((y - y.mean()) ** 2), 1e-300)
    return float(np.exp(slope)), float(r2)


__all__ = ["growth_per_depth", "rlvr", "sft", "study"]
