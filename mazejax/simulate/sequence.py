"""Walks of a sequence policy (a policy over the walk so far, :mod:`mazejax.transformer`).

Each walk starts in state 0 at time 0 with a prompted target (drawn uniformly, or given) and
stops at the first state whose head is the target or at the horizon, as in
:func:`mazejax.simulate.sample_walks`, and the results are the same :class:`Walks` (length,
success, target, optionally the recorded states). The policy is decoded incrementally: every
walk carries its own decoding cache (for the transformer, a key-value ring cache), and a move is
one ``policy.step`` per walk, vmapped over the walks of a chunk inside a ``lax.while_loop`` that
ends when every walk of the chunk has ended. Chunks run one after the other (``lax.map``), so
memory is O(chunk) (plus ``num * record`` for recorded states); a chunk's cost is its longest
walk times its size.

Randomness is the stepper's (:mod:`mazejax.simulate.rng`): walk ``i`` draws its target from the
word ``(i, 0)`` and move ``k`` from ``fmix32(w_i + (k + 1) g_i)``, by inverse transform sampling
of the move probabilities (the top 24 bits of the word as a uniform in [0, 1)), so a walk
depends only on the key and ``i``, never on the chunk size, the batch or a vmap over runs.
(Tabular walks drawn here are distributed like the stepper's, but the stepper's alias tables map
a word to a move differently, so they are not the same walks.)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mazejax import validate
from mazejax.maze import Maze
from mazejax.policy import masked_log_softmax
from mazejax.simulate import common, rng
from mazejax.simulate.walks import Walks

#: Default walks per chunk (memory only: results do not depend on it).
CHUNK = 256


def draw_slot(valid: jax.Array, logits: jax.Array, word: jax.Array) -> jax.Array:
    """int32: the move slot drawn from the masked softmax of ``logits`` [D] by the uint32 ``word``
    (inverse transform; never an invalid or zero-probability slot)."""
    p = jnp.exp(masked_log_softmax(valid, logits.astype(jnp.float32))) * valid
    u = (word >> 8).astype(jnp.float32) * jnp.float32(2.0**-24)
    slot = jnp.sum(jnp.cumsum(p) <= u).astype(jnp.int32)
    last = jnp.max(jnp.where(p > 0, jnp.arange(p.shape[0]), 0)).astype(jnp.int32)
    return jnp.minimum(slot, last)


def sample_sequences(policy, params, maze: Maze, key, num: int, horizon, *, target=None, record: int = 0,
                     chunk: int = CHUNK) -> Walks:
    """``num`` walks of the sequence policy ``policy`` with parameters ``params``.

    Args:
      policy: a sequence policy (:class:`~mazejax.transformer.TabularPolicy`,
        :class:`~mazejax.transformer.TransformerPolicy`); static.
      params: its parameters (may be traced, e.g. vmapped over runs).
      maze: a :class:`~mazejax.Maze`.
      key: a threefry PRNG key; walk ``i`` depends only on ``key`` and ``i``.
      num: walks (static), a multiple of ``min(chunk, num)``.
      horizon: maximum moves per walk (int, may be traced), 1 <= horizon < 2**31.
      target: None (drawn uniformly) or target slot(s) [num].
      record: length of the state buffer (static; 0: none). ``states[i, t]`` is the state at time
        ``t`` (-1 after the end); ``overflow`` marks walks longer than ``record - 1`` moves.
      chunk: walks decoded together (static; memory only).

    Returns:
      :class:`~mazejax.simulate.Walks` (``counts`` None). jit/vmap friendly with ``policy``,
      ``num``, ``record`` and ``chunk`` static.
    """
    num = validate.positive_int("num", num)
    record = validate.positive_int("record", record, minimum=0)
    chunk = min(validate.positive_int("chunk", chunk), num)
    if num % chunk:
        raise ValueError(f"num must be a multiple of chunk = {chunk}, got {num}")
    if not isinstance(maze, Maze):
        raise ValueError(f"maze must be a mazejax.Maze, got {type(maze).__name__}")
    # the stepper's checks of the key and the horizon (zero logits of the right shape pass its logits check)
    common.check_common(maze, np.zeros((maze.capacity.states, maze.capacity.out_degree)), key, horizon)
    target = common.target_argument(maze, target, num)
    key = rng.key_words(key)
    drawn = rng.targets(maze, key, target)
    out = _sample(policy, params, maze, key, jnp.asarray(horizon, jnp.int32), drawn, num=num, record=record,
                  chunk=chunk)
    length, success, states = out
    return Walks(length, success, drawn, states if record else None, (length >= record) if record else None)


@functools.partial(jax.jit, static_argnames=("policy", "num", "record", "chunk"))
def _sample(policy, params, maze, key, horizon, drawn, *, num, record, chunk):
    successors, valid = jnp.asarray(maze.successors), jnp.asarray(maze.valid)
    target_hit = jnp.asarray(maze.target_hit)
    width = max(record, 1)

    def run_chunk(start):
        w, g = rng.walk_seeds(key, start, chunk)
        hit = target_hit[lax.dynamic_slice(drawn, (start,), (chunk,))]  # [chunk, S]
        lane = jnp.arange(chunk)
        cache = jax.vmap(lambda _: policy.init_cache(maze))(lane)
        step = jax.vmap(policy.step, in_axes=(None, None, 0, 0, None))

        def body(carry):
            state, cache, time, length, done, w, buffer = carry
            logits, cache = step(params, maze, cache, state, time)
            w = w + g
            slot = jax.vmap(draw_slot)(valid[state], logits, rng.fmix32(w))
            moving = ~done
            state = jnp.where(moving, successors[state, slot], state)
            if record:
                col = jnp.where(moving & (time + 1 < record), time + 1, width)
                buffer = buffer.at[lane, col].set(state, mode="drop")
            done = done | hit[lane, state]
            return state, cache, time + 1, length + moving, done, w, buffer

        def running(carry):
            return (carry[2] < horizon) & ~jnp.all(carry[4])

        zeros = jnp.zeros(chunk, jnp.int32)
        buffer = jnp.full((chunk, width), -1, jnp.int32).at[:, 0].set(0)
        carry = (zeros, cache, jnp.int32(0), zeros, hit[:, 0], w, buffer)
        _, _, _, length, done, _, buffer = lax.while_loop(running, body, carry)
        return length, done, buffer

    length, done, buffer = lax.map(run_chunk, jnp.arange(0, num, chunk, dtype=jnp.int32))
    return length.reshape(num), done.reshape(num), buffer.reshape(num, width)


def monte_carlo_sequences(policy, params, maze: Maze, key, num: int, horizon: int, *, chunk: int = CHUNK):
    """Monte Carlo hitting time of a sequence policy: a :class:`~mazejax.MonteCarlo` whose ``exact``
    and ``z`` are NaN (no exact solver reads a history). Host-level helper."""
    from mazejax.montecarlo import MonteCarlo

    walks = sample_sequences(policy, params, maze, key, num, horizon, chunk=chunk)
    length = np.asarray(walks.length, np.float64)
    rate = float(np.mean(np.asarray(walks.success)))
    stderr = float(length.std(ddof=1) / np.sqrt(num)) if num > 1 else float("nan")
    return MonteCarlo(float(length.mean()), stderr, rate, float(np.sqrt(rate * (1 - rate) / num)), float("nan"),
                      float("nan"), num)


__all__ = ["CHUNK", "draw_slot", "monte_carlo_sequences", "sample_sequences"]
