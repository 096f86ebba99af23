"""Sampled RLVR by PPO: clipped surrogate, GAE with a tabular critic, epochs of minibatches (docs/model.md §4.2).

Each iteration samples ``num_rollouts`` walks of the current ("old") policy with uniformly drawn
targets and, by default, a horizon of twice its exact ``H`` (the paper's choice). A walk earns
``-beta`` per move and ``+1`` when it enters its target, so its return is the RLVR reward
``r = 1{hit} - beta * length`` (:mod:`mazejax.train.policy_gradient`); a walk cut by the horizon
ends there. Then, as in standard PPO:

* *Advantages* by GAE (undiscounted, ``gae_lambda``): ``delta_t = r_t + V(x, s_{t+1}) - V(x, s_t)``
  (next value 0 after the last move), ``A_t = sum_k gae_lambda^k delta_{t+k}``, standardised over
  the batch's moves. The critic ``V`` is a table over (target, state): the *policy* stays
  target-blind, the critic (a training device) sees the prompted target ``x``, as an LLM critic
  reads the prompt. Walk-level advantages (:mod:`mazejax.train.reinforce`) do not scale: a walk's
  length spreads by about ``H``, which drowns the effect of any single move (for the base model
  at W = K = 6, L = 5 the median per-logit signal-to-noise ratio of a 64-walk REINFORCE batch is
  about 0.002).
* *Critic*: fitted TD(lambda) (:func:`fit_critic`): each pass moves ``V`` towards the mean
  lambda-return of every visited (target, state). It starts from ``V = 0`` with
  ``critic_warmup`` batches of the initial policy, ``warmup_sweeps`` passes each, then takes one
  pass of rate ``critic_rate`` per iteration, after the advantages of that batch are computed.
  Bootstrapping keeps ``V`` anchored at the target (``V = 0``); a Monte Carlo critic (mean return)
  is not, and its per-target error leaks into the advantages of the last moves before the hit,
  favouring forward moves and driving the policy towards the SFT regime.
* *Policy update*: ``epochs`` passes over the batch, each in ``minibatches`` minibatches of walks
  (reshuffled every epoch), one optimizer step per minibatch on the clipped surrogate (maximised)

      L(theta) = (1/B) sum_{walks i} sum_t min(rho_t A_t, clip(rho_t, 1 - eps, 1 + eps) A_t),
      rho_t = pi_theta(m_t | s_t) / pi_old(m_t | s_t).

  For the tabular policy ``rho`` depends on the move ``(s, m)`` only, so
  ``L = (1/B) sum_{s,m} P[s,m] min(rho, 1+eps) + M[s,m] max(rho, 1-eps)`` with ``P`` (``M``)
  the sum of the positive (negative) advantages of the minibatch's moves ``(s, m)``: exactly
  PPO's per-move clipping (:func:`clipped_surrogate`). At ``theta = theta_old`` its gradient is
  the policy gradient ``(1/B) sum_i sum_t A_t d log pi(m_t | s_t) / d theta``.

The walks are recorded move by move (:func:`mazejax.simulate.sample_walks` with a state buffer),
so the horizon has a static maximum ``horizon``; memory is a few ``num_rollouts * horizon`` arrays.

*Defaults* (converge on the paper's small mazes without tuning; W = K = 6, L = 5 goes from
``H`` = 3337 to about 150, against the backtracker's 143, in 200 iterations): 64 walks per
iteration, 4 epochs of 4 minibatches, clip 0.2, ``gae_lambda`` 0.95, ``critic_rate`` 0.5,
``optax.adam`` at 0.03, ``beta = 0.01``. The paper's ``beta = 3e-4`` with a horizon of ``2 H``
makes the reward almost only ``1{hit within 2 H}``, which hardly depends on ``H`` itself (a walk's
length scales with ``H``): at W = K = 6, L = 5 training then stalls at about 170-210.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import struct
from jax import lax
from jax.custom_batching import custom_vmap

from mazejax import exact, simulate, validate
from mazejax.maze import Maze
from mazejax.ordered import F64, minus_product, ordered_sum, ordered_total
from mazejax.policy import log_probabilities, probabilities
from mazejax.train import base
from mazejax.train import policy_gradient as pg

UNIT = validate.Number(0, 1)
POSITIVE_UNIT = validate.Number(0, 1, low_open=True)


@dataclasses.dataclass(frozen=True)
class PPOConfig(base.Config):
    """Static settings of PPO."""

    steps: int = base.steps(200, "iterations; each samples num_rollouts walks and makes epochs * minibatches optimizer steps")
    horizon: int | None = base.setting(None, validate.OptionalInteger(1),
                                       "largest horizon: the move buffers' length, the fixed horizon when "
                                       "horizon_scale = 0 and the cap of the scaled one; None: ceil(max(horizon_scale, 1) "
                                       "* H) of the initial policy (one-run calls) or twice the largest base H of a "
                                       "sweep's grid")
    num_rollouts: int = base.setting(64, pg.ROLLOUTS, "walks per iteration")
    epochs: int = base.setting(4, validate.Integer(1), "passes over each batch")
    minibatches: int = base.setting(4, validate.Integer(1), "minibatches of walks per pass (divides num_rollouts)")
    critic_warmup: int = base.setting(10, validate.Integer(0), "batches of the initial policy that fit the critic first")
    warmup_sweeps: int = base.setting(20, validate.Integer(1), "TD(lambda) passes over each warm-up batch")
    record_every: int = base.record_every(10)
    optimizer: str = base.optimizer("adam")
    train_fork: bool = base.fork_setting()

    def __post_init__(self):
        super().__post_init__()
        if self.num_rollouts % self.minibatches:
            raise ValueError(f"minibatches must divide num_rollouts = {self.num_rollouts}, got {self.minibatches}")


@struct.dataclass
class PPOHParams(base.HParams):
    """Hyperparameters a sweep may vary (array leaves, shape [] per run)."""

    lr: jax.Array = base.hparam(0.03, pg.LR, "learning rate of the policy")
    beta: jax.Array = base.hparam(0.01, pg.BETA, "length penalty of the reward (module docstring: why not 3e-4)")
    clip: jax.Array = base.hparam(0.2, validate.Number(0, low_open=True), "clipping range eps of the ratio")
    gae_lambda: jax.Array = base.hparam(0.95, UNIT, "GAE's lambda; 1 gives Monte Carlo returns minus V")
    critic_rate: jax.Array = base.hparam(0.5, POSITIVE_UNIT, "step of each critic pass towards the lambda-returns")
    horizon_scale: jax.Array = base.hparam(2.0, pg.HORIZON_SCALE, "> 0: horizon min(horizon, ceil(horizon_scale * H)) "
                                           "for the current policy's exact H; 0: the static horizon")


#: Moves per block: the batch is processed in blocks of this many moves (columns), from the last
#: block any walk reaches, so the work after sampling is proportional to the longest walk, not to
#: the buffer (``max_horizon``, sized by the initial policy's H, about 20x the converged one).
BLOCK = 128


class Rollouts(struct.PyTreeNode):
    """A batch of walks of the old policy, move by move (``n`` walks).

    Attributes:
      states: int32 [n, C + 1] with ``C`` = ``max_horizon`` rounded up to whole :data:`BLOCK` s:
        ``states[i, t]`` is the state of walk ``i`` at time ``t`` (``0`` = s0 -> f at ``t = 0``; the
        target entered on a hit; -1 after the walk ended).
      target: int32 [n], the prompted target slot of each walk.
      length: int32 [n], moves made.
      success: bool [n], the walk entered its target within the horizon.
    """

    states: jax.Array
    target: jax.Array
    length: jax.Array
    success: jax.Array

    @property
    def moving(self) -> jax.Array:
        """bool [n, C]: ``t < length``, move ``t`` was made."""
        return self.states[:, 1:] >= 0

    @property
    def state(self) -> jax.Array:
        """int32 [n, C]: the state before move ``t`` (0 after the walk ended)."""
        return jnp.where(self.moving, self.states[:, :-1], 0)


def collect(maze: Maze, logits: jax.Array, key: jax.Array, num_rollouts: int, horizon, max_horizon: int) -> Rollouts:
    """``num_rollouts`` walks of ``logits`` (walk ``i`` depends only on ``key`` and ``i``, see
    :mod:`mazejax.simulate.rng`), recorded move by move.

    ``horizon`` (int32 scalar, may be traced) must not exceed the static ``max_horizon``.
    """
    columns = -(-max_horizon // BLOCK) * BLOCK
    walks = simulate.sample_walks(maze, logits, key, num_rollouts, horizon, record=columns + 1)
    return Rollouts(walks.states, walks.target, walks.length, walks.success)


def move_slots(maze: Maze, before: jax.Array, after: jax.Array) -> jax.Array:
    """int32, the move slot that leads from state ``before`` to state ``after`` (0 where ``after < 0``:
    no move); every successor of a state is a distinct state."""
    successors = jnp.asarray(maze.successors)[before]  # [..., D]
    hit = (successors == after[..., None]) & jnp.asarray(maze.valid)[before]
    return jnp.where(after >= 0, jnp.argmax(hit, axis=-1), 0).astype(jnp.int32)


@custom_vmap
def _batch_max(blocks: jax.Array) -> jax.Array:
    """``blocks`` (int32 scalar); under ``vmap``, the largest over the batch, *unbatched*.

    A loop whose trip count is batched runs until every run is done and, at every iteration,
    selects each carry between the runs still looping and those done: a full copy of every carry
    per iteration (the per-walk counts are ``n * S * D * 2`` floats). With the batch's largest
    count the loop is a plain loop; each run's extra iterations see only blocks past its walks'
    ends, whose moves are all zero, so its results do not depend on the batch."""
    return blocks


@_batch_max.def_vmap
def _batch_max_rule(axis_size, in_batched, blocks):
    return (jnp.max(blocks) if in_batched[0] else blocks), False


def _blocks_reached(rollouts: Rollouts) -> jax.Array:
    """int32 scalar: the blocks of :data:`BLOCK` moves that the batch's longest walk reaches (under
    ``vmap``, the most over the batch, :func:`_batch_max`)."""
    return _batch_max((jnp.max(rollouts.length) + BLOCK - 1) // BLOCK)


class _Block(NamedTuple):
    """One block of :data:`BLOCK` moves of every walk: columns ``start ... start + BLOCK - 1``."""

    start: jax.Array  # int32 scalar
    moving: jax.Array  # bool [n, BLOCK]
    cell: jax.Array  # int32 [n, BLOCK], (target, state before the move) of the critic, flattened
    advantage: jax.Array  # float32 [n, BLOCK], GAE (0 where not moving)
    returns: jax.Array  # float32 [n, BLOCK], lambda-return = advantage + V (0 where not moving)


def _reverse_blocks(rollouts: Rollouts, critic: jax.Array, beta, gae_lambda, accumulate, acc):
    """Fold ``accumulate(acc, block)`` over the batch's blocks (:class:`_Block`), from the last block
    any walk reaches back to the first: GAE runs backwards in time, each block's advantages continue
    from the next block's first column. Blocks past every walk's end are never touched.

    Per move: ``delta_t = r_t + V(x, s_{t+1}) - V(x, s_t)`` (next value 0 after the last move),
    ``A_t = delta_t + gae_lambda A_{t+1}``, the reward ``r_t = 1{hit at t} - beta``.
    """
    n = rollouts.target.shape[0]
    values = critic.ravel()
    row = rollouts.target[:, None] * critic.shape[1]
    beta = jnp.asarray(beta, jnp.float32)
    decay = jnp.full((n, BLOCK + 1), jnp.asarray(gae_lambda, jnp.float32))
    blocks = _blocks_reached(rollouts)

    def body(i, carry):
        following, acc = carry
        start = (blocks - 1 - i) * BLOCK
        window = lax.dynamic_slice_in_dim(rollouts.states, start, BLOCK + 1, axis=1)
        after = window[:, 1:]
        moving = after >= 0
        last = (start + 1 + jnp.arange(BLOCK, dtype=jnp.int32))[None, :] == rollouts.length[:, None]
        cell = row + jnp.where(moving, window[:, :-1], 0)
        value = values[cell]
        next_value = jnp.where(moving & ~last, values[row + jnp.maximum(after, 0)], 0.0)
        reward = (last & rollouts.success[:, None]).astype(jnp.float32) - beta
        delta = jnp.where(moving, reward + next_value - value, 0.0)
        _, advantage = lax.associative_scan(
            lambda later, earlier: (later[0] * earlier[0], earlier[1] + earlier[0] * later[1]),
            (decay, jnp.concatenate([delta, following[:, None]], axis=1)), reverse=True, axis=1,
        )
        advantage = advantage[:, :-1]
        block = _Block(start, moving, cell, advantage, jnp.where(moving, advantage + value, 0.0))
        return advantage[:, 0], accumulate(acc, block)

    return lax.fori_loop(0, blocks, body, (jnp.zeros(n, jnp.float32), acc))[1]


class _Sums(NamedTuple):
    """What one pass over a batch accumulates."""

    cells: jax.Array  # complex64 [T * S]: per (target, state), the sum of the lambda-returns of its moves + 1j * the moves
    first: jax.Array  # float64 [n, BLOCK], sums of the advantages over the blocks
    second: jax.Array  # float64 [n, BLOCK], sums of their squares
    advantage: jax.Array | None  # float32 [n, C], the advantage of every move (0 where not moving), if kept


def _sums(rollouts: Rollouts, critic: jax.Array, beta, gae_lambda, keep: bool = False) -> _Sums:
    """One pass: the critic's targets and the advantages' first two moments (:class:`_Sums`), and
    with ``keep`` every move's advantage.

    The moments are summed elementwise across blocks into [n, BLOCK] (float64: a square of a float32 is
    exact there), then in a fixed order (:func:`_standardized`), so their bits depend only on the batch.
    """

    def accumulate(acc, block):
        pairs = lax.complex(block.returns, block.moving.astype(jnp.float32)).ravel()  # one scatter for both sums
        advantage = block.advantage.astype(F64)
        kept = None if acc.advantage is None else lax.dynamic_update_slice_in_dim(
            acc.advantage, block.advantage, block.start, axis=1)
        return _Sums(acc.cells.at[block.cell.ravel()].add(pairs), acc.first + advantage,
                     acc.second + advantage * advantage, kept)

    zeros = jnp.zeros((rollouts.target.shape[0], BLOCK), F64)
    kept = jnp.zeros(rollouts.moving.shape, jnp.float32) if keep else None
    return _reverse_blocks(rollouts, critic, beta, gae_lambda, accumulate,
                           _Sums(jnp.zeros(critic.size, jnp.complex64), zeros, zeros, kept))


def advantages(rollouts: Rollouts, critic: jax.Array, beta, gae_lambda) -> tuple[jax.Array, jax.Array]:
    """GAE advantages and lambda-returns of every move, float32 [n, C] each (0 where not moving).

    Args:
      rollouts: the batch.
      critic: float32 [T, S], ``V(target, state)``.
      beta: length penalty; ``gae_lambda``: GAE's lambda (scalars, may be traced).
    """
    advantage = _sums(rollouts, critic, beta, gae_lambda, keep=True).advantage
    value = critic[rollouts.target[:, None], rollouts.state]
    return advantage, jnp.where(rollouts.moving, advantage + value, 0.0)


def _critic_step(critic: jax.Array, sums: _Sums, rate) -> jax.Array:
    """``V`` moved by ``rate`` towards the mean lambda-return of every visited (target, state)."""
    returns, visits = sums.cells.real.reshape(critic.shape), sums.cells.imag.reshape(critic.shape)
    target = returns / jnp.maximum(visits, 1.0)
    return jnp.where(visits > 0, critic + jnp.asarray(rate, jnp.float32) * (target - critic), critic)


def fit_critic(critic: jax.Array, rollouts: Rollouts, beta, gae_lambda, rate, sweeps: int) -> jax.Array:
    """Fitted TD(lambda) on one batch: ``sweeps`` passes, each moving ``V`` [T, S] by ``rate`` towards
    the mean lambda-return (:func:`advantages`, with the current ``V``) of every visited (target, state).

    Unvisited cells keep their value. Each pass propagates the rewards about ``1 / (1 - gae_lambda)``
    moves further back from where they occur, and the values stay anchored at the target (where
    ``V = 0``), so the critic has no offset at the end of the walks.
    """

    def sweep(critic, _):
        return _critic_step(critic, _sums(rollouts, critic, beta, gae_lambda), rate), None

    return lax.scan(sweep, critic, None, length=sweeps)[0]


def _standardized(sums: _Sums, rollouts: Rollouts) -> jax.Array:
    """float32 [n, C]: ``(A - mean) / std`` over the moves made (0 elsewhere, and everywhere if all
    ``A`` are equal), from a kept pass (:func:`_sums`)."""
    count = jnp.maximum(jnp.sum(rollouts.length), 1).astype(F64)
    mean = ordered_total(sums.first) / count
    std = jnp.sqrt(jnp.maximum(ordered_total(sums.second) / count - mean * mean, 0.0)).astype(jnp.float32)
    centred = sums.advantage - mean.astype(jnp.float32)
    return jnp.where(rollouts.moving & (std > 0), centred / jnp.where(std > 0, std, 1.0), 0.0)


def _walk_counts(maze: Maze, rollouts: Rollouts, standardized: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per walk, the sums of the positive / negative ``standardized`` advantages [n, C] of each move
    ``(s, m)``: float32 [n, S, D] each. Blocks past every walk's end are never touched."""
    n = rollouts.target.shape[0]
    S, D = maze.capacity.states, maze.capacity.out_degree
    offset = (jnp.arange(n, dtype=jnp.int32) * (S * D))[:, None]

    def body(i, counts):
        window = lax.dynamic_slice_in_dim(rollouts.states, i * BLOCK, BLOCK + 1, axis=1)
        before, after = jnp.maximum(window[:, :-1], 0), window[:, 1:]
        flat = (offset + before * D + move_slots(maze, before, after)).ravel()
        z = lax.dynamic_slice_in_dim(standardized, i * BLOCK, BLOCK, axis=1).ravel()
        return counts.at[2 * flat + (z < 0)].add(z)  # one scatter: entry 2 k sums the positive, 2 k + 1 the negative

    counts = lax.fori_loop(0, _blocks_reached(rollouts), body, jnp.zeros(n * S * D * 2, jnp.float32))
    return counts[0::2].reshape(n, S, D), counts[1::2].reshape(n, S, D)


def signed_advantage_counts(maze: Maze, rollouts: Rollouts, critic, beta, gae_lambda) -> tuple[jax.Array, jax.Array]:
    """``(P, M)``, float32 [n, S, D] each: for each walk, the sums of the positive / negative
    standardised GAE advantages (mean 0, std 1 over the batch's moves) of each move ``(s, m)``.

    A minibatch's counts are the sums over its walks; :func:`clipped_surrogate` takes them.
    """
    return _walk_counts(maze, rollouts, _standardized(_sums(rollouts, critic, beta, gae_lambda, keep=True), rollouts))


def clipped_surrogate(maze: Maze, logits, old_log_probs, positive, negative, clip, num_walks: int) -> jax.Array:
    """PPO's clipped surrogate (to maximise), per walk; scalar in float32.

    Args:
      maze: the maze.
      logits: float [S, D], the policy being optimised.
      old_log_probs: float [S, D], ``log pi_old`` (:func:`mazejax.log_probabilities`).
      positive, negative: float32 [S, D], :func:`signed_advantage_counts` of the minibatch.
      clip: the clipping range ``eps`` > 0.
      num_walks: walks in the minibatch ``B`` (the mean's denominator).
    """
    used, ratio = _ratio(maze, logits, old_log_probs, positive, negative)
    clip = jnp.asarray(clip, jnp.float32)
    total = positive * jnp.minimum(ratio, 1.0 + clip) + negative * jnp.maximum(ratio, 1.0 - clip)
    return ordered_total(jnp.where(used, total, 0.0)) / num_walks


def _ratio(maze, logits, old_log_probs, positive, negative):
    used = (positive != 0) | (negative != 0)
    log_ratio = log_probabilities(maze, logits) - old_log_probs
    return used, jnp.exp(jnp.where(used, log_ratio, 0.0)).astype(jnp.float32)


def clipped_surrogate_gradient(maze: Maze, logits, old_log_probs, positive, negative, clip, num_walks: int) -> jax.Array:
    """The gradient of :func:`clipped_surrogate` in ``logits``, float32 [S, D], in closed form.

    With ``c = P 1{rho < 1 + eps} + M 1{rho > 1 - eps}`` the slope of the surrogate in each move's
    ratio, and ``d rho[s, m'] / d theta[s, m] = rho[s, m'] (1{m = m'} - pi(m | s))``:
    ``dL / dtheta[s, m] = (c rho)[s, m] - pi(m | s) sum_m' (c rho)[s, m']`` (over ``B``). Written out
    (rather than by autodiff) so its row sums run in a fixed order and its products are exact
    (:mod:`mazejax.ordered`).
    """
    used, ratio = _ratio(maze, logits, old_log_probs, positive, negative)
    clip = jnp.asarray(clip, jnp.float32)
    slope = jnp.where(used, positive * (ratio < 1.0 + clip) + negative * (ratio > 1.0 - clip), 0.0)
    slope = slope.astype(F64) * ratio.astype(F64)  # exact in float64: a fused multiply-add can't change its sums
    total = ordered_sum(slope, axis=-1, keepdims=True).astype(jnp.float32)
    pi = probabilities(maze, logits.astype(jnp.float32))
    return (minus_product(slope, pi, total) / num_walks).astype(jnp.float32)


def make_ppo(config: PPOConfig):
    """Build the PPO trainer (``config.horizon`` must be set: it is a buffer length).

    Returns ``train(key, hparams, maze, init_logits) -> TrainResult``, pure and traceable:
    iteration ``t`` uses ``fold_in(key, t)``; ``hparams`` a :class:`PPOHParams` (leaves of shape []
    per run), ``maze`` any :class:`~mazejax.Maze` (vmap over :func:`mazejax.stack`-ed mazes),
    ``init_logits`` [S, D]. Each iteration costs one exact ``H`` (the horizon rule and the
    records) and ``num_rollouts`` walks, plus ``critic_warmup`` batches once.
    """
    validate.require_x64("mazejax.train.ppo")
    if config.horizon is None:
        raise ValueError("PPOConfig.horizon must be set to build the trainer (it sizes the move buffers); "
                         "mazejax.train.ppo() derives it from the initial policy")
    horizon, num_rollouts = config.horizon, config.num_rollouts
    size = num_rollouts // config.minibatches

    def train(key: jax.Array, hparams: PPOHParams, maze: Maze, init_logits: jax.Array) -> base.TrainResult:
        validate.require_x64("mazejax.train.ppo")
        tx = base.trainable_optimizer(config, hparams.lr, maze)
        beta = hparams.beta.astype(base.F64)

        warm_key, key = jax.random.split(key)

        def warm_critic(logits):
            """The critic of the initial policy: TD(lambda) from V = 0 over ``critic_warmup`` batches."""
            rollout_horizon = pg.rollout_horizon(horizon, hparams.horizon_scale, exact.hitting_time(maze, logits))

            def batch(critic, index):
                rollouts = collect(maze, logits, jax.random.fold_in(warm_key, index), num_rollouts, rollout_horizon, horizon)
                return fit_critic(critic, rollouts, hparams.beta, hparams.gae_lambda, 1.0, config.warmup_sweeps), None

            empty = jnp.zeros((maze.capacity.targets, maze.capacity.states), jnp.float32)
            return lax.scan(batch, empty, jnp.arange(config.critic_warmup, dtype=jnp.int32))[0]

        def measure(carry):
            hitting_time = exact.hitting_time(maze, carry[0])
            return {"hitting_time": hitting_time, "loss": beta * hitting_time - 1.0}

        def step(carry, t):
            logits, opt_state, critic = carry
            measured = measure(carry)
            rollout_key, shuffle_key = jax.random.split(jax.random.fold_in(key, t))
            rollout_horizon = pg.rollout_horizon(horizon, hparams.horizon_scale, measured["hitting_time"])
            rollouts = collect(maze, logits, rollout_key, num_rollouts, rollout_horizon, horizon)
            sums = _sums(rollouts, critic, hparams.beta, hparams.gae_lambda, keep=True)
            positive, negative = _walk_counts(maze, rollouts, _standardized(sums, rollouts))
            critic = _critic_step(critic, sums, hparams.critic_rate)
            old_log_probs = log_probabilities(maze, logits)

            def update(carry, walks):
                logits, opt_state = carry
                grad = clipped_surrogate_gradient(maze, logits, old_log_probs, ordered_sum(positive[walks], axis=0),
                                                  ordered_sum(negative[walks], axis=0), hparams.clip, size)
                return base.descend(tx, logits, opt_state, -grad, maze, base.train_fork(config)), None

            def epoch(carry, epoch_key):
                order = jax.random.permutation(epoch_key, num_rollouts).reshape(config.minibatches, size)
                return lax.scan(update, carry, order)

            (logits, opt_state), _ = lax.scan(epoch, (logits, opt_state), jax.random.split(shuffle_key, config.epochs))
            return (logits, opt_state, critic), measured

        critic = warm_critic(init_logits)
        (logits, _, _), records = base.train_loop(
            step, (init_logits, tx.init(init_logits), critic), steps=config.steps, record_every=config.record_every,
            probe=lambda carry: {"types": base.exact_types(maze, carry[0])}, measure=measure,
        )
        return base.result(logits, records, config)

    return train


def default_horizon(maze: Maze, init_logits, horizon_scale: float) -> int:
    """``ceil(max(horizon_scale, 1) * H)`` of the initial policy (host int): room for the scaled horizon.

    Needs a concrete maze and concrete logits (it is a static size).
    """
    if validate.is_traced(maze) or validate.is_traced(init_logits):
        raise ValueError("horizon must be given when the maze or the initial logits are traced (it sets a buffer size)")
    hitting_time = float(exact.hitting_time(maze, init_logits))
    if not math.isfinite(hitting_time):
        raise ValueError("the initial policy misses a target (H = inf): pass horizon explicitly")
    return max(1, math.ceil(max(float(horizon_scale), 1.0) * hitting_time))


PPO = base.Trainer("ppo", PPOConfig, PPOHParams, make_ppo,
                   "PPO (clipped surrogate, tabular TD(lambda) critic, GAE), horizon twice the current exact H (Adam)")


def ppo(maze: Maze, key: jax.Array, *, init_logits: jax.Array | None = None, **settings) -> base.TrainResult:
    """PPO on one maze (see :func:`make_ppo`); ``settings``: fields of :class:`PPOConfig` and
    :class:`PPOHParams`. Without ``horizon`` the buffers hold ``ceil(max(horizon_scale, 1) * H)`` moves
    of the initial policy (:func:`default_horizon`; the maze and initial logits must be concrete).
    Compiled once per configuration; vmap over ``key`` for seeds."""
    if settings.get("horizon") is None:
        with jax.ensure_compile_time_eval():  # the default horizon needs concrete initial logits, also under jit
            init_logits = base.initial_logits(maze, init_logits)
            scale = settings.get("horizon_scale", PPOHParams.__dataclass_fields__["horizon_scale"].default)
            settings["horizon"] = default_horizon(maze, init_logits, scale)
    return PPO.run(maze, key, init_logits, **settings)


__all__ = [
    "BLOCK",
    "PPO",
    "PPOConfig",
    "PPOHParams",
    "Rollouts",
    "advantages",
    "clipped_surrogate",
    "clipped_surrogate_gradient",
    "collect",
    "default_horizon",
    "fit_critic",
    "make_ppo",
    "ppo",
    "move_slots",
    "signed_advantage_counts",
]
