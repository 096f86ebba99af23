"""Exact H of a branch-symmetric policy on ``Maze(W, K, L)`` in O(K), whatever W and L.

A policy is *branch-symmetric* when the fork rows are uniform and all states of one type
(docs/model.md §2.1) at one depth -- every branch, every parallel copy -- put the same
probability on continuing their direction of travel, spread uniformly over parallel copies:
four probabilities ``a_j, b_j, c_j, d_j`` per depth. Then a branch collapses to a chain of its
``2K + 1`` nodes with two states per node, "arrived moving forward" (F) and "arrived moving
backward" (B): from F at a node the walk continues to F at the next node with the type's
probability (``c_j`` at a left node, ``a_j`` at a right node) and otherwise turns back to B at the
previous node; from B it continues backwards with ``d_j`` (left) or ``b_j`` (right) and otherwise
turns forward. The W branches are identical, so one branch is solved (with the leaf an ordinary
state and with the leaf the target) and the fork chain of :func:`mazejax.exact.chain.fork_level`
combines W copies, by the same GTH elimination as the chain solver (same accuracy, differentiable
in both modes).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mazejax.exact.chain import F64, branch_exits, fork_level


def hitting_time(probabilities: jax.Array, W, K, branches: int) -> jax.Array:
    """Exact H (float64 scalar) of the branch-symmetric policy with type probabilities [4, depths].

    ``probabilities[0..3]`` are ``a, b, c, d`` per depth (depth j at column j - 1). ``W`` and ``K``
    may be traced integers with ``K <= depths`` and ``W <= branches`` (a static capacity), so mazes
    of different sizes vmap together; the columns past ``K`` are ignored.
    """
    a, b, c, d = jnp.asarray(probabilities, F64)
    depths = a.shape[0]
    N = 2 * depths + 1  # deepest leaf level of the capacity
    k = jnp.arange(N + 1)
    j = jnp.clip((k + 1) // 2, 1, depths) - 1
    left = k % 2 == 1
    inner = (k >= 1) & (k <= 2 * K)
    leaf_level = k == 2 * K + 1
    forward = jnp.where(inner, jnp.where(left, c[j], a[j]), 0.0)  # F continues to F at k + 1
    backward = jnp.where(inner, jnp.where(left, d[j], b[j]), 0.0)  # B continues to B at k - 1
    back_slot = jnp.where(k == 1, 0, 1)  # level 0 holds e_b in slot 0
    down = jnp.zeros((N + 1, 2, 2), F64)
    down = down.at[k, 0, back_slot].add(jnp.where(inner, 1.0 - forward, jnp.where(leaf_level, 1.0, 0.0)))
    down = down.at[k, 1, back_slot].add(backward)
    up = jnp.zeros((N + 1, 2, 2), F64)
    up = up.at[:, 0, 0].set(forward).at[:, 1, 0].set(jnp.where(inner, 1.0 - backward, 0.0))
    up = up.at[0].set(jnp.zeros((2, 2), F64).at[1, 0].set(1.0))  # virtual entry -> F at level 1
    cost = jnp.stack([(inner | leaf_level).astype(F64), inner.astype(F64)], axis=1)
    leaf = jnp.stack([leaf_level, jnp.zeros_like(leaf_level)], axis=1)
    q, p, R, lost = (x[:, 0] for x in branch_exits(down[None], up[None], cost[None], leaf[None]))
    real = jnp.arange(branches) < W
    target = jnp.arange(branches) == 0
    pick = lambda x: jnp.where(real, jnp.where(target, x[1], x[0]), jnp.zeros_like(x[0]))  # noqa: E731
    fork = jnp.where((jnp.arange(branches + 1) <= W)[:, None] & real[None, :], 1.0 / W, 0.0)
    fork_cost = (jnp.arange(branches + 1) <= W).astype(F64)
    return fork_level(fork, pick(q), pick(p), pick(R), pick(lost), fork_cost)


__all__ = ["hitting_time"]
