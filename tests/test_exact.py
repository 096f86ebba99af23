"""Exact analysis against docs/model.md §3 reference values, independent solvers and the gradient formula."""

import dataclasses
import os
import subprocess
import sys

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


SFT_TABLE = {  # docs/model.md §3, W = 6
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
    H = jax.jit(jax.vmap(exact.hitting_time))(mj.stack(padded), logits)
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
    H = jax.jit(jax.vmap(exact.hitting_time))(batch, logits)
    for h, maze in zip(H, mazes):
        assert float(h) == pytest.approx(float(exact.hitting_time(maze, mj.pretrained_logits(maze))), rel=1e-12)


def _central_differences(f, x, entries, eps=1e-5):
    out = []
    for s, a in entries:
        out.append((float(f(x.at[s, a].add(eps))) - float(f(x.at[s, a].add(-eps)))) / (2 * eps))
    return np.array(out)


@pytest.mark.parametrize("make", [lambda: mj.Maze(2, 2, 2), lambda: mj.Maze.from_edges(
    [("s", "a"), ("a", "b"), ("b", "s"), ("b", "t"), ("a", "t")], "s", ["t", "b"])])
def test_gradient_matches_finite_differences(make):
    maze = make()
    logits = jnp.asarray(random_logits(maze, 3))
    f = lambda t: exact.hitting_time(maze, t)  # noqa: E731
    grad = jax.grad(f)(logits)
    rows, cols = np.nonzero(maze.valid)
    entries = [(rows[i], cols[i]) for i in np.random.default_rng(0).choice(len(rows), size=8, replace=False)]
    np.testing.assert_allclose([grad[s, a] for s, a in entries], _central_differences(f, logits, entries),
                               rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_forward_mode_and_hessian_agree_with_reverse_mode():
    """The chain solver's fork level has a custom JVP: jvp, jacfwd and hessian work and agree."""
    maze = mj.Maze(2, 2, 2)
    logits = jnp.asarray(random_logits(maze, 4))
    f = lambda t: exact.hitting_time(maze, t)  # noqa: E731
    direction = jnp.where(maze.valid, jnp.asarray(np.random.default_rng(1).normal(size=maze.valid.shape)), 0.0)
    _, tangent = jax.jvp(f, (logits,), (direction,))
    grad = jax.grad(f)(logits)
    assert float(tangent) == pytest.approx(float(jnp.sum(grad * direction)), rel=1e-10)
    np.testing.assert_allclose(jax.jacfwd(f)(logits), grad, rtol=1e-10, atol=1e-12)
    hessian = jax.hessian(f)(logits)  # [S, D, S, D]
    rows, cols = np.nonzero(maze.valid)
    s, a = rows[5], cols[5]
    column = _central_differences(lambda t: jax.grad(f)(t)[s, a], logits, list(zip(rows, cols)))
    np.testing.assert_allclose(np.asarray(hessian[s, a])[rows, cols], column, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("make", [lambda: mj.Maze(3, 2, 2), lambda: mj.Maze.from_edges(
    [("s", "a"), ("a", "b"), ("b", "s"), ("b", "t"), ("a", "t")], "s", ["t", "b"])])
def test_gradient_is_occupancy_times_advantage(make):
    """docs/model.md §4.2: dH/dtheta[s,a] = E_x[d_x(s) pi(a|s) (h_x(a) - hbar_x(s))] (so dJ = -beta dH)."""
    maze = make()
    logits = jnp.asarray(random_logits(maze, 11))
    grad = np.asarray(jax.grad(exact.hitting_time, argnums=1)(maze, logits))
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
    grad = jax.grad(exact.hitting_time, argnums=1)(maze, trapped)
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


def test_results_are_float64_and_gradients_keep_the_logits_dtype():
    maze = mj.Maze(2, 2, 2)
    base = mj.pretrained_logits(maze)
    assert base.dtype == jnp.float32
    for value in (exact.hitting_time(maze, base), exact.expected_visits(maze, base),
                  exact.symmetric_hitting_time(np.full((4, 2), 0.5), 2, 2)):
        assert value.dtype == jnp.float64
    assert jax.grad(exact.hitting_time, argnums=1)(maze, base).dtype == jnp.float32


@pytest.mark.slow
def test_symmetric_solver_matches_the_full_solver():
    """Branch-symmetric policies: the O(K) quotient solver against the chain solver on the full maze."""
    rng = np.random.default_rng(2)
    for W, K, L in [(3, 2, 2), (2, 4, 1), (5, 1, 3)]:
        maze = mj.Maze(W, K, L)
        p = rng.uniform(0.05, 0.95, size=(4, K))
        full = exact.hitting_time(maze, mj.typed_logits(maze, *p, dtype=jnp.float64))
        assert float(exact.symmetric_hitting_time(p, W, K)) == pytest.approx(float(full), rel=1e-11)
        padded = np.pad(p, ((0, 0), (0, 3)), constant_values=0.5)  # extra depths are ignored
        assert float(exact.symmetric_hitting_time(padded, W, K)) == float(exact.symmetric_hitting_time(p, W, K))
    for name, probs, W, K, L, expected in [("base", (1 / 6, 5 / 6, 5 / 6, 1 / 6), 6, 6, 5, 3337.4),
                                           ("SFT limit", (1, 5 / 6, 1, 1 / 6), 6, 6, 5, 2966043.18944),
                                           ("backtracker", (1, 1, 1, 1), 15, 15, 5, 899)]:
        P = np.broadcast_to(np.asarray(probs, float)[:, None], (4, K))
        assert float(exact.symmetric_hitting_time(P, W, K)) == pytest.approx(expected, rel=1e-12), name


def test_symmetric_adjoint_matches_autodiff_of_the_symmetric_solver():
    """``exact.symmetric_hitting_time_and_gradient`` (the hand-written adjoint the fast RLVR trainer
    uses) against ``jax.grad`` of the symmetric solver in both arguments: the same H bit for bit,
    the same zeros (padded depths, depths past K), the same gradient to 1e-10, both under ``jit``;
    under ``jit(vmap)`` over policies and depths as well, with probabilities from 1e-6 to
    1 - 1e-6. A K past the columns is refused by name."""
    from mazejax.exact import symmetric

    with pytest.raises(ValueError, match="K"):
        exact.symmetric_hitting_time_and_gradient(np.full((4, 2), 0.5), 2, 3)
    rng = np.random.default_rng(5)
    autodiff = jax.jit(jax.value_and_grad(symmetric.hitting_time, argnums=(0, 3)))
    adjoint = jax.jit(exact.symmetric_hitting_time_and_gradient)
    cases = [(int(rng.integers(1, 12)), int(rng.integers(1, depths + 1)), rng.normal(0, 4, (4, depths)))
             for depths in (2, 6) for _ in range(8)]
    for W, K, x in cases:
        p, q = 1 / (1 + np.exp(-x)), 1 / (1 + np.exp(x))
        H, (dp, dq) = adjoint(p, W, K, q)
        H_ad, (dp_ad, dq_ad) = autodiff(p, W, K, q)
        assert float(H) == float(H_ad)
        for mine, theirs in ((dp, dp_ad), (dq, dq_ad)):
            np.testing.assert_array_equal(np.asarray(mine) == 0, np.asarray(theirs) == 0)
            np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=0)
        assert not np.any(np.asarray(dp)[:, K:]) and np.any(np.asarray(dp)[:, K - 1])
    P = np.clip(rng.uniform(0, 1, (8, 4, 6)), 1e-6, 1 - 1e-6)
    Ks = np.array([1, 2, 3, 4, 5, 6, 2, 6])
    H, (dp, dq) = jax.jit(jax.vmap(exact.symmetric_hitting_time_and_gradient, in_axes=(0, None, 0, 0)))(P, 4, Ks, 1 - P)
    for i in range(len(P)):
        H_ad, (dp_ad, dq_ad) = autodiff(P[i], 4, int(Ks[i]), 1 - P[i])
        assert float(H[i]) == float(H_ad)
        np.testing.assert_allclose(dp[i], dp_ad, rtol=1e-10, atol=0)
        np.testing.assert_allclose(dq[i], dq_ad, rtol=1e-10, atol=0)


def test_precision_errors_without_x64_and_public_api_composes(tmp_path):
    """In a fresh process with JAX's default precision: a clear error first, then (after the README's one
    line) grad, jit(grad), vmap(grad), jit(vmap(value_and_grad)) equal central differences (float64)
    and no float64 truncation warning is printed."""
    script = tmp_path / "user.py"
    script.write_text(PRECISION_SCRIPT)
    done = subprocess.run([sys.executable, "-W", "always", str(script)], capture_output=True, text=True, timeout=600,
                          env={k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"})  # the tests' XLA flags and cache
    assert done.returncode == 0, done.stderr
    assert "ok" in done.stdout
    assert "truncated" not in done.stderr.lower() and "UserWarning" not in done.stderr, done.stderr


PRECISION_SCRIPT = """
import jax, numpy as np
import mazejax as mj

maze = mj.Maze(2, 2, 2)
logits = mj.pretrained_logits(maze)
try:
    mj.exact.hitting_time(maze, logits)
except mj.PrecisionError as error:
    assert 'jax.config.update("jax_enable_x64", True)' in str(error), error
else:
    raise AssertionError("no PrecisionError without x64")

jax.config.update("jax_enable_x64", True)  # the README's one line
f = lambda t: mj.exact.hitting_time(maze, t)
compiled = jax.jit(f)  # the differences: one compiled program, called 2 x (valid moves) times
rng = np.random.default_rng(0)
theta = np.where(maze.valid, rng.normal(size=maze.valid.shape), -np.inf)
thetas = np.stack([theta, np.where(maze.valid, rng.normal(size=maze.valid.shape), -np.inf)])

def differences(t):
    t = np.asarray(t, np.float64)
    out = np.zeros_like(t)
    for s, a in zip(*np.nonzero(maze.valid)):
        up, down = t.copy(), t.copy()
        up[s, a] += 1e-6
        down[s, a] -= 1e-6
        out[s, a] = (float(compiled(up)) - float(compiled(down))) / 2e-6
    return out

expected = differences(theta)
valid = np.asarray(maze.valid)
value, grads = jax.jit(jax.vmap(jax.value_and_grad(f)))(thetas)
for name, grad in [("grad", jax.grad(f)(theta)), ("jit(grad)", jax.jit(jax.grad(f))(theta)),
                   ("vmap(grad)", jax.vmap(jax.grad(f))(thetas)[0]), ("jit(vmap(value_and_grad))", grads[0])]:
    grad = np.asarray(grad, np.float64)
    scale = np.abs(expected[valid]).max()
    assert np.allclose(grad[valid], expected[valid], rtol=1e-4, atol=1e-4 * scale), (name, grad, expected)
assert value.dtype == np.float64 and abs(float(value[0]) - float(f(theta))) < 1e-9 * float(value[0])
print("ok")
"""


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
