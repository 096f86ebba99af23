"""Float sums whose bits depend only on the entries, never on the array's shape or batch.

XLA:CPU picks a reduction's summation order from the operand's whole shape: summing each row of
an ``[N, D]`` array over ``D`` runs left to right below 4096 elements and in another order from
4096 on (jaxlib 0.10.2, AVX-512). Under ``vmap`` the batch is part of that shape, so the same
run's sums changed with the batch size, the share of runs per device and the padded capacity, and
a sweep reported different numbers for the same run in different grids. :func:`ordered_sum` adds
the entries one at a time, left to right, with elementwise adds (XLA does not reassociate them),
so its bits depend only on the entries in order; zero padding appended at the end adds an exact
``+0.0``. Every float reduction that feeds a result (probabilities, gradients, metrics) uses it.

A float32 product that feeds an add or a subtraction in the same fused loop has the same flaw:
XLA:CPU (LLVM) may fuse the multiply into it (one rounding) for some elements and not for others
(two roundings), depending on where the element falls in the loop (vector body or remainder), so
the result depended on the element's position in the flattened array, hence on the padding, the
batch and the devices. XLA also turns ``x / total`` into ``x * (1 / total)``, so a sum of
normalised entries is such a sum of products. Sums of float32 entries that may be products run in
float64, and :func:`minus_product` computes ``a - b * c`` in float64: a product of two float32 is
exact there, so fused or not, the bits are the same.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

F64 = jnp.float64
UNROLL = 32  # axes up to this length are summed with unrolled adds, longer ones in a fori_loop


def ordered_sum(x, axis: int = -1, keepdims: bool = False) -> jax.Array:
    """``sum(x, axis)`` computed as ``((x_0 + x_1) + x_2) + ...``, whatever the shape of ``x``."""
    x = jnp.moveaxis(jnp.asarray(x), axis, 0)
    n = x.shape[0]
    if n == 0:
        total = jnp.zeros(x.shape[1:], x.dtype)
    elif n <= UNROLL:
        total = x[0]
        for j in range(1, n):
            total = total + x[j]
    else:
        total = lax.fori_loop(1, n, lambda j, acc: acc + x[j], x[0])
    return jnp.expand_dims(total, axis) if keepdims else total


def running_sums(x, axis: int = -1) -> list[jax.Array]:
    """The left-to-right running sums of ``x`` along a short ``axis`` (unrolled), as a list.

    Entry ``j`` is ``cumsum(x, axis)`` at index ``j``, each a separate array: XLA:CPU fuses the
    elementwise adds into their consumers, whereas a stacked ``[..., D]`` cumsum is materialised
    (in a transposed layout) and read back several times slower.
    """
    x = jnp.moveaxis(jnp.asarray(x), axis, 0)
    running = [x[0]]
    for j in range(1, x.shape[0]):
        running.append(running[-1] + x[j])
    return running


def ordered_total(x) -> jax.Array:
    """The sum of every entry of ``x`` (row-major order): rows of the last axis first, then the rest."""
    x = jnp.asarray(x)
    while x.ndim > 0:
        x = ordered_sum(x, axis=-1)
    return x


def ordered_mean(x, axis: int = -1) -> jax.Array:
    """``mean(x, axis)`` from :func:`ordered_sum`."""
    return ordered_sum(x, axis) / jnp.shape(x)[axis]


def minus_product(a, b, c) -> jax.Array:
    """``a - b * c`` in float64, the same bits whether or not the multiply is fused into the subtraction.

    Layout-independent when ``b`` and ``c`` are float32 (their product is exact in float64) and
    ``a`` is float32 or an exact float64 product of two float32; round the result once, at the end.
    """
    return jnp.asarray(a).astype(F64) - jnp.asarray(b).astype(F64) * jnp.asarray(c).astype(F64)


__all__ = ["minus_product", "ordered_mean", "ordered_sum", "ordered_total", "running_sums"]
