"""The ordered float sums of :mod:`mazejax.ordered`: their bits depend only on the entries, in order."""

import jax
import jax.numpy as jnp
import numpy as np

from mazejax.ordered import ordered_sum, running_sums


def test_running_sums_are_left_to_right_cumsums_whatever_the_batch():
    rng = np.random.default_rng(0)
    x = (rng.random((4099, 6)) * 10.0 ** rng.integers(-8, 8, (4099, 6))).astype(np.float32)  # rounding matters
    expected = np.cumsum(x, axis=1, dtype=np.float32)  # numpy accumulates left to right
    sums = jax.jit(lambda x: jnp.stack(running_sums(x, axis=1), axis=1))(x)
    np.testing.assert_array_equal(np.asarray(sums), expected)
    # one row alone, or vmapped in a batch of another size, has the same bits
    row = jax.vmap(lambda r: jnp.stack(running_sums(r)))
    np.testing.assert_array_equal(np.asarray(row(x[:3])), expected[:3])
    np.testing.assert_array_equal(np.asarray(jnp.stack(running_sums(x[17]))), expected[17])
    # the last running sum is the ordered sum
    np.testing.assert_array_equal(np.asarray(running_sums(x, axis=1)[-1]), np.asarray(ordered_sum(x, axis=1)))
