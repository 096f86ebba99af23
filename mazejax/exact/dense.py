"""The dense solver: expected hitting costs on any maze by one ``[S, S]`` LU solve per target.

Works for every graph (cycles included) and gives per-state quantities, at O(S^3) per target, by
LAPACK's LU (``jnp.linalg.solve``, vmapped over targets): fast, but its bits may depend on the
batch it runs in, so the sweep's layout-independence holds for the chain solver, not this one.
Its relative error grows with the condition number of ``I - Q`` (about 1% at the SFT limit of
W=K=15, L=5), so :mod:`mazejax.exact` uses the chain solver (:mod:`mazejax.exact.chain`)
whenever the maze has a chain layout. States that miss the target with positive probability are
detected by reachability (never by a singular solve) and get ``+inf``. float64 throughout.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from mazejax.maze import Maze
from mazejax.policy import probabilities

F64 = jnp.float64


def transition_matrix(maze: Maze, logits: jax.Array) -> jax.Array:
    """Dense float64 [S, S] transition matrix of the policy."""
    S = maze.capacity.states
    pi = probabilities(maze, jnp.asarray(logits).astype(F64))
    rows = jnp.broadcast_to(jnp.arange(S)[:, None], pi.shape)
    return jnp.zeros((S, S), F64).at[rows, jnp.asarray(maze.successors)].add(pi)


def doomed_states(P: jax.Array, live: jax.Array, absorbing: jax.Array) -> jax.Array:
    """bool [n]: live states from which the walk misses ``absorbing`` with positive probability.

    ``P`` [n, n] are transition probabilities; only ``live`` states move (absorbing and padding
    rows are ignored). A state is doomed if it can reach, along positive-probability moves, a
    state that cannot reach the absorbing set.
    """
    live = live & ~absorbing
    edge = (P > 0) & live[:, None]

    def closure(seed):  # states that can reach ``seed`` along positive-probability moves
        def body(state):
            reach, _ = state
            new = reach | (live & jnp.any(edge & reach[None, :], axis=1))
            return new, jnp.any(new != reach)

        return lax.while_loop(lambda s: s[1], body, (seed, jnp.array(True)))[0]

    reaches = closure(absorbing)
    return closure(live & ~reaches) & live


def solve(maze: Maze, P: jax.Array, absorbing: jax.Array, rewards: jax.Array) -> jax.Array:
    """Expected cost to reach ``absorbing`` from every state; +inf where it is missed. float64 [S]."""
    S = P.shape[0]
    real = jnp.asarray(maze.state_mask)
    absorbing = absorbing & real
    doomed = doomed_states(lax.stop_gradient(P), real, absorbing)
    solvable = real & ~absorbing & ~doomed
    Q = jnp.where(solvable[:, None] & solvable[None, :], P, 0.0)
    h = jnp.linalg.solve(jnp.eye(S, dtype=F64) - Q, jnp.where(solvable, rewards, 0.0))
    return jnp.where(doomed, jnp.inf, jnp.where(solvable, h, 0.0))


def hitting_times(maze: Maze, logits: jax.Array, rewards: jax.Array) -> jax.Array:
    """Expected cost of each target from every state. float64 [T, S]."""
    P = transition_matrix(maze, logits)
    return jax.vmap(lambda hit: solve(maze, P, hit, rewards))(jnp.asarray(maze.target_hit))


def target_costs(maze: Maze, logits: jax.Array, rewards: jax.Array) -> jax.Array:
    """Expected cost from state 0 until each target. float64 [T] (padded targets: 0)."""
    per = hitting_times(maze, logits, rewards)[:, 0]
    return jnp.where(jnp.asarray(maze.target_mask), per, 0.0)


__all__ = ["doomed_states", "hitting_times", "solve", "target_costs", "transition_matrix"]
