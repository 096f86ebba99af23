"""Exact analysis against SPEC 3's reference values, independent solvers and the gradient formula."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mazejax as mj
from mazejax import exact, reference


def sft_logits(maze, L):
    return mj.typed_logits(maze, 1.0, L / (L + 1), 1.0, 1 / (L + 1), dtype=jnp.float64)


def random_logits(maze, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=scale, size=maze.valid.shape)
    return np.where(maze.valid, logits, -np.inf)


def dense_only(maze):
    return mj.pad(maze, dataclasses.replace(maze.capacity, structured=False))


@pytest.mark.parametrize("W,K,L,expected", [(3, 3, 2, 275), (4, 3, 3, 455), (6, 6, 5, 3337.4), (15, 15, 5, 50141)])
def test_base_model(W, K, L, expected):
    maze = mj.Maze(W, K, L)
    H = exact.hitting_time(maze, mj.pretrained_logits(maze))
    assert H.dtype == jnp.float64
    assert float(H) == pytest.approx(expected, rel=1e-12)
    assert float(H) == pytest.approx(float(reference.base_hitting_time(W, K, L)), rel=1e-12)


@pytest.mark.parametrize("W,K,L,expected", [(6, 6, 5, 143), (15, 15, 5, 899), (3, 3, 2, 35)])
def test_backtracker(W, K, L, expected):
    maze = mj.Maze(W, K, L)
    H = exact.hitting_time(maze, mj.typed_logits(maze, 1.0, 1.0, 1.0, 1.0, dtype=jnp.float64))
    assert float(H) == pytest.approx(expected, rel=1e-12)


SFT_TABLE = {  # SPEC 3, W = 6
    1: [73, 315, 1277, 5119, 20481, 81923],
    2: [88, 427.5, 1948.25, 8784.625, 39541.3125, 177939.40625],
    5: [145, 1097.4, 7942.28, 57213.016, 411949.9152, 2966043.18944],
}


def test_sft_limit_table():
    """All 18 mazes padded to one capacity and solved as one vmapped program."""
    sizes = [(K, L) for L in sorted(SFT_TABLE) for K in range(1, 7)]
    mazes = [mj.Maze(6, K, L) for K, L in sizes]
    capacity = mj.common_capacity(mazes)
    padded = [mj.pad(maze, capacity) for maze in mazes]
    logits = jnp.stack([sft_logits(maze, L) for maze, (_, L) in zip(padded, sizes)])
    with jax.enable_x64(True):
        H = jax.jit(jax.vmap(exact._hitting_time))(mj.stack(padded), logits)
    for h, (K, L) in zip(np.asarray(H), sizes):
        assert h == pytest.approx(SFT_TABLE[L][K - 1], rel=1e-12)
        assert h == pytest.approx(float(reference.sft_limit_hitting_time(6, K, L)), rel=1e-12)


def test_sft_limit_at_paper_size_is_accurate_to_1e_9():
    maze = mj.Maze(15, 15, 5)
    H = float(exact.hitting_time(maze, sft_logits(maze, 5)))
    exact_value = reference.sft_limit_hitting_time(15, 15, 5)
    assert float(exact_value) == pytest.approx(4.3184482490980e14, rel=1e-13)
    assert abs(H / float(exact_value) - 1) <= 1e-9


@pytest.mark.parametrize("d,l", [(1, 5), (2, 1), (3, 4), (5, 3), (8, 2)])
def test_path_star(d, l):
    maze = mj.Maze.path_star(d, l)
    base = mj.pretrained_logits(maze)
    expected = float(reference.path_star_hitting_time(d, l))
    assert float(exact.hitting_time(maze, base)) == pytest.approx(expected, rel=1e-12)
    assert float(exact.hitting_time(dense_only(maze), base)) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(
    "make",
    [
        lambda: mj.Maze(3, 2, 2),
        lambda: mj.Maze(branch_K=(3, 1, 2), diamond_L=[[1, 3, 2], [2], [1, 1]]),
        lambda: mj.Maze.path_star(3, 3),
    ],
)
def test_chain_solver_matches_dense_solver_on_random_policies(make):
    maze = make()
    for seed in range(3):
        logits = random_logits(maze, seed, scale=1.5)
        chain = exact.target_hitting_times(maze, logits)
        dense = exact.hitting_times(maze, logits)[:, 0]
        np.testing.assert_allclose(chain, dense, rtol=1e-9)


def test_graph_with_cycles_uses_dense_solver():
    edges = [("s", "a"), ("a", "b"), ("b", "s"), ("b", "t"), ("a", "t"), ("a", "b")]
    maze = mj.Maze.from_edges(edges, "s", ["t"])
    assert not maze.structured
    # Independent check: solve the node-level equations by hand with numpy.
    P = np.asarray(exact.hitting_times(maze, mj.pretrained_logits(maze)))
    H = float(exact.hitting_time(maze, mj.pretrained_logits(maze)))
    assert H == pytest.approx(P[0, 0])
    states = maze.num_states
    Q = np.zeros((states, states))
    for s in range(states):
        if maze.target_hit[0, s]:
            continue
        moves = maze.successors[s][maze.valid[s]]
        for t in moves:
            Q[s, t] += 1 / len(moves)
    h = np.linalg.solve(np.eye(states) - Q, (~maze.target_hit[0]).astype(float))
    assert H == pytest.approx(h[0], rel=1e-12)


def test_padding_never_changes_a_result():
    small = mj.Maze(branch_K=(2, 3), L=2)
    cap = dataclasses.replace(mj.Maze(4, 4, 3).capacity)
    padded = mj.pad(small, cap)
    logits = random_logits(small, 7)
    padded_logits = np.full(padded.valid.shape, -np.inf)
    padded_logits[: logits.shape[0], : logits.shape[1]] = logits
    H = float(exact.hitting_time(small, logits))
    assert float(exact.hitting_time(padded, padded_logits)) == pytest.approx(H, rel=1e-13)
    assert float(exact.hitting_time(dense_only(padded), padded_logits)) == pytest.approx(H, rel=1e-10)
    visits = exact.expected_visits(padded, padded_logits)
    np.testing.assert_allclose(visits[: small.num_targets, : small.num_states], exact.expected_visits(small, logits), rtol=1e-10)
    assert np.all(np.asarray(visits)[:, small.num_states :] == 0)


def test_vmap_over_stacked_mazes():
    mazes = [mj.Maze(2, 2, 2), mj.Maze(3, 3, 1), mj.Maze(branch_K=(1, 3), L=3)]
    batch = mj.stack(mazes)
    logits = jax.vmap(mj.pretrained_logits)(batch)
    with jax.enable_x64(True):
        H = jax.jit(jax.vmap(exact._hitting_time))(batch, logits)
    for h, maze in zip(H, mazes):
        assert float(h) == pytest.approx(float(exact.hitting_time(maze, mj.pretrained_logits(maze))), rel=1e-12)


def test_gradient_matches_finite_differences():
    maze = mj.Maze(2, 2, 2)
    with jax.enable_x64(True):
        logits = jnp.asarray(random_logits(maze, 3))
        grad = jax.grad(exact._hitting_time, argnums=1)(maze, logits)
        rng = np.random.default_rng(0)
        rows, cols = np.nonzero(maze.valid)
        for i in rng.choice(len(rows), size=8, replace=False):
            s, a = rows[i], cols[i]
            eps = 1e-5
            up = float(exact._hitting_time(maze, logits.at[s, a].add(eps)))
            down = float(exact._hitting_time(maze, logits.at[s, a].add(-eps)))
            assert float(grad[s, a]) == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("make", [lambda: mj.Maze(3, 2, 2), lambda: mj.Maze.from_edges(
    [("s", "a"), ("a", "b"), ("b", "s"), ("b", "t"), ("a", "t")], "s", ["t", "b"])])
def test_gradient_is_occupancy_times_advantage(make):
    """SPEC 4.2: dH/dtheta[s,a] = E_x[d_x(s) pi(a|s) (h_x(a) - hbar_x(s))] (so dJ = -beta dH)."""
    maze = make()
    with jax.enable_x64(True):
        logits = jnp.asarray(random_logits(maze, 11))
        grad = np.asarray(jax.grad(exact._hitting_time, argnums=1)(maze, logits))
        pi = np.asarray(mj.probabilities(maze, logits))
    visits = np.asarray(exact.expected_visits(maze, logits))  # [T, S]
    h = np.asarray(exact.hitting_times(maze, logits))  # [T, S]
    h_next = h[:, maze.successors]  # [T, S, D]: hitting time from each move's successor
    h_bar = np.sum(pi[None] * h_next, axis=2, keepdims=True)
    formula = np.mean(visits[:, :, None] * pi[None] * (h_next - h_bar), axis=0)
    formula = np.where(maze.valid, formula, 0.0)
    np.testing.assert_allclose(np.where(maze.valid, grad, 0.0), formula, rtol=1e-7, atol=1e-9)


def test_expected_visits_sum_to_hitting_times():
    maze = mj.Maze(3, 2, 3)
    logits = random_logits(maze, 5)
    visits = np.asarray(exact.expected_visits(maze, logits))
    np.testing.assert_allclose(visits.sum(1), exact.target_hitting_times(maze, logits), rtol=1e-10)
    assert visits[0, 0] == pytest.approx(1.0)  # the start state is left once and never re-entered


def test_missed_target_gives_infinity_not_nan():
    maze = mj.Maze(3, 2, 2)
    trapped = mj.typed_logits(maze, 1.0, 1.0, 1.0, 0.0, dtype=jnp.float64)  # never retreats to the fork
    assert np.isposinf(float(exact.hitting_time(maze, trapped)))
    assert np.isposinf(float(exact.dense_hitting_time(maze, trapped)))
    h = np.asarray(exact.hitting_times(maze, trapped))
    assert not np.isnan(h).any()
    with jax.enable_x64(True):
        grad = jax.grad(exact._hitting_time, argnums=1)(maze, trapped)
    assert not np.isnan(np.asarray(grad)[maze.valid]).any()


def test_hit_probability():
    star = mj.Maze.path_star(2, 1)  # T = 1, 3, 5, ... with probabilities 1/2, 1/4, 1/8, ...
    base = mj.pretrained_logits(star)
    for horizon, expected in [(1, 0.5), (2, 0.5), (3, 0.75), (5, 0.875), (59, 1 - 2.0**-30)]:
        assert float(exact.hit_probability(star, base, horizon)) == pytest.approx(expected, rel=1e-12)
    maze = mj.Maze(2, 2, 2)
    shortest = 2 * 2 + 1
    assert float(exact.hit_probability(maze, mj.pretrained_logits(maze), shortest - 1)) == 0.0
    assert float(exact.hit_probability(maze, mj.pretrained_logits(maze), shortest)) > 0.0


def test_results_are_float64_without_global_x64():
    assert not jax.config.jax_enable_x64
    maze = mj.Maze(2, 2, 2)
    for value in (exact.hitting_time(maze, mj.pretrained_logits(maze)),
                  exact.expected_visits(maze, mj.pretrained_logits(maze))):
        assert value.dtype == jnp.float64


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda m: exact.hitting_time(m, np.zeros((3, 3))), "logits must have shape"),
        (lambda m: exact.hitting_time(m, np.full(m.valid.shape, np.nan)), "NaN or \\+inf"),
        (lambda m: exact.hitting_time(m, np.full(m.valid.shape, -np.inf)), "at least one move"),
        (lambda m: exact.hit_probability(m, mj.pretrained_logits(m), 0), "horizon must be an integer >= 1"),
        (lambda m: exact.expected_visits(m, np.zeros((1,))), "logits must have shape"),
    ],
)
def test_invalid_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call(mj.Maze(2, 2, 2))
