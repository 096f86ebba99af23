"""Sampled RLVR by PPO: clipped surrogate, GAE with a tabular critic, epochs of minibatches (SPEC 4.2).

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

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax import lax

from mazejax import _checks, exact, simulate
from mazejax.maze import Maze
from mazejax.train import common
from mazejax.train import policy_gradient as pg


@struct.dataclass
class PPOHParams:
    """Hyperparameters a sweep may vary (array leaves; shape [] per run).

    Attributes:
      lr: learning rate of the policy, > 0 (float).
      beta: length penalty of the reward, >= 0 (float).
      clip: the clipping range ``eps`` of the ratio, > 0 (float).
      gae_lambda: GAE's ``lambda`` in [0, 1] (float); 1 gives Monte Carlo returns minus ``V``.
      critic_rate: step of each critic pass towards the batch's lambda-returns, in (0, 1] (float).
      horizon_scale: float >= 0; > 0: horizon ``min(horizon, ceil(horizon_scale * H))`` with ``H``
        the exact hitting time of the current policy; 0: the static ``horizon`` (see :func:`make_ppo`).
    """

    lr: jax.Array
    beta: jax.Array
    clip: jax.Array
    gae_lambda: jax.Array
    critic_rate: jax.Array
    horizon_scale: jax.Array

    @classmethod
    def create(
        cls, lr=0.03, beta=0.01, clip=0.2, gae_lambda=0.95, critic_rate=0.5, horizon_scale=2.0, dtype=np.float32
    ) -> "PPOHParams":
        """Validated hyperparameters broadcast to one shape (scalars for one run, arrays of sweep
        values for a vmap over runs), in ``dtype``."""
        _checks.positive_float("lr", lr)
        _checks.positive_float("beta", beta, allow_zero=True)
        _checks.positive_float("clip", clip)
        check_unit("gae_lambda", gae_lambda, allow_zero=True)
        check_unit("critic_rate", critic_rate, allow_zero=False)
        _checks.positive_float("horizon_scale", horizon_scale, allow_zero=True)
        values = np.broadcast_arrays(*(np.asarray(v, dtype) for v in (lr, beta, clip, gae_lambda, critic_rate, horizon_scale)))
        return cls(*values)


def check_unit(name: str, value, *, allow_zero: bool) -> None:
    """Raise unless a concrete ``value`` lies in [0, 1] (``(0, 1]`` without ``allow_zero``)."""
    if _checks.is_traced(value):
        return
    values = np.asarray(value, dtype=float)
    low = values >= 0 if allow_zero else values > 0
    if not (np.all(np.isfinite(values)) and np.all(low) and np.all(values <= 1)):
        raise ValueError(f"{name} must be a number in {'[0, 1]' if allow_zero else '(0, 1]'}, got {value!r}")


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
    """``num_rollouts`` walks of ``logits`` (walk ``i`` with ``fold_in(key, i)``), recorded move by move.

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
    mean = jnp.sum(jnp.where(moving, advantage, 0.0)) / count
    centred = jnp.where(moving, advantage - mean, 0.0)
    std = jnp.sqrt(jnp.sum(centred**2) / count)
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
      old_log_probs: float [S, D], ``log pi_old`` (:func:`policy_gradient.log_probabilities`).
      positive, negative: float32 [S, D], :func:`signed_advantage_counts` of the minibatch.
      clip: the clipping range ``eps`` > 0.
      num_walks: walks in the minibatch ``B`` (the mean's denominator).
    """
    used = (positive != 0) | (negative != 0)
    log_ratio = pg.log_probabilities(maze, logits) - old_log_probs
    ratio = jnp.exp(jnp.where(used, log_ratio, 0.0)).astype(jnp.float32)
    clip = jnp.asarray(clip, jnp.float32)
    total = positive * jnp.minimum(ratio, 1.0 + clip) + negative * jnp.maximum(ratio, 1.0 - clip)
    return jnp.sum(jnp.where(used, total, 0.0)) / num_walks


def make_ppo(
    steps: int,
    horizon: int,
    num_rollouts: int = 64,
    *,
    epochs: int = 4,
    minibatches: int = 4,
    critic_warmup: int = 10,
    warmup_sweeps: int = 20,
    record_every: int = 1,
    optimizer: common.OptimizerFactory = optax.adam,
):
    """Build the PPO trainer for a static configuration.

    Args:
      steps: iterations (static); each samples ``num_rollouts`` walks and makes
        ``epochs * minibatches`` optimizer steps.
      horizon: the largest horizon (static, >= 1): the length of the move buffers, the fixed
        horizon when ``hparams.horizon_scale == 0`` and the cap of the scaled one otherwise.
      num_rollouts: walks per iteration (static), >= 2.
      epochs: passes over each batch (static), >= 1.
      minibatches: minibatches of walks per pass (static), >= 1, dividing ``num_rollouts``.
      critic_warmup: batches of the initial policy that fit the critic before training (static, >= 0).
      warmup_sweeps: TD(lambda) passes over each warm-up batch (static, >= 1).
      record_every: record exact H, the loss ``beta * H - 1`` (``-J`` with an unlimited horizon)
        and ``a, b, c, d`` every this many iterations (static; divides ``steps``).
      optimizer: ``lr -> optax.GradientTransformation`` (static); it only sees trainable logits.
        Its state, like the critic, carries over from one batch to the next.

    Returns:
      ``train(key, hparams, maze, init_logits) -> TrainResult``, pure and traceable: iteration
      ``t`` uses ``fold_in(key, t)``; ``hparams`` a :class:`PPOHParams` (leaves of shape [] per
      run), ``maze`` any :class:`~mazejax.Maze` (vmap over :func:`mazejax.stack`-ed mazes),
      ``init_logits`` [S, D]. Each iteration costs one exact ``H`` (the horizon rule and the
      records) and ``num_rollouts`` walks, plus ``critic_warmup`` batches once. Compile it (and any vmap of it) with
      :func:`mazejax.train.x64_jit`.
    """
    steps, record_every = common.check_schedule(steps, record_every)
    pg.check_horizon(horizon)
    horizon = int(horizon)
    num_rollouts = pg.check_rollouts(num_rollouts)
    epochs = _checks.positive_int("epochs", epochs)
    minibatches = _checks.positive_int("minibatches", minibatches)
    critic_warmup = _checks.positive_int("critic_warmup", critic_warmup, minimum=0)
    warmup_sweeps = _checks.positive_int("warmup_sweeps", warmup_sweeps)
    if num_rollouts % minibatches:
        raise ValueError(f"minibatches must divide num_rollouts = {num_rollouts}, got {minibatches}")
    size = num_rollouts // minibatches

    @common.in_x64
    def train(key: jax.Array, hparams: PPOHParams, maze: Maze, init_logits: jax.Array) -> common.TrainResult:
        tx = common.trainable_optimizer(optimizer, hparams.lr, maze)
        beta = hparams.beta.astype(common.F64)

        warm_key, key = jax.random.split(key)

        def warm_critic(logits):
            """The critic of the initial policy: TD(lambda) from V = 0 over ``critic_warmup`` batches."""
            rollout_horizon = pg.rollout_horizon(horizon, hparams.horizon_scale, common.exact_hitting_time(maze, logits))

            def batch(critic, index):
                rollouts = collect(maze, logits, jax.random.fold_in(warm_key, index), num_rollouts, rollout_horizon, horizon)
                return fit_critic(critic, rollouts, hparams.beta, hparams.gae_lambda, 1.0, warmup_sweeps), None

            empty = jnp.zeros((maze.capacity.targets, maze.capacity.states), jnp.float32)
            return lax.scan(batch, empty, jnp.arange(critic_warmup))[0]

        def measure(carry):
            hitting_time = common.exact_hitting_time(maze, carry[0])
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
            old_log_probs = pg.log_probabilities(maze, logits)

            def update(carry, walks):
                logits, opt_state = carry
                minibatch = jax.tree.map(lambda x: x[walks], rollouts)
                positive, negative = signed_advantage_counts(maze, minibatch, advantage[walks])
                grad = jax.grad(clipped_surrogate, argnums=1)(
                    maze, logits, old_log_probs, positive, negative, hparams.clip, size
                )
                updates, opt_state = tx.update(-grad, opt_state, logits)
                return (optax.apply_updates(logits, updates), opt_state), None

            def epoch(carry, epoch_key):
                order = jax.random.permutation(epoch_key, num_rollouts).reshape(minibatches, size)
                return lax.scan(update, carry, order)

            (logits, opt_state), _ = lax.scan(epoch, (logits, opt_state), jax.random.split(shuffle_key, epochs))
            return (logits, opt_state, critic), measured

        def probe(carry):
            return {"types": common.exact_types(maze, carry[0])}

        critic = warm_critic(init_logits)
        (logits, _, _), records = common.train_loop(
            step, (init_logits, tx.init(init_logits), critic), steps=steps, record_every=record_every,
            probe=probe, measure=measure,
        )
        return common.result(logits, records, steps, record_every)

    return train


def default_horizon(maze: Maze, init_logits, horizon_scale: float) -> int:
    """``ceil(max(horizon_scale, 1) * H)`` of the initial policy (host int): room for the scaled horizon.

    Needs a concrete maze and concrete logits (it is a static size).
    """
    if _checks.is_traced(maze) or _checks.is_traced(init_logits):
        raise ValueError("horizon must be given when the maze or the initial logits are traced (it sets a buffer size)")
    hitting_time = float(exact.hitting_time(maze, init_logits))
    if not math.isfinite(hitting_time):
        raise ValueError("the initial policy misses a target (H = inf): pass horizon explicitly")
    return max(1, math.ceil(max(horizon_scale, 1.0) * hitting_time))


def ppo(
    maze: Maze,
    key: jax.Array,
    *,
    steps: int = 200,
    lr: float = 0.03,
    beta: float = 0.01,
    clip: float = 0.2,
    gae_lambda: float = 0.95,
    critic_rate: float = 0.5,
    num_rollouts: int = 64,
    epochs: int = 4,
    minibatches: int = 4,
    critic_warmup: int = 10,
    warmup_sweeps: int = 20,
    horizon: int | None = None,
    horizon_scale: float = 2.0,
    record_every: int = 10,
    init_logits: jax.Array | None = None,
    optimizer: common.OptimizerFactory = optax.adam,
) -> common.TrainResult:
    """PPO on one maze (see :func:`make_ppo`); compiled once per static configuration.

    Args:
      maze: the maze.
      key: PRNG key (vmap over it for seeds).
      steps, num_rollouts, epochs, minibatches, critic_warmup, warmup_sweeps, record_every,
        optimizer: static, see :func:`make_ppo`.
      horizon: static maximum horizon; default ``ceil(max(horizon_scale, 1) * H)`` of the initial
        policy (:func:`default_horizon`; the maze and initial logits must then be concrete).
      lr, beta, clip, gae_lambda, critic_rate, horizon_scale: see :class:`PPOHParams` (default
        horizon: twice the current exact ``H``, the paper's choice).
      init_logits: [S, D]; default the pretrained model (float32).

    Returns:
      :class:`~mazejax.train.TrainResult` (``.logits``, exact ``.hitting_time`` every
      ``record_every`` iterations). Inside ``jax.jit``/``vmap`` compile with x64 enabled
      (:func:`mazejax.train.x64_jit`), as for every trainer.
    """
    steps, record_every = common.check_schedule(steps, record_every)
    for name, value in (("lr", lr), ("beta", beta), ("clip", clip), ("gae_lambda", gae_lambda),
                        ("critic_rate", critic_rate), ("horizon_scale", horizon_scale)):
        common.check_scalar(name, value)
    with jax.ensure_compile_time_eval():  # the default horizon needs concrete initial logits, also under jit
        init_logits = common.initial_logits(maze, init_logits)
        hparams = PPOHParams.create(lr, beta, clip, gae_lambda, critic_rate, horizon_scale, dtype=init_logits.dtype)
        if horizon is None:
            horizon = default_horizon(maze, init_logits, float(horizon_scale))
    train = common.compiled(
        make_ppo, steps, horizon, num_rollouts, epochs=epochs, minibatches=minibatches, critic_warmup=critic_warmup,
        warmup_sweeps=warmup_sweeps, record_every=record_every, optimizer=optimizer,
    )
    return train(key, hparams, maze, init_logits)


__all__ = [
    "PPOHParams",
    "Rollouts",
    "advantages",
    "clipped_surrogate",
    "collect",
    "default_horizon",
    "fit_critic",
    "make_ppo",
    "ppo",
    "signed_advantage_counts",
    "standardize",
]
