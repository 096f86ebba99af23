"""The inference-time search scaffold of the paper's Corollary 1 (docs/model.md §4.3).

Within an *attempt*, the wrapper forbids entering any edge-state already visited in that
attempt, and the cost counts every proposal, rejected ones included. Two semantics: "aggregate"
(parallel copies of an edge in one direction count as one state; forbidden proposals are
rejected and redrawn) and "mask" (copies are distinct; visited moves are masked and the rest
renormalised). Randomness as for the plain walks (:mod:`mazejax.simulate.rng`); moves are drawn
by inverse CDF in float32 over the allowed moves.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from mazejax import validate
from mazejax.maze import Maze
from mazejax.ordered import ordered_cumsum, ordered_sum
from mazejax.policy import probabilities
from mazejax.simulate import alias, common, rng

SEARCH_MODES = ("aggregate", "mask")


class SearchWalks(NamedTuple):
    """Rollouts under the search scaffold (:func:`search_walks`).

    Attributes:
      length: int32 [num], proposals made (every proposal counts, rejected ones included),
        capped at ``horizon``.
      success: bool [num], the target was hit within ``horizon`` proposals.
      target: int32 [num], the target slot of each rollout.
      moves: int32 [num], accepted moves (over all attempts).
      restarts: int32 [num], attempts abandoned because every move was forbidden.
    """

    length: jax.Array
    success: jax.Array
    target: jax.Array
    moves: jax.Array
    restarts: jax.Array


def search_walks(
    maze: Maze, logits: jax.Array, key: jax.Array, num: int, horizon, mode: str, *, target=None, devices=None
) -> SearchWalks:
    """Rollouts under the inference-time search scaffold (paper's Corollary 1, docs/model.md §4.3).

    Within an *attempt*, the wrapper forbids entering any edge-state already visited in that
    attempt, and the cost counts every proposal, rejected ones included:

    * ``"aggregate"`` (docs/model.md §4.3 (a)): the parallel copies of an edge in one direction count as one
      state (visiting any copy forbids all of them); the policy proposes moves, forbidden proposals
      are rejected and redrawn. Simulated exactly in distribution and branch-free: the accepted
      move is drawn from the policy restricted to the allowed moves and the number of rejected
      proposals from the geometric distribution with success probability ``p_allowed`` (the
      policy's total probability on allowed moves); the cost of the move is ``1 + rejections``.
    * ``"mask"`` (docs/model.md §4.3 (b)): copies are distinct states; visited moves are masked and the
      policy renormalised over the rest, so every proposal is accepted (cost 1 per move).

    Convention (the paper is silent): when every move of the current state is forbidden (or has
    probability 0), the attempt is abandoned and the walk restarts from ``s0 -> f`` with an empty
    visited set, keeping the cost spent so far; the restart itself costs nothing. A walk that
    would exceed ``horizon`` proposals stops with ``length = horizon`` and ``success = False``.

    Memory: an int32 [num, S] table of visit marks. Arguments as in :func:`sample_walks`;
    ``mode`` is ``"aggregate"`` or ``"mask"``.
    """
    num = validate.positive_int("num", num)
    mesh = common.rollout_mesh(devices, num)
    if mode not in SEARCH_MODES:
        raise ValueError(f"search mode must be one of {SEARCH_MODES} (or None for no scaffold), got {mode!r}")
    common.check_common(maze, logits, key, horizon)
    target = common.target_argument(maze, target, num)
    return _search_kernel(
        maze, jnp.asarray(logits), rng.key_words(key), jnp.asarray(horizon, jnp.int32), target,
        num=num, mode=mode, mesh=mesh,
    )



def _direction_classes(maze: Maze) -> jax.Array:
    """int32 [S]: a representative of each state's class of parallel copies in one direction.

    Copies of an edge traversed the same way share tail and head nodes; the representative is the
    smallest state id with the same (tail, head). The tail of a state is the head of any state that
    can move into it (state 0 and padding have none and are their own class).
    """
    S = maze.capacity.states
    valid = jnp.asarray(maze.valid)
    head = jnp.asarray(maze.head)
    succ = jnp.where(valid, jnp.asarray(maze.successors), S)
    tails = jnp.broadcast_to(head[:, None], succ.shape).ravel()
    tail = jnp.full(S + 1, -1, jnp.int32).at[succ.ravel()].max(tails)[:S]
    ids = jnp.arange(S, dtype=jnp.int32)
    tail = jnp.where(tail >= 0, tail, -1 - ids)  # no tail: a class of its own
    sorted_tail, sorted_head, sorted_ids = lax.sort((tail, head, ids), num_keys=3)
    first = jnp.concatenate(
        [jnp.ones(1, bool), (sorted_tail[1:] != sorted_tail[:-1]) | (sorted_head[1:] != sorted_head[:-1])]
    )
    start = lax.cummax(jnp.where(first, ids, 0))  # position of the first member of each class
    return jnp.zeros(S, jnp.int32).at[sorted_ids].set(sorted_ids[start])


@functools.partial(jax.jit, static_argnames=("num", "mode", "mesh"))
def _search_kernel(maze, logits, key, horizon, given_target, *, num, mode, mesh):
    S, D = maze.capacity.states, maze.capacity.out_degree
    p = probabilities(maze, logits.astype(jnp.float32))
    succ = jnp.asarray(maze.successors).astype(jnp.int32)
    classes = jnp.arange(S, dtype=jnp.int32) if mode == "mask" else _direction_classes(maze)
    successor_class = classes[succ]  # [S, D]
    codes = alias.target_codes(maze)
    target = common.split(rng.targets(maze, key, given_target), mesh)
    goal = target + 1

    def uniform(word):  # float32 in [0, 1) with 24 bits
        return (word >> 8).astype(jnp.float32) * jnp.float32(2.0**-24)

    def step(carry, _):
        state, cost, done, hit, moves, restarts, attempt, marks, w, g = carry
        w1 = w + g
        w = w1 + g
        u_move, u_reject = uniform(rng.fmix32(w1)), uniform(rng.fmix32(w))
        prob = p[state]  # [num, D]
        forbidden = jnp.take_along_axis(marks, successor_class[state], axis=1) == attempt[:, None]
        weight = jnp.where(forbidden, 0.0, prob)
        cdf = ordered_cumsum(weight, axis=1)
        allowed_mass = cdf[:, -1]
        stuck = ~jnp.any(weight > 0, axis=1)
        slot = jnp.sum(cdf <= (u_move * cdf[:, -1])[:, None], axis=1)
        last = D - 1 - jnp.argmax((weight > 0)[:, ::-1], axis=1)
        slot = jnp.minimum(slot, last)
        if mode == "aggregate":  # rejected proposals before the accepted one: Geometric(allowed)
            forbidden_mass = ordered_sum(jnp.where(forbidden, prob, 0.0), axis=1)
            log_reject = jnp.where(allowed_mass < 0.5, jnp.log1p(-allowed_mass), jnp.log(forbidden_mass))
            rejected = jnp.floor(jnp.log1p(-u_reject) / log_reject)
            rejected = jnp.where(forbidden_mass > 0, rejected, 0.0)
        else:
            rejected = jnp.zeros(num, jnp.float32)
        remaining = horizon - cost  # proposals left; the accepted one needs 1 of them
        rejected = jnp.minimum(rejected, remaining.astype(jnp.float32)).astype(jnp.int32)
        nxt = succ[state, slot]
        new_cost = cost + 1 + rejected
        live = ~done
        over = live & ~stuck & (rejected >= remaining)
        moving = live & ~stuck & ~over
        restart = live & stuck
        reached = moving & (codes[nxt] == goal)
        attempt = attempt + restart
        state = jnp.where(restart, 0, jnp.where(moving, nxt, state))
        mark = jnp.where(moving, classes[nxt], jnp.where(restart, classes[0], S))
        marks = jax.vmap(lambda row, j, a: row.at[j].set(a, mode="drop"))(marks, mark, attempt)
        cost = jnp.where(over, horizon, jnp.where(moving, new_cost, cost))
        return (
            state, cost, done | over | reached, hit | reached, moves + moving, restarts + restart,
            attempt, marks, w, g,
        ), None

    def chunk(carry):
        c, inner = carry
        w, g = rng.chunk_seeds(key, num, c)
        inner, _ = lax.scan(step, inner[:-2] + (w, g), None, length=rng.CHUNK)
        return c + 1, inner

    zeros = common.split(jnp.zeros(num, jnp.int32), mesh)
    marks = common.split(jnp.full((num, S), -1, jnp.int32).at[:, classes[0]].set(0), mesh)
    no = jnp.zeros(num, bool)
    seeds = jnp.zeros(num, jnp.uint32)  # replaced at the start of every chunk
    inner = (zeros, zeros, no, no, zeros, zeros, zeros, marks, seeds, seeds)
    _, inner = lax.while_loop(lambda carry: jnp.any(~carry[1][2]), chunk, (jnp.int32(0), inner))
    _, cost, _, hit, moves, restarts = inner[:6]
    return SearchWalks(cost, hit, target, moves, restarts)


__all__ = ["SEARCH_MODES", "SearchWalks", "search_walks"]
