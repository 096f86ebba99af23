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
The work after sampling follows the moves made, not the buffer: each iteration makes two passes
over its walks in blocks of :data:`BLOCK` moves (one for the advantages, the critic's targets and
the standardisation, one for the per-walk signed counts), and under ``vmap`` the runs' walks are
folded into one list sorted by length, each block processed on the rows still moving there ("The
passes over a batch" below). At step 0 the critic's warm-up batches run through the same sampler.

*Defaults* (converge on the paper's small mazes without tuning; W = K = 6, L = 5 goes from
``H`` = 3337 to about 150, against the backtracker's 143, in 200 iterations): 64 walks per
iteration, 4 epochs of 4 minibatches, clip 0.2, ``gae_lambda`` 0.95, ``critic_rate`` 0.5,
``optax.adam`` at 0.03, ``beta = 0.01``. The paper's ``beta = 3e-4`` with a horizon of ``2 H``
makes the reward almost only ``1{hit within 2 H}``, which hardly depends on ``H`` itself (a walk's
length scales with ``H``): at W = K = 6, L = 5 training then stalls at about 170-210.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
from flax import struct
from jax import lax

from mazejax import exact, simulate, validate
from mazejax.simulate import common
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


#: Moves per block of the passes over a batch (see "The passes over a batch" below): the work after
#: sampling follows the walks' lengths, not the buffer (``max_horizon``, sized by the initial
#: policy's H, about 20x the converged one).
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
    walks = simulate.sample_walks(maze, logits, key, num_rollouts, horizon, record=_columns(max_horizon) + 1)
    return Rollouts(walks.states, walks.target, walks.length, walks.success)


def _columns(max_horizon: int) -> int:
    """Moves a batch's buffer holds: ``max_horizon`` rounded up to whole blocks."""
    return -(-max_horizon // BLOCK) * BLOCK


def move_slots(maze: Maze, before: jax.Array, after: jax.Array) -> jax.Array:
    """int32, the move slot that leads from state ``before`` to state ``after`` (0 where ``after < 0``:
    no move); every successor of a state is a distinct state."""
    return _slots(jnp.asarray(maze.successors)[before], jnp.asarray(maze.valid)[before], after)


def _slots(successors: jax.Array, valid: jax.Array, after: jax.Array) -> jax.Array:
    """:func:`move_slots` from the successor rows [..., D] (and their validity) of the states before."""
    hit = (successors == after[..., None]) & valid & (after[..., None] >= 0)  # one slot at most
    # the largest hit index, in int32: argmax reduced (pred, int64) pairs, 10% of PPO's train pass
    return jnp.max(jnp.where(hit, jnp.arange(successors.shape[-1], dtype=jnp.int32), 0), axis=-1)


# ------------------------------------------------------------------------------------------------
# The passes over a batch, for every vmapped run at once
#
# GAE runs backwards in time, so a pass visits the batch in blocks of BLOCK moves from the last
# block any walk reaches back to the first. The walks of every run in a vmap are one list of rows
# (a custom_vmap folds the runs, as the walk kernels do), sorted by length (longest first; ties by
# run, then walk), and a block is processed on the shortest prefix of rows that holds every walk
# still moving there: static stages of rows, rows / 2, rows / 4, ... (at least MIN_ROWS), each its
# own loop, from the smallest up as the pass goes back in time. So the work is about the moves made,
# not runs x walks x the longest walk of any run (a run whose policy stalls walks to the horizon
# cap, while the others walk a few hundred moves). A row past its walk's end adds exact zeros, so a
# run's results depend only on its own walks: the same bits alone, in any batch and any stage sizes.

MIN_ROWS = 32


def _discounted(delta: jax.Array, decay: jax.Array, following: jax.Array) -> jax.Array:
    """GAE's backward recursion ``A_t = delta_t + decay * A_{t+1}`` along the columns of ``delta`` [rows, C],
    with ``A_C = following`` [rows] and a ``decay`` [rows] per row; float32 [rows, C].

    A sequential ``lax.scan`` over the columns (each step one fused multiply-add of a column): on XLA:CPU it
    compiles in half the time of ``lax.associative_scan`` and ran a 256 x 129 block in 0.17 ms against 0.39."""

    def back(later, column):
        now = column + decay * later
        return now, now

    return lax.scan(back, following, delta.T, reverse=True, unroll=8)[1].T


def _stage_sizes(rows: int) -> list[int]:
    """Row counts of the stages, ascending: ``ceil(rows / 2**k) >= MIN_ROWS`` and ``rows`` itself."""
    sizes = {rows}
    while rows > 2 * MIN_ROWS:
        rows = -(-rows // 2)
        sizes.add(rows)
    return sorted(sizes)


def _fold(mode: str, states, target, length, success, critic, beta, gae_lambda, successors, valid):
    """The passes of ``mode`` over the walks of ``B`` runs (a leading run axis on every input).

    Inputs: ``states`` int32 [B, n, C + 1] (:class:`Rollouts`), ``target``, ``length``, ``success``
    [B, n], ``critic`` float32 [B, T, S], ``beta``, ``gae_lambda`` [B], ``successors``, ``valid``
    [B, S, D] (the maze's tables; only ``"train"`` reads them).

    Modes: ``"critic"`` -> the critic's sums ``{"cells"}``, complex64 [B, T * S] (sum of the
    lambda-returns of the moves from each (target, state) + 1j * their number); ``"advantages"`` ->
    ``{"advantage"}`` float32 [B, n, C]; ``"train"`` -> ``{"cells", "positive", "negative"}``, float32
    [B, n, S, D] each: per walk the sums of the positive / negative standardised advantages.
    """
    B, n, width = states.shape
    T, S = critic.shape[1:]
    rows = B * n
    flat = states.reshape(rows, width)
    order = jnp.argsort(-length.reshape(rows), stable=True).astype(jnp.int32)  # longest walks first
    run = order // n
    walk_length = length.reshape(rows)[order]
    offset = run * (T * S) + target.reshape(rows)[order] * S  # the critic row of each walk
    hit_reward = success.reshape(rows)[order]
    beta = jnp.asarray(beta, jnp.float32)[run]
    decay = jnp.asarray(gae_lambda, jnp.float32)[run]
    values = critic.reshape(-1)
    sizes = _stage_sizes(rows)
    # stage R takes the blocks that rows R, R + 1, ... no longer reach
    padded = jnp.concatenate([walk_length, jnp.zeros(1, walk_length.dtype)])
    first_blocks = [((padded[size] + BLOCK - 1) // BLOCK).astype(jnp.int32) for size in sizes]
    blocks = ((walk_length[0] + BLOCK - 1) // BLOCK).astype(jnp.int32)
    columns = jnp.arange(1, BLOCK + 1, dtype=jnp.int32)  # the times of a block's moves, from j BLOCK

    def stages(body, carry):
        """``body(R, j, carry)`` for j = blocks - 1, ..., 0, on the stage of R rows that holds block j."""
        j = blocks - 1
        for size, first in zip(sizes, first_blocks):
            j, carry = lax.while_loop(lambda c, first=first: c[0] >= first,
                                      lambda c, size=size: (c[0] - 1, body(size, c[0], c[1])), (j, carry))
        return carry

    def window(size, j):
        """[size, BLOCK + 1] states of the first ``size`` rows at times j BLOCK ... (j + 1) BLOCK: one slice per row
        (a gather of row slices; indexing by rows and columns gathered element by element, and made the
        critic's pass of 4 seeds' walks at W = K = 6, L = 5 take 17 ms instead of 13 on one core)."""
        return jax.vmap(lambda r: lax.dynamic_slice(flat, (r, j * BLOCK), (1, BLOCK + 1))[0])(order[:size])

    def gae(size, j, carry):
        following, acc = carry
        states = window(size, j)
        after = states[:, 1:]
        moving = after >= 0
        last = (j * BLOCK + columns)[None, :] == walk_length[:size, None]
        row = offset[:size, None]
        cell = row + jnp.where(moving, states[:, :-1], 0)
        value = values[cell]
        next_value = jnp.where(moving & ~last, values[row + jnp.maximum(after, 0)], 0.0)
        reward = (last & hit_reward[:size, None]).astype(jnp.float32) - beta[:size, None]
        delta = jnp.where(moving, reward + next_value - value, 0.0)
        advantage = _discounted(delta, decay[:size], following[:size])
        returns = jnp.where(moving, advantage + value, 0.0)
        acc = dict(acc, cells=acc["cells"].at[cell.ravel()].add(lax.complex(returns, moving.astype(jnp.float32)).ravel()))
        if "kept" in acc:
            wide = advantage.astype(F64)
            acc["first"] = acc["first"].at[:size].add(wide)
            acc["second"] = acc["second"].at[:size].add(wide * wide)  # exact: a square of a float32
            acc["kept"] = lax.dynamic_update_slice(acc["kept"], advantage, (jnp.int32(0), j * BLOCK))
        return following.at[:size].set(advantage[:, 0]), acc

    acc = {"cells": jnp.zeros(B * T * S, jnp.complex64)}
    if mode != "critic":
        acc.update(first=jnp.zeros((rows, BLOCK), F64), second=jnp.zeros((rows, BLOCK), F64),
                   kept=jnp.zeros((rows, width - 1), jnp.float32))
    acc = stages(gae, (jnp.zeros(rows, jnp.float32), acc))[1]
    cells = acc["cells"].reshape(B, T * S)
    if mode == "critic":
        return {"cells": cells}
    inverse = jnp.zeros(rows, jnp.int32).at[order].set(jnp.arange(rows, dtype=jnp.int32))
    if mode == "advantages":
        return {"advantage": acc["kept"][inverse].reshape(B, n, width - 1)}

    # standardisation per run: its moments summed in a fixed order (walk, then column in the block)
    count = jnp.maximum(jnp.sum(length, axis=1), 1).astype(F64)
    total = lambda x: ordered_sum(ordered_sum(x[inverse].reshape(B, n, BLOCK), axis=-1), axis=-1)  # noqa: E731
    mean = total(acc["first"]) / count
    std = jnp.sqrt(jnp.maximum(total(acc["second"]) / count - mean**2, 0.0))
    mean, std = mean.astype(jnp.float32)[run], std.astype(jnp.float32)[run]
    scale = jnp.where(std > 0, std, 1.0)
    D = successors.shape[-1]
    successors, valid = successors.reshape(B * S, D), valid.reshape(B * S, D)

    def count_moves(size, j, counts):
        states = window(size, j)
        before, after = jnp.maximum(states[:, :-1], 0), states[:, 1:]
        table = (run[:size, None] * S) + before
        slot = _slots(successors[table], valid[table], after)
        advantage = lax.dynamic_slice(acc["kept"], (jnp.int32(0), j * BLOCK), (size, BLOCK))
        z = jnp.where((after >= 0) & (std[:size, None] > 0), (advantage - mean[:size, None]) / scale[:size, None], 0.0)
        move = order[:size, None] * (S * D) + before * D + slot
        # the positive sums first, then the negative ones (each contiguous, so a walk's table is one slice)
        return counts.at[(move + (z < 0) * (rows * S * D)).ravel()].add(z.ravel())

    counts = stages(count_moves, jnp.zeros(2 * rows * S * D, jnp.float32)).reshape(2, B, n, S, D)
    return {"cells": cells, "positive": counts[0], "negative": counts[1]}


@functools.cache
def _kernel(mode: str):
    """:func:`_fold` of ``mode``, whose ``vmap`` folds the vmapped runs into one list of walks (jitted, as the walk
    kernels are: vmap's rules call the kernel once per fixed-point pass, and a jit traces it once per shape)."""
    return common.fold_runs(jax.jit(functools.partial(_fold, mode)))


def _pass(mode: str, rollouts: Rollouts, critic, beta, gae_lambda, maze: Maze | None = None) -> dict:
    """:func:`_fold` of ``mode`` for one run (vmap folds the vmapped runs); differentiable in the critic,
    ``beta`` and ``gae_lambda`` for the modes ``"critic"`` and ``"advantages"`` (:func:`_dense`)."""
    tables = (jnp.asarray(maze.successors), jnp.asarray(maze.valid)) if maze is not None else (
        jnp.zeros((1, 1), jnp.int32), jnp.zeros((1, 1), bool))
    data = (rollouts.states, rollouts.target, rollouts.length, rollouts.success)
    floats = tuple(jnp.asarray(x, jnp.float32) for x in (critic, beta, gae_lambda))
    return _differentiable(mode, data, floats, tables)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _differentiable(mode: str, data, floats, tables) -> dict:
    args = (*data, *floats, *tables)
    return jax.tree.map(lambda x: x[0], _kernel(mode)(*(x[None] for x in args)))  # one run


def _differentiable_fwd(mode, data, floats, tables):
    return _differentiable(mode, data, floats, tables), (data, floats)


def _differentiable_bwd(mode, residuals, cotangent):
    if mode == "train":
        raise ValueError("signed_advantage_counts is not differentiable (its counts split each advantage by sign); "
                         "differentiate mazejax.train.ppo.advantages or fit_critic instead")
    data, floats = residuals
    _, vjp = jax.vjp(lambda *floats: _dense(mode, *data, *floats), *floats)
    return None, vjp(cotangent), None


_differentiable.defvjp(_differentiable_fwd, _differentiable_bwd)


def _dense(mode: str, states, target, length, success, critic, beta, gae_lambda) -> dict:
    """The passes ``"critic"`` and ``"advantages"`` of one run written over the whole buffer [n, C]: the
    same values as :func:`_fold` up to rounding, in plain differentiable operations (O(n C)), whose
    ``jax.vjp`` is the reverse-mode derivative of :func:`_pass` (both are affine in critic and beta)."""
    after = states[:, 1:]
    moving = after >= 0
    n, C = after.shape
    row = target[:, None] * critic.shape[1]
    values = critic.reshape(-1)
    last = jnp.arange(1, C + 1)[None, :] == length[:, None]
    cell = row + jnp.where(moving, states[:, :-1], 0)
    value = values[cell]
    next_value = jnp.where(moving & ~last, values[row + jnp.maximum(after, 0)], 0.0)
    delta = jnp.where(moving, (last & success[:, None]).astype(jnp.float32) - beta + next_value - value, 0.0)
    advantage = _discounted(delta, jnp.broadcast_to(gae_lambda, delta.shape[:1]), jnp.zeros(delta.shape[:1], delta.dtype))
    if mode == "advantages":
        return {"advantage": advantage}
    returns = jnp.where(moving, advantage + value, 0.0)
    sums = jnp.zeros(critic.size, jnp.float32).at[cell.ravel()].add(returns.ravel())
    visits = jnp.zeros(critic.size, jnp.float32).at[cell.ravel()].add(moving.ravel().astype(jnp.float32))
    return {"cells": lax.complex(sums, visits)}


def advantages(rollouts: Rollouts, critic: jax.Array, beta, gae_lambda) -> tuple[jax.Array, jax.Array]:
    """GAE advantages and lambda-returns of every move, float32 [n, C] each (0 where not moving).

    ``delta_t = r_t + V(x, s_{t+1}) - V(x, s_t)`` (next value 0 after the last move),
    ``A_t = delta_t + gae_lambda A_{t+1}``, the reward ``r_t = 1{hit at t} - beta``.

    Args:
      rollouts: the batch.
      critic: float32 [T, S], ``V(target, state)``.
      beta: length penalty; ``gae_lambda``: GAE's lambda (scalars, may be traced).
    """
    advantage = _pass("advantages", rollouts, critic, beta, gae_lambda)["advantage"]
    value = jnp.asarray(critic, jnp.float32)[rollouts.target[:, None], rollouts.state]
    return advantage, jnp.where(rollouts.moving, advantage + value, 0.0)


def _critic_step(critic: jax.Array, cells: jax.Array, rate) -> jax.Array:
    """``V`` moved by ``rate`` towards the mean lambda-return of every visited (target, state).

    ``rate`` passes an optimisation barrier: at a constant rate of 1 XLA rewrote ``V + 1 (t - V)`` as
    ``t`` in a one-run program but not under ``vmap`` (one rounding apart)."""
    returns, visits = cells.real.reshape(critic.shape), cells.imag.reshape(critic.shape)
    target = returns / jnp.maximum(visits, 1.0)
    rate = lax.optimization_barrier(jnp.asarray(rate, jnp.float32))
    return jnp.where(visits > 0, critic + rate * (target - critic), critic)


def fit_critic(critic: jax.Array, rollouts: Rollouts, beta, gae_lambda, rate, sweeps) -> jax.Array:
    """Fitted TD(lambda) on one batch: ``sweeps`` passes (int, may be traced), each moving ``V`` [T, S]
    by ``rate`` towards the mean lambda-return (:func:`advantages`, with the current ``V``) of every
    visited (target, state).

    Unvisited cells keep their value. Each pass propagates the rewards about ``1 / (1 - gae_lambda)``
    moves further back from where they occur, and the values stay anchored at the target (where
    ``V = 0``), so the critic has no offset at the end of the walks.
    """

    def sweep(_, critic):
        return _critic_step(critic, _pass("critic", rollouts, critic, beta, gae_lambda)["cells"], rate)

    return lax.fori_loop(0, sweeps, sweep, critic)


def _train_pass(maze: Maze, rollouts: Rollouts, critic, beta, gae_lambda):
    """``(cells, P, M)``: the critic's sums (:func:`_critic_step`) and :func:`signed_advantage_counts`."""
    out = _pass("train", rollouts, critic, beta, gae_lambda, maze)
    return out["cells"], out["positive"], out["negative"]


def signed_advantage_counts(maze: Maze, rollouts: Rollouts, critic, beta, gae_lambda) -> tuple[jax.Array, jax.Array]:
    """``(P, M)``, float32 [n, S, D] each: for each walk, the sums of the positive / negative
    standardised GAE advantages (mean 0, std 1 over the batch's moves) of each move ``(s, m)``.

    A minibatch's counts are the sums over its walks (:func:`minibatch_counts`); :func:`clipped_surrogate`
    takes them.
    """
    return _train_pass(maze, rollouts, critic, beta, gae_lambda)[1:]


def minibatch_counts(positive: jax.Array, negative: jax.Array, walks: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The minibatch's ``(P, M)``, float32 [S, D] each: the sums of the per-walk tables
    (:func:`signed_advantage_counts`) of ``walks`` (int [B]), added in the order of ``walks``.

    A loop over the walks, each table one contiguous slice, with the bits of ``ordered_sum`` over a
    gather of the ``B`` tables, which XLA:CPU copies element by element: PPO's 16 minibatch updates of
    4 seeds at W = K = 6, L = 5 took 5.9-7.0 ms instead of 19.2-19.9 ms on one core.
    """
    def add(j, sums):
        return tuple(total + lax.dynamic_index_in_dim(x, walks[j], keepdims=False)
                     for total, x in zip(sums, (positive, negative)))

    first = tuple(lax.dynamic_index_in_dim(x, walks[0], keepdims=False) for x in (positive, negative))
    return lax.fori_loop(1, walks.shape[0], add, first)


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
        impl = jax.random.key_impl(key)

        def batch(logits, critic, t, rollout_key, rollout_horizon):
            """The step's batch of walks; at step 0 first the critic's warm-up: ``critic_warmup`` batches
            of the initial policy, each fitted by ``warmup_sweeps`` TD(lambda) passes, from V = 0. One
            loop, so the program holds one sampler (it is the bulk of the compile time)."""
            warmup = jnp.where(t == 0, config.critic_warmup, 0)

            def one(index, carry):
                critic, _ = carry
                warming = index < warmup
                data = jnp.where(warming, jax.random.key_data(jax.random.fold_in(warm_key, index)),
                                 jax.random.key_data(rollout_key))
                rollouts = collect(maze, logits, jax.random.wrap_key_data(data, impl=impl), num_rollouts,
                                   rollout_horizon, horizon)
                sweeps = jnp.where(warming, config.warmup_sweeps, 0)
                return fit_critic(critic, rollouts, hparams.beta, hparams.gae_lambda, 1.0, sweeps), rollouts

            zeros = jnp.zeros(num_rollouts, jnp.int32)
            empty = Rollouts(jnp.zeros((num_rollouts, _columns(horizon) + 1), jnp.int32), zeros, zeros, zeros > 0)
            return lax.fori_loop(0, warmup + 1, one, (critic, empty))

        def measure(carry):
            hitting_time = exact.hitting_time(maze, carry[0])
            return {"hitting_time": hitting_time, "loss": beta * hitting_time - 1.0}

        def step(carry, t):
            logits, opt_state, critic = carry
            measured = measure(carry)
            rollout_key, shuffle_key = jax.random.split(jax.random.fold_in(key, t))
            rollout_horizon = pg.rollout_horizon(horizon, hparams.horizon_scale, measured["hitting_time"])
            critic, rollouts = batch(logits, critic, t, rollout_key, rollout_horizon)
            cells, positive, negative = _train_pass(maze, rollouts, critic, hparams.beta, hparams.gae_lambda)
            critic = _critic_step(critic, cells, hparams.critic_rate)
            old_log_probs = log_probabilities(maze, logits)

            def update(carry, walks):
                logits, opt_state = carry
                grad = clipped_surrogate_gradient(maze, logits, old_log_probs,
                                                  *minibatch_counts(positive, negative, walks), hparams.clip, size)
                return base.descend(tx, logits, opt_state, -grad, maze, base.train_fork(config)), None

            def epoch(carry, epoch_key):
                order = jax.random.permutation(epoch_key, num_rollouts).reshape(config.minibatches, size)
                return lax.scan(update, carry, order)

            (logits, opt_state), _ = lax.scan(epoch, (logits, opt_state), jax.random.split(shuffle_key, config.epochs))
            return (logits, opt_state, critic), measured

        critic = jnp.zeros((maze.capacity.targets, maze.capacity.states), jnp.float32)
        (logits, _, _), records = base.train_loop(
            step, (init_logits, tx.init(init_logits), critic), steps=config.steps, record_every=config.record_every,
            probe=lambda carry: {"types": base.exact_types(maze, carry[0])},
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
    "minibatch_counts",
    "signed_advantage_counts",
]
