"""The inference-time search scaffold of the paper's Corollary 1 (docs/model.md §4.3).

Within an *attempt*, the wrapper forbids entering any edge-state already visited in that
attempt, and the cost counts every proposal, rejected ones included. Two semantics: "aggregate"
(parallel copies of an edge in one direction count as one state; forbidden proposals are
rejected and redrawn) and "mask" (copies are distinct; visited moves are masked and the rest
renormalised). Walks run on a pool of lanes (:mod:`mazejax.simulate.pool`), each lane keeping
its visited set as a bitset (``ceil(S / 32)`` uint32 words, cleared when an attempt starts), so
memory is O(lanes * S / 32) whatever ``num``.

Speed (XLA:CPU): a step's lane-wise results (the next state, the flags) are not materialised
once; XLA fuses their producers into each consumer, and a consumer that broadcasts a lane's value
over its bitset row recomputes the whole chain per word. So a step *records* the visit (``pend``,
and ``wipe`` for a new attempt) and the next step applies it first, from its carried state, before
testing the moves; and the "some forbidden move has mass" test is a reduction (materialised), not
the ordered sum that feeds the logarithm. Measured on one core of an Intel Xeon (a fixed-length
loop of steps, 2048 lanes, aggregate semantics, SFT limit at (6,6,5)): 44 ns per lane-step,
against 74 when each step marked its own visit. The CDF over the moves is kept as ``D`` separate
running sums (:func:`mazejax.ordered.running_sums`), not a stacked ``[n, D]`` cumsum: on one CPU
device of a 2-core AMD EPYC (16384 full-length walks, SFT limit at (6,6,5)) 47 ns per lane-step
against 58 (aggregate) and 39 against 50 (mask). Reductions over the moves (``stuck``, ``last``)
stay reductions: as elementwise ops on the columns they took 55 ns, and ``stuck`` read from the
last sum 72-83 ns (re-fused into every consumer). A step writes the row of its move (``state * D +
slot``) into the lanes, so the successor lookup reads a computed index; with the index fused into
the lookup XLA:CPU drew the slot inside the gather, more slowly (stop 32, the same AMD EPYC, old and
new code alternating, the same walks: 16384 full-length walks on one device, 42 against 48 ns per
lane-step (aggregate) and 32 against 39 (mask); 65536 on two devices, 86 against 71-72 M proposals/s
(aggregate) and 57-58 against 40 (mask), best of 7).

Randomness as for the plain walks (:mod:`mazejax.simulate.rng`): step ``k`` of a walk (an
accepted move or a restart) uses the words ``fmix32(w + (2k + 1) g)`` and ``fmix32(w + (2k + 2) g)``;
moves are drawn by inverse CDF in float32 over the allowed moves.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec

from mazejax import validate
from mazejax.maze import Maze
from mazejax.ordered import ordered_sum, running_sums
from mazejax.policy import probabilities
from mazejax.simulate import alias, common, pool, rng

SEARCH_MODES = ("aggregate", "mask")
#: Steps between refills of the pool, and the default pool size (speed only).
ROUND = 16
LANES = 2048


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
    maze: Maze, logits: jax.Array, key: jax.Array, num: int, horizon, mode: str, *, target=None, devices=None,
    lanes: int = LANES, stats: bool = False,
):
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

    Arguments as in :func:`mazejax.simulate.sample_walks`; ``mode`` is ``"aggregate"`` or ``"mask"``.
    Returns :class:`SearchWalks` (and :class:`~mazejax.simulate.pool.PoolStats` with ``stats``).
    """
    num = validate.positive_int("num", num)
    mesh = common.rollout_mesh(devices, num)
    lanes = validate.positive_int("lanes", lanes)
    if mode not in SEARCH_MODES:
        raise ValueError(f"search mode must be one of {SEARCH_MODES} (or None for no scaffold), got {mode!r}")
    common.check_common(maze, logits, key, horizon)
    target = common.target_argument(maze, target, num)
    n = pool.devices_of(mesh)
    sizes = pool.stage_sizes(num // n, max(lanes // n, 1))
    walks, rounds = _search_kernel(
        maze, jnp.asarray(logits), rng.key_words(key), jnp.asarray(horizon, jnp.int32), target,
        num=num, mode=mode, sizes=sizes, mesh=mesh,
    )
    return (walks, pool.stats(sizes, rounds, ROUND, mesh)) if stats else walks



def direction_classes(maze: Maze) -> jax.Array:
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


@functools.partial(jax.jit, static_argnames=("num", "mode", "sizes", "mesh"))
def _search_kernel(maze, logits, key, horizon, given_target, *, num, mode, sizes, mesh):
    local = functools.partial(_search_local, mode=mode, sizes=sizes)
    if mesh is None:
        return local(maze, logits, key, horizon, given_target, jnp.int32(0), num=num)
    split = PartitionSpec(common.AXIS)
    return pool.sharded(local, mesh, num, (maze, logits, key, horizon), (given_target,), SearchWalks(*[split] * 5))


def _search_local(maze, logits, key, horizon, given_target, start, *, num, mode, sizes):
    """The scaffold pool for walks ``start, ..., start + num - 1`` (one device)."""
    S, D = maze.capacity.states, maze.capacity.out_degree
    p = probabilities(maze, logits.astype(jnp.float32))
    succ = jnp.asarray(maze.successors).astype(jnp.int32)
    classes = jnp.arange(S, dtype=jnp.int32) if mode == "mask" else direction_classes(maze)
    successor_class = classes[succ]  # [S, D]
    codes = alias.target_codes(maze)
    target = rng.targets(maze, key, given_target, start)
    goals = target + 1
    seed_w, seed_g = rng.walk_seeds(key, start, num)

    def uniform(word):  # float32 in [0, 1) with 24 bits
        return (word >> 8).astype(jnp.float32) * jnp.float32(2.0**-24)

    words = (S + 31) // 32  # visit marks: a bitset of S bits per lane
    succ_flat = succ.ravel()
    word_of = jnp.arange(words, dtype=jnp.int32)

    def bit(c):  # the bit of class ``c`` in its word ``c >> 5``
        return jnp.uint32(1) << (c & 31).astype(jnp.uint32)

    def step(lanes, _):
        """One step of every lane: an accepted move (after redrawn rejections) or a restart."""
        state, cost, done, hit = lanes["state"], lanes["cost"], lanes["done"], lanes["hit"]
        w, g = lanes["w"], lanes["g"]
        n = state.shape[0]
        # The visit recorded by the previous step (or a refill): a new attempt clears the row, then
        # the current state's class is marked.
        here = classes[state]
        marks = jnp.where(lanes["wipe"][:, None], jnp.uint32(0), lanes["marks"])
        marks = marks | jnp.where((word_of == (here >> 5)[:, None]) & lanes["pend"][:, None], bit(here)[:, None], 0)
        w1 = w + g
        w = w1 + g
        u_move, u_reject = uniform(rng.fmix32(w1)), uniform(rng.fmix32(w))
        prob = p.at[state].get(mode="promise_in_bounds")  # [n, D] row gathers
        move_class = successor_class.at[state].get(mode="promise_in_bounds")
        marked = jnp.take_along_axis(marks, move_class >> 5, axis=1, mode="promise_in_bounds")
        forbidden = (marked & bit(move_class)) != 0
        weight = jnp.where(forbidden, 0.0, prob)
        cdf = running_sums(weight, axis=1)  # D arrays [n]
        allowed_mass = cdf[-1]
        stuck = ~jnp.any(weight > 0, axis=1)
        threshold = u_move * allowed_mass
        slot = functools.reduce(jnp.add, [(c <= threshold).astype(jnp.int32) for c in cdf])
        last = jnp.max(jnp.where(weight > 0, jnp.arange(D, dtype=jnp.int32), 0), axis=1)  # int32, not argmax's int64
        slot = jnp.minimum(slot, last)
        if mode == "aggregate":  # rejected proposals before the accepted one: Geometric(allowed)
            forbidden_mass = ordered_sum(jnp.where(forbidden, prob, 0.0), axis=1)
            log_reject = jnp.where(allowed_mass < 0.5, jnp.log1p(-allowed_mass), jnp.log(forbidden_mass))
            rejected = jnp.floor(jnp.log1p(-u_reject) / log_reject)
            rejected = jnp.where(jnp.any(forbidden & (prob > 0), axis=1), rejected, 0.0)  # forbidden_mass > 0
        else:
            rejected = jnp.zeros(n, jnp.float32)
        remaining = horizon - cost  # proposals left; the accepted one needs 1 of them
        rejected = jnp.minimum(rejected, remaining.astype(jnp.float32)).astype(jnp.int32)
        row = state * D + slot
        nxt = succ_flat.at[row].get(mode="promise_in_bounds")
        live = ~done
        over = live & ~stuck & (rejected >= remaining)
        moving = live & ~stuck & ~over
        restart = live & stuck
        reached = moving & (codes[nxt] == lanes["goal"])
        state = jnp.where(restart, 0, jnp.where(moving, nxt, state))
        cost = jnp.where(over, horizon, jnp.where(moving, cost + 1 + rejected, cost))
        lanes = dict(
            lanes, state=state, cost=cost, done=done | over | reached, hit=hit | reached,
            moves=lanes["moves"] + moving, restarts=lanes["restarts"] + restart, marks=marks, w=w,
            pend=moving | restart, wipe=restart,  # a restart starts a new attempt: an empty visited set
            row=row,
        )
        return lanes, None

    def write(lanes, glob, ended):
        out = jnp.where(ended, lanes["idx"], num)  # out of range: dropped
        glob = dict(glob)
        for name, field in (("length", "cost"), ("success", "hit"), ("moves", "moves"), ("restarts", "restarts")):
            glob[name] = glob[name].at[out].set(lanes[field], mode="drop")
        return glob

    def refill(lanes, glob):
        done = lanes["done"]
        glob = write(lanes, glob, done)
        idx, fresh, j, glob["next"] = pool.next_walks(done, glob["next"], num)
        zero = jnp.zeros_like(idx)
        lanes = dict(
            idx=jnp.where(done, idx, lanes["idx"]),
            state=jnp.where(done, 0, lanes["state"]),
            cost=jnp.where(done, zero, lanes["cost"]),
            done=jnp.where(done, ~fresh, False),
            hit=jnp.where(done, False, lanes["hit"]),
            moves=jnp.where(done, zero, lanes["moves"]),
            restarts=jnp.where(done, zero, lanes["restarts"]),
            marks=lanes["marks"],
            pend=jnp.where(done, fresh, lanes["pend"]),  # a new walk: the next step marks state 0
            wipe=done | lanes["wipe"],
            w=jnp.where(done, seed_w[j], lanes["w"]),
            g=jnp.where(done, seed_g[j], lanes["g"]),
            goal=jnp.where(done, goals[j], lanes["goal"]),
            row=lanes["row"],
        )
        return lanes, glob

    def flush(lanes, glob):
        ended = lanes["done"] & (lanes["idx"] < num)
        return dict(lanes, idx=jnp.where(ended, num, lanes["idx"])), write(lanes, glob, ended)

    def moves(lanes, glob):
        lanes, _ = lax.scan(step, lanes, None, length=ROUND)
        # always true (a row index, and S * D < 2**31): a use, else XLA drops the carried row
        return dict(lanes, done=lanes["done"] & (lanes["row"] >= 0)), glob

    P = sizes[0]
    zeros = jnp.zeros(P, jnp.int32)
    lanes = dict(
        idx=jnp.full(P, num, jnp.int32), state=zeros, cost=zeros, done=jnp.ones(P, bool),
        hit=jnp.zeros(P, bool), moves=zeros, restarts=zeros, marks=jnp.zeros((P, words), jnp.uint32),
        pend=jnp.zeros(P, bool), wipe=jnp.zeros(P, bool), w=jnp.zeros(P, jnp.uint32), g=jnp.ones(P, jnp.uint32),
        goal=zeros, row=zeros,
    )
    fills = dict(idx=num, state=0, cost=0, done=True, hit=False, moves=0, restarts=0, marks=0, pend=False, wipe=False,
                 w=0, g=1, goal=0, row=0)
    glob = dict(
        next=jnp.int32(0), length=jnp.zeros(num, jnp.int32), success=jnp.zeros(num, bool),
        moves=jnp.zeros(num, jnp.int32), restarts=jnp.zeros(num, jnp.int32),
    )
    lanes, glob = refill(lanes, glob)
    glob, rounds = pool.run_stages(
        lanes, glob, sizes, moves=moves, refill=refill, flush=flush, active=lambda lanes: ~lanes["done"], fills=fills
    )
    return SearchWalks(glob["length"], glob["success"], target, glob["moves"], glob["restarts"]), rounds


__all__ = ["LANES", "ROUND", "SEARCH_MODES", "SearchWalks", "direction_classes", "search_walks"]
