"""Sampled trainers: REINFORCE, PPO (mazejax.train.reinforce / ppo) and distillation (mazejax.train.distill)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mazejax
from mazejax import exact
from mazejax.ordered import ordered_sum
from mazejax.train import base
from mazejax.train import policy_gradient as pg
from mazejax.train.distill import (
    DistillConfig,
    DistillHParams,
    distill,
    make_distill,
    sample_teacher_transitions,
    teacher_transitions,
)
from mazejax.train.ppo import (
    BLOCK,
    _stage_sizes,
    PPOConfig,
    PPOHParams,
    advantages,
    clipped_surrogate,
    collect,
    fit_critic,
    make_ppo,
    minibatch_counts,
    move_slots,
    ppo,
    signed_advantage_counts,
)
from mazejax.train.reinforce import ReinforceConfig, ReinforceHParams, make_reinforce, reinforce, reinforce_gradient
from mazejax.train.rlvr import rlvr_exact
from mazejax.train.sft import sft

BACKTRACKER_332 = 35.0
BACKTRACKER_665 = 143.0
SFT_LIMIT_665 = 2966043.18944


@pytest.fixture(scope="module")
def maze332():
    return mazejax.Maze(3, 3, 2)


@pytest.fixture(scope="module")
def tiny():
    return mazejax.Maze(2, 1, 1)


def random_logits(maze, seed, scale=0.5):
    rng = np.random.default_rng(seed)
    valid = np.asarray(maze.valid)
    return np.where(valid, rng.normal(0.0, scale, valid.shape), -np.inf).astype(np.float32)


def exact_dj(maze, logits, beta):
    """-beta * dH/dtheta by differentiating the exact solver (float64 [S, D])."""
    grad = jax.grad(lambda l: exact.hitting_time(maze, l))(jnp.asarray(logits, jnp.float64))
    return -beta * np.asarray(grad)


def move_table(maze, states, length):
    """Independent move counts from recorded states: [n, S, D] by searching each successor row."""
    succ, valid = np.asarray(maze.successors), np.asarray(maze.valid)
    counts = np.zeros((len(length),) + succ.shape)
    for i, n in enumerate(np.asarray(length)):
        for t in range(n):
            s, nxt = states[i, t], states[i, t + 1]
            (slot,) = np.flatnonzero(valid[s] & (succ[s] == nxt))
            counts[i, s, slot] += 1
    return counts


# ----------------------------------------------------------------------------------------
# Shared pieces


def test_rollout_horizon_rule():
    rule = lambda cap, scale, H: int(pg.rollout_horizon(jnp.int32(cap), jnp.float32(scale), jnp.float64(H)))  # noqa: E731
    assert rule(1000, 2.0, 137.2) == 275  # ceil(2 H)
    assert rule(100, 2.0, 137.2) == 100  # capped
    assert rule(1000, 2.0, np.inf) == 1000  # a policy that misses: the cap
    assert rule(1000, 0.0, 137.2) == 1000  # fixed horizon
    assert rule(1000, 1e-6, 1.0) == 1  # never below 1


def test_advantage_baselines():
    r = jnp.array([1.0, 0.5, -0.5, 2.0])
    loo = np.asarray(pg.leave_one_out_advantages(r))
    np.testing.assert_allclose(loo, [r[i] - np.mean(np.delete(np.asarray(r), i)) for i in range(4)], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(pg.rewards(jnp.array([3, 7]), jnp.array([True, False]), 0.1)), [0.7, -0.7], rtol=1e-6)


# ----------------------------------------------------------------------------------------
# REINFORCE


def test_reinforce_gradient_is_unbiased(tiny):
    """The estimator's mean over keys is -beta dH/dtheta (exact solver) within Monte Carlo error."""
    logits = random_logits(tiny, 0)
    beta, batches = 0.5, 3000
    estimate = jax.jit(jax.vmap(lambda k: reinforce_gradient(tiny, logits, k, 8, 100_000, beta)[0]))
    samples = np.asarray(estimate(jax.random.split(jax.random.key(1), batches)), np.float64)
    # a score function: rows sum to 0 (up to float32 rounding of the weighted counts)
    np.testing.assert_allclose(samples.sum(-1), 0.0, atol=1e-3)
    assert np.all(samples[:, ~np.asarray(tiny.valid)] == 0)
    exact_grad = exact_dj(tiny, logits, beta)
    trainable = np.asarray(mazejax.trainable_moves(tiny))
    mean, stderr = samples.mean(0)[trainable], samples.std(0)[trainable] / np.sqrt(batches)
    z = (mean - exact_grad[trainable]) / stderr
    assert np.max(np.abs(z)) < 4.5, z
    assert 0.4 < np.mean(z**2) < 1.8, z
    assert np.median(np.abs(exact_grad[trainable]) / stderr) > 5  # the test can tell a wrong sign


@pytest.mark.slow
def test_reinforce_runs_vmapped_once_per_configuration(maze332):
    """One trace for a vmap over keys x hyperparameters; only trainable logits move; it learns."""
    config = ReinforceConfig(steps=40, num_rollouts=128, record_every=10)
    train = chex.assert_max_traces(make_reinforce(config), n=1)
    run = jax.jit(jax.vmap(train, in_axes=(0, 0, None, None)))
    init = mazejax.pretrained_logits(maze332)
    keys = jax.random.split(jax.random.key(0), 2)
    first = run(keys, ReinforceHParams.create(lr=[0.2, 0.3], beta=[0.01, 0.02]), maze332, init)
    second = run(keys, ReinforceHParams.create(lr=[0.3, 0.2], beta=[0.0, 0.05], horizon=[99, 500], horizon_scale=[0.0, 3.0]), maze332, init)
    assert first.hitting_time.shape == (2, 5) and first.hitting_time.dtype == jnp.float64
    np.testing.assert_array_equal(np.asarray(first.step), [[0, 10, 20, 30, 40]] * 2)
    assert np.all(np.asarray(first.hitting_time)[:, 0] == pytest.approx(275.0))
    beta = np.array([0.01, 0.02])[:, None]
    np.testing.assert_allclose(np.asarray(first.loss), beta * np.asarray(first.hitting_time) - 1, rtol=1e-6)
    frozen = ~np.asarray(mazejax.trainable_moves(maze332))
    for result in (first, second):
        logits = np.asarray(result.logits)
        np.testing.assert_array_equal(logits[:, frozen], np.broadcast_to(np.asarray(init)[frozen], logits[:, frozen].shape))
    alone = jax.jit(make_reinforce(config))(keys[1], ReinforceHParams.create(lr=0.3, beta=0.02), maze332, init)  # batch: no change
    np.testing.assert_array_equal(np.asarray(alone.logits), np.asarray(first.logits)[1])


def test_reinforce_defaults_reach_the_backtracker_on_332(maze332):
    """8 seeds, default settings: most end within 15% of the backtracker's 35 (the slow test: 29 of 32)."""
    final = final_hitting_times(reinforce, maze332, 8)
    assert np.sum(final <= 1.15 * BACKTRACKER_332) >= 7, np.sort(final)


def test_reinforce_public_api_vmaps_over_keys(maze332):
    small = dict(steps=4, num_rollouts=8, record_every=2)
    keys = jax.random.split(jax.random.key(0), 3)
    batch = jax.jit(jax.vmap(lambda k: reinforce(maze332, k, **small)))(keys)
    H = np.asarray(batch.hitting_time)
    assert H.shape == (3, 3) and np.all(H[:, 0] == pytest.approx(275.0))
    for i in range(3):  # the trained logits are bit-identical; the exact H behind them may differ by an ulp
        alone = reinforce(maze332, keys[i], **small)  # (XLA fuses the batched elimination differently)
        np.testing.assert_array_equal(np.asarray(batch.logits)[i], np.asarray(alone.logits))
        np.testing.assert_allclose(H[i], np.asarray(alone.hitting_time), rtol=1e-14)


# ----------------------------------------------------------------------------------------
# PPO


@pytest.fixture(scope="module")
def ppo_batch(maze332):
    """A recorded batch of 12 walks of a random policy, with a random critic."""
    logits = random_logits(maze332, 3)
    rollouts = jax.jit(lambda k: collect(maze332, logits, k, 12, 400, 600))(jax.random.key(4))
    critic = np.random.default_rng(5).normal(0, 1, (maze332.capacity.targets, maze332.capacity.states)).astype(np.float32)
    return logits, rollouts, critic


def test_ppo_collect_records_moves(maze332, ppo_batch):
    logits, rollouts, _ = ppo_batch
    assert rollouts.states.shape == (12, -(-600 // BLOCK) * BLOCK + 1)
    walks = mazejax.simulate.sample_walks(maze332, logits, jax.random.key(4), 12, 400, record=rollouts.states.shape[1])
    np.testing.assert_array_equal(np.asarray(rollouts.states), np.asarray(walks.states))
    np.testing.assert_array_equal(np.asarray(rollouts.moving).sum(1), np.asarray(walks.length))
    counts = move_table(maze332, np.asarray(walks.states), walks.length)
    D = maze332.capacity.out_degree
    slot = move_slots(maze332, rollouts.state, rollouts.states[:, 1:])
    mine = np.zeros_like(counts).reshape(12, -1)
    flat = np.asarray(rollouts.state) * D + np.asarray(slot)
    for i in range(12):
        np.add.at(mine[i], flat[i][np.asarray(rollouts.moving)[i]], 1)
    np.testing.assert_array_equal(mine.reshape(counts.shape), counts)


def direct_advantages(rollouts, critic, beta, lam):
    """GAE by the recursion, move by move, walk by walk (numpy float64)."""
    state, target = np.asarray(rollouts.state), np.asarray(rollouts.target)
    expected = np.zeros(state.shape)
    for i, n in enumerate(np.asarray(rollouts.length)):
        following = 0.0
        for t in reversed(range(n)):
            last = t == n - 1
            reward = -beta + (1.0 if last and bool(rollouts.success[i]) else 0.0)
            next_value = 0.0 if last else critic[target[i], state[i, t + 1]]
            following = reward + next_value - critic[target[i], state[i, t]] + lam * following
            expected[i, t] = following
    return expected


def test_ppo_gae_and_critic_match_direct_loops(maze332, ppo_batch):
    _, rollouts, critic = ppo_batch
    beta, lam = 0.01, 0.9
    assert int(np.max(rollouts.length)) > 2 * BLOCK  # the GAE runs over several blocks
    advantage, returns = map(np.asarray, advantages(rollouts, jnp.asarray(critic), beta, lam))
    state, target = np.asarray(rollouts.state), np.asarray(rollouts.target)
    expected = direct_advantages(rollouts, critic, beta, lam)
    np.testing.assert_allclose(advantage, expected, rtol=1e-4, atol=1e-4)
    value = critic[target[:, None], state]
    np.testing.assert_allclose(returns, np.where(rollouts.moving, expected + value, 0.0), rtol=1e-4, atol=1e-4)
    fitted = np.asarray(fit_critic(jnp.asarray(critic), rollouts, beta, lam, 1.0, 1))
    moving = np.asarray(rollouts.moving)
    for x, s in {(target[i], state[i, t]) for i, t in zip(*np.nonzero(moving))}:
        cell = moving & (target[:, None] == x) & (state == s)
        assert fitted[x, s] == pytest.approx(returns[cell].mean(), rel=1e-5, abs=1e-5)
    unvisited = np.ones_like(fitted, bool)
    unvisited[target[:, None].repeat(state.shape[1], 1)[moving], state[moving]] = False
    np.testing.assert_array_equal(fitted[unvisited], critic[unvisited])
    half = np.asarray(fit_critic(jnp.asarray(critic), rollouts, beta, lam, 0.5, 1))
    np.testing.assert_allclose(half, (critic + fitted) / 2, rtol=1e-5, atol=1e-5)
    # many passes reach a fixed point of TD(lambda) on the batch
    converged = fit_critic(jnp.zeros_like(critic), rollouts, beta, lam, 1.0, 300)
    np.testing.assert_allclose(np.asarray(fit_critic(converged, rollouts, beta, lam, 1.0, 1)), np.asarray(converged), atol=1e-4)


def direct_signed_counts(maze, rollouts, critic, beta, lam):
    """Per walk (P, M) [n, S, D] of the standardised GAE advantages, and those advantages [n, M]."""
    moving = np.asarray(rollouts.moving)
    advantage = direct_advantages(rollouts, critic, beta, lam)
    z = np.where(moving, (advantage - advantage[moving].mean()) / advantage[moving].std(), 0.0)
    slot = np.asarray(move_slots(maze, rollouts.state, rollouts.states[:, 1:]))
    state = np.asarray(rollouts.state)
    P = np.zeros((len(z),) + maze.successors.shape)
    M = np.zeros_like(P)
    for i, t in zip(*np.nonzero(moving)):
        (P if z[i, t] > 0 else M)[i, state[i, t], slot[i, t]] += z[i, t]
    return P, M, z, slot


def test_ppo_signed_counts_are_per_walk_sums_of_standardised_advantages(maze332, ppo_batch):
    _, rollouts, critic = ppo_batch
    positive, negative = signed_advantage_counts(maze332, rollouts, jnp.asarray(critic), 0.01, 0.95)
    P, M, _, _ = direct_signed_counts(maze332, rollouts, critic, 0.01, 0.95)
    np.testing.assert_allclose(np.asarray(positive), P, atol=2e-4)
    np.testing.assert_allclose(np.asarray(negative), M, atol=2e-4)
    assert P.sum() > 10 and M.sum() < -10 and (P + M).sum() == pytest.approx(0.0, abs=1e-6 * P.sum())


def test_ppo_minibatch_counts_add_the_walks_in_the_minibatch_order(maze332, ppo_batch):
    """The minibatch's (P, M) are the walks' tables added left to right in the order of ``walks`` (the
    bits of ``ordered_sum`` over a gather of them), under jit and vmap; another order of the same walks
    gives the same sums up to rounding only."""
    _, rollouts, critic = ppo_batch
    positive, negative = signed_advantage_counts(maze332, rollouts, jnp.asarray(critic), 0.01, 0.95)
    walks = jnp.asarray(np.random.default_rng(3).permutation(positive.shape[0])[:5], jnp.int32)
    P, M = jax.jit(minibatch_counts)(positive, negative, walks)
    np.testing.assert_array_equal(np.asarray(P), np.asarray(ordered_sum(positive[walks], axis=0)))
    np.testing.assert_array_equal(np.asarray(M), np.asarray(ordered_sum(negative[walks], axis=0)))
    np.testing.assert_allclose(np.asarray(P), np.asarray(positive)[np.asarray(walks)].sum(0), atol=1e-5)
    orders = jnp.stack([walks, walks[::-1]])
    both = jax.jit(jax.vmap(minibatch_counts, in_axes=(None, None, 0)))(positive, negative, orders)
    np.testing.assert_array_equal(np.asarray(both[0][0]), np.asarray(P))
    np.testing.assert_allclose(np.asarray(both[0][1]), np.asarray(P), atol=1e-5)
    single = minibatch_counts(positive, negative, walks[:1])
    np.testing.assert_array_equal(np.asarray(single[1]), np.asarray(negative[walks[0]]))


def test_ppo_passes_fold_vmapped_runs_without_changing_a_run(maze332, ppo_batch):
    """Under vmap the passes fold every run's walks into one list, longest first, on stages of rows
    (40 rows alone: one stage; 80 together: two): a run's advantages, critic and counts are the same
    bits alone and beside a run whose walks are longer (also one critic pass at rate 1, the trainer's
    warm-up: without the barrier in the critic's step XLA simplified it in one-run programs only)."""
    logits, _, critic = ppo_batch
    short = collect(maze332, logits, jax.random.key(8), 40, 300, 600)
    long = collect(maze332, logits, jax.random.key(9), 40, 600, 600)
    assert int(long.length.max()) > int(short.length.max()) + BLOCK and _stage_sizes(80) == [40, 80]

    def passes(rollouts, beta):
        return (*signed_advantage_counts(maze332, rollouts, critic, beta, 0.95),
                fit_critic(jnp.asarray(critic), rollouts, beta, 0.95, 0.5, 2), fit_critic(jnp.asarray(critic), rollouts, beta,
                0.95, 1.0, 1), *advantages(rollouts, critic, beta, 0.95))

    together = jax.jit(jax.vmap(passes))(jax.tree.map(lambda a, b: jnp.stack([a, b]), short, long), jnp.array([0.01, 0.02]))
    for i, (rollouts, beta) in enumerate(((short, 0.01), (long, 0.02))):
        alone = jax.jit(passes)(rollouts, beta)
        for mine, theirs in zip(alone, together):
            np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs[i]))


def test_ppo_passes_compose_with_grad_and_vmap(maze332, ppo_batch):
    """advantages and fit_critic are affine in the critic and beta: their reverse-mode derivatives (also
    vmapped) equal differences of values; the sign-split counts refuse grad with a clear message."""
    _, rollouts, critic = ppo_batch
    critic = jnp.asarray(critic)
    rng = np.random.default_rng(11)
    weight = jnp.asarray(rng.normal(size=rollouts.moving.shape), jnp.float32)
    fit_weight = jnp.asarray(rng.normal(size=critic.shape), jnp.float32)
    step = jnp.asarray(rng.normal(0, 0.1, critic.shape), jnp.float32)

    def advantage_loss(c, beta):
        advantage, returns = advantages(rollouts, c, beta, 0.9)
        return jnp.sum(weight * (advantage + returns))

    def fit_loss(c, beta):
        return jnp.sum(fit_weight * fit_critic(c, rollouts, beta, 0.9, 0.5, 2))

    for loss in (advantage_loss, fit_loss):
        values = jax.jit(jax.vmap(loss))(jnp.stack([critic, critic + step, critic]), jnp.array([0.01, 0.01, 0.02]))
        d_critic, d_beta = jax.jit(jax.grad(loss, argnums=(0, 1)))(critic, 0.01)
        assert float(jnp.sum(d_critic * step)) == pytest.approx(float(values[1] - values[0]), rel=1e-3)
        assert float(d_beta) == pytest.approx(float(values[2] - values[0]) / 0.01, rel=1e-3)
        both = jax.jit(jax.vmap(jax.grad(loss), in_axes=(0, None)))(jnp.stack([critic, critic + step]), 0.01)
        scale = float(jnp.max(jnp.abs(d_critic)))  # affine: the same gradient at both critics, up to float32 rounding
        np.testing.assert_allclose(np.asarray(both), np.stack([np.asarray(d_critic)] * 2), atol=1e-5 * scale)
    with pytest.raises(ValueError, match="signed_advantage_counts is not differentiable"):
        jax.grad(lambda c: signed_advantage_counts(maze332, rollouts, c, 0.01, 0.95)[0].sum())(critic)


def test_ppo_first_gradient_is_the_policy_gradient(maze332, ppo_batch):
    """At theta = theta_old the clipped surrogate's gradient is (1/B) sum A_t grad log pi(m_t | s_t)."""
    logits, rollouts, critic = ppo_batch
    positive, negative = (x.sum(0) for x in signed_advantage_counts(maze332, rollouts, jnp.asarray(critic), 0.01, 0.95))
    old = mazejax.log_probabilities(maze332, jnp.asarray(logits))
    grad = jax.grad(clipped_surrogate, argnums=1)(maze332, jnp.asarray(logits), old, positive, negative, 0.2, 12)
    # independent: sum_t A_t (onehot(m_t) - pi(. | s_t)) over every move of every walk, / B
    pi = np.asarray(mazejax.probabilities(maze332, jnp.asarray(logits)))
    _, _, adv, slot = direct_signed_counts(maze332, rollouts, critic, 0.01, 0.95)
    expected = np.zeros_like(pi, dtype=np.float64)
    state, moving = np.asarray(rollouts.state), np.asarray(rollouts.moving)
    for i, t in zip(*np.nonzero(moving)):
        expected[state[i, t]] -= adv[i, t] * pi[state[i, t]]
        expected[state[i, t], slot[i, t]] += adv[i, t]
    np.testing.assert_allclose(np.asarray(grad), expected / 12, atol=2e-5)
    assert np.abs(expected).max() > 0.1
    same = pg.score_gradient(maze332, jnp.asarray(logits), positive + negative, 12)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(same), atol=1e-6)


def test_ppo_clipped_surrogate_matches_per_move_formula(maze332, ppo_batch):
    """Away from theta_old the surrogate equals sum_t min(rho A, clip(rho) A) / B move by move."""
    logits, rollouts, critic = ppo_batch
    positive, negative = (x.sum(0) for x in signed_advantage_counts(maze332, rollouts, jnp.asarray(critic), 0.01, 0.95))
    old = mazejax.log_probabilities(maze332, jnp.asarray(logits))
    pi_old = np.asarray(mazejax.probabilities(maze332, jnp.asarray(logits)), np.float64)
    _, _, adv, slot = direct_signed_counts(maze332, rollouts, critic, 0.01, 0.95)
    state, moving = np.asarray(rollouts.state), np.asarray(rollouts.moving)
    for seed, clip in ((6, 0.2), (7, 0.05)):
        new = jnp.asarray(logits) + random_logits(maze332, seed, scale=0.4)
        pi_new = np.asarray(mazejax.probabilities(maze332, new), np.float64)
        total = 0.0
        for i, t in zip(*np.nonzero(moving)):
            rho = pi_new[state[i, t], slot[i, t]] / pi_old[state[i, t], slot[i, t]]
            total += min(rho * adv[i, t], np.clip(rho, 1 - clip, 1 + clip) * adv[i, t])
        value = float(clipped_surrogate(maze332, new, old, positive, negative, clip, 12))
        assert value == pytest.approx(total / 12, rel=1e-4)


@pytest.mark.slow
def test_ppo_vmaps_over_keys_hparams_and_padded_mazes_with_one_trace(maze332):
    """One trace per static configuration; a padded maze in a stack gets its own run; it learns."""
    small = mazejax.Maze(2, 2, 1)
    stacked = mazejax.stack([maze332, small])
    assert stacked.capacity != small.capacity
    config = PPOConfig(steps=20, horizon=600, num_rollouts=32, epochs=2, minibatches=4, critic_warmup=2, record_every=10)
    train = chex.assert_max_traces(make_ppo(config), n=2)
    run = jax.jit(jax.vmap(train))
    keys = jax.random.split(jax.random.key(0), 2)
    init = jax.vmap(mazejax.pretrained_logits)(stacked)
    together = run(keys, PPOHParams.create(lr=[0.03, 0.05], clip=[0.2, 0.3]), stacked, init)
    run(keys, PPOHParams.create(lr=[0.01, 0.02], beta=[0.0, 0.1], gae_lambda=[1.0, 0.5], critic_rate=[1.0, 0.1], horizon_scale=[0.0, 1.0]), stacked, init)
    H = np.asarray(together.hitting_time)
    assert H.shape == (2, 3) and H[0, 0] == pytest.approx(275.0) and H[0, -1] < 150
    frozen = ~np.asarray(jax.vmap(mazejax.trainable_moves)(stacked))
    np.testing.assert_array_equal(np.asarray(together.logits)[frozen], np.asarray(init)[frozen])
    alone = jax.jit(train)(keys[1], PPOHParams.create(lr=0.05, clip=0.3), small, mazejax.pretrained_logits(small))
    np.testing.assert_allclose(H[1], np.asarray(alone.hitting_time), rtol=1e-5)
    assert H[1, -1] < 0.8 * H[1, 0]
    S, D = small.capacity.states, small.capacity.out_degree
    np.testing.assert_allclose(np.asarray(together.logits[1])[:S, :D], np.asarray(alone.logits), rtol=1e-5, atol=1e-6)


def test_ppo_public_api_vmaps_over_keys(maze332):
    small = dict(steps=2, num_rollouts=8, epochs=1, minibatches=2, critic_warmup=1, record_every=1)
    H = jax.jit(jax.vmap(lambda k: ppo(maze332, k, **small).hitting_time))(jax.random.split(jax.random.key(0), 2))
    assert H.shape == (2, 3) and np.all(np.asarray(H)[:, 0] == pytest.approx(275.0))
    assert not np.array_equal(np.asarray(H)[0], np.asarray(H)[1])


# ----------------------------------------------------------------------------------------
# Distillation


@pytest.fixture(scope="module")
def teacher332(maze332):
    """A teacher that mostly keeps its direction, as RLVR models do (H = 52.8 against 275 at the base)."""
    return mazejax.typed_logits(maze332, 0.9, 0.95, 0.95, 0.9)


@pytest.mark.slow
def test_teacher_transitions_match_sampled_traces(maze332, teacher332):
    population = np.asarray(jax.jit(teacher_transitions)(maze332, teacher332))
    assert population.sum() == pytest.approx(1.0, rel=1e-12)
    batches = 40
    sample = jax.vmap(lambda k: sample_teacher_transitions(k, maze332, teacher332, 500, 100_000))
    sampled = np.asarray(jax.jit(sample)(jax.random.split(jax.random.key(0), batches)), np.float64)
    np.testing.assert_allclose(sampled.sum((1, 2)), 1.0, rtol=1e-5)
    assert np.all(sampled[:, population == 0] == 0)
    used = population > 0
    z = (sampled.mean(0) - population)[used] / (sampled.std(0)[used] / np.sqrt(batches))
    assert np.max(np.abs(z)) < 4.5 and np.mean(z**2) < 2.0, z


def test_distillation_on_exact_transitions_recovers_the_teacher(maze332, teacher332):
    train = make_distill(DistillConfig(steps=300, num_traces=None, record_every=100))
    hparams = DistillHParams.create(teacher_logits=teacher332)
    result = jax.jit(train)(jax.random.key(0), hparams, maze332, mazejax.pretrained_logits(maze332))
    H_teacher = float(exact.hitting_time(maze332, teacher332))
    assert float(result.hitting_time[0]) == pytest.approx(275.0)
    assert float(result.hitting_time[-1]) == pytest.approx(H_teacher, rel=1e-3)
    student = np.asarray(mazejax.probabilities(maze332, result.logits))
    teacher = np.asarray(mazejax.probabilities(maze332, teacher332))
    visited = np.asarray(exact.expected_visits(maze332, teacher332)).sum(0) > 0
    rows = visited & np.asarray(maze332.trainable)
    np.testing.assert_allclose(student[rows], teacher[rows], atol=2e-3)
    assert np.all(np.diff(np.asarray(result.loss)) < 0)


@pytest.mark.slow
def test_distill_public_api_vmaps_over_keys_and_learns(maze332, teacher332):
    run = jax.jit(jax.vmap(lambda k: distill(maze332, k, teacher332, steps=100, record_every=50)))
    result = run(jax.random.split(jax.random.key(0), 2))
    H_teacher = float(exact.hitting_time(maze332, teacher332))
    np.testing.assert_allclose(np.asarray(result.hitting_time)[:, -1], H_teacher, rtol=0.05)
    frozen = ~np.asarray(mazejax.trainable_moves(maze332))
    np.testing.assert_array_equal(np.asarray(result.logits)[:, frozen], np.broadcast_to(np.asarray(mazejax.pretrained_logits(maze332))[frozen], (2, frozen.sum())))


# ----------------------------------------------------------------------------------------
# Argument checks (before anything compiles)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m: reinforce(m, jax.random.key(0), lr=0.0), "lr"),
        (lambda m: reinforce(m, jax.random.key(0), lr=-1.0), "lr"),
        (lambda m: reinforce(m, jax.random.key(0), beta=-0.1), "beta"),
        (lambda m: reinforce(m, jax.random.key(0), horizon=0), "horizon"),
        (lambda m: reinforce(m, jax.random.key(0), horizon=2**31), "horizon"),
        (lambda m: reinforce(m, jax.random.key(0), horizon=2.5), "horizon"),
        (lambda m: reinforce(m, jax.random.key(0), horizon_scale=-1.0), "horizon_scale"),
        (lambda m: reinforce(m, jax.random.key(0), num_rollouts=0), "num_rollouts"),
        (lambda m: reinforce(m, jax.random.key(0), num_rollouts=1), "num_rollouts"),
        (lambda m: reinforce(m, jax.random.key(0), steps=0), "steps"),
        (lambda m: reinforce(m, jax.random.key(0), steps=10, record_every=3), "record_every"),
        (lambda m: reinforce(m, jax.random.key(0), lr=[0.1, 0.2]), "lr"),
        (lambda m: ppo(m, jax.random.key(0), clip=0.0), "clip"),
        (lambda m: ppo(m, jax.random.key(0), lr=float("nan")), "lr"),
        (lambda m: ppo(m, jax.random.key(0), beta=-1.0), "beta"),
        (lambda m: ppo(m, jax.random.key(0), epochs=0), "epochs"),
        (lambda m: ppo(m, jax.random.key(0), minibatches=0), "minibatches"),
        (lambda m: ppo(m, jax.random.key(0), num_rollouts=64, minibatches=5), "minibatches"),
        (lambda m: ppo(m, jax.random.key(0), num_rollouts=0), "num_rollouts"),
        (lambda m: ppo(m, jax.random.key(0), horizon=0), "horizon"),
        (lambda m: ppo(m, jax.random.key(0), gae_lambda=1.5), "gae_lambda"),
        (lambda m: ppo(m, jax.random.key(0), critic_rate=0.0), "critic_rate"),
        (lambda m: PPOConfig(horizon=100, epochs=1.5), "epochs"),
        (lambda m: make_ppo(PPOConfig()), "horizon must be set"),
        (lambda m: PPOHParams.create(clip=[0.1, -0.1]), "clip"),
        (lambda m: distill(m, jax.random.key(0), mazejax.pretrained_logits(m), lr=0.0), "lr"),
        (lambda m: distill(m, jax.random.key(0), mazejax.pretrained_logits(m), num_traces=0), "num_traces"),
        (lambda m: distill(m, jax.random.key(0), mazejax.pretrained_logits(m), horizon=0), "horizon"),
        (lambda m: distill(m, jax.random.key(0), np.zeros((3, 3), np.float32)), "logits"),
    ],
)
def test_invalid_arguments_raise_before_compiling(maze332, call, match):
    before = base._compiled.cache_info().currsize
    with pytest.raises(ValueError, match=match):
        call(maze332)
    assert base._compiled.cache_info().currsize == before


# ----------------------------------------------------------------------------------------
# Convergence with default settings (slow; the numbers are in the README)


def final_hitting_times(method, maze, seeds, *args):
    """Exact final H of ``method(maze, key, *args)`` with default settings, vmapped over ``seeds`` keys."""
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(2026), i))(jnp.arange(seeds))
    run = jax.jit(jax.vmap(lambda key: method(maze, key, *args).hitting_time[-1]))
    return np.asarray(run(keys))


@pytest.mark.slow
def test_reinforce_defaults_converge_on_332(maze332):
    final = final_hitting_times(reinforce, maze332, 32)
    assert np.sum(final <= 1.15 * BACKTRACKER_332) >= 29, np.sort(final)


@pytest.mark.slow
def test_ppo_defaults_converge_on_332(maze332):
    final = final_hitting_times(ppo, maze332, 32)
    assert np.sum(final <= 1.15 * BACKTRACKER_332) >= 29, np.sort(final)


@pytest.mark.slow
def test_ppo_defaults_converge_on_665():
    final = final_hitting_times(ppo, mazejax.Maze(6, 6, 5), 8)
    assert np.sum(final <= 1.25 * BACKTRACKER_665) >= 7, np.sort(final)


@pytest.mark.slow
def test_distillation_of_the_rlvr_teacher_on_665():
    """Thm 5: the student of the converged RLVR model backtracks efficiently; golden paths alone stay at SFT."""
    maze = mazejax.Maze(6, 6, 5)
    teacher = rlvr_exact(maze, steps=600, lr=0.01, record_every=600)
    H_teacher = float(teacher.hitting_time[-1])
    assert H_teacher == pytest.approx(BACKTRACKER_665, rel=0.01)
    student = distill(maze, jax.random.key(0), teacher.logits)
    assert float(student.hitting_time[-1]) == pytest.approx(H_teacher, rel=0.05)
    control = sft(maze, jax.random.key(0), steps=600, record_every=600)
    assert float(control.hitting_time[-1]) == pytest.approx(SFT_LIMIT_665, rel=0.02)
