"""Exact H of a branch-symmetric policy on ``Maze(W, K, L)`` in O(K), whatever W and L.

A policy is *branch-symmetric* when the fork rows are uniform and all states of one type
(docs/model.md §2.1) at one depth -- every branch, every parallel copy -- put the same
probability on continuing their direction of travel, spread uniformly over parallel copies:
four probabilities ``a_j, b_j, c_j, d_j`` per depth. Then a branch collapses to a chain of its
levels ``k = 1, ..., 2K + 1`` (the leaf) with two states per level, "arrived moving forward"
(``F_k``) and "arrived moving backward" (``B_k``): from ``F_k`` the walk continues to ``F_{k+1}``
with ``f_k`` (``c_j`` at a left node, ``a_j`` at a right node) and otherwise turns back to
``B_{k-1}``; from ``B_k`` it continues to ``B_{k-1}`` with ``g_k`` (``d_j``, ``b_j``) and otherwise
turns forward to ``F_{k+1}``.

From the leaf towards the fork, the excursion statistics from ``F_k`` -- the probability ``u`` of
returning to the fork, ``t`` of hitting the target, the expected moves ``c`` until either -- follow

    D = g + g' t,   u <- f' + f u g / D,   t <- f (t + u g' t / D),   c <- 1 + f (c + u (1 + g' c) / D)

with ``f' = 1 - f`` and ``g' = 1 - g`` given as their own numbers (the complements of
probabilities near 1 are computed from the logits, never as ``1 - p``), starting at the leaf from
``(u, t, c) = (1, 0, 1)`` (a dead end) or ``(0, 1, 0)`` (the target). The ``W`` branches meet at
the fork, whose states all move uniformly into the branches, so
``H = (W + c_target + (W - 1) c_other) / t_target``: no fork solve, no linear algebra, cost and
accuracy independent of W and L (1e-15 relative against the chain solver, the SFT limit at
W = K = 15, L = 5 included). Differentiable in both modes; padded depths (``k > 2K + 1``) pass
the statistics through unchanged, so padding never changes a bit.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

F64 = jnp.float64


def hitting_time(probabilities: jax.Array, W, K, complements: jax.Array | None = None,
                 reenter=None, reenter_complement=None) -> jax.Array:
    """Exact H (float64 scalar) of the branch-symmetric policy with type probabilities [4, depths].

    ``probabilities[0..3]`` are ``a, b, c, d`` per depth (depth j at column j - 1); ``complements``
    their ``1 - p`` computed accurately (default ``1 - probabilities``). ``W`` and ``K`` may be
    traced integers with ``K <= depths``; the columns past ``K`` are ignored.

    ``reenter`` (default: the paper's frozen fork, ``1 / W``): a trained but still branch-symmetric
    fork (issue 12): a walk arriving at the fork from branch i re-enters i with probability ``r``
    and each other branch with ``(1 - r) / (W - 1)``; the start row stays uniform. With ``E_T`` and
    ``E_O`` the expected moves of an excursion into the target's and into another branch (entering
    move included) and ``t``, ``u`` the target branch's hit and return probabilities, the fork
    chain's two states (arrived from the target's branch, from another) give
    ``h_T = (E_T + (W - 1) E_O) / t``, whatever ``r``, and
    ``H = E_T + u h_T + (W - 1)^2 E_O / (W (1 - r))`` (``1 - r`` from ``reenter_complement`` if
    given). ``r = 1/W`` gives back the formula below; the backtracker gives
    ``H = (2K + 1) (1 + 2 (W - 1)^2 / (W (1 - r)))``.
    """
    p = jnp.asarray(probabilities, F64)
    q = 1.0 - p if complements is None else jnp.asarray(complements, F64)
    depths = p.shape[1]
    # per level, from the deepest (2 * depths) to 1: f = c, a and g = d, b at the left, right node of each depth
    forward, forward_c = (jnp.stack([x[2], x[0]], axis=1).reshape(-1)[::-1] for x in (p, q))
    backward, backward_c = (jnp.stack([x[3], x[1]], axis=1).reshape(-1)[::-1] for x in (p, q))
    level = jnp.arange(2 * depths, 0, -1)
    leaf = (jnp.array([1.0, 0.0], F64), jnp.array([0.0, 1.0], F64), jnp.array([1.0, 0.0], F64))  # (dead end, target)

    def body(carry, x):
        u, t, c = carry
        f, f_c, g, g_c, k = x
        D = g + g_c * t
        new = (f_c + f * u * g / D, f * (t + u * g_c * t / D), 1.0 + f * (c + u * (1.0 + g_c * c) / D))
        return tuple(jnp.where(k <= 2 * K, n, jnp.where(k == 2 * K + 1, lf, o)) for n, lf, o in zip(new, leaf, carry)), None

    (u, t, c), _ = lax.scan(body, leaf, (forward, forward_c, backward, backward_c, level))
    W = jnp.asarray(W, F64)
    if reenter is None and reenter_complement is None:
        return (W + c[1] + (W - 1.0) * c[0]) / t[1]
    stay = 1.0 - jnp.asarray(reenter, F64) if reenter_complement is None else jnp.asarray(reenter_complement, F64)
    enter_target, enter_other = 1.0 + c[1], 1.0 + c[0]
    from_target = (enter_target + (W - 1.0) * enter_other) / t[1]
    return enter_target + u[1] * from_target + (W - 1.0) ** 2 * enter_other / (W * stay)


__all__ = ["hitting_time"]
