"""Walks cut at a horizon T: the probability of hitting the target within T moves and the expected
truncated length ``E[min(tau, T)]``, exactly, by dynamic programming.

The state distribution of the walk that has not hit its target yet is pushed forward one move at a
time (``mass_{t+1}[s'] = sum_{s, m: succ(s, m) = s'} mass_t[s] pi(m | s)``, the target's states
absorbing): ``P(tau <= T)`` is the mass absorbed in the first ``T`` moves and
``E[min(tau, T)] = sum_{t < T} P(tau > t)`` the mass still walking before each move. Cost
O(T * S * D) per target; differentiable in the logits (reverse mode stores one [S] vector per move
and target), and ``T`` may be traced (a sweep vmaps over it) below a static ``max_horizon``, the
length of the scan. float64 throughout. With these two numbers the RLVR objective with a
horizon is exact: ``J_T = P(tau <= T) - beta * E[min(tau, T)]`` (docs/model.md §4.2 with no reward
for walks that miss the target within T).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from mazejax.maze import Maze
from mazejax.ordered import ordered_sum
from mazejax.policy import probabilities

F64 = jnp.float64


def hit_and_length(maze: Maze, logits: jax.Array, horizon, max_horizon: int) -> tuple[jax.Array, jax.Array]:
    """Per target: ``P(tau <= horizon)`` and ``E[min(tau, horizon)]``, float64 [T] each (padded targets: 0).

    ``horizon`` (int scalar, may be traced) must be <= ``max_horizon`` (static).
    """
    pi = probabilities(maze, jnp.asarray(logits).astype(F64))
    succ = jnp.asarray(maze.successors)
    S = maze.capacity.states
    horizon = jnp.asarray(horizon)

    def per_target(hit):
        def move(carry, t):
            mass, absorbed, walking = carry
            live = t < horizon
            flow = jnp.zeros(S, F64).at[succ.ravel()].add((mass[:, None] * pi).ravel())
            walking = walking + jnp.where(live, ordered_sum(mass), 0.0)  # P(tau > t) for t < horizon
            absorbed = absorbed + jnp.where(live, ordered_sum(jnp.where(hit, flow, 0.0)), 0.0)
            mass = jnp.where(live, jnp.where(hit, 0.0, flow), mass)
            return (mass, absorbed, walking), None

        start = jnp.zeros(S, F64).at[0].set(1.0)
        zero = jnp.zeros((), F64)
        (_, absorbed, walking), _ = lax.scan(move, (start, zero, zero), jnp.arange(max_horizon, dtype=jnp.int32))
        return absorbed, walking

    hit, length = jax.vmap(per_target)(jnp.asarray(maze.target_hit))
    mask = jnp.asarray(maze.target_mask)
    return jnp.where(mask, hit, 0.0), jnp.where(mask, length, 0.0)


__all__ = ["hit_and_length"]
