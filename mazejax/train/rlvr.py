"""RLVR with exact gradients (paper's Theorem 3, Figs. 3-4; docs/model.md §4.2).

Reward ``r = 1{target hit} - beta * length``; with an unlimited horizon every walk ends at the
target, so ``J = 1 - beta * H`` and the exact gradient is ``dJ/dtheta = -beta * dH/dtheta``,
computed by differentiating :func:`mazejax.exact.hitting_time` (float64). The paper's optimizer
is sign ascent ``theta += lr * sign(dJ/dtheta)`` on every trainable logit (``optax.sign_sgd`` on
``-J``): each trainable logit moves by exactly ``lr`` per step, and ``sign(dJ)`` does not depend
on ``beta > 0`` (``beta = 0`` gives a zero gradient: nothing moves).

Two trainers share the hyperparameters :class:`RLVRHParams`:

* :func:`make_rlvr_exact` -- any maze, any optimizer, the full chain (or dense) solver per step.
* :func:`make_rlvr_symmetric` -- the branch-symmetric fast path on paper mazes ``Maze(W, K, L)``
  for sign ascent from a branch-symmetric start (the pretrained model): per-(type, depth) logits
  ``theta`` [4, depths, 2] hold the logit shared by the desired moves and the one shared by the
  other moves of every state of that type and depth; the type probability is
  ``n_d e^{theta_d} / (n_d e^{theta_d} + n_u e^{theta_u})`` with ``(n_d, n_u)`` the number of such
  moves ((1, L) for a and d, (L, 1) for b and c), and H is :func:`mazejax.exact.symmetric_hitting_time`
  (O(K) per step, whatever W and L), differentiated by its hand-written adjoint
  (:func:`mazejax.exact.symmetric.hitting_time_and_gradient`). Sign ascent on ``theta`` moves
  exactly the same logits by exactly the same steps as sign ascent on the full tabular policy
  started from a symmetric one, because every logit of a (type, depth, desired?) class has a
  gradient of the same sign; its final logits are bit for bit those of the full trainer (tested).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import struct

from mazejax import exact, validate
from mazejax.exact import symmetric
from mazejax.maze import R_PLUS, Maze
from mazejax.ordered import ordered_sum
from mazejax.policy import continues
from mazejax.train import base


@dataclasses.dataclass(frozen=True)
class RLVRConfig(base.Config):
    """Static settings of exact-gradient RLVR on the full maze."""

    steps: int = base.steps(600, "optimizer steps (the paper: 600 at W = K = 15, L = 5)")
    record_every: int = base.record_every(1)
    optimizer: str = base.optimizer("sign_sgd")
    train_fork: bool = base.fork_setting()


@dataclasses.dataclass(frozen=True)
class RLVRSymmetricConfig(base.Config):
    """Static settings of the branch-symmetric fast path (always sign ascent)."""

    steps: int = base.steps(600)
    record_every: int = base.record_every(1)
    optimizer: str = base.setting("sign_sgd", validate.Choice("sign_sgd"),
                                  "sign ascent only: other optimizers break the equivalence with the full trainer")


@struct.dataclass
class RLVRHParams(base.HParams):
    """Hyperparameters a sweep may vary (array leaves, shape [] per run)."""

    lr: jax.Array = base.hparam(0.01, validate.Number(0, low_open=True), "learning rate (the paper: 0.01)")
    beta: jax.Array = base.hparam(1.0, validate.Number(0), "length penalty; only scales J (sign ascent ignores it)")


def _objective(maze: Maze, beta):
    def objective(logits):  # -J = beta * H - 1 (float64) with H as auxiliary output
        hitting_time = exact.hitting_time(maze, logits)
        return beta.astype(base.F64) * hitting_time - 1.0, hitting_time

    return objective


def type_gradient_sign(maze: Maze, ascent: jax.Array) -> jax.Array:
    """float64 [4, depths]: the sign of the per-(type, depth) gradient of J.

    For each type and depth, ``ascent`` (``dJ/dtheta`` [S, D]) summed over the moves that continue
    the direction of travel of every state of that type and depth: the derivative of J along a
    common rise of those logits, which has the sign of ``dJ/dp`` (``p`` = a, b, c or d at that
    depth) for branch-symmetric policies (the record :func:`symmetric_trajectory` keeps; docs/model.md
    §2.1). 0 for types absent from the maze.
    """
    per_state = ordered_sum(jnp.where(continues(maze), ascent.astype(base.F64), 0.0), axis=1)
    state_type, depth = jnp.asarray(maze.state_type), jnp.asarray(maze.depth)
    member = (state_type[None, None, :] == jnp.arange(4)[:, None, None]) & (
        depth[None, None, :] == jnp.arange(1, maze.capacity.depths + 1)[None, :, None])
    return jnp.sign(ordered_sum(jnp.where(member, per_state[None, None, :], 0.0), axis=-1))


def make_rlvr_exact(config: RLVRConfig = RLVRConfig()):
    """Build the exact-gradient RLVR trainer.

    Returns ``train(key, hparams, maze, init_logits) -> TrainResult``, pure and traceable: ``key``
    is unused (the method is deterministic; it is there so every trainer has one signature),
    ``hparams`` an :class:`RLVRHParams`, ``maze`` any :class:`~mazejax.Maze` (vmap over
    :func:`mazejax.stack`-ed mazes), ``init_logits`` [S, D]. Each step costs one exact H and its
    gradient; the last record costs one more H and gradient. The optimizer only sees trainable logits
    (fork rows too with ``config.train_fork``). ``result.extra["gradient_sign"]`` [R + 1, 4, depths]
    holds the sign of each per-(type, depth) gradient of J (:func:`type_gradient_sign`).
    """
    validate.require_x64("mazejax.train.rlvr_exact")

    def train(key: jax.Array, hparams: RLVRHParams, maze: Maze, init_logits: jax.Array) -> base.TrainResult:
        validate.require_x64("mazejax.train.rlvr_exact")
        del key
        tx = base.trainable_optimizer(config, hparams.lr, maze)
        objective = _objective(maze, hparams.beta)

        def evaluate(logits):
            (loss, hitting_time), grad = jax.value_and_grad(objective, has_aux=True)(logits)
            return grad, {"hitting_time": hitting_time, "loss": loss, "gradient_sign": type_gradient_sign(maze, -grad)}

        def step(carry, t):
            logits, opt_state = carry
            grad, measured = evaluate(logits)
            return base.descend(tx, logits, opt_state, grad, maze, base.train_fork(config)), measured

        (logits, _), records = base.train_loop(
            step, (init_logits, tx.init(init_logits)), steps=config.steps, record_every=config.record_every,
            probe=lambda carry: {"types": base.exact_types(maze, carry[0])},
        )
        return base.result(logits, records, config, extra={"gradient_sign": records.pop("gradient_sign")})

    return train


# ----------------------------------------------------------------------------------------
# The branch-symmetric fast path


def symmetric_probabilities(theta: jax.Array, L: jax.Array, complement: bool = False) -> jax.Array:
    """Type probabilities [4, depths] (a, b, c, d) of per-type logits ``theta`` [4, depths, 2]
    (with ``complement``: their ``1 - p``, computed as a sigmoid, exact also near p = 1)."""
    L = jnp.asarray(L, theta.dtype)
    n_desired = jnp.stack([jnp.ones_like(L), L, L, jnp.ones_like(L)])[:, None]
    n_other = jnp.stack([L, jnp.ones_like(L), jnp.ones_like(L), L])[:, None]
    x = theta[..., 0] - theta[..., 1] + jnp.log(n_desired / n_other)
    return jax.nn.sigmoid(-x if complement else x)


def symmetric_logits(maze: Maze, theta: jax.Array) -> jax.Array:
    """The tabular logits [S, D] of per-type logits ``theta`` [4, depths, 2] on a paper maze.

    Desired moves of a typed state get ``theta[type, depth - 1, 0]``, its other moves
    ``theta[type, depth - 1, 1]``; untyped states get 0 on valid moves.
    """
    state_type = jnp.asarray(maze.state_type)
    row = theta[jnp.maximum(state_type, 0), jnp.maximum(jnp.asarray(maze.depth) - 1, 0)]  # [S, 2]
    typed = jnp.where(continues(maze), row[:, :1], row[:, 1:])
    logits = jnp.where((state_type >= 0)[:, None], typed, jnp.zeros((), theta.dtype))
    return jnp.where(jnp.asarray(maze.valid), logits, -jnp.inf)


def symmetric_theta(maze: Maze, logits: jax.Array) -> jax.Array:
    """Per-type logits [4, depths, 2] read off a branch-symmetric tabular policy (inverse of
    :func:`symmetric_logits` on such policies): the first state of each (type, depth) gives the
    desired and the other logit. Types absent from the maze get 0."""
    depths = maze.capacity.depths
    state_type, depth = jnp.asarray(maze.state_type), jnp.asarray(maze.depth)
    member = (state_type[None, None, :] == jnp.arange(4)[:, None, None]) & (
        depth[None, None, :] == jnp.arange(1, depths + 1)[None, :, None])  # [4, depths, S]
    first = jnp.argmax(member, axis=-1)
    present = jnp.any(member, axis=-1)
    cont, valid = continues(maze)[first], jnp.asarray(maze.valid)[first]  # [4, depths, D]
    rows = jnp.asarray(logits)[first]
    desired = jnp.take_along_axis(rows, jnp.argmax(cont, axis=-1)[..., None], axis=-1)[..., 0]
    other = jnp.take_along_axis(rows, jnp.argmax(valid & ~cont, axis=-1)[..., None], axis=-1)[..., 0]
    return jnp.where(present[..., None], jnp.stack([desired, other], axis=-1), jnp.zeros((), rows.dtype))


def paper_sizes(maze: Maze):
    """(W, K, L) of a (padded, possibly traced) paper maze ``Maze(W, K, L)`` as int32 scalars."""
    W = jnp.sum(jnp.asarray(maze.target_mask)).astype(jnp.int32)
    K = jnp.max(jnp.asarray(maze.depth)).astype(jnp.int32)
    first_diamond = (jnp.asarray(maze.state_type) == R_PLUS) & (jnp.asarray(maze.depth) == 1)
    L = (jnp.sum(first_diamond) // W).astype(jnp.int32)
    return W, K, L


def symmetric_trajectory(config: RLVRSymmetricConfig, hparams: RLVRHParams, W, K, L, theta: jax.Array):
    """Sign ascent on per-type logits ``theta`` [4, depths, 2] of ``Maze(W, K, L)`` (W, K, L int
    scalars, may be traced; ``K <= depths``). Returns the final ``theta`` and the records, each with
    ``R + 1`` rows: ``hitting_time``, ``loss`` (float64), ``types`` (dict of float64 [depths]) and
    ``gradient_sign`` (float64 [4, depths]: the sign of ``dJ/dp`` for each type and depth, where the
    paper's Fig. 4 dip shows as a negative sign)."""
    tx = optax.sign_sgd(hparams.lr)
    beta = hparams.beta.astype(base.F64)

    def value_and_grad(theta):
        """``-J = beta * H - 1``, H, the gradient of ``-J`` in ``theta`` and the type probabilities
        ``p``: H's derivative in the log-odds ``x = theta[..., 0] - theta[..., 1] + log(n_desired /
        n_other)`` by the symmetric solver's adjoint, with ``dp/dx = p q = -dq/dx``."""
        wide = theta.astype(base.F64)
        p, q = symmetric_probabilities(wide, L), symmetric_probabilities(wide, L, complement=True)
        H, (dp, dq) = symmetric.hitting_time_and_gradient(p, W, K, q)
        dx = beta * (dp - dq) * p * q
        return beta * H - 1.0, H, jnp.stack([dx, -dx], axis=-1), p

    def step(carry, t):
        """One evaluation (the records of the policy before its update) and one update."""
        theta, state = carry
        loss, H, grad, p = value_and_grad(theta)
        updates, state = tx.update(grad.astype(theta.dtype), state, theta)
        return (optax.apply_updates(theta, updates), state), {
            "hitting_time": H, "loss": loss, "types": dict(zip("abcd", p)),
            "gradient_sign": -jnp.sign(grad[..., 0]).astype(base.F64)}

    (theta, _), history = base.train_loop(step, (theta, tx.init(theta)), steps=config.steps,
                                          record_every=config.record_every, probe=lambda carry: {})
    return theta, history


def make_rlvr_symmetric(config: RLVRSymmetricConfig = RLVRSymmetricConfig()):
    """Build the branch-symmetric exact-RLVR trainer (module docstring).

    Returns ``train(key, hparams, maze, init_logits) -> TrainResult`` like :func:`make_rlvr_exact`,
    for paper mazes ``Maze(W, K, L)`` (uniform depth and multiplicity; padded and traced ones
    included) and a branch-symmetric ``init_logits`` (the pretrained model; other inits are read
    through :func:`symmetric_theta`). H is recorded by the symmetric solver, ``a, b, c, d`` from
    ``theta``, and ``result.extra["gradient_sign"]`` [R + 1, 4, depths] holds the sign of ``dJ/dp``
    per type and depth (:func:`symmetric_trajectory`). Cost per step O(K), independent of W and L.
    """
    validate.require_x64("mazejax.train.rlvr_symmetric")

    def train(key: jax.Array, hparams: RLVRHParams, maze: Maze, init_logits: jax.Array) -> base.TrainResult:
        validate.require_x64("mazejax.train.rlvr_symmetric")
        del key
        theta, history = symmetric_trajectory(config, hparams, *paper_sizes(maze), symmetric_theta(maze, init_logits))
        extra = {"gradient_sign": history.pop("gradient_sign")}
        return base.result(symmetric_logits(maze, theta), history, config, extra=extra)

    return train


RLVR_EXACT = base.Trainer("rlvr_exact", RLVRConfig, RLVRHParams, make_rlvr_exact,
                          "exact-gradient RLVR (sign ascent by default; paper's Thm 3)")
RLVR_SYMMETRIC = base.Trainer("rlvr_symmetric", RLVRSymmetricConfig, RLVRHParams, make_rlvr_symmetric,
                              "exact-gradient RLVR by the branch-symmetric fast path (same trajectory, O(K) per step)")


def rlvr_exact(maze: Maze, *, init_logits: jax.Array | None = None, **settings) -> base.TrainResult:
    """Exact-gradient RLVR on one maze; ``settings``: fields of :class:`RLVRConfig` and
    :class:`RLVRHParams` (e.g. ``steps=600, lr=0.01``). Compiled once per configuration.

    With the default ``record_every = 1``, ``result.hitting_time`` is float64 [steps + 1] (before
    the first step, then after each). ``init_logits`` default: the pretrained model (float32).
    """
    return RLVR_EXACT.run(maze, None, init_logits, **settings)


def rlvr_symmetric(maze: Maze, *, init_logits: jax.Array | None = None, **settings) -> base.TrainResult:
    """The branch-symmetric fast path of :func:`rlvr_exact` on one paper maze (same settings but the
    optimizer, always sign ascent)."""
    return RLVR_SYMMETRIC.run(maze, None, init_logits, **settings)


__all__ = [
    "RLVRConfig",
    "RLVRHParams",
    "RLVRSymmetricConfig",
    "RLVR_EXACT",
    "RLVR_SYMMETRIC",
    "make_rlvr_exact",
    "make_rlvr_symmetric",
    "paper_sizes",
    "rlvr_exact",
    "rlvr_symmetric",
    "symmetric_logits",
    "symmetric_probabilities",
    "symmetric_theta",
    "symmetric_trajectory",
    "type_gradient_sign",
]
