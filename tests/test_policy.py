"""The tabular policy: base logits, typed policies and their inverse, masked softmax, input checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mazejax as mj


def test_pretrained_logits_are_zero_on_valid_moves():
    maze = mj.Maze(3, 2, 2)
    logits = np.asarray(mj.pretrained_logits(maze))
    assert logits.dtype == np.float32
    assert np.all(logits[maze.valid] == 0)
    assert np.all(np.isneginf(logits[~maze.valid]))


def test_base_typed_policy_equals_pretrained():
    W, K, L = 3, 3, 4
    maze = mj.Maze(W, K, L)
    base = mj.typed_logits(maze, 1 / (L + 1), L / (L + 1), L / (L + 1), 1 / (L + 1), dtype=jnp.float64)
    np.testing.assert_allclose(
        mj.probabilities(maze, base), mj.probabilities(maze, mj.pretrained_logits(maze, jnp.float64)), atol=1e-15
    )
    probs = mj.type_probabilities(maze, mj.pretrained_logits(maze))
    for key, value in zip("abcd", (1 / (L + 1), L / (L + 1), L / (L + 1), 1 / (L + 1))):
        np.testing.assert_allclose(probs[key], value, rtol=1e-12)


def test_type_probabilities_invert_typed_logits():
    rng = np.random.default_rng(0)
    maze = mj.Maze(branch_K=(4, 2, 3), diamond_L=[[1, 2, 3, 4], [5, 1], [2, 2, 2]])
    values = [rng.uniform(0.05, 0.95, size=4) for _ in range(4)]
    logits = mj.typed_logits(maze, *values, dtype=jnp.float64)
    probs = mj.type_probabilities(maze, logits)
    for key, value in zip("abcd", values):
        assert probs[key].dtype == jnp.float64
        np.testing.assert_allclose(probs[key], value, rtol=1e-12)


def test_probability_one_gives_minus_infinity_elsewhere():
    maze = mj.Maze(2, 2, 3)
    logits = np.asarray(mj.typed_logits(maze, 1.0, 1.0, 1.0, 1.0))
    cont = np.asarray(mj.continues(maze))
    typed = maze.state_type >= 0
    assert np.all(np.isneginf(logits[typed[:, None] & maze.valid & ~cont]))
    assert np.all(np.isfinite(logits[typed[:, None] & cont]))
    probs = mj.type_probabilities(maze, logits)
    for key in "abcd":
        np.testing.assert_array_equal(probs[key], 1.0)


def test_probabilities_of_padded_rows_are_zero():
    maze = mj.pad(mj.Maze(2, 1, 1), mj.Maze(3, 2, 2).capacity)
    pi = np.asarray(mj.probabilities(maze, mj.pretrained_logits(maze)))
    assert not np.isnan(pi).any()
    np.testing.assert_allclose(pi[maze.state_mask].sum(1), 1.0, rtol=1e-6)
    assert np.all(pi[~maze.state_mask] == 0)


def test_typed_logits_trace_under_jit_and_vmap():
    maze = mj.Maze(2, 3, 2)
    a = jnp.array([0.2, 0.5, 0.9])
    batched = jax.jit(jax.vmap(lambda p: mj.typed_logits(maze, p, 0.5, 0.5, 0.5)))(jnp.stack([a, a / 2]))
    np.testing.assert_allclose(batched[0], mj.typed_logits(maze, a, 0.5, 0.5, 0.5), rtol=1e-6)


@pytest.mark.parametrize(
    "args,match",
    [
        ((1.5, 0.5, 0.5, 0.5), r"a must be a probability in \[0, 1\]"),
        ((0.5, -0.1, 0.5, 0.5), r"b must be a probability in \[0, 1\]"),
        ((0.5, 0.5, np.ones(2), 0.5), r"c must be a scalar or an array of shape \(3,\)"),
    ],
)
def test_typed_logits_reject_bad_probabilities(args, match):
    with pytest.raises(ValueError, match=match):
        mj.typed_logits(mj.Maze(2, 3, 2), *args)


def test_typed_logits_need_a_paper_maze():
    with pytest.raises(ValueError, match="paper maze"):
        mj.typed_logits(mj.Maze.path_star(3, 2), 1, 1, 1, 1)


def test_type_probabilities_reject_wrong_shape():
    maze = mj.Maze(2, 3, 2)
    with pytest.raises(ValueError, match="logits must have shape"):
        mj.type_probabilities(maze, np.zeros((3, 3)))
