"""Batched walks of a tabular policy on a pool of lanes: the stepper.

A walk starts in state 0 (``s0 -> f``) at time 0 with a prompted target (drawn uniformly among
the maze's real targets, or given), moves with the target-blind policy ``softmax(logits[s])``
and stops at the first state whose head is the target (``maze.target_hit[t, s]``) or when the
horizon is reached. ``length`` counts the moves taken; ``success`` says whether the target was
hit within ``horizon`` moves.

:func:`sample_walks` is arrays in, arrays out, for trainers: callable inside ``jax.jit``,
``lax.scan`` and ``jax.vmap`` (also over a stack of padded mazes, :func:`mazejax.stack`) with
``num``, ``record``, ``counts`` and ``lanes`` static (Python values); ``horizon``, ``logits``, the
maze's arrays, ``target``, ``weights`` and the key may be traced, and a new ``horizon`` does not
recompile. Optionally records the visited states and (weighted) move counts.

**Cost.** Walks run on a pool of lanes (:mod:`mazejax.simulate.pool`) that take the next walk as
soon as theirs ends and shrink when the queue runs dry, so the cost is proportional to the moves
made, not to ``num x`` the longest walk, and memory is O(lanes) whatever the horizon (plus O(num)
for the results and ``num * record`` for a state buffer). A move is two table lookups
(:mod:`mazejax.simulate.alias`), one hash (:mod:`mazejax.simulate.rng`) and a few integer
operations, branch-free; a walk that hits its target moves to an absorbing sink row. Walks past
the horizon are cut at the end of a round of :data:`ROUND` moves (their extra moves are never
recorded or counted).

**Devices.** ``devices=`` splits the walks in contiguous blocks over several devices, each running
its own pool, with identical results (counts with non-integer weights are summed in another
order). On one CPU device XLA spreads every move over the cores and synchronises them, which only
pays for very wide steps; starting Python with
``XLA_FLAGS=--xla_force_host_platform_device_count=<cores>`` and passing
``devices=jax.local_devices()`` lets each core run its own pool.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import PartitionSpec

from mazejax import validate
from mazejax.maze import Maze
from mazejax.simulate import alias, common, pool, rng

#: Moves between refills of the pool (speed only: results do not depend on it).
ROUND = 64
#: Default pool size (speed only).
LANES = 16384
_UNROLL = 8  # scan unroll of a round in the first stage (speed only)


class Walks(NamedTuple):
    """Rollouts of the plain stepper (:func:`sample_walks`).

    Attributes:
      length: int32 [num], moves taken (``horizon`` for walks that missed the target).
      success: bool [num], the target was hit within ``horizon`` moves.
      target: int32 [num], the target slot of each rollout (index into ``maze.target_mask``).
      states: int32 [num, record] or None: ``states[i, t]`` is the state at time ``t``
        (``states[i, 0] == 0``; the last one is the target state on success), -1 after the end.
      overflow: bool [num] or None: the walk had more than ``record`` states (``length >= record``),
        so ``states`` holds only its first ``record``.
      counts: float32 [S, D] or None: ``sum_i weights[i] * (moves of rollout i from state s by
        slot j)``; ``counts.sum(-1)`` are the (weighted) visit counts of each state before the hit.
    """

    length: jax.Array
    success: jax.Array
    target: jax.Array
    states: Optional[jax.Array] = None
    overflow: Optional[jax.Array] = None
    counts: Optional[jax.Array] = None


def rollout(
    maze: Maze, logits: jax.Array, key: jax.Array, num: int, horizon: int, search: Optional[str] = None, *, devices=None
):
    """``num`` rollouts of the policy ``logits`` on ``maze``, each with a uniformly drawn target.

    Args:
      maze: a :class:`~mazejax.Maze`.
      logits: float [S, D] policy logits (``-inf`` on invalid moves).
      key: a threefry PRNG key (``jax.random.key`` or ``jax.random.PRNGKey``); rollout ``i``
        depends only on ``key`` and ``i``.
      num: number of rollouts (static), >= 1.
      horizon: maximum moves (proposals with ``search``) per rollout, 1 <= horizon < 2**31.
      search: None for the plain walk; ``"aggregate"`` or ``"mask"`` for the search scaffold
        (docs/model.md §4.3, see :func:`search_walks`).
      devices: None to run on the default device, or a sequence of devices (e.g.
        ``jax.local_devices()``) to split the rollouts over; ``num`` must be a multiple of their
        number. The results do not depend on it.

    Returns:
      :class:`Walks` (``search`` None) or :class:`SearchWalks`; both have ``.length`` (int32 [num]:
      moves taken, or proposals made with ``search``) and ``.success`` (bool [num]).
    """
    if search is None:
        return sample_walks(maze, logits, key, num, horizon, devices=devices)
    from mazejax.simulate.scaffold import search_walks

    return search_walks(maze, logits, key, num, horizon, search, devices=devices)


def sample_walks(
    maze: Maze,
    logits: jax.Array,
    key: jax.Array,
    num: int,
    horizon,
    *,
    target=None,
    record: int = 0,
    counts: bool = False,
    weights: Optional[jax.Array] = None,
    devices=None,
    lanes: int = LANES,
    stats: bool = False,
):
    """Batched rollouts of the plain walk (module docstring); jit/vmap/scan friendly.

    Args:
      maze: a :class:`~mazejax.Maze` (its arrays may be traced, e.g. vmapped over a stack).
      logits: float [S, D] (cast to float32).
      key: a threefry PRNG key (typed or raw uint32[2]); rollout ``i`` depends only on ``key``
        and ``i``.
      num: number of rollouts; a Python int (static).
      horizon: maximum moves per rollout: a Python int or an int32 scalar (may be traced: a new
        horizon does not recompile), 1 <= horizon < 2**31.
      target: None to draw each rollout's target uniformly among the real targets, or target
        slot(s): an int or int array [num]. A given target leaves the walk's random stream unchanged,
        so rollout ``i`` with its drawn target given explicitly is the same walk.
      record: length of the state buffer (static); 0 records nothing (``num * record < 2**31``).
      counts: also return move counts [S, D] (static flag).
      weights: float [num] per-rollout weights of ``counts`` (default 1), e.g. advantages for a
        REINFORCE gradient ``sum_i A_i (N_i[s, a] - N_i[s] pi(a | s))``.
      devices: None, or a sequence of devices to split the rollouts over (``num`` a multiple of
        their number; see :func:`rollout`).
      lanes: the pool size (static; speed only, split over ``devices``).
      stats: also return :class:`~mazejax.simulate.pool.PoolStats` (lane-steps spent).

    Returns:
      :class:`Walks` (and the stats). Inside ``jax.jit``, pass ``num``, ``record``, ``counts`` and
      ``lanes`` as Python values.
    """
    num = validate.positive_int("num", num)
    mesh = common.rollout_mesh(devices, num)
    record = validate.positive_int("record", record, minimum=0)
    lanes = validate.positive_int("lanes", lanes)
    if not isinstance(counts, (bool, np.bool_)):
        raise ValueError(f"counts must be a bool, got {counts!r}")
    if num * record >= 2**31:
        raise ValueError(f"num * record must be < 2**31, got {num} * {record}")
    common.check_common(maze, logits, key, horizon)
    alias.layout(maze)  # raises if the maze is too large to pack
    target = common.target_argument(maze, target, num)
    if weights is not None:
        if not counts:
            raise ValueError("weights are only used with counts=True")
        if np.shape(weights) != (num,):
            raise ValueError(f"weights must have shape (num,) = ({num},), got {np.shape(weights)}")
        weights = jnp.asarray(weights, jnp.float32)
    elif counts:
        weights = jnp.ones(num, jnp.float32)
    tables = alias.stepper_tables(maze, jnp.asarray(logits))
    n = pool.devices_of(mesh)
    sizes = pool.stage_sizes(num // n, max(lanes // n, 1))
    walks, rounds = _walks_kernel(
        maze, tables, rng.key_words(key), jnp.asarray(horizon, jnp.int32), target, weights,
        num=num, record=record, counts=bool(counts), sizes=sizes, mesh=mesh,
    )
    return (walks, pool.stats(sizes, rounds, ROUND, mesh)) if stats else walks


@functools.partial(jax.jit, static_argnames=("num", "record", "counts", "sizes", "mesh"))
def _walks_kernel(maze, tables, key, horizon, given_target, weights, *, num, record, counts, sizes, mesh):
    local = functools.partial(_walks_local, record=record, counts=counts, sizes=sizes)
    if weights is None:
        weights = jnp.zeros(num, jnp.float32)  # unused
    if mesh is None:
        return local(maze, tables, key, horizon, given_target, weights, jnp.int32(0), num=num)
    split = PartitionSpec(common.AXIS)
    specs = Walks(split, split, split, split if record else None, split if record else None,
                  PartitionSpec() if counts else None)

    def summed(*args, num):
        walks, rounds = local(*args, num=num)
        if counts:
            walks = walks._replace(counts=lax.psum(walks.counts, common.AXIS))
        return walks, rounds

    return pool.sharded(summed, mesh, num, (maze, tables, key, horizon), (given_target, weights), specs)


def _walks_local(maze, tables, key, horizon, given_target, weights, start, *, num, record, counts, sizes):
    """The plain-walk pool for walks ``start, ..., start + num - 1`` (one device)."""
    layout = alias.layout(maze)
    S, D = layout.states, layout.degree
    alias_entry, successor_code, degree = tables
    target = rng.targets(maze, key, given_target, start)
    goals = target + 1
    seed_w, seed_g = rng.walk_seeds(key, start, num)
    shift = 32 - layout.resolution
    frac_mask = jnp.uint32(2**layout.resolution - 1)
    state_mask = jnp.int32(2**layout.state_bits - 1)
    alias_mask = jnp.int32(2**layout.alias_bits - 1)
    no_count = (S + 1) * D  # out-of-range scatter index: dropped
    hz = horizon.astype(jnp.uint32)
    R = ROUND

    def move(state, word, goal):
        """One move of every lane: (next state (sink after a hit), state entered, flat (s, slot))."""
        x = (word >> shift) * degree
        slot = (x >> layout.resolution).astype(jnp.int32)
        frac = (x & frac_mask).astype(jnp.int32)
        base = state * D
        entry = alias_entry.at[base + slot].get(mode="promise_in_bounds")
        slot = jnp.where(frac < (entry >> layout.alias_bits), slot, entry & alias_mask)
        code = successor_code.at[base + slot].get(mode="promise_in_bounds")
        entered = code & state_mask
        return jnp.where((code >> layout.state_bits) == goal, S, entered), entered, base + slot

    def write(lanes, glob, ended):
        """Write the results of the walks whose lanes are ``ended``."""
        k = lanes["k"]
        out = jnp.where(ended, lanes["idx"], num)  # out of range: dropped
        glob = dict(glob)
        glob["length"] = glob["length"].at[out].set(jnp.minimum(k, hz).astype(jnp.int32), mode="drop")
        glob["success"] = glob["success"].at[out].set(k <= hz, mode="drop")
        return glob

    def refill(lanes, glob):
        """Write the ended walks' results and hand their lanes the next walks of the queue."""
        done = lanes["state"] == S  # ended walks, and idle lanes (idx == num: not written)
        glob = write(lanes, glob, done)
        idx, fresh, j, glob["next"] = pool.next_walks(done, glob["next"], num)
        lanes = dict(
            idx=jnp.where(done, idx, lanes["idx"]),
            state=jnp.where(fresh, 0, lanes["state"]),
            k=jnp.where(done, jnp.uint32(0), lanes["k"]),
            w=jnp.where(done, seed_w[j], lanes["w"]),
            g=jnp.where(done, seed_g[j], lanes["g"]),
            goal=jnp.where(done, goals[j], lanes["goal"]),
            **({"weight": jnp.where(done, weights[j], lanes["weight"])} if counts else {}),
        )
        return lanes, glob

    def flush(lanes, glob):
        """Write the results of the walks that ended (without refilling their lanes)."""
        ended = (lanes["state"] == S) & (lanes["idx"] < num)
        return dict(lanes, idx=jnp.where(ended, num, lanes["idx"])), write(lanes, glob, ended)

    def moves(lanes, glob, first):
        """``R`` moves of every lane, then lanes at the horizon are sent to the sink."""
        g, goal = lanes["g"], lanes["goal"]

        def step(inner, _):
            state, k, w = inner
            w = w + g
            nxt, entered, flat = move(state, rng.fmix32(w), goal)
            moving = state != S
            out = (
                jnp.where(moving, entered, -1) if record else None,
                jnp.where(moving, flat, no_count) if counts else None,
            )
            return (nxt, k + moving.astype(jnp.uint32), w), out

        k0 = lanes["k"]
        (state, k, w), (entered, flat) = lax.scan(
            step, (lanes["state"], k0, lanes["w"]), None, length=R, unroll=_UNROLL if first else 1
        )
        # a walk that reached the horizon ends (its moves past the horizon, at most R - 1, are
        # overshoot: never recorded or counted); k = horizon + 1 marks it as a miss
        cut = (state != S) & (k >= hz)
        lanes = dict(lanes, state=jnp.where(cut, S, state), k=jnp.where(cut, hz + 1, k), w=w)
        if record or counts:
            r = jnp.arange(R, dtype=jnp.uint32)[:, None]  # move r of the round is move k0 + r of its walk
            kept = (k0[None, :] + r) < hz
            glob = dict(glob)
            if record:
                col = jnp.minimum(k0, jnp.uint32(record))[None, :] + 1 + r  # column of the entered state
                ok = kept & (entered >= 0) & (col < record)
                pos = jnp.where(ok, lanes["idx"][None, :] * record + col.astype(jnp.int32), num * record)
                glob["buffer"] = glob["buffer"].at[pos.ravel()].set(entered.ravel(), mode="drop")
            if counts:
                flat = jnp.where(kept, flat, no_count)
                wt = jnp.broadcast_to(lanes["weight"], flat.shape)
                glob["tally"] = glob["tally"].at[flat.ravel()].add(wt.ravel(), mode="drop")
        return lanes, glob

    P = sizes[0]
    fills = dict(idx=num, state=S, k=0, w=0, g=1, goal=0, weight=0.0)
    lanes = dict(
        idx=jnp.full(P, num, jnp.int32),
        state=jnp.full(P, S, jnp.int32),
        k=jnp.zeros(P, jnp.uint32),
        w=jnp.zeros(P, jnp.uint32),
        g=jnp.ones(P, jnp.uint32),
        goal=jnp.zeros(P, jnp.int32),
        **({"weight": jnp.zeros(P, jnp.float32)} if counts else {}),
    )
    glob = dict(next=jnp.int32(0), length=jnp.zeros(num, jnp.int32), success=jnp.zeros(num, bool))
    if record:
        glob["buffer"] = jnp.full((num, record), -1, jnp.int32).at[:, 0].set(0).ravel()
    if counts:
        glob["tally"] = jnp.zeros(no_count, jnp.float32)
    lanes, glob = refill(lanes, glob)  # the first P walks
    glob, rounds = pool.run_stages(
        lanes, glob, sizes, moves=moves, refill=refill, flush=flush, active=lambda lanes: lanes["state"] != S,
        fills=fills,
    )
    length = glob["length"]
    return Walks(
        length,
        success=glob["success"],
        target=target,
        states=glob["buffer"].reshape(num, record) if record else None,
        overflow=length >= record if record else None,
        counts=glob["tally"][: S * D].reshape(S, D) if counts else None,
    ), rounds


__all__ = ["LANES", "ROUND", "Walks", "rollout", "sample_walks"]
