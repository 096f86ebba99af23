"""The numpy baselines of bench/baselines.py against mazejax and the reference values of docs/model.md."""

import sys
import zlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import baselines as B  # noqa: E402

import mazejax as mj  # noqa: E402
from mazejax import exact, reference, simulate  # noqa: E402
from mazejax.simulate.scaffold import direction_classes  # noqa: E402
from mazejax.train import RLVRHParams, RLVRSymmetricConfig  # noqa: E402
from mazejax.train.rlvr import symmetric_logits, symmetric_trajectory  # noqa: E402

SPEC_42 = {0: 50141, 50: 20239, 100: 8951, 150: 4177, 200: 2172, 300: 1077, 400: 923, 500: 902, 600: 899.44}


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    """One OpenBLAS thread for the numpy baselines (as the benchmarks run them), restored afterwards."""
    previous = B.blas_threads(1)
    yield
    if previous is not None:
        B.blas_threads(previous)


def seed(*args) -> int:
    """A deterministic seed per test case (``hash`` of a str varies between processes)."""
    return zlib.crc32(repr(args).encode())


def type_table(K, a, b, c, d):
    return np.array([[a] * K, [b] * K, [c] * K, [d] * K], np.float64)


@pytest.mark.parametrize("W,K,L", [(2, 1, 1), (3, 3, 2), (4, 3, 3), (6, 6, 5), (16, 10, 10), (15, 15, 5)])
def test_quotient_hitting_time_matches_closed_forms(W, K, L):
    base = type_table(K, 1 / (L + 1), L / (L + 1), L / (L + 1), 1 / (L + 1))
    sft = type_table(K, 1, L / (L + 1), 1, 1 / (L + 1))
    assert B.numpy_symmetric_hitting_time(base, W, K) == pytest.approx(float(reference.base_hitting_time(W, K, L)), rel=1e-11)
    assert B.numpy_symmetric_hitting_time(np.ones((4, K)), W, K) == pytest.approx(
        float(reference.backtracker_hitting_time(W, K, L)), rel=1e-13)
    # The dense solve loses accuracy at the SFT limit as H grows (1.3e-3 at W=K=15, L=5, H=4.3e14).
    sft_rel = 2e-3 if (W, K, L) == (15, 15, 5) else 1e-4 if K >= 10 else 1e-9
    assert B.numpy_symmetric_hitting_time(sft, W, K) == pytest.approx(
        float(reference.sft_limit_hitting_time(W, K, L)), rel=sft_rel)


def test_quotient_gradient_matches_autodiff_of_the_symmetric_solver():
    rng = np.random.default_rng(3)
    value_and_grad = jax.jit(jax.value_and_grad(exact.symmetric_hitting_time))
    for W, K in [(2, 1), (3, 4), (7, 6), (9, 6)]:
        probs = rng.uniform(0.05, 0.95, size=(4, K))
        H, grad = B.QuotientSolver(W, K).value_and_grad(probs)
        padded = np.zeros((4, 6))
        padded[:, :K] = probs
        H_jax, grad_jax = value_and_grad(jnp.asarray(padded), W, K)
        grad_jax = np.asarray(grad_jax)[:, :K]
        assert H == pytest.approx(float(H_jax), rel=1e-11)
        np.testing.assert_allclose(grad, grad_jax, rtol=1e-8, atol=1e-10 * np.abs(grad).max())


@pytest.fixture(scope="module")
def mazejax_rlvr():
    """mazejax's symmetric sign-ascent trainer, 600 steps, H every 50; one program for every size
    up to 15 depths and 16 branches (W, K, L traced), so the tests below compile it once."""
    config = RLVRSymmetricConfig(steps=600, record_every=50)
    theta = jnp.zeros((4, 15, 2), jnp.float32)
    train = jax.jit(lambda W, K, L: symmetric_trajectory(config, RLVRHParams.create(), W, K, L, theta)[1])

    def run(W, K, L):
        return np.asarray(train(W, K, L)["hitting_time"])

    return run


def test_quotient_rlvr_reference_trajectory(mazejax_rlvr):
    """W=K=15, L=5: SPEC 4.2's values and mazejax.symmetric's trajectory every 50 steps."""
    H = B.numpy_symmetric_rlvr(15, 15, 5, steps=600, lr=0.01)
    for step, value in SPEC_42.items():
        assert H[step] == pytest.approx(value, rel=1e-3)
    np.testing.assert_allclose(H[::50], mazejax_rlvr(15, 15, 5), rtol=1e-6)


def test_quotient_rlvr_matches_mazejax_on_sweep_sizes(mazejax_rlvr):
    for W, K, L in [(2, 1, 1), (3, 2, 7), (5, 10, 2), (8, 3, 10), (16, 10, 10), (12, 6, 5)]:
        np.testing.assert_allclose(B.numpy_symmetric_rlvr(W, K, L)[::50], mazejax_rlvr(W, K, L), rtol=1e-9)


def test_batch_matches_single_runs():
    configs = [(2, 1, 1), (3, 2, 7), (5, 3, 2), (8, 3, 10), (6, 2, 3), (4, 3, 5)]
    batch = B.numpy_symmetric_rlvr_batch(configs, steps=100)
    for row, cfg in zip(batch, configs):
        np.testing.assert_array_equal(row, B.numpy_symmetric_rlvr(*cfg, steps=100))


def test_dense_full_graph_column():
    maze = mj.Maze(3, 2, 2)
    arrays = B.maze_arrays(maze)
    logits = np.where(maze.valid, 0.0, -np.inf)
    trainable = np.asarray(maze.trainable)[:, None] & np.asarray(maze.valid)
    new, H = B.numpy_dense_rlvr_step(arrays, logits, 0.01, trainable)
    assert H == pytest.approx(float(reference.base_hitting_time(3, 2, 2)), rel=1e-12)
    # One sign step on the full graph moves the same logits as the quotient chain's first step.
    _, theta = B.numpy_symmetric_rlvr(3, 2, 2, steps=1, return_theta=True)
    full = np.asarray(symmetric_logits(maze, jnp.asarray(theta)))
    np.testing.assert_allclose(np.where(maze.valid, new, 0.0), np.where(maze.valid, full, 0.0), atol=1e-6)


def test_alias_tables_reproduce_the_probabilities():
    maze = mj.Maze(3, 2, 4)
    rng = np.random.default_rng(0)
    logits = np.where(maze.valid, rng.normal(scale=2.0, size=maze.valid.shape), -np.inf)
    p = B.softmax_probabilities(maze.valid, logits)
    keep, alias = B.alias_tables(p)
    S, D = p.shape
    rebuilt = keep / D
    np.add.at(rebuilt, (np.repeat(np.arange(S), D), alias.ravel()), ((1 - keep) / D).ravel())
    np.testing.assert_allclose(rebuilt, p, atol=1e-14)


@pytest.mark.parametrize("method", ["alias", "cdf"])
@pytest.mark.parametrize("W,K,L,policy", [(3, 3, 2, "base"), (2, 2, 3, "random"), (4, 2, 2, "backtracker")])
def test_numpy_walks_mean_matches_exact(method, W, K, L, policy):
    maze = mj.Maze(W, K, L)
    if policy == "base":
        logits = np.asarray(mj.pretrained_logits(maze))
    elif policy == "backtracker":
        logits = np.asarray(mj.backtracker_logits(maze))
    else:
        rng = np.random.default_rng(7)
        logits = np.where(maze.valid, rng.normal(scale=0.5, size=maze.valid.shape), -np.inf)
    H = float(exact.hitting_time(maze, np.asarray(logits, np.float64)))
    num = 20000 if method == "alias" else 5000
    length, success = B.numpy_walks(maze.successors, maze.valid, maze.target_hit, maze.target_mask, logits,
                                    num, 10**8, np.random.default_rng(seed(W, K, L, policy, method)),
                                    method=method)
    assert success.all()
    assert abs(length.mean() - H) < 4 * length.std() / np.sqrt(num)


def test_numpy_walks_horizon_and_success_rate():
    maze = mj.Maze(3, 3, 2)
    logits = np.asarray(mj.pretrained_logits(maze))
    horizon, num = 100, 20000
    length, success = B.numpy_walks(maze.successors, maze.valid, maze.target_hit, maze.target_mask, logits,
                                    num, horizon, np.random.default_rng(11))
    assert length.max() <= horizon and np.all(length[~success] == horizon) and np.all(length[success] < horizon + 1)
    p = float(exact.hit_probability(maze, logits, horizon))
    assert abs(success.mean() - p) < 4 * np.sqrt(p * (1 - p) / num)


def test_direction_classes_match_mazejax():
    for maze in (mj.Maze(3, 2, 3), mj.Maze(branch_K=(3, 1, 2), L=2)):
        np.testing.assert_array_equal(B.direction_classes(maze.successors, maze.valid, maze.head),
                                      np.asarray(direction_classes(maze)))


@pytest.mark.parametrize("W,K,L", [(3, 3, 2), (4, 2, 3)])
@pytest.mark.parametrize("policy", ["backtracker", "sft_limit"])
def test_search_walks_aggregate_match_scaffold_cost(W, K, L, policy):
    maze = mj.Maze(W, K, L)
    logits = np.asarray((mj.backtracker_logits if policy == "backtracker" else mj.sft_limit_logits)(maze))
    num = 10000
    cost, success, _, _ = B.numpy_search_walks(maze.successors, maze.valid, maze.head, maze.target_hit,
                                               maze.target_mask, logits, num, 10**6,
                                               np.random.default_rng(seed(W, K, L, policy)), "aggregate")
    assert success.all()
    expected = float(reference.scaffold_cost(W, K, L, policy))
    assert abs(cost.mean() - expected) < 4 * cost.std() / np.sqrt(num)


@pytest.mark.parametrize("policy", ["backtracker", "sft_limit", "base"])
def test_search_walks_mask_match_mazejax(policy):
    maze = mj.Maze(4, 2, 3)
    fn = {"backtracker": mj.backtracker_logits, "sft_limit": mj.sft_limit_logits, "base": mj.pretrained_logits}[policy]
    logits = np.asarray(fn(maze))
    num = 10000 if policy != "base" else 4000
    cost, success, _, _ = B.numpy_search_walks(maze.successors, maze.valid, maze.head, maze.target_hit,
                                               maze.target_mask, logits, num, 10**6,
                                               np.random.default_rng(seed(policy)), "mask")
    walks = simulate.search_walks(maze, logits, jax.random.key(5), num, 10**6, "mask")
    other = np.asarray(walks.length, np.float64)
    assert success.all() and np.asarray(walks.success).all()
    se = np.hypot(cost.std(), other.std()) / np.sqrt(num)
    assert abs(cost.mean() - other.mean()) < 4 * se
