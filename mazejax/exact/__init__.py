"""Exact Markov-chain analysis of a tabular policy on a maze, in float64.

Conventions (docs/model.md §2): the walk starts in state 0 (``s0 -> f``) at time 0; the hitting
time of target ``x`` is the number of moves until the first state whose head is ``x``; ``H`` is
the mean over targets of the expected hitting time. A policy that reaches a target with
probability < 1 has ``H = +inf`` (never NaN).

*Precision.* Every function here computes in float64 and returns float64 arrays, which needs
``jax.config.update("jax_enable_x64", True)`` once at start-up (a
:class:`~mazejax.validate.PrecisionError` says so otherwise). Each is a plain JAX function: it
composes with ``jax.jit``, ``jax.vmap`` (over logits and over :func:`mazejax.stack`-ed mazes),
``jax.grad`` and forward mode (``jax.jvp``, ``jax.hessian``) as a user calls it; arguments are
validated on the host when they are concrete, and only their shapes when they are traced.
Derivatives have the dtype of the logits.

Solvers: :mod:`mazejax.exact.chain` (GTH elimination, mazes with a chain layout: the paper's
mazes, heterogeneous ones, path-stars; accurate to ~1e-15 where a dense solve is 1% off),
:mod:`mazejax.exact.dense` (one LU solve per target, any graph),
:mod:`mazejax.exact.symmetric` (branch-symmetric policies, O(K)), :mod:`mazejax.exact.tree` (trees with
multiedges, one small system per node and edge) and
:mod:`mazejax.exact.truncated` (walks cut at a horizon, by dynamic programming).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from mazejax import validate
from mazejax.exact import chain, dense, symmetric, tree, truncated
from mazejax.maze import Maze
from mazejax.ordered import ordered_sum

F64 = jnp.float64


def _check(maze: Maze, logits, what: str) -> None:
    validate.require_x64(f"mazejax.exact.{what}")
    if not isinstance(maze, Maze):
        raise ValueError(f"maze must be a mazejax.Maze, got {type(maze).__name__}")
    validate.logits_shape(maze, logits)


def hitting_time(maze: Maze, logits: jax.Array) -> jax.Array:
    """Expected hitting time ``H`` from ``s0 -> f``, averaged over targets. float64 scalar.

    Differentiable in ``logits`` (reverse and forward mode). Uses the chain solver when the maze
    has a chain layout, else the dense solver.
    """
    _check(maze, logits, "hitting_time")
    return _hitting_time(maze, logits)


def target_hitting_times(maze: Maze, logits: jax.Array) -> jax.Array:
    """Expected hitting time from ``s0 -> f`` of each target. float64 [T] (padded targets: 0)."""
    _check(maze, logits, "target_hitting_times")
    return _target_hitting_times(maze, logits)


def expected_visits(maze: Maze, logits: jax.Array) -> jax.Array:
    """Expected visits to each state before hitting each target, from ``s0 -> f``. float64 [T, S].

    Computed as the derivative of the hitting time with respect to a per-state cost of one move
    (exact, since the hitting time is linear in those costs), through the same solver as
    :func:`hitting_time`; target-head states and padding get 0. Not differentiable in ``logits``
    (it is itself a derivative; the logits pass through ``stop_gradient``).
    """
    _check(maze, logits, "expected_visits")
    return _expected_visits(maze, logits)


def hitting_times(maze: Maze, logits: jax.Array) -> jax.Array:
    """Expected hitting time of each target from every state. float64 [T, S] (dense solver).

    Target-head states have 0; states that reach the target with probability < 1 have ``+inf``.
    Uses one [S, S] LU solve per target: meant for small and medium mazes and for checks.
    """
    _check(maze, logits, "hitting_times")
    return _dense_hitting_times(maze, logits)


def dense_hitting_time(maze: Maze, logits: jax.Array) -> jax.Array:
    """``H`` by the dense solver, for cross-checks of the chain solver. float64 scalar."""
    _check(maze, logits, "dense_hitting_time")
    return _dense_hitting_time(maze, logits)


def hit_probability(maze: Maze, logits: jax.Array, horizon: int) -> jax.Array:
    """Probability of hitting the target within ``horizon`` moves, averaged over targets. float64.

    Propagates the exact state distribution for ``horizon`` steps (O(horizon * S * D) work);
    ``horizon`` is static (a Python int >= 1). See :func:`truncated_objective` for a traced horizon.
    """
    _check(maze, logits, "hit_probability")
    horizon = validate.positive_int("horizon", horizon)
    return _truncated(maze, logits, horizon, horizon)[0]


def truncated_objective(maze: Maze, logits: jax.Array, horizon, max_horizon: int) -> tuple[jax.Array, jax.Array]:
    """``(P(tau <= T), E[min(tau, T)])`` averaged over targets for walks cut at ``T = horizon``. float64.

    The RLVR objective with a horizon is ``J_T = P(tau <= T) - beta * E[min(tau, T)]``. Exact, by
    dynamic programming over ``max_horizon`` moves (:mod:`mazejax.exact.truncated`); ``horizon``
    may be traced (vmap over it) and must not exceed the static ``max_horizon``. Differentiable in
    ``logits``.
    """
    _check(maze, logits, "truncated_objective")
    max_horizon = validate.positive_int("max_horizon", max_horizon)
    if not validate.is_traced(horizon):
        validate.integer("horizon", int(horizon), 1, max_horizon)
    return _truncated(maze, logits, horizon, max_horizon)


def _check_symmetric(what: str, probabilities, W, K, complements) -> None:
    validate.require_x64(f"mazejax.exact.{what}")
    shape = jnp.shape(probabilities)
    if len(shape) != 2 or shape[0] != 4:
        raise ValueError(f"probabilities must have shape (4, depths), got {shape}")
    if complements is not None and jnp.shape(complements) != shape:
        raise ValueError(f"complements must have the shape of probabilities {shape}, got {jnp.shape(complements)}")
    if not validate.is_traced(W):
        validate.integer("W", int(W), 1)
    if not validate.is_traced(K):
        validate.integer("K", int(K), 1, shape[1])


def symmetric_hitting_time(probabilities: jax.Array, W, K, complements: jax.Array | None = None, *,
                           reenter=None, reenter_complement=None) -> jax.Array:
    """Exact H of a branch-symmetric policy on ``Maze(W, K, L)`` from its type probabilities. float64.

    Args:
      probabilities: [4, depths], ``a, b, c, d`` per depth (depth j at column j - 1), ``depths >= K``.
      W, K: the maze's branches and depth (ints, or traced int scalars under ``vmap``); L does not
        enter (the copies of a diamond are alike).
      complements: optionally ``1 - probabilities`` computed accurately (e.g. ``sigmoid(-x)`` for
        ``sigmoid(x)``), for probabilities within rounding of 1.
      reenter, reenter_complement: a trained, branch-symmetric fork row (issue 12): the probability
        ``r`` that a walk arriving at the fork re-enters the branch it left (the others share
        ``1 - r``; given as ``reenter_complement`` when ``r`` is within rounding of 1). Default: the
        paper's frozen fork, ``r = 1 / W``.

    See :mod:`mazejax.exact.symmetric` (O(K), no linear algebra). Differentiable in both arguments.
    """
    _check_symmetric("symmetric_hitting_time", probabilities, W, K, complements)
    for name, value in (("reenter", reenter), ("reenter_complement", reenter_complement)):
        if value is not None and not validate.is_traced(value):
            validate.number(name, float(value), 0.0, 1.0, high_open=name == "reenter",
                            low_open=name == "reenter_complement")
    return symmetric.hitting_time(probabilities, W, K, complements, reenter, reenter_complement)


def symmetric_hitting_time_and_gradient(probabilities: jax.Array, W, K, complements: jax.Array | None = None):
    """:func:`symmetric_hitting_time` (the paper's fork) and its gradient, by a hand-written adjoint.

    Returns ``(H, (dH/dprobabilities, dH/dcomplements))``, float64, with ``probabilities`` and
    ``complements`` taken as independent inputs (``complements=None``: ``1 - probabilities``, still
    differentiated as its own input). The same H bit for bit and the same derivatives to rounding as
    ``jax.grad`` of :func:`symmetric_hitting_time`, in a faster program
    (:func:`mazejax.exact.symmetric.hitting_time_and_gradient`). Arguments as there.
    """
    _check_symmetric("symmetric_hitting_time_and_gradient", probabilities, W, K, complements)
    return symmetric.hitting_time_and_gradient(probabilities, W, K, complements)


# ----------------------------------------------------------------------------------------
# Kernels (jit-compiled once per maze capacity; callable under jit, vmap and grad)


def _unit_rewards(maze: Maze) -> jax.Array:
    return jnp.asarray(maze.state_mask, F64)


def mean_over_targets(maze: Maze, per_target: jax.Array) -> jax.Array:
    """Mean of ``per_target`` [T] over the maze's real targets."""
    mask = jnp.asarray(maze.target_mask)
    return ordered_sum(jnp.where(mask, per_target, 0.0)) / jnp.sum(mask)


def target_costs(maze: Maze, logits: jax.Array, rewards: jax.Array) -> jax.Array:
    """Per-target expected cost from state 0 where leaving state s costs ``rewards[s]``. float64 [T]."""
    if maze.capacity.structured:
        return chain.target_costs(maze, logits, rewards)
    return dense.target_costs(maze, logits, rewards)


@jax.jit
def _target_hitting_times(maze: Maze, logits: jax.Array) -> jax.Array:
    return target_costs(maze, logits, _unit_rewards(maze))


@jax.jit
def _hitting_time(maze: Maze, logits: jax.Array) -> jax.Array:
    return mean_over_targets(maze, target_costs(maze, logits, _unit_rewards(maze)))


@jax.jit
def _expected_visits(maze: Maze, logits: jax.Array) -> jax.Array:
    solve = functools.partial(target_costs, maze, lax.stop_gradient(logits))
    visits = jax.jacrev(solve)(_unit_rewards(maze))
    absorbed = jnp.asarray(maze.target_hit)
    return jnp.where(absorbed | ~jnp.asarray(maze.state_mask)[None, :], 0.0, visits)


@jax.jit
def _dense_hitting_times(maze: Maze, logits: jax.Array) -> jax.Array:
    return dense.hitting_times(maze, logits, _unit_rewards(maze))


@jax.jit
def _dense_hitting_time(maze: Maze, logits: jax.Array) -> jax.Array:
    return mean_over_targets(maze, dense.target_costs(maze, logits, _unit_rewards(maze)))


@functools.partial(jax.jit, static_argnums=3)
def _truncated(maze: Maze, logits: jax.Array, horizon, max_horizon: int):
    hit, length = truncated.hit_and_length(maze, logits, horizon, max_horizon)
    return mean_over_targets(maze, hit), mean_over_targets(maze, length)


__all__ = [
    "chain",
    "dense",
    "dense_hitting_time",
    "expected_visits",
    "hit_probability",
    "hitting_time",
    "hitting_times",
    "mean_over_targets",
    "symmetric",
    "symmetric_hitting_time",
    "symmetric_hitting_time_and_gradient",
    "target_costs",
    "target_hitting_times",
    "tree",
    "truncated",
    "truncated_objective",
]
