"""Branch-symmetric policies: the paper's four probabilities per depth, solved in O(K).

A policy on ``Maze(W, K, L)`` is *branch-symmetric* when the fork rows are uniform and all
states of one SPEC 2.1 type at one depth (every branch, every parallel copy) put the same
probability on continuing their direction of travel, spread uniformly over parallel copies.
Then a branch collapses to a chain of its ``2K + 1`` nodes with two states per node, "arrived
moving forward" (F) and "arrived moving backward" (B): from F at a node the walk continues to F
at the next node with the type's probability (``c_j`` at a left node, ``a_j`` at a right node)
and otherwise turns back to B at the previous node; from B it continues backwards with ``d_j``
(left) or ``b_j`` (right) and otherwise turns forward. The W branches are identical, so one
branch is solved (with the leaf an ordinary state and with the leaf the target) and the fork
chain of :func:`mazejax.exact.fork_level` combines W copies. The solver is the same GTH
elimination as :mod:`mazejax.exact`'s chain solver, at a cost independent of W and L.

Parameterisation for training: logits ``theta`` float [4, depths, 2] hold, per type
(a, b, c, d) and depth, the logit shared by the desired moves and the one shared by the other
moves of every state of that type; the type probability is
``n_d e^{theta_d} / (n_d e^{theta_d} + n_u e^{theta_u})`` with ``(n_d, n_u)`` the number of such
moves ((1, L) for a and d, (L, 1) for b and c). Sign ascent on ``theta`` moves exactly the same
logits by exactly the same steps as sign ascent on the full tabular policy started from a
symmetric one, because every logit of a (type, depth, desired?) class has a gradient of the same
sign; :func:`make_rlvr_symmetric` is therefore a fast path of
:func:`mazejax.train.make_rlvr_exact` for sign ascent from the pretrained model.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from jax import lax

from mazejax.exact import F64, branch_exits, fork_level
from mazejax.policy import continues
from mazejax.train.common import check_schedule, in_x64, record_steps
from mazejax.train.rlvr import RLVRHParams


def type_probabilities(theta: jax.Array, L: jax.Array) -> jax.Array:
    """Type probabilities [4, depths] (a, b, c, d) of per-type logits ``theta`` [4, depths, 2]."""
    L = jnp.asarray(L, theta.dtype)
    n_desired = jnp.stack([jnp.ones_like(L), L, L, jnp.ones_like(L)])[:, None]
    n_other = jnp.stack([L, jnp.ones_like(L), jnp.ones_like(L), L])[:, None]
    return jax.nn.sigmoid(theta[..., 0] - theta[..., 1] + jnp.log(n_desired / n_other))


def full_logits(maze, theta: jax.Array) -> jax.Array:
    """The tabular logits [S, D] of per-type logits ``theta`` [4, depths, 2] on a paper maze.

    Desired moves of a typed state get ``theta[type, depth - 1, 0]``, its other moves
    ``theta[type, depth - 1, 1]``; untyped states get 0 on valid moves. From the pretrained
    model, these are bit for bit the logits the full trainer reaches (module docstring).
    """
    state_type = jnp.asarray(maze.state_type)
    row = theta[jnp.maximum(state_type, 0), jnp.maximum(jnp.asarray(maze.depth) - 1, 0)]  # [S, 2]
    typed = jnp.where(continues(maze), row[:, :1], row[:, 1:])
    logits = jnp.where((state_type >= 0)[:, None], typed, jnp.zeros((), theta.dtype))
    return jnp.where(jnp.asarray(maze.valid), logits, -jnp.inf)


def hitting_time(probabilities: jax.Array, W: jax.Array, K: jax.Array, branches: int) -> jax.Array:
    """Exact H (float64) of the branch-symmetric policy with type probabilities [4, depths].

    ``W`` and ``K`` may be traced integers (``K <= depths``, ``W <= branches``, a static
    capacity), so mazes of different sizes vmap together. Call under ``jax.enable_x64(True)``.
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


def make_rlvr_symmetric(steps: int, depths: int, branches: int, *, record_every: int = 1):
    """Exact-gradient RLVR with sign ascent on branch-symmetric policies (module docstring).

    Args:
      steps, record_every: as in :func:`mazejax.train.make_rlvr_exact` (static).
      depths, branches: static capacities (largest K and W of the mazes it will run on).

    Returns ``train(hparams, W, K, L) -> (theta [4, depths, 2] float32, hitting_time float64
    [R + 1], types float64 [R + 1, 4, depths])``, pure and traceable; ``W, K, L`` int scalars
    (traced or not), ``hparams`` an :class:`~mazejax.train.RLVRHParams`. Starts from the
    pretrained model (theta = 0).
    """
    steps, record_every = check_schedule(steps, record_every)

    @in_x64
    def train(hparams: RLVRHParams, W, K, L):
        tx = optax.sign_sgd(hparams.lr)

        def objective(theta):
            H = hitting_time(type_probabilities(theta.astype(F64), L), W, K, branches)
            return hparams.beta.astype(F64) * H - 1.0, H

        def record(theta):
            return objective(theta)[1], type_probabilities(theta.astype(F64), L)

        def chunk(carry, _):
            H, types = record(carry[0])

            def step(carry, _):
                theta, state = carry
                grad = jax.grad(lambda t: objective(t)[0])(theta)
                updates, state = tx.update(grad.astype(theta.dtype), state, theta)
                return (optax.apply_updates(theta, updates), state), None

            carry, _ = lax.scan(step, carry, None, length=record_every)
            return carry, (H, types)

        theta = jnp.zeros((4, depths, 2), hparams.lr.dtype)
        (theta, _), (H, types) = lax.scan(chunk, (theta, tx.init(theta)), None, length=steps // record_every)
        H_last, types_last = record(theta)
        return theta, jnp.append(H, H_last), jnp.concatenate([types, types_last[None]])

    train.record_steps = record_steps(steps, record_every)
    return train


__all__ = ["full_logits", "hitting_time", "make_rlvr_symmetric", "type_probabilities"]
