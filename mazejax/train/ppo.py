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

import jax
import jax.numpy as jnp
from flax import struct
from jax import lax

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


class Rollouts(struct.PyTreeNode):
    """A batch of walks of the old policy, move by move (``n`` walks, ``M`` = the static horizon).

    Attributes:
      state: int32 [n, M], the state before move ``t`` (0 after the walk ended).
      slot: int32 [n, M], the move slot taken at ``t`` (0 after the walk ended).
      moving: bool [n, M], ``t < length``: move ``t`` was made.
      target: int32 [n], the prompted target slot of each walk.
      length: int32 [n], moves made.
      success: bool [n], the walk entered its target within the horizon.
    """

    state: jax.Array
    slot: jax.Array
    moving: jax.Array
    target: jax.Array
    length: jax.Array
    success: jax.Array


def collect(maze: Maze, logits: jax.Array, key: jax.Array, num_rollouts: int, horizon, max_horizon: int) -> Rollouts:
    """``num_rollouts`` walks of ``logits`` (walk ``i`` depends only on ``key`` and ``i``, see
    :mod:`mazejax.simulate.rng`), recorded move by move.

    ``horizon`` (int32 scalar, may be traced) must not exceed the static ``max_horizon``, the
    buffer length; the move slots are recovered from consecutive states (every successor of a
    state is a distinct state).
    """
    walks = simulate.sample_walks(maze, logits, key, num_rollouts, horizon, record=max_horizon + 1)
    before, after = walks.states[:, :-1], walks.states[:, 1:]
    moving = after >= 0
    state = jnp.where(moving, before, 0)
    successors = jnp.asarray(maze.successors)[state]  # [n, M, D]
    hit = (successors == after[..., None]) & jnp.asarray(maze.valid)[state]
    slot = jnp.where(moving, jnp.argmax(hit, axis=-1), 0).astype(jnp.int32)
    return Rollouts(state, slot, moving, walks.target, walks.length, walks.success)


def advantages(rollouts: Rollouts, critic: jax.Array, beta, gae_lambda) -> tuple[jax.Array, jax.Array]:
    """GAE advantages and lambda-returns of every move, float32 [n, M] each (0 where not moving).

    Args:
      rollouts: the batch.
      critic: float32 [T, S], ``V(target, state)``.
      beta: length penalty; ``gae_lambda``: GAE's lambda (scalars, may be traced).
    """
    n, M = rollouts.state.shape
    target = rollouts.target[:, None]
    value = critic[target, rollouts.state]
    last = jnp.arange(1, M + 1)[None, :] == rollouts.length[:, None]  # move t is the walk's last
    next_state = jnp.concatenate([rollouts.state[:, 1:], jnp.zeros((n, 1), jnp.int32)], axis=1)
    next_value = jnp.where(rollouts.moving & ~last, critic[target, next_state], 0.0)
    reward = (last & rollouts.success[:, None]).astype(jnp.float32) - jnp.asarray(beta, jnp.float32)
    delta = jnp.where(rollouts.moving, reward + next_value - value, 0.0)
    decay = jnp.broadcast_to(jnp.asarray(gae_lambda, jnp.float32), delta.shape)
    _, advantage = lax.associative_scan(
        lambda later, earlier: (later[0] * earlier[0], earlier[1] + earlier[0] * later[1]),
        (decay, delta), reverse=True, axis=1,
    )
    return advantage, jnp.where(rollouts.moving, advantage + value, 0.0)


def fit_critic(critic: jax.Array, rollouts: Rollouts, beta, gae_lambda, rate, sweeps: int) -> jax.Array:
    """Fitted TD(lambda) on one batch: ``sweeps`` passes, each moving ``V`` [T, S] by ``rate`` towards
    the mean lambda-return (:func:`advantages`, with the current ``V``) of every visited (target, state).

    Unvisited cells keep their value. Each pass propagates the rewards about ``1 / (1 - gae_lambda)``
    moves further back from where they occur, and the values stay anchored at the target (where
    ``V = 0``), so the critic has no offset at the end of the walks.
    """
    T, S = critic.shape
    cell = (rollouts.target[:, None] * S + rollouts.state).ravel()
    moving = rollouts.moving.ravel()
    visits = jnp.zeros(T * S, jnp.float32).at[cell].add(moving.astype(jnp.float32)).reshape(T, S)

    def sweep(critic, _):
        _, returns = advantages(rollouts, critic, beta, gae_lambda)
        total = jnp.zeros(T * S, jnp.float32).at[cell].add(jnp.where(moving, returns.ravel(), 0.0)).reshape(T, S)
        step = jnp.asarray(rate, jnp.float32) * (total / jnp.maximum(visits, 1.0) - critic)
        return jnp.where(visits > 0, critic + step, critic), None

    return lax.scan(sweep, critic, None, length=sweeps)[0]


def standardize(advantage: jax.Array, moving: jax.Array) -> jax.Array:
    """``(A - mean) / std`` over the moves made (0 elsewhere, and everywhere if all ``A`` are equal)."""
    count = jnp.maximum(jnp.sum(moving), 1)
    mean = ordered_total(jnp.where(moving, advantage, 0.0)) / count
    centred = jnp.where(moving, advantage - mean, 0.0)
    std = jnp.sqrt(ordered_total(centred**2) / count)
    return jnp.where(std > 0, centred / jnp.where(std > 0, std, 1.0), 0.0)


def signed_advantage_counts(maze: Maze, rollouts: Rollouts, advantage: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(P, M)``, float32 [S, D] each: sums of the positive / negative advantages of each move ``(s, m)``."""
    D = maze.capacity.out_degree
    flat = (rollouts.state * D + rollouts.slot).ravel()
    advantage = jnp.where(rollouts.moving, advantage, 0.0).ravel()
    shape = (maze.capacity.states * D,)
    positive = jnp.zeros(shape, jnp.float32).at[flat].add(jnp.maximum(advantage, 0.0))
    negative = jnp.zeros(shape, jnp.float32).at[flat].add(jnp.minimum(advantage, 0.0))
    return positive.reshape(-1, D), negative.reshape(-1, D)


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
            advantage, _ = advantages(rollouts, critic, hparams.beta, hparams.gae_lambda)
            critic = fit_critic(critic, rollouts, hparams.beta, hparams.gae_lambda, hparams.critic_rate, 1)
            advantage = standardize(advantage, rollouts.moving)
            old_log_probs = log_probabilities(maze, logits)

            def update(carry, walks):
                logits, opt_state = carry
                minibatch = jax.tree.map(lambda x: x[walks], rollouts)
                positive, negative = signed_advantage_counts(maze, minibatch, advantage[walks])
                grad = clipped_surrogate_gradient(maze, logits, old_log_probs, positive, negative, hparams.clip, size)
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
    "signed_advantage_counts",
    "standardize",
]
