"""Issue 12, items 2 and 4: SFT on search traces (exact mixture counts) and the tree solver / tree study.

Exact values are checked against independent computations: the dense LU solver, a brute-force numpy
solve built here from the maze arrays, Monte Carlo traces, the closed forms of docs/model.md §3.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mazejax import Maze, exact, reference, traces
from mazejax.exact import tree
from mazejax.policy import backtracker_logits, pretrained_logits, probabilities
from mazejax.train import sft_exact, sft_limit
from mazejax.train.search_sft import search_sft_limit, sft_search, sft_search_exact


def _random_logits(maze, seed):
    logits = jax.random.normal(jax.random.key(seed), maze.successors.shape, jnp.float64)
    return jnp.where(maze.valid, logits, -jnp.inf)


def _numpy_hitting_times(maze, logits):
    """Brute force: for each target, solve (I - Q) h = 1 with numpy on the dense transition matrix."""
    pi = np.asarray(probabilities(maze, logits.astype(jnp.float64)))
    succ, valid = np.asarray(maze.successors), np.asarray(maze.valid)
    S = succ.shape[0]
    P = np.zeros((S, S))
    for s in range(S):
        for m in range(succ.shape[1]):
            if valid[s, m]:
                P[s, succ[s, m]] += pi[s, m]
    out = []
    for hit in np.asarray(maze.target_hit)[np.asarray(maze.target_mask)]:
        live = ~hit
        Q = P[np.ix_(live, live)]
        h = np.linalg.solve(np.eye(live.sum()) - Q, np.ones(live.sum()))
        out.append(h[np.flatnonzero(live).tolist().index(0)])
    return np.array(out)


# ----------------------------------------------------------------------------------------------
# The tree solver


@pytest.mark.parametrize("maze", [pytest.param(Maze.tree(2, 3), marks=pytest.mark.slow), Maze.tree(3, 2, 2),
                                  Maze.random_tree(1, 3), pytest.param(Maze.tree(1, 3), marks=pytest.mark.slow)],
                         ids=["binary3", "ternary2x2", "random", "path"])
def test_tree_solver_matches_dense_and_numpy(maze):
    layout = tree.tree_layout(maze)
    for logits in (pretrained_logits(maze, jnp.float64), _random_logits(maze, 7)):
        per = np.asarray(tree.target_hitting_times(layout, maze, logits))
        np.testing.assert_allclose(per, np.asarray(exact.target_hitting_times(maze, logits)), rtol=1e-11)
        np.testing.assert_allclose(per, _numpy_hitting_times(maze, logits), rtol=1e-11)
        np.testing.assert_allclose(float(tree.hitting_time(layout, maze, logits)),
                                   float(exact.dense_hitting_time(maze, logits)), rtol=1e-11)


def test_tree_solver_gradient():
    maze = Maze.random_tree(3, 3)
    logits = _random_logits(maze, 1)
    arrays = tree.tree_arrays(tree.tree_layout(maze))
    grad = jax.grad(lambda l: tree.hitting_time(arrays, maze, l))(logits)
    dense = jax.grad(lambda l: exact.dense_hitting_time(maze, l))(logits)
    np.testing.assert_allclose(np.where(maze.valid, grad, 0), np.where(maze.valid, dense, 0), rtol=1e-8, atol=1e-10)


@pytest.mark.slow
def test_tree_solver_stacking():
    maze = Maze.random_tree(3, 3)
    mazes = [Maze.tree(2, 2), Maze.tree(3, 3), maze]
    batch, stacked = tree.stack_trees(mazes)
    init = jax.vmap(lambda m: pretrained_logits(m, jnp.float64))(batch)
    values = np.asarray(jax.vmap(tree.hitting_time)(stacked, batch, init))
    expected = [float(exact.dense_hitting_time(m, pretrained_logits(m, jnp.float64))) for m in mazes]
    np.testing.assert_allclose(values, expected, rtol=1e-11)


def test_tree_layout_rejects_non_trees():
    with pytest.raises(ValueError, match="tree"):
        tree.tree_layout(Maze.from_edges([(0, 1), (1, 2), (2, 0)], 0, [2]))


@pytest.mark.slow
def test_tree_study_small():
    from mazejax import trees

    mazes = [Maze.tree(2, 2), Maze.tree(2, 3)]
    result = trees.study(mazes, rlvr_steps=40, rlvr_lr=0.05, sft_steps=50, record_every=20)
    base = [float(exact.dense_hitting_time(m, pretrained_logits(m, jnp.float64))) for m in mazes]
    limit = [float(exact.dense_hitting_time(m, sft_limit(m, pretrained_logits(m, jnp.float64)))) for m in mazes]
    np.testing.assert_allclose(result["base"], base, rtol=1e-11)
    np.testing.assert_allclose(result["sft_limit"], limit, rtol=1e-11)
    assert np.all(result["rlvr"] < result["base"]) and np.all(np.diff(result["rlvr_curve"], axis=1) <= 1e-9)
    np.testing.assert_allclose(result["sft"], result["sft_limit"], rtol=0.02)
    factor, r2 = trees.growth_per_depth([1, 2, 3], [2.0, 4.0, 8.0])
    assert factor == pytest.approx(2.0) and r2 == pytest.approx(1.0)


# ----------------------------------------------------------------------------------------------
# Search traces and SFT on the mixture


def test_search_trace_lengths_match_closed_forms():
    maze = Maze(3, 3, 2)
    assert float(traces.dfs_counts(maze)[1]) == pytest.approx(3 * (2 * 3 + 1), rel=1e-12)
    counts, length = traces.backtracker_counts(maze)
    assert float(length) == pytest.approx(float(reference.backtracker_hitting_time(3, 3, 2)), rel=1e-12)
    assert float(length) == pytest.approx(float(exact.dense_hitting_time(maze, backtracker_logits(maze, jnp.float64))),
                                          rel=1e-9)
    assert float(jnp.sum(counts)) == pytest.approx(float(length), rel=1e-12)


@pytest.mark.slow
def test_dfs_counts_match_monte_carlo():
    maze = Maze(3, 2, 2)
    counts, length = traces.dfs_counts(maze)
    states, lengths, _ = traces.sample_dfs(jax.random.key(0), maze, 3000)
    sampled = np.asarray(traces.trace_counts(maze, states)) / 3000
    assert float(np.mean(lengths)) == pytest.approx(float(length), rel=0.03)
    assert np.max(np.abs(sampled - np.asarray(counts))) < 0.06


def test_mixture_limit_is_row_normalised_counts():
    maze = Maze(3, 3, 2)
    for kind in traces.SEARCH_KINDS:
        golden, golden_length = traces.golden_counts(maze)
        search, search_length = traces.search_counts(maze, kind)
        p = 0.1
        weights = ((1 - p) * golden + p * search) / ((1 - p) * golden_length + p * search_length)
        np.testing.assert_allclose(traces.mixture_transitions(maze, p, kind=kind), weights, rtol=1e-12)
        limit = np.asarray(probabilities(maze, search_sft_limit(maze, p, kind, pretrained_logits(maze, jnp.float64))))
        seen = np.asarray(weights.sum(axis=1) > 0) & np.asarray(maze.trainable)
        rows = np.asarray(weights)[seen] / np.asarray(weights)[seen].sum(axis=1, keepdims=True)
        np.testing.assert_allclose(limit[seen], rows, atol=1e-12)
        H = float(exact.dense_hitting_time(maze, search_sft_limit(maze, p, kind)))
        assert H == pytest.approx(float(reference.backtracker_hitting_time(3, 3, 2)), rel=1e-9)
    H0 = float(exact.hitting_time(maze, search_sft_limit(maze, 0.0)))
    assert H0 == pytest.approx(float(reference.sft_limit_hitting_time(3, 3, 2)), rel=1e-9)


@pytest.mark.slow
def test_exact_mixture_sft_p0_is_golden_sft_and_p_positive_reaches_backtracker():
    maze = Maze(3, 3, 2)
    init = pretrained_logits(maze, jnp.float64)
    golden = sft_exact(maze, init_logits=init, steps=200, record_every=50)
    mixed0 = sft_search_exact(maze, init_logits=init, steps=200, record_every=50, search_fraction=0.0)
    np.testing.assert_allclose(mixed0.hitting_time, golden.hitting_time, rtol=1e-9)
    trained = sft_search_exact(maze, init_logits=init, steps=200, record_every=50, search_fraction=0.01)
    assert float(trained.hitting_time[-1]) == pytest.approx(35.0, rel=0.05)  # the backtracker: 4WK+2W-2K-1 = 35


@pytest.mark.slow
def test_sampled_mixture_sft_learns_to_retreat():
    maze = Maze(3, 2, 2)
    for kind in traces.SEARCH_KINDS:
        result = sft_search(maze, jax.random.key(0), steps=60, record_every=60, search_fraction=0.5, search_kind=kind,
                            batch_size=16)
        assert float(result.hitting_time[-1]) < 0.5 * float(result.hitting_time[0])
        assert float(result.types["b"][-1].min()) > 0.9


def test_beyond_figures(tmp_path):
    from mazejax import figures

    curves = [{"p": p, "kind": k, "step": np.arange(0, 30, 10), "hitting_time": np.array([3000.0, 400.0, 150.0])}
              for p in (0.0, 0.1) for k in ("dfs", "sgd")]
    scaling = [{"W": 3, "L": 2, "K": k, "p": p, "steps": 100, "hitting_time": 10.0 * k, "sft_limit": 4.5**k,
                "backtracker": 10 * k + 1} for k in (1, 2, 3) for p in (0.0, 0.1)]
    assert figures.search_traces(curves, scaling, {"backtracker = 143": 143.0}, tmp_path / "a.png").exists()
    rows = [{"family": f, "depth": d, "base": 3.0**d, "sft_limit": 4.0**d, "sft_exact": 4.0**d, "rlvr_exact": 2.5**d,
             "dfs": 2.0**d} for f in ("binary", "random") for d in (2, 3)]
    assert figures.trees(rows, tmp_path / "b.png").exists()


@pytest.mark.slow
def test_exact_backtracker_trace_sft_is_exact_distillation_of_the_backtracker():
    """p = 1 with backtracker traces is Theorem 5's distillation with the backtracker as teacher (population)."""
    from mazejax.train import distill

    maze = Maze(3, 2, 2)
    init = pretrained_logits(maze, jnp.float64)
    ours = sft_search_exact(maze, init_logits=init, steps=40, record_every=20, search_fraction=1.0,
                            search_kind="backtracker")
    theirs = distill(maze, jax.random.key(0), backtracker_logits(maze, jnp.float64), init_logits=init, steps=40,
                     record_every=20, num_traces=None)
    np.testing.assert_allclose(ours.hitting_time, theirs.hitting_time, rtol=1e-9)
    np.testing.assert_allclose(ours.loss, theirs.loss, rtol=1e-9)


@pytest.mark.slow
def test_sweep_runs_search_fraction_as_a_leaf(tmp_path):
    from mazejax import sweep

    spec = sweep.parse_spec({"W": [3], "K": [2], "L": [2], "seeds": 1, "methods": ["sft_search_exact"],
                             "sft_search_exact": {"steps": 100, "record_every": 50, "search_fraction": [0.0, 0.01]}})
    rows = sweep.read_runs(sweep.run_sweep(spec, tmp_path, progress=False, tables=False))
    by_p = {float(r["search_fraction"]): r for r in rows}
    single = sft_search_exact(Maze(3, 2, 2), steps=100, record_every=50, search_fraction=0.01)
    assert by_p[0.01]["hitting_time"] == pytest.approx(float(single.hitting_time[-1]), rel=1e-12)
    assert by_p[0.0]["hitting_time"] > 5 * by_p[0.01]["hitting_time"]
