"""Counter-based random numbers of the walks: a walk's randomness depends only on the key, its
index ``i`` and its move number ``k``.

* The target of walk ``i``: the word ``threefry2x32(key, (i, 0))`` (:func:`targets`).
* Its stream seed: ``(w_i, g_i) = threefry2x32(key, (i, 1))`` with ``g_i`` forced odd
  (:func:`walk_seeds`), computed once when the walk starts.
* Move ``k = 0, 1, ...`` of the walk uses the 32-bit word ``fmix32(w_i + (k + 1) * g_i)``: a
  Weyl sequence through MurmurHash3's finaliser, as SplitMix does with 64 bits.

Threefry is too slow to call once per move on a CPU; the Weyl sequence costs an add and the
finaliser a few multiplies and shifts. For odd ``g`` its period in ``k`` is ``2**32``, longer than
any horizon (``< 2**31``), so a walk never reuses a word, and ``fmix32`` is a bijection with full
avalanche. The caveat of a 32-bit state: two walks share an increment with probability ``2**-31``
per pair, and then their streams are the same sequence at a random offset in ``[0, 2**32)``.
Nothing depends on the lane a walk runs in, the pool size, how many walks run beside it, jit,
devices or padding of the maze.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.extend.random import threefry_2x32

from mazejax.maze import Maze


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


def walk_words(key: jax.Array, start, n: int, counter: int) -> tuple[jax.Array, jax.Array]:
    """Two uint32 [n] words ``threefry2x32(key, (i, counter))`` for walks ``i = start, ..., start + n - 1``."""
    i = jnp.asarray(start).astype(jnp.uint32) + jnp.arange(n, dtype=jnp.uint32)
    words = threefry_2x32((key[0], key[1]), jnp.concatenate([i, jnp.full(n, counter, jnp.uint32)]))
    return words[:n], words[n:]


def walk_seeds(key: jax.Array, start, n: int) -> tuple[jax.Array, jax.Array]:
    """uint32 [n] Weyl starts and odd increments of walks ``start, ..., start + n - 1``."""
    w, g = walk_words(key, start, n, 1)
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


def targets(maze: Maze, key: jax.Array, given: jax.Array, start=0) -> jax.Array:
    """int32 [n]: given target slots (``>= 0``), or slots drawn uniformly among the real targets
    for walks ``start, ..., start + n - 1`` (``n = given.shape[0]``).

    The draw uses the word ``threefry2x32(key, (i, 0))`` and :func:`uniform_index` over the real
    targets, taken in slot order, so padding the maze with more target slots never changes it.
    """
    mask = jnp.asarray(maze.target_mask)
    real = jnp.sum(mask)
    order = jnp.argsort(~mask, stable=True).astype(jnp.int32)  # real slots first, in order
    word, _ = walk_words(key, start, given.shape[0], 0)
    return jnp.where(given >= 0, given, order[uniform_index(word, real)])


__all__ = ["fmix32", "key_words", "targets", "uniform_index", "walk_seeds", "walk_words"]
