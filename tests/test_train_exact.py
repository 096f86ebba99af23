"""Deterministic trainers (mazejax.train): exact RLVR, exact and sampled SFT, the ablation."""


import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mazejax
import mazejax.train as tr
from mazejax import exact
from mazejax.train import base


def backtracker_h(W, K):
    return 4 * W * K + 2 * W - 2 * K - 1


def sft_limit_h(W, K, L):
    """docs/model.md §3 recurrence for the SFT limit (independent of the solver)."""
    g = 1.0
    for i in range(1, K + 1):
        f = (L + 1) / L * g + (2 * i - 1) / L + 1
        g = (L + 1) * f + 2 * i * L + 1
    return (W - 1) * (2 * K + 1 + g) + 2 * K + 1


@pytest.fixture(scope="module")
def maze332():
    return mazejax.Maze(3, 3, 2)


@pytest.fixture(scope="module")
def maze665():
    return mazejax.Maze(6, 6, 5)


# ----------------------------------------------------------------------------------------
# RLVR


def test_rlvr_small_trajectory_reaches_backtracker(maze332):
    result = tr.rlvr_exact(maze332, steps=300, lr=0.05)
    H = np.asarray(result.hitting_time)
    assert result.hitting_time.dtype == jnp.float64 and H.shape == (301,)
    np.testing.assert_array_equal(np.asarray(result.step), np.arange(301))
    assert H[0] == pytest.approx(275.0, rel=1e-12)
    assert np.all(np.diff(H) <= 0)
    assert H[-1] == pytest.approx(backtracker_h(3, 3), rel=1e-6)
    np.testing.assert_allclose(np.asarray(result.loss), H - 1.0, rtol=1e-12)  # beta = 1
    for name in "abcd":
        types = np.asarray(result.types[name])
        assert types.shape == (301, 3)
        assert np.all(types[-1] > 1 - 1e-6)
    base = {"a": 1 / 3, "b": 2 / 3, "c": 2 / 3, "d": 1 / 3}
    for name, value in base.items():
        np.testing.assert_allclose(np.asarray(result.types[name])[0], value, rtol=1e-6)


def test_rlvr_step_follows_sign_of_paper_gradient(maze332):
    """One step moves every trainable logit by exactly lr along sign(dJ) of docs/model.md §4.2 formula."""
    maze = maze332
    valid = np.asarray(maze.valid)
    rng = np.random.default_rng(0)
    init = np.where(valid, rng.normal(0, 0.5, valid.shape), -np.inf).astype(np.float32)
    beta, lr = 0.3, 0.01
    # dJ/dtheta[s, a] = beta * E_x[d_x(s) pi(a|s) (hbar_x(s) - h_x(a))], h_x(a) = 1 + h_x(next state)
    visits = np.asarray(exact.expected_visits(maze, init))  # [T, S]
    h = np.asarray(exact.hitting_times(maze, init))  # [T, S]
    pi = np.asarray(mazejax.probabilities(maze, jnp.asarray(init, jnp.float64)))
    q = 1.0 + h[:, np.asarray(maze.successors)]  # [T, S, D]
    hbar = np.sum(np.where(valid, pi * q, 0.0), axis=-1, keepdims=True)
    grad_j = beta * np.mean(visits[:, :, None] * pi * np.where(valid, hbar - q, 0.0), axis=0)
    result = tr.rlvr_exact(maze, steps=1, lr=lr, beta=beta, init_logits=init)
    trainable = np.asarray(mazejax.trainable_moves(maze))
    assert np.all(grad_j[trainable] != 0)
    expected = init[trainable] + np.float32(lr) * np.sign(grad_j[trainable]).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(result.logits)[trainable], expected)
    frozen = ~trainable
    np.testing.assert_array_equal(np.asarray(result.logits)[frozen].view(np.int32), init[frozen].view(np.int32))


def test_rlvr_keeps_infinite_logits_and_zero_beta_freezes(maze332):
    init = mazejax.typed_logits(maze332, 1.0, 0.5, 0.5, 0.5)  # R+ rows: -inf off the forward move
    result = tr.rlvr_exact(maze332, steps=1, init_logits=init)
    logits, init = np.asarray(result.logits), np.asarray(init)
    np.testing.assert_array_equal(np.isneginf(logits), np.isneginf(init))
    assert not np.any(np.isnan(logits))
    assert result.hitting_time.shape == (2,) and np.asarray(result.hitting_time)[1] < np.asarray(result.hitting_time)[0]
    frozen = tr.rlvr_exact(maze332, steps=1, beta=0.0, init_logits=init)
    np.testing.assert_array_equal(np.asarray(frozen.logits), init)


@pytest.mark.slow
def test_rlvr_vmaps_over_learning_rates_and_stacked_mazes_compiling_once():
    mazes = [mazejax.Maze(3, 3, 2), mazejax.Maze(2, 2, 3)]
    lrs = np.array([0.01, 0.03, 0.1], np.float32)
    steps = 1  # the one-run functions for this config are compiled by the tests above
    stacked = mazejax.stack(mazes)
    init = mazejax.pretrained_logits(stacked)
    hparams = tr.RLVRHParams.create(lr=lrs, beta=np.ones(3))
    chex.clear_trace_counter()
    train = chex.assert_max_traces(tr.make_rlvr_exact(tr.RLVRConfig(steps=steps)), n=1)
    over_lr = jax.vmap(train, in_axes=(None, 0, None, None))
    sweep_fn = jax.jit(jax.vmap(over_lr, in_axes=(None, None, 0, 0)))
    sweep = sweep_fn(jax.random.key(0), hparams, stacked, init)
    assert sweep.hitting_time.shape == (2, 3, steps + 1)
    for i, maze in enumerate(mazes):
        S, D = maze.capacity.states, maze.capacity.out_degree
        depths = maze.capacity.depths
        for j, lr in enumerate(lrs):
            single = tr.rlvr_exact(maze, steps=steps, lr=float(lr))
            np.testing.assert_allclose(np.asarray(sweep.hitting_time[i, j]), np.asarray(single.hitting_time), rtol=1e-12)
            np.testing.assert_array_equal(np.asarray(sweep.logits[i, j, :S, :D]), np.asarray(single.logits))
            for name in "abcd":
                np.testing.assert_allclose(
                    np.asarray(sweep.types[name][i, j, :, :depths]), np.asarray(single.types[name]), rtol=1e-12
                )
    # new hyperparameter values and new mazes of the same capacity reuse the compiled sweep
    swapped = mazejax.stack([mazejax.pad(mazejax.Maze(2, 3, 2), stacked.capacity), mazes[1]])
    sweep_fn(jax.random.key(1), tr.RLVRHParams.create(lr=2 * lrs, beta=np.full(3, 0.5)), swapped, init)
    # the one-run function does not recompile for new hyperparameter values
    compiled = base._compiled(tr.make_rlvr_exact, tr.RLVRConfig(steps=steps))
    size = compiled._cache_size()
    tr.rlvr_exact(mazes[1], steps=steps, lr=0.5, beta=3.0)
    assert compiled._cache_size() == size


@pytest.mark.slow
def test_rlvr_paper_trajectory_w15_k15_l5():
    reference = {0: 50141, 50: 20239, 100: 8951, 150: 4177, 200: 2172, 300: 1077, 400: 923, 500: 902, 600: 899.44}
    result = tr.rlvr_exact(mazejax.Maze(15, 15, 5), steps=600, lr=0.01)
    H = np.asarray(result.hitting_time)
    for step, value in reference.items():
        assert H[step] == pytest.approx(value, rel=1e-3), step
    for name in "abcd":
        assert np.all(np.asarray(result.types[name])[-1] > 0.9999)


@pytest.mark.slow
def test_symmetric_trajectory_equals_the_full_trainer_on_a_padded_maze():
    """The fast path (O(K) per step) reaches bit for bit the full trainer's logits, also padded."""
    W, K, L, steps = 3, 3, 2, 120
    maze = mazejax.Maze(W, K, L)
    full = tr.rlvr_exact(maze, steps=steps)
    padded = mazejax.pad(maze, mazejax.Maze(4, 4, 3).capacity)
    train = jax.jit(tr.make_rlvr_symmetric(tr.RLVRSymmetricConfig(steps=steps)))
    fast = train(jax.random.key(0), tr.RLVRHParams.create(), padded, mazejax.pretrained_logits(padded))
    np.testing.assert_allclose(fast.hitting_time, full.hitting_time, rtol=1e-12)
    S, D = maze.capacity.states, maze.capacity.out_degree
    np.testing.assert_array_equal(np.asarray(fast.logits)[:S, :D], full.logits)
    np.testing.assert_allclose(np.asarray(fast.types["a"])[:, :K], full.types["a"], rtol=1e-12)
    np.testing.assert_array_equal(tr.rlvr_symmetric(maze, steps=steps).logits, full.logits)


# ----------------------------------------------------------------------------------------
# SFT


def enumerate_golden_transitions(maze):
    """Uniform over all shortest edge-state paths from state 0 to each target (brute force)."""
    succ, valid = np.asarray(maze.successors), np.asarray(maze.valid)
    hit = np.asarray(maze.target_hit)
    weights = np.zeros(succ.shape)
    for t in range(maze.num_targets):
        paths, frontier = [], [[(0, None)]]
        while not paths:
            grown = []
            for path in frontier:
                state = path[-1][0]
                for slot in np.flatnonzero(valid[state]):
                    new = path[:-1] + [(state, slot), (int(succ[state, slot]), None)]
                    (paths if hit[t, succ[state, slot]] else grown).append(new)
            frontier = grown
        for path in paths:
            for state, slot in path[:-1]:
                weights[state, slot] += 1.0 / (len(paths) * (len(path) - 1) * maze.num_targets)
    return weights


@pytest.mark.parametrize(
    "maze",
    [mazejax.Maze(2, 2, 2), mazejax.Maze(branch_K=(2, 1), diamond_L=[[1, 3], [2]]), mazejax.Maze.tree(2, 3, 2),
     mazejax.Maze.random_tree(3, 3)],
    ids=["2-2-2", "heterogeneous", "binary tree with double edges", "random tree"],
)
def test_golden_transitions_match_enumerated_shortest_paths(maze):
    weights = np.asarray(jax.jit(tr.golden_transitions, static_argnums=1)(maze, jnp.float64))
    np.testing.assert_allclose(weights, enumerate_golden_transitions(maze), atol=1e-15)
    assert weights.sum() == pytest.approx(1.0, rel=1e-14)


def test_sampled_golden_transitions_are_unbiased(maze332):
    keys = jax.random.split(jax.random.key(7), 40)
    sample = jax.jit(jax.vmap(tr.sample_golden_transitions, in_axes=(0, None, None)), static_argnums=2)
    batches = np.asarray(sample(keys, maze332, 256), np.float64)  # [40, S, D]
    exact_weights = np.asarray(jax.jit(tr.golden_transitions)(maze332), np.float64)
    mean = batches.mean(axis=0)
    stderr = batches.std(axis=0, ddof=1) / np.sqrt(len(batches))
    np.testing.assert_allclose(batches.sum(axis=(1, 2)), 1.0, rtol=1e-5)
    assert np.all(mean[exact_weights == 0] == 0)
    z = np.abs(mean - exact_weights)[exact_weights > 0] / stderr[exact_weights > 0]
    assert np.all(z < 5), z.max()


def test_sft_limit_matches_spec(maze332, maze665):
    assert float(exact.hitting_time(maze665, tr.sft_limit(maze665))) == pytest.approx(2966043.18944, rel=1e-12)
    assert float(exact.hitting_time(maze332, tr.sft_limit(maze332))) == pytest.approx(sft_limit_h(3, 3, 2), rel=1e-12)
    # heterogeneous maze: same policy as the typed one with a = c = 1, b = L/(L+1), d = 1/(L+1)
    maze = mazejax.Maze(branch_K=(3, 2, 1), L=2)
    typed = mazejax.typed_logits(maze, 1.0, 2 / 3, 1.0, 1 / 3)
    np.testing.assert_allclose(
        np.asarray(mazejax.probabilities(maze, tr.sft_limit(maze))),
        np.asarray(mazejax.probabilities(maze, typed)),
        atol=1e-6,
    )


def test_sft_exact_trains_forward_types_only(maze332):
    W, K, L = 3, 3, 2
    result = tr.sft_exact(maze332, steps=300, lr=0.1)
    H, loss = np.asarray(result.hitting_time), np.asarray(result.loss)
    types = {name: np.asarray(v) for name, v in result.types.items()}
    assert H.shape == (301,) and H[0] == pytest.approx(275.0, rel=1e-12)
    limit = sft_limit_h(W, K, L)
    # H first drops (forward moves get likelier), then climbs towards the SFT limit from below
    assert H[1] < H[0] and np.all(np.diff(H[100:]) > 0) and H[-1] < limit
    assert H[-1] == pytest.approx(limit, rel=1e-2)
    np.testing.assert_allclose(types["b"], L / (L + 1), atol=1e-12)
    np.testing.assert_allclose(types["d"], 1 / (L + 1), atol=1e-12)
    for name in "ac":
        assert np.all(np.diff(types[name], axis=0) > 0) and np.all(types[name][-1] > 0.99)
    # loss: log(L + 1) at the uniform model, decreasing to (log W + K log L) / (2K + 1)
    assert loss[0] == pytest.approx(np.log(L + 1), rel=1e-12)
    assert np.all(np.diff(loss) < 0) and loss[-1] == pytest.approx((np.log(W) + K * np.log(L)) / (2 * K + 1), rel=1e-2)
    # rows off the golden paths keep their initial logits bit for bit
    on_golden = np.asarray(tr.golden_transitions(maze332)).sum(-1) > 0
    init = np.asarray(mazejax.pretrained_logits(maze332))
    np.testing.assert_array_equal(np.asarray(result.logits)[~on_golden], init[~on_golden])


@pytest.mark.slow
def test_sampled_sft_vmaps_over_keys(maze332):
    keys = jax.random.split(jax.random.key(3), 2)
    train = tr.make_sft(tr.SFTConfig(steps=40, batch_size=8, record_every=20))
    hparams = tr.SFTHParams.create(lr=0.1)
    init = mazejax.pretrained_logits(maze332)
    batch = jax.jit(jax.vmap(train, in_axes=(0, None, None, None)))(keys, hparams, maze332, init)
    for i in range(2):
        single = tr.sft(maze332, keys[i], steps=40, lr=0.1, batch_size=8, record_every=20)
        np.testing.assert_allclose(np.asarray(batch.logits[i]), np.asarray(single.logits), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(np.asarray(batch.hitting_time[i]), np.asarray(single.hitting_time), rtol=1e-6)
        H = np.asarray(single.hitting_time)
        assert H[0] == pytest.approx(275.0) and H[0] < H[1] < H[2] < sft_limit_h(3, 3, 2)
        np.testing.assert_allclose(np.asarray(single.types["b"]), 2 / 3, atol=1e-12)
        np.testing.assert_allclose(np.asarray(single.types["d"]), 1 / 3, atol=1e-12)
    assert not np.allclose(np.asarray(batch.logits[0]), np.asarray(batch.logits[1]))


# ----------------------------------------------------------------------------------------
# Ablation


def test_backward_supervision_ablation(maze665):
    W, K, L = 6, 6, 5
    result = tr.backward_supervision_ablation(maze665, jax.random.key(0), draws=40)
    H, mean = np.asarray(result.hitting_time), np.asarray(result.mean_hitting_time)
    assert H.shape == (11, 40) and H.dtype == np.float64
    np.testing.assert_allclose(H[0], 2966043.18944, rtol=1e-12)
    np.testing.assert_allclose(H[-1], backtracker_h(W, K), rtol=1e-12)
    assert np.all(np.diff(mean) < 0)
    supervised = np.asarray(result.supervised)  # [11, 40, 2, K]
    counts = supervised.sum(axis=(2, 3))
    np.testing.assert_array_equal(counts, np.round(result.fraction * 2 * K)[:, None] * np.ones((1, 40)))
    assert np.all(supervised[1:] >= supervised[:-1])  # nested in p within each draw
    assert len({tuple(s.ravel()) for s in supervised[5]}) > 20  # the draws differ
    # one draw recomputed independently with the typed policy of the same supervised types
    p, r = 4, 17
    b = np.where(supervised[p, r, 0], 1.0, L / (L + 1))
    d = np.where(supervised[p, r, 1], 1.0, 1 / (L + 1))
    typed = mazejax.typed_logits(maze665, 1.0, b, 1.0, d, dtype=jnp.float64)
    assert H[p, r] == pytest.approx(float(exact.hitting_time(maze665, typed)), rel=1e-10)


# ----------------------------------------------------------------------------------------
# Argument checks


def test_invalid_arguments_raise_before_compiling(maze332):
    cycle = mazejax.Maze.from_edges([(0, 1), (1, 2), (2, 0), (2, 3)], 0, [3])
    cases = [
        (lambda: tr.rlvr_exact(maze332, steps=10, lr=0.0), "lr must be a finite number > 0"),
        (lambda: tr.rlvr_exact(maze332, steps=10, lr=-0.1), "lr"),
        (lambda: tr.rlvr_exact(maze332, steps=10, lr=float("nan")), "lr"),
        (lambda: tr.rlvr_exact(maze332, steps=10, lr=[0.1, 0.2]), "lr must be a scalar"),
        (lambda: tr.rlvr_exact(maze332, steps=0), "steps must be an integer >= 1"),
        (lambda: tr.rlvr_exact(maze332, steps=2.5), "steps"),
        (lambda: tr.rlvr_exact(maze332, steps=10, beta=-1.0), "beta must be a finite number >= 0"),
        (lambda: tr.rlvr_exact(maze332, steps=10, record_every=3), "record_every must divide steps"),
        (lambda: tr.rlvr_exact(maze332, steps=10, init_logits=np.zeros((3, 3))), "logits"),
        (lambda: tr.rlvr_exact(maze332, step=10), "no setting 'step'"),
        (lambda: tr.rlvr_exact(maze332, optimizer="adamax"), "optimizer must be one of"),
        (lambda: tr.rlvr_symmetric(maze332, optimizer="adam"), "optimizer must be one of 'sign_sgd'"),
        (lambda: tr.RLVRConfig(steps=0), "steps"),
        (lambda: tr.RLVRHParams.create(lr=[0.1, -0.1]), "lr"),
        (lambda: tr.SFTHParams.create(lr=0.0), "lr"),
        (lambda: tr.sft_exact(maze332, steps=10, lr=-1.0), "lr"),
        (lambda: tr.sft(maze332, jax.random.key(0), steps=10, batch_size=0), "batch_size"),
        (lambda: tr.SFTConfig(batch_size=0), "batch_size"),
        (lambda: tr.backward_supervision_ablation(maze332, jax.random.key(0), fractions=[0.5, 1.5]), "fractions"),
        (lambda: tr.backward_supervision_ablation(maze332, jax.random.key(0), fractions=[-0.1]), "fractions"),
        (lambda: tr.backward_supervision_ablation(maze332, jax.random.key(0), draws=0), "draws"),
        (lambda: tr.backward_supervision_ablation(cycle, jax.random.key(0)), "paper maze"),
    ]
    for call, name in cases:
        with pytest.raises(ValueError, match=name):
            call()
