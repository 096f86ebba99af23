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
import numpy as np
from jax import lax

F64 = jnp.float64
# (u, t, c) of the dead end's and of the target's chain at the leaf (numpy scalars: not weakly typed)
_LEAF = tuple(tuple(map(np.float64, chain)) for chain in ((1.0, 0.0, 1.0), (0.0, 1.0, 0.0)))


def _levels(probabilities, complements):
    """The scan's inputs per level, from the deepest (2 * depths) to 1: ``f, f', g, g'`` (``c, a``
    and ``d, b`` at the left, right node of each depth) and the level."""
    p = jnp.asarray(probabilities, F64)
    q = 1.0 - p if complements is None else jnp.asarray(complements, F64)
    forward, forward_c = (jnp.stack([x[2], x[0]], axis=1).reshape(-1)[::-1] for x in (p, q))
    backward, backward_c = (jnp.stack([x[3], x[1]], axis=1).reshape(-1)[::-1] for x in (p, q))
    return forward, forward_c, backward, backward_c, jnp.arange(2 * p.shape[1], 0, -1)


def _level(state, f, f_c, g, g_c):
    """One level of the recursion on the statistics ``state``: (u, t, c) of each chain (scalars,
    so that a vmapped batch of them is contiguous)."""
    def chain(u, t, c):
        D = g + g_c * t
        return f_c + f * u * g / D, f * (t + u * g_c * t / D), 1.0 + f * (c + u * (1.0 + g_c * c) / D)

    return tuple(chain(*statistics) for statistics in state)


def _select(k, K, new, state, leaf=_LEAF):
    """Levels ``k <= 2K`` take ``new``, level ``2K + 1`` is the leaf, deeper (padded) levels keep ``state``."""
    return jax.tree.map(lambda n, lf, o: jnp.where(k <= 2 * K, n, jnp.where(k == 2 * K + 1, lf, o)), new, leaf, state)


def _step(K):
    """The scan body: one level; it also outputs the statistics it ends with."""
    def body(state, x):
        *inputs, k = x
        new = _select(k, K, _level(state, *inputs), state)
        return new, new

    return body


def _fork(state, W):
    """H from the statistics at level 1 with the paper's frozen fork."""
    ((_, _, c_other), (_, t, c_target)), W = state, jnp.asarray(W, F64)
    return (W + c_target + (W - 1.0) * c_other) / t


def hitting_time_and_gradient(probabilities: jax.Array, W, K, complements: jax.Array | None = None):
    """H of :func:`hitting_time` (paper's fork) and its gradient in ``(probabilities, complements)``
    as independent inputs, by a hand-written adjoint: one scan from the leaf that keeps each level's
    statistics, one back from the fork that pulls the cotangent through each level (the VJP of one
    level, recomputed there). The same H bit for bit and the same gradient as ``jax.grad`` of
    :func:`hitting_time` in both arguments to rounding (tested to 1e-10), in fewer and larger
    kernels than reverse-mode autodiff of the scan, which stores every intermediate of every level:
    the sign-ascent trainer (:func:`mazejax.train.rlvr.symmetric_trajectory`) runs ~30% faster
    on it. Returns ``(H, (dH/dprobabilities, dH/dcomplements))``; with ``complements=None`` the
    second is still the derivative in ``1 - probabilities`` as its own input. Itself differentiable.
    """
    levels = _levels(probabilities, complements)
    top, after = lax.scan(_step(K), _LEAF, levels)
    H, pull = jax.vjp(lambda state: _fork(state, W), top)
    (cotangent,) = pull(jnp.ones((), F64))

    def back(cotangent, x):
        *inputs, k, j = x
        # the statistics level j (scan order) started from: level j - 1's, the leaf's at j = 0
        state = jax.tree.map(lambda leaf, a: jnp.where(j == 0, leaf, a[jnp.maximum(j - 1, 0)]), _LEAF, after)
        _, pull = jax.vjp(_level, state, *inputs)
        d_state, *d_inputs = pull(cotangent)
        zero = jax.tree.map(jnp.zeros_like, cotangent)
        return _select(k, K, d_state, cotangent, zero), tuple(jnp.where(k <= 2 * K, d, 0.0) for d in d_inputs)

    _, (d_f, d_f_c, d_g, d_g_c) = lax.scan(back, cotangent, (*levels, jnp.arange(len(levels[0]))), reverse=True)
    return H, (_by_type(d_f, d_g), _by_type(d_f_c, d_g_c))


def _by_type(forward, backward):
    """Per-level values of ``f`` and ``g`` (scan order, as :func:`_levels` lays them out) back to
    ``[4, depths]`` (a, b, c, d): the transpose of that layout."""
    forward, backward = (x[::-1].reshape(-1, 2) for x in (forward, backward))
    return jnp.stack([forward[:, 1], backward[:, 1], forward[:, 0], backward[:, 0]])


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
    top, _ = lax.scan(_step(K), _LEAF, _levels(probabilities, complements))
    if reenter is None and reenter_complement is None:
        return _fork(top, W)
    ((_, _, c_other), (u, t, c_target)), W = top, jnp.asarray(W, F64)
    stay = 1.0 - jnp.asarray(reenter, F64) if reenter_complement is None else jnp.asarray(reenter_complement, F64)
    enter_target, enter_other = 1.0 + c_target, 1.0 + c_other
    from_target = (enter_target + (W - 1.0) * enter_other) / t
    return enter_target + u * from_target + (W - 1.0) ** 2 * enter_other / (W * stay)


__all__ = ["hitting_time", "hitting_time_and_gradient"]
