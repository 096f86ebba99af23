"""Counter-based random numbers of the walks: a walk's randomness depends only on the key and its index.

All randomness of rollout ``i`` comes from ``threefry2x32(key, (i, c))`` for counters
``c = 0, 1, ...``: ``c = 0`` draws the target, ``c >= 1`` seeds chunk ``c - 1`` of
:data:`CHUNK` moves. Threefry is too slow to call once per move on a CPU, so within a chunk the
threefry output is a 64-bit seed ``(w, g)`` and move ``k`` of the chunk uses the 32-bit word
``fmix32(w + (k + 1) * (g | 1))`` (a Weyl sequence through MurmurHash3's finaliser, as in
SplitMix). A rollout's results therefore do not depend on how many rollouts run beside it, on
jit, on devices or on padding of the maze.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.extend.random import threefry_2x32

from mazejax.maze import Maze

#: Moves per chunk: each rollout re-keys its random stream once per chunk. Changing it changes
#: every sampled walk (not their distribution).
CHUNK = 128


def key_words(key) -> jax.Array:
    """uint32 [2]: the threefry key of a typed key or of a raw ``jax.random.PRNGKey``."""
    if isinstance(key, (jax.Array, jax.core.Tracer)) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"key must be a single PRNG key, got a key array of shape {key.shape}")
        key = jax.random.key_data(key)
    if jnp.shape(key) != (2,) or not jnp.issubdtype(jnp.result_type(key), jnp.unsignedinteger):
        raise ValueError(
            "key must be a single threefry PRNG key (jax.random.key(seed) or jax.random.PRNGKey(seed))"
        )
    return jnp.asarray(key, jnp.uint32)


def fmix32(x: jax.Array) -> jax.Array:
    """MurmurHash3's 32-bit finaliser (a bijection of uint32 with full avalanche)."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * jnp.uint32(0xC2B2AE35)
    return x ^ (x >> 16)


def counter_words(key: jax.Array, num: int, counter) -> tuple[jax.Array, jax.Array]:
    """Two uint32 [num] words ``threefry2x32(key, (i, counter))`` for rollouts ``i < num``."""
    count = jnp.concatenate([jnp.arange(num, dtype=jnp.uint32), jnp.full(num, counter, jnp.uint32)])
    words = threefry_2x32((key[0], key[1]), count)
    return words[:num], words[num:]


def chunk_seeds(key: jax.Array, num: int, chunk: jax.Array):
    """(w, g): uint32 [num] Weyl start and odd increment of each rollout's stream in one chunk."""
    w, g = counter_words(key, num, chunk.astype(jnp.uint32) + 1)
    return w, g | jnp.uint32(1)


def uniform_index(word: jax.Array, n: jax.Array) -> jax.Array:
    """int32: ``floor(word * n / 2**32)`` for uint32 ``word`` and ``1 <= n < 2**16``, exactly.

    A uniform index in ``[0, n)`` at full 32-bit resolution without 64-bit arithmetic (the high
    and low halves of the word are multiplied separately); it depends on ``n`` alone, never on
    padding.
    """
    n = jnp.asarray(n).astype(jnp.uint32)
    high, low = word >> 16, word & jnp.uint32(0xFFFF)
    return ((high * n + ((low * n) >> 16)) >> 16).astype(jnp.int32)


def targets(maze: Maze, key: jax.Array, given: jax.Array) -> jax.Array:
    """int32 [num]: given target slots, or slots drawn uniformly among the real targets.

    The draw uses the word ``threefry2x32(key, (i, 0))`` (chunks use counters 1, 2, ...) and
    :func:`uniform_index` over the real targets, taken in slot order, so padding the maze with
    more target slots never changes it.
    """
    mask = jnp.asarray(maze.target_mask)
    real = jnp.sum(mask)
    order = jnp.argsort(~mask, stable=True).astype(jnp.int32)  # real slots first, in order
    word, _ = counter_words(key, given.shape[0], 0)
    return jnp.where(given >= 0, given, order[uniform_index(word, real)])


__all__ = ["CHUNK", "chunk_seeds", "counter_words", "fmix32", "key_words", "targets", "uniform_index"]
