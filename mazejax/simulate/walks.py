"""Batched walks of a tabular policy: the stepper.

A walk starts in state 0 (``s0 -> f``) at time 0 with a prompted target (drawn uniformly among
the maze's real targets, or given), moves with the target-blind policy ``softmax(logits[s])``
and stops at the first state whose head is the target (``maze.target_hit[t, s]``) or when the
horizon is reached. ``length`` counts the moves taken; ``success`` says whether the target was
hit within ``horizon`` moves.

:func:`sample_walks` is arrays in, arrays out, for trainers: callable inside ``jax.jit``,
``lax.scan`` and ``jax.vmap`` (also over a stack of padded mazes, :func:`mazejax.stack`) with
``num``, ``record`` and ``counts`` static (Python values); ``horizon``, ``logits``, the maze's
arrays, ``target``, ``weights`` and the key may be traced, and a new ``horizon`` does not
recompile. Optionally records the visited states (a fixed-size buffer with an overflow flag) and
(weighted) move counts. Randomness: :mod:`mazejax.simulate.rng`; move sampling:
:mod:`mazejax.simulate.alias`.

**Cost.** The stepper is batch-major (``[num]`` state vectors) in a ``lax.while_loop`` over
chunks that stops as soon as every walk has ended or the horizon is reached: memory is O(num)
whatever the horizon (plus ``num * record`` for a state buffer).

**Devices.** ``devices=`` splits the rollouts over several devices with identical results
(rollout ``i`` still depends only on the key and ``i``). On one CPU device XLA already spreads
every step over the cores, but synchronises them at each step; starting Python with
``XLA_FLAGS=--xla_force_host_platform_device_count=<cores>`` and passing
``devices=jax.local_devices()`` lets each core run its share of the walks on its own.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mazejax import validate
from mazejax.maze import Maze
from mazejax.simulate import alias, common, rng

_UNROLL = 8  # scan unroll inside a chunk (speed only)


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
) -> Walks:
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
      record: length of the state buffer (static); 0 records nothing.
      counts: also return move counts [S, D] (static flag).
      weights: float [num] per-rollout weights of ``counts`` (default 1), e.g. advantages for a
        REINFORCE gradient ``sum_i A_i (N_i[s, a] - N_i[s] pi(a | s))``.
      devices: None, or a sequence of devices to split the rollouts over (``num`` a multiple of
        their number; see :func:`rollout`). Identical results; e.g. both cores of a CPU run as two
        XLA devices (``XLA_FLAGS=--xla_force_host_platform_device_count=2``) without the per-move
        thread synchronisation of one device.

    Returns:
      :class:`Walks`. Inside ``jax.jit``, pass ``num``, ``record`` and ``counts`` as Python values.
    """
    num = validate.positive_int("num", num)
    mesh = common.rollout_mesh(devices, num)
    record = validate.positive_int("record", record, minimum=0)
    if not isinstance(counts, (bool, np.bool_)):
        raise ValueError(f"counts must be a bool, got {counts!r}")
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
    return _walks_kernel(
        maze, tables, rng.key_words(key), jnp.asarray(horizon, jnp.int32), target, weights,
        num=num, record=record, counts=bool(counts), mesh=mesh,
    )



@functools.partial(jax.jit, static_argnames=("num", "record", "counts", "mesh"))
def _walks_kernel(maze, tables, key, horizon, given_target, weights, *, num, record, counts, mesh):
    layout = alias.layout(maze)
    S, D = layout.states, layout.degree
    alias_entry, successor_code, degree = tables
    target = common.split(rng.targets(maze, key, given_target), mesh)
    goal = target + 1  # the target code of a state that ends the walk
    shift = 32 - layout.resolution
    frac_mask = jnp.uint32(2**layout.resolution - 1)
    state_mask = jnp.int32(2**layout.state_bits - 1)
    alias_mask = jnp.int32(2**layout.alias_bits - 1)
    no_count = (S + 1) * D  # out-of-range scatter index: dropped

    def move(state, word):
        """One move of every walk: (next state (sink after a hit), state entered, flat (s, slot))."""
        x = (word >> shift) * degree
        slot = (x >> layout.resolution).astype(jnp.int32)
        frac = (x & frac_mask).astype(jnp.int32)
        base = state * D
        entry = alias_entry.at[base + slot].get(mode="promise_in_bounds")
        slot = jnp.where(frac < (entry >> layout.alias_bits), slot, entry & alias_mask)
        code = successor_code.at[base + slot].get(mode="promise_in_bounds")
        entered = code & state_mask
        return jnp.where((code >> layout.state_bits) == goal, S, entered), entered, base + slot

    def chunk(carry, partial):
        """CHUNK moves of every walk; ``partial``: the horizon ends inside this chunk (masked)."""
        c, state, length, buffer, tally = carry
        w, g = rng.chunk_seeds(key, num, c)
        start = c * rng.CHUNK

        def step(inner, k):
            state, length, w = inner
            w = w + g
            nxt, entered, flat = move(state, rng.fmix32(w))
            moving = state != S
            if partial:
                moving = moving & (start + k < horizon)
                nxt = jnp.where(moving, nxt, state)
            out = (
                jnp.where(moving, entered, -1) if record else None,
                jnp.where(moving, flat, no_count) if counts else None,
            )
            return (nxt, length + moving, w), out

        (state, length, _), (entered, flat) = lax.scan(
            step, (state, length, w), jnp.arange(rng.CHUNK, dtype=jnp.int32), unroll=1 if partial else _UNROLL
        )
        if record:
            row = jnp.minimum(1 + start, buffer.shape[0] - rng.CHUNK)  # past `record`: a scratch zone
            buffer = lax.dynamic_update_slice(buffer, entered, (row, jnp.int32(0)))
        if counts:
            ones = jnp.broadcast_to(weights, flat.shape)
            tally = tally + jnp.zeros(no_count, jnp.float32).at[flat.ravel()].add(ones.ravel(), mode="drop")
        return c + 1, state, length, buffer, tally

    def alive(carry, chunks):
        c, state = carry[0], carry[1]
        return (c < chunks) & jnp.any(state != S)

    # Time-major buffer: row 0 holds state 0, chunk c writes rows 1 + c * rng.CHUNK onwards; chunks past
    # ``record`` write into one extra scratch chunk at the end.
    rows = (-(-max(record - 1, 0) // rng.CHUNK) + 1) * rng.CHUNK + 1 if record else 0
    buffer = common.split(jnp.full((rows, num), -1, jnp.int32).at[0].set(0), mesh, axis=1) if record else None
    tally = jnp.zeros(no_count, jnp.float32) if counts else None
    zeros = common.split(jnp.zeros(num, jnp.int32), mesh)
    carry = (jnp.int32(0), zeros, zeros, buffer, tally)
    # Whole chunks unmasked (the sink row keeps finished walks in place), then the last partial one.
    whole = horizon // rng.CHUNK
    carry = lax.while_loop(functools.partial(alive, chunks=whole), functools.partial(chunk, partial=False), carry)
    carry = lax.while_loop(
        functools.partial(alive, chunks=-(-horizon // rng.CHUNK)), functools.partial(chunk, partial=True), carry
    )
    _, state, length, buffer, tally = carry
    return Walks(
        common.split(length, mesh),
        success=common.split(state == S, mesh),
        target=target,
        states=buffer[:record].T if record else None,
        overflow=length >= record if record else None,
        counts=tally[: S * D].reshape(S, D) if counts else None,
    )


__all__ = ["Walks", "rollout", "sample_walks"]
