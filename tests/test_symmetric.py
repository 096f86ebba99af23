"""The branch-symmetric fast path: same H as the full solver, same RLVR trajectory as the full trainer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mazejax as mj
from mazejax import symmetric
from mazejax.train import RLVRHParams, rlvr_exact


def test_hitting_time_matches_the_full_solver_with_padding():
    rng = np.random.default_rng(1)
    sizes = [(2, 1, 1), (3, 3, 2), (5, 4, 3)]
    probs = rng.uniform(0.05, 0.95, size=(len(sizes), 4, 6))  # capacity: 6 depths, 8 branches
    with jax.enable_x64(True):
        fast = jax.jit(jax.vmap(lambda p, W, K: symmetric.hitting_time(p, W, K, 8)))(
            jnp.asarray(probs), jnp.array([s[0] for s in sizes]), jnp.array([s[1] for s in sizes]))
    for h, (W, K, L), p in zip(np.asarray(fast), sizes, probs):
        maze = mj.Maze(W, K, L)
        full = float(mj.exact.hitting_time(maze, mj.typed_logits(maze, *p[:, :K], dtype=jnp.float64)))
        assert h == pytest.approx(full, rel=1e-12)


@pytest.mark.parametrize("name,probs,expected", [
    ("SFT limit", lambda L: (1, L / (L + 1), 1, 1 / (L + 1)), 2966043.18944),
    ("backtracker", lambda L: (1, 1, 1, 1), 143),
    ("base", lambda L: (1 / (L + 1), L / (L + 1), L / (L + 1), 1 / (L + 1)), 3337.4),
])
def test_reference_values(name, probs, expected):
    with jax.enable_x64(True):
        P = jnp.array([[p] * 6 for p in probs(5)], jnp.float64)
        assert float(symmetric.hitting_time(P, 6, 6, 6)) == pytest.approx(expected, rel=1e-12)


def test_type_probabilities_of_zero_logits_are_the_base_model():
    L = 4
    with jax.enable_x64(True):
        probs = symmetric.type_probabilities(jnp.zeros((4, 3, 2), jnp.float64), L)
    np.testing.assert_allclose(probs, np.array([[1 / 5], [4 / 5], [4 / 5], [1 / 5]]) * np.ones((4, 3)), rtol=1e-14)


def test_rlvr_trajectory_equals_the_full_trainer():
    W, K, L, steps = 3, 3, 2, 120
    train = symmetric.make_rlvr_symmetric(steps, 4, 5, record_every=1)
    with jax.enable_x64(True):
        theta, H, types = jax.jit(train)(RLVRHParams.create(0.01), W, K, L)
    maze = mj.Maze(W, K, L)
    full = rlvr_exact(maze, steps, 0.01)
    np.testing.assert_allclose(H, full.hitting_time, rtol=1e-12)
    np.testing.assert_array_equal(symmetric.full_logits(maze, theta[:, :K]), full.logits)
    np.testing.assert_allclose(types[-1, 0, :K], full.types["a"][-1], rtol=1e-12)
