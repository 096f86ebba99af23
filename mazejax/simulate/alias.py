"""Move sampling tables of the stepper: Walker alias tables packed with the successor table.

A move is one table lookup: the row of (state, slot) holds its alias entry -- keep probability in
units of ``2**-resolution`` packed with the alias slot -- and the successor codes of the slot and of
its alias -- the next state packed with the target code of its head node (0: not a target) -- so
the move's uniform picks one of the two codes without a second, dependent lookup. A sink row ``S``
absorbs walks that hit their target, so finished walks need no masking. Every move probability
is resolved to about ``2**-24`` (absolute; fewer bits only when the padded out-degree exceeds
128), probability-0 moves are never taken, and a move of positive probability keeps a
probability of at least ``2**-24 / D``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from mazejax.maze import Maze
from mazejax.policy import probabilities

#: Bits of a successor code when a row packs both codes into one word (``code | alias_code << CODE_BITS``).
CODE_BITS = 16


class Layout(NamedTuple):
    """Static bit layout of the packed tables (from the maze's capacity)."""

    states: int  # S; the sink is internal state S
    degree: int  # D
    state_bits: int  # bits of a state id in a successor code (states 0..S)
    alias_bits: int  # bits of an alias slot in an alias entry
    resolution: int  # bits r of the uniform that pick (slot, fraction)
    words: int  # int32 words per row of the move table: 2 when both successor codes fit in one, else 3


def layout(maze: Maze) -> Layout:
    cap = maze.capacity
    state_bits = int(cap.states).bit_length()
    target_bits = int(cap.targets).bit_length()
    if state_bits + target_bits > 31 or cap.targets >= 2**16:
        raise ValueError(
            f"maze too large for the stepper: states * (targets + 1) must be < 2**31 and targets < 2**16 "
            f"(capacity {cap.states} states, {cap.targets} targets)"
        )
    alias_bits = int(cap.out_degree - 1).bit_length()
    words = 2 if state_bits + target_bits <= CODE_BITS else 3
    return Layout(cap.states, cap.out_degree, state_bits, alias_bits, min(24, 31 - alias_bits), words)


def _code_words(code, alias_code, layout_: Layout) -> list:
    """The words of a row after its alias entry (the inverse of :func:`row_codes`)."""
    return [code, alias_code] if layout_.words == 3 else [code | (alias_code << CODE_BITS)]


def row_codes(row, layout_: Layout):
    """``(code of the row's slot, code of its alias slot)`` from rows ``[..., layout_.words]`` of the move table."""
    if layout_.words == 3:
        return row[..., 1], row[..., 2]
    word = row[..., 1]
    return word & (2**CODE_BITS - 1), lax.shift_right_logical(word, jnp.asarray(CODE_BITS, word.dtype))


def alias_tables(p: jax.Array, degree: jax.Array):
    """Walker alias tables of the rows of ``p`` over their first ``degree`` slots (Robin Hood).

    Args:
      p: float32 [R, D] probabilities (rows sum to 1, or to 0 for rows never used).
      degree: int32 scalar <= D: the number of slots the sampler draws from.

    Returns:
      (keep, alias): float32 [R, D] in [0, 1] and int32 [R, D]. Drawing ``j`` uniform in
      ``[0, degree)`` and ``f`` uniform in [0, 1) and taking ``j`` if ``f < keep[j]`` else
      ``alias[j]`` samples the row's distribution. Slots of probability 0 get ``keep = 0``.

    Each of the D - 1 rounds pairs, in every row, the open slot of least mass ("poor", whose keep
    probability is then final) with the open slot of most mass ("rich", its alias, which gives the
    poor slot's shortfall). Computed slot-major ([D, R]) so every reduction is a vectorised
    elementwise pass over rows.
    """
    width = p.shape[1]
    cols = jnp.arange(width, dtype=jnp.int32)[:, None]
    mass = p.T * degree.astype(p.dtype)  # [D, R], in units of one slot
    open_ = jnp.broadcast_to(cols < degree, mass.shape)

    def first(mask):  # int32 [R]: the first slot where ``mask`` holds
        return jnp.min(jnp.where(mask, cols, width), axis=0)

    def body(_, carry):
        mass, keep, alias, open_ = carry
        busy = jnp.sum(open_, axis=0) >= 2
        open_mass = jnp.where(open_, mass, jnp.inf)
        is_poor = cols == first(open_ & (open_mass == jnp.min(open_mass, axis=0)))
        other_mass = jnp.where(open_ & ~is_poor, mass, -jnp.inf)
        rich = first(open_ & ~is_poor & (other_mass == jnp.max(other_mass, axis=0)))
        poor_mass = jnp.sum(jnp.where(is_poor, mass, 0.0), axis=0)
        set_poor = is_poor & busy
        keep = jnp.where(set_poor, jnp.clip(poor_mass, 0.0, 1.0), keep)
        alias = jnp.where(set_poor, rich, alias)
        mass = jnp.where((cols == rich) & busy, mass + poor_mass - 1.0, mass)
        return mass, keep, alias, open_ & ~set_poor

    init = (mass, jnp.ones_like(mass), jnp.broadcast_to(cols, mass.shape), open_)
    _, keep, alias, _ = lax.fori_loop(0, max(width - 1, 0), body, init)
    return jnp.where(p > 0, keep.T, 0.0), alias.T


def target_codes(maze: Maze) -> jax.Array:
    """int32 [S]: 1 + the target slot whose node is the head of each state, 0 if none.

    A state's head is one node, so at most one target matches; a plain sum (not an argmax) keeps
    this cheap for XLA to constant-fold when the maze is closed over.
    """
    hits = jnp.asarray(maze.target_hit) & jnp.asarray(maze.target_mask)[:, None]
    slot = jnp.arange(1, hits.shape[0] + 1, dtype=jnp.int32)[:, None]
    return jnp.sum(jnp.where(hits, slot, 0), axis=0, dtype=jnp.int32)


def max_degree(maze: Maze) -> jax.Array:
    """int32 scalar: 1 + the last valid move slot of any state (its largest out-degree; padding
    columns excluded, so padding does not change the sampler)."""
    valid = jnp.asarray(maze.valid)
    return jnp.max(jnp.where(valid, jnp.arange(1, valid.shape[1] + 1), 0)).astype(jnp.int32)


@jax.jit
def stepper_tables(maze: Maze, logits: jax.Array):
    """Flat packed tables of the stepper, with a sink row S (walks that hit their target).

    Jitted on its own (one program per capacity), so the walk kernels for different ``num``,
    ``record`` and ``counts`` share it.

    Returns:
      table: int32 [(S + 1) * D, words] (``layout(maze).words``), row ``s * D + j``: the alias entry
        of slot ``j`` of state ``s``, ``keep_bits << alias_bits | alias_slot`` where ``keep_bits`` =
        keep probability in units of ``2**-resolution`` (an always-kept slot is stored as keep 0
        with itself as alias); the successor code of slot ``j``, ``next_state |
        target_code(next_state) << state_bits``; and the successor code of its alias slot, packed
        with the first as ``code | alias_code << CODE_BITS`` when codes have at most
        :data:`CODE_BITS` bits (2 words; :func:`row_codes` reads them). One gather of a row is a
        whole move (old and new code alternating in one process, 65536 full-length walks on two CPU
        devices: 311-331 against 242-257 M moves/s at (15,15,5), 342-350 against 270-282 at the SFT
        limit at (3,3,2), with a lookup of the entry followed by one of the chosen slot's code; very
        large batches of runs still look up twice, :data:`mazejax.simulate.walks.ONE_LOOKUP_BYTES`).
        Rows of 2 words rather than 3 (AMD EPYC host, stop 31, old and new code alternating, 65536
        full-length walks on two CPU devices, median of 5): 829-833 against 698-730 M moves/s at
        (6,6,5), 738-748 against 510-513 at (15,15,5) and 707-748 against 554-557 at the SFT limit
        at (3,3,2); the same walks.
      degree: uint32 scalar, the number of slots the sampler draws from.
    """
    layout_ = layout(maze)
    S, D = layout_.states, layout_.degree
    p = probabilities(maze, logits.astype(jnp.float32))
    degree = max_degree(maze)
    keep, alias = alias_tables(p, degree)
    scale = 2**layout_.resolution
    keep_bits = jnp.round(keep * scale).astype(jnp.int32)
    keep_bits = jnp.where((p > 0) & (keep_bits == 0), 1, keep_bits)  # positive stays positive
    slots = jnp.broadcast_to(jnp.arange(D, dtype=jnp.int32), (S, D))
    full = keep_bits >= scale
    entry = jnp.where(full, slots, (keep_bits << layout_.alias_bits) | alias)
    succ = jnp.asarray(maze.successors).astype(jnp.int32)
    code = succ | (target_codes(maze)[succ] << layout_.state_bits)
    alias_code = jnp.take_along_axis(code, jnp.where(full, slots, alias), axis=1)
    rows = jnp.stack([entry, *_code_words(code, alias_code, layout_)], axis=-1)  # [S, D, words]
    sink = jnp.asarray([0, *_code_words(S, S, layout_)], jnp.int32)  # every slot stays in S
    sink = jnp.broadcast_to(sink, (1, D, layout_.words))
    return jnp.concatenate([rows, sink]).reshape((S + 1) * D, layout_.words), degree.astype(jnp.uint32)


__all__ = ["CODE_BITS", "Layout", "alias_tables", "layout", "max_degree", "row_codes", "stepper_tables", "target_codes"]
