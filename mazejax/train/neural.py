"""Training sequence policies (the transformer of :mod:`mazejax.transformer`, or the tabular policy
through the same interface): REINFORCE, PPO and SFT / distillation by teacher forcing.

Both trainers follow the skeleton of :mod:`mazejax.train.base` (a static ``Config``, an
``HParams`` PyTree, ``make_*(config) -> train(key, hparams, maze, params)``, the whole run in
``lax.scan``), but record Monte Carlo quantities: a policy that reads the walk has no exact
Markov-chain hitting time. ``jax.jit(jax.vmap(train))`` runs seeds and hyperparameters as one
program; the policy's settings (``policy``, ``layers``, ``heads``, ``width``, ``context``,
``positions``) are static.

*Optimizer.* Adam with two learning rates (``optax.multi_transform``): ``table_lr`` for the
tabular logits (the policy's logits, or the transformer's ``direct`` table), updated only on
trainable moves (:func:`mazejax.trainable_moves`), and ``lr`` for the network weights, which
are all trained (the network may learn the fork rows: a history-aware policy can avoid branches
it has explored).

*REINFORCE* (:func:`make_neural_reinforce`). Each step samples ``num_rollouts`` walks with states
recorded (:func:`mazejax.simulate.sequence.sample_sequences`), scores them with
``r = 1{hit} - beta * length`` and leave-one-out advantages
(:mod:`mazejax.train.policy_gradient`), and ascends ``(1/n) sum_i A_i grad log p(walk_i)``, the
log-probabilities by teacher forcing in groups of ``grad_chunk`` walks. The horizon (the paper's
rule with an estimated H): ``min(horizon, ceil(horizon_scale * previous batch mean length))``,
the first batch ``horizon``; ``horizon`` is static (it sizes the state buffer).

*PPO* (:func:`make_neural_ppo`): the same walks and horizon rule, then epochs of clipped-surrogate
minibatch steps with the walk's leave-one-out advantage on every move.

*SFT* (:func:`make_neural_sft`). Each step draws ``batch_size`` sequences, from ``data``:
``"golden"`` (golden paths, docs/model.md §4.1), ``"dfs"`` (depth-first search traces,
:func:`mazejax.traces.sample_dfs`) or ``"teacher"`` (walks of a tabular teacher, distillation,
docs/model.md §4.4; the teacher's logits are the ``teacher`` field of the hyperparameters), and
descends the mean cross-entropy of every next state given the walk so far.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax import lax

from mazejax import traces, validate
from mazejax.maze import Maze
from mazejax.policy import trainable_moves
from mazejax.simulate.sequence import sample_sequences
from mazejax.simulate.walks import sample_walks
from mazejax.train import base
from mazejax.train import policy_gradient as pg
from mazejax.train.sft import golden_policy
from mazejax.transformer import POSITIONS, TabularPolicy, init_transformer, move_log_probabilities, transformer_policy

POLICIES = ("transformer", "tabular")


@dataclasses.dataclass(frozen=True)
class PolicyConfig(base.Config):
    """The sequence policy's static settings (shared by the neural trainers)."""

    policy: str = base.setting("transformer", validate.Choice(*POLICIES), "sequence policy")
    layers: int = base.setting(1, validate.Integer(1), "transformer blocks")
    heads: int = base.setting(2, validate.Integer(1), "attention heads")
    width: int = base.setting(32, validate.Integer(1), "model width (a multiple of heads)")
    context: int = base.setting(32, validate.Integer(1), "tokens each token attends to")
    positions: str = base.setting("relative", validate.Choice(*POSITIONS), "position encoding")

    def __post_init__(self):
        super().__post_init__()
        if self.width % self.heads:
            raise ValueError(f"width must be a multiple of heads = {self.heads}, got {self.width}")

    def sequence_policy(self, maze: Maze):
        """The policy object (static) for ``maze``."""
        if self.policy == "tabular":
            return TabularPolicy()
        return transformer_policy(maze, layers=self.layers, heads=self.heads, width=self.width,
                                  context=self.context, positions=self.positions)

    def init_params(self, key, maze: Maze, logits=None):
        """Initial parameters reproducing the tabular ``logits`` (default: the base model)."""
        if self.policy == "tabular":
            return base.initial_logits(maze, logits).astype(jnp.float32)
        return init_transformer(self.sequence_policy(maze), key, maze, logits)


def _is_table(path) -> bool:
    return not path or getattr(path[-1], "key", None) == "direct"


def optimizer(params, lr, table_lr, maze: Maze) -> optax.GradientTransformation:
    """Adam at ``table_lr`` on the tabular logits (trainable moves only), at ``lr`` on the network."""
    labels = jax.tree_util.tree_map_with_path(lambda p, _: "table" if _is_table(p) else "network", params)
    mask = trainable_moves(maze)

    def freeze(updates, state, params=None):  # frozen moves of the table get no gradient (so no Adam state)
        return jax.tree_util.tree_map_with_path(lambda p, u: jnp.where(mask, u, 0.0) if _is_table(p) else u,
                                                updates), state

    frozen = optax.GradientTransformation(lambda params: optax.EmptyState(), freeze)
    return optax.chain(frozen, optax.multi_transform({"table": optax.adam(table_lr), "network": optax.adam(lr)},
                                                     labels))


def _descend(tx, params, opt_state, gradient):
    updates, opt_state = tx.update(gradient, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def _walk_log_probabilities(policy, params, maze, states):
    """``log p`` of every move [n, M - 1] of recorded walks ``states`` [n, M] (teacher forcing)."""
    return jax.vmap(lambda walk: move_log_probabilities(policy, params, maze, walk))(states)


def _grouped_gradient(objective, params, data, group: int):
    """``(sum_g objective(params, *data_g), its gradient)`` over groups of ``group`` rows of the arrays
    ``data`` (leading axis n), one teacher-forced pass per group (memory O(group))."""

    def add(total, batch):
        value, grad = jax.value_and_grad(objective)(params, *batch)
        return jax.tree.map(jnp.add, total, (value, grad)), None

    n = data[0].shape[0]
    zero = (jnp.zeros(()), jax.tree.map(jnp.zeros_like, params))
    (value, grad), _ = lax.scan(add, zero, tuple(x.reshape((n // group, group) + x.shape[1:]) for x in data))
    return value, grad


def _teacher_forced_gradient(policy, params, maze, states, weights, group: int):
    """``sum_i weights[i] * grad sum_t log p(move t of walk i)`` over recorded walks ``states``
    [n, M], by teacher forcing in groups of ``group`` walks; also returns that weighted sum."""

    def objective(p, s, w):
        return jnp.sum(w * jnp.sum(_walk_log_probabilities(policy, p, maze, s), axis=1))

    return _grouped_gradient(objective, params, (states, weights), group)


@struct.dataclass
class NeuralResult:
    """What the neural trainers return (``steps`` rows; under vmap the batch axes come first).

    Attributes:
      params: the final parameters.
      mean_length: float32 [steps]: REINFORCE: the mean length of each step's walks (a Monte Carlo
        estimate of ``E[min(T, horizon)]`` of the policy before the step); SFT: the mean length of
        the step's sequences.
      stderr: float32 [steps], its standard error (REINFORCE; 0 for SFT).
      success_rate: float32 [steps], fraction of the step's walks that hit (REINFORCE; 1 for SFT).
      loss: float32 [steps]: REINFORCE: ``-mean reward``; SFT: the mean cross-entropy per move.
      horizon: int32 [steps], the horizon of each step's walks (REINFORCE; 0 for SFT).
    """

    params: object
    mean_length: jax.Array
    stderr: jax.Array
    success_rate: jax.Array
    loss: jax.Array
    horizon: jax.Array


# ----------------------------------------------------------------------------------------
# REINFORCE


@dataclasses.dataclass(frozen=True)
class NeuralReinforceConfig(PolicyConfig):
    """Static settings of REINFORCE for a sequence policy."""

    steps: int = base.steps(300, "optimizer steps; each samples num_rollouts fresh walks")
    num_rollouts: int = base.setting(64, pg.ROLLOUTS, "walks per step")
    horizon: int = base.setting(512, validate.Integer(1, 2**20), "horizon cap (sizes the state buffer)")
    chunk: int = base.setting(64, validate.Integer(1), "walks decoded together (divides num_rollouts)")
    grad_chunk: int = base.setting(16, validate.Integer(1), "walks per teacher-forced pass (divides num_rollouts)")
    record_every: int = base.record_every(1)

    def __post_init__(self):
        super().__post_init__()
        for name in ("chunk", "grad_chunk"):
            if self.num_rollouts % getattr(self, name):
                raise ValueError(f"{name} must divide num_rollouts = {self.num_rollouts}, got {getattr(self, name)}")


@struct.dataclass
class NeuralReinforceHParams(base.HParams):
    """Hyperparameters a sweep may vary (array leaves, shape [] per run)."""

    lr: jax.Array = base.hparam(3e-3, pg.LR, "Adam learning rate of the network")
    table_lr: jax.Array = base.hparam(0.1, pg.LR, "Adam learning rate of the tabular logits")
    beta: jax.Array = base.hparam(0.01, pg.BETA, "length penalty of the reward")
    horizon_scale: jax.Array = base.hparam(2.0, pg.HORIZON_SCALE, "> 0: horizon min(horizon, ceil(horizon_scale * "
                                           "previous mean length)); 0: always the cap")


def make_neural_reinforce(config: NeuralReinforceConfig = NeuralReinforceConfig()):
    """Build REINFORCE for a sequence policy (module docstring).

    Returns ``train(key, hparams, maze, params) -> NeuralResult``, pure and traceable; step ``t``
    samples with ``fold_in(key, t)``. ``params`` from ``config.init_params``.
    """

    def train(key, hparams: NeuralReinforceHParams, maze: Maze, params) -> NeuralResult:
        policy = config.sequence_policy(maze)
        tx = optimizer(params, hparams.lr, hparams.table_lr, maze)
        n = config.num_rollouts

        def step(carry, t):
            params, opt_state, estimate = carry
            horizon = pg.rollout_horizon(config.horizon, hparams.horizon_scale, estimate)
            walks = sample_sequences(policy, params, maze, jax.random.fold_in(key, t), n, horizon,
                                     record=config.horizon + 1, chunk=config.chunk)
            reward = pg.rewards(walks.length, walks.success, hparams.beta)
            advantage = pg.leave_one_out_advantages(reward)
            _, grad = _teacher_forced_gradient(policy, params, maze, walks.states, -advantage / n, config.grad_chunk)
            params, opt_state = _descend(tx, params, opt_state, grad)
            return _recorded(params, opt_state, walks, reward, horizon)

        return _train_steps(step, params, tx, config.steps)

    return train


def _recorded(params, opt_state, walks, reward, horizon):
    """A policy-gradient step's carry and record: mean walk length (the next step's estimate of H),
    its standard error, success rate, loss and the horizon used."""
    length = walks.length.astype(jnp.float32)
    stats = (jnp.mean(length), jnp.std(length, ddof=1) / np.sqrt(length.shape[0]),
             jnp.mean(walks.success.astype(jnp.float32)), -jnp.mean(reward), horizon)
    return (params, opt_state, stats[0].astype(base.F64)), stats


def _train_steps(step, params, tx, steps: int) -> NeuralResult:
    """``steps`` policy-gradient steps from ``params``, no estimate of H yet (the first horizon is the cap)."""
    start = (params, tx.init(params), jnp.asarray(jnp.inf, base.F64))
    (params, _, _), stats = lax.scan(step, start, jnp.arange(steps))
    return NeuralResult(params, *stats)


# ----------------------------------------------------------------------------------------
# PPO


@dataclasses.dataclass(frozen=True)
class NeuralPPOConfig(NeuralReinforceConfig):
    """Static settings of PPO for a sequence policy (REINFORCE's, plus epochs and minibatches)."""

    steps: int = base.steps(150, "iterations; each samples num_rollouts fresh walks")
    epochs: int = base.setting(4, validate.Integer(1), "passes over each batch")
    minibatches: int = base.setting(4, validate.Integer(1), "minibatches per pass (divides num_rollouts)")

    def __post_init__(self):
        super().__post_init__()
        if self.num_rollouts % self.minibatches or (self.num_rollouts // self.minibatches) % self.grad_chunk:
            raise ValueError(f"minibatches must divide num_rollouts = {self.num_rollouts} into minibatches that "
                             f"grad_chunk = {self.grad_chunk} divides, got {self.minibatches}")


@struct.dataclass
class NeuralPPOHParams(NeuralReinforceHParams):
    """REINFORCE's hyperparameters plus the clip range."""

    clip: jax.Array = base.hparam(0.2, validate.Number(0, low_open=True), "PPO clip range")


def make_neural_ppo(config: NeuralPPOConfig = NeuralPPOConfig()):
    """Build clipped PPO for a sequence policy.

    Each iteration samples walks as REINFORCE does (the same horizon rule), freezes their move
    log-probabilities, and runs ``epochs`` passes of ``minibatches`` Adam steps on the clipped
    surrogate ``(1/m) sum_i sum_t min(rho_it A_i, clip(rho_it, 1 - eps, 1 + eps) A_i)``, with
    ``rho_it`` the ratio of new to old probability of move t of walk i and ``A_i`` the walk's
    leave-one-out advantage (no critic: the policy reads the walk, so no tabular value applies).
    At ``rho = 1`` its gradient is REINFORCE's. Returns ``train(key, hparams, maze, params)``.
    """
    n, m = config.num_rollouts, config.num_rollouts // config.minibatches

    def train(key, hparams: NeuralPPOHParams, maze: Maze, params) -> NeuralResult:
        policy = config.sequence_policy(maze)
        tx = optimizer(params, hparams.lr, hparams.table_lr, maze)

        def surrogate(p, states, old, advantage):
            ratio = jnp.exp(_walk_log_probabilities(policy, p, maze, states) - old)
            a = advantage[:, None]
            clipped = jnp.clip(ratio, 1 - hparams.clip, 1 + hparams.clip)
            moved = states[:, 1:] >= 0
            return -jnp.sum(jnp.where(moved, jnp.minimum(ratio * a, clipped * a), 0.0)) / m

        def step(carry, t):
            params, opt_state, estimate = carry
            key_t = jax.random.fold_in(key, t)
            horizon = pg.rollout_horizon(config.horizon, hparams.horizon_scale, estimate)
            walks = sample_sequences(policy, params, maze, key_t, n, horizon, record=config.horizon + 1,
                                     chunk=config.chunk)
            reward = pg.rewards(walks.length, walks.success, hparams.beta)
            advantage = pg.leave_one_out_advantages(reward)
            groups = walks.states.reshape(n // config.grad_chunk, config.grad_chunk, -1)
            old = lax.map(lambda s: _walk_log_probabilities(policy, params, maze, s), groups).reshape(n, -1)

            def update(inner, epoch_batch):
                params, opt_state = inner
                order = jax.random.permutation(jax.random.fold_in(key_t, epoch_batch[0]), n)
                rows = order.reshape(config.minibatches, m)[epoch_batch[1]]
                data = (walks.states[rows], old[rows], advantage[rows])
                _, grad = _grouped_gradient(surrogate, params, data, config.grad_chunk)
                return _descend(tx, params, opt_state, grad), None

            passes = jnp.stack(jnp.meshgrid(jnp.arange(config.epochs), jnp.arange(config.minibatches),
                                            indexing="ij"), -1).reshape(-1, 2)
            (params, opt_state), _ = lax.scan(update, (params, opt_state), passes)
            return _recorded(params, opt_state, walks, reward, horizon)

        return _train_steps(step, params, tx, config.steps)

    return train


# ----------------------------------------------------------------------------------------
# SFT and distillation by teacher forcing

DATA = ("golden", "dfs", "teacher")


def sample_golden(key: jax.Array, maze: Maze, num: int):
    """``num`` golden paths: ``(states int32 [num, paths + 1], length int32 [num])``; path ``i`` uses
    ``fold_in(key, i)`` (its target, then one key per move); ``-1`` after the target."""
    policy = golden_policy(maze, jnp.float32)
    succ = jnp.asarray(maze.successors)
    target_logits = jnp.where(jnp.asarray(maze.target_mask), 0.0, -jnp.inf).astype(jnp.float32)

    def path(index):
        target_key, walk_key = jax.random.split(jax.random.fold_in(key, index))
        target = jax.random.categorical(target_key, target_logits)

        def move(state, move_key):
            row = policy[target, state]
            active = (state >= 0) & (jnp.sum(row) > 0)
            nxt = jnp.where(active, succ[state, jax.random.categorical(move_key, jnp.log(row))], -1)
            return nxt, nxt

        _, states = lax.scan(move, jnp.int32(0), jax.random.split(walk_key, maze.capacity.paths))
        states = jnp.concatenate([jnp.zeros(1, jnp.int32), states.astype(jnp.int32)])
        return states, jnp.sum(states[1:] >= 0).astype(jnp.int32)

    return jax.vmap(path)(jnp.arange(num))


@dataclasses.dataclass(frozen=True)
class NeuralSFTConfig(PolicyConfig):
    """Static settings of SFT / distillation of a sequence policy by teacher forcing."""

    steps: int = base.steps(300)
    data: str = base.setting("golden", validate.Choice(*DATA), "training sequences: golden paths, DFS search "
                             "traces or a tabular teacher's walks")
    batch_size: int = base.setting(32, validate.Integer(1), "sequences per step")
    record: int = base.setting(256, validate.Integer(2), "teacher walks: moves kept + 1 (longer walks are cut)")
    record_every: int = base.record_every(1)


@struct.dataclass
class NeuralSFTHParams(base.HParams):
    """Hyperparameters (``teacher``: tabular logits [S, D], used with ``data = "teacher"``)."""

    teacher: jax.Array = base.data("teacher logits [S, D] (data = 'teacher'; any array otherwise)")
    lr: jax.Array = base.hparam(3e-3, validate.Number(0, low_open=True), "Adam learning rate of the network")
    table_lr: jax.Array = base.hparam(0.1, validate.Number(0, low_open=True), "Adam learning rate of the table")


def make_neural_sft(config: NeuralSFTConfig = NeuralSFTConfig()):
    """Build SFT / distillation for a sequence policy (module docstring).

    Returns ``train(key, hparams, maze, params) -> NeuralResult``; step ``t`` draws its batch with
    ``fold_in(key, t)``.
    """

    def batch(key, maze, teacher):
        if config.data == "golden":
            states, length = sample_golden(key, maze, config.batch_size)
        elif config.data == "dfs":
            states, length, _ = traces.sample_dfs(key, maze, config.batch_size)
        else:
            walks = sample_walks(maze, teacher, key, config.batch_size, config.record - 1, record=config.record)
            states, length = walks.states, jnp.minimum(walks.length, config.record - 1)
        return states, length

    def train(key, hparams: NeuralSFTHParams, maze: Maze, params) -> NeuralResult:
        policy = config.sequence_policy(maze)
        tx = optimizer(params, hparams.lr, hparams.table_lr, maze)

        def step(carry, t):
            params, opt_state = carry
            states, length = batch(jax.random.fold_in(key, t), maze, hparams.teacher)
            moves = jnp.maximum(jnp.sum(length), 1).astype(jnp.float32)
            weights = jnp.full(states.shape[0], -1.0, jnp.float32) / moves
            value, grad = _teacher_forced_gradient(policy, params, maze, states, weights, states.shape[0])
            params, opt_state = _descend(tx, params, opt_state, grad)
            zero = jnp.zeros((), jnp.float32)
            return (params, opt_state), (jnp.mean(length.astype(jnp.float32)), zero, zero + 1, value, jnp.int32(0))

        (params, _), stats = lax.scan(step, (params, tx.init(params)), jnp.arange(config.steps))
        return NeuralResult(params, *stats)

    return train


def empirical_types(maze: Maze, states: jax.Array) -> dict:
    """Per-type frequencies of continuing the direction of travel in recorded walks ``states``
    [n, M]: ``{"a", "b", "c", "d"}`` -> float64 (all depths pooled; NaN if a type never occurs).
    For a history-dependent policy, the analogue of :func:`mazejax.type_probabilities`."""
    from mazejax.policy import continues

    succ, valid = jnp.asarray(maze.successors), jnp.asarray(maze.valid)
    before, after = states[:, :-1], states[:, 1:]
    moving = after >= 0
    s = jnp.where(moving, before, 0)
    slot = jnp.argmax((succ[s] == after[..., None]) & valid[s], axis=-1)
    kept = continues(maze)[s, slot]
    state_type = jnp.asarray(maze.state_type)[s]
    out = {}
    for code, name in enumerate("abcd"):
        member = moving & (state_type == code)
        out[name] = (jnp.sum(member & kept) / jnp.sum(member)).astype(base.F64)
    return out




# ----------------------------------------------------------------------------------------
# One-call experiments (host level): seeds vmapped, then a Monte Carlo evaluation of each seed


def _run_seeds(make, config, hparams, maze: Maze, key, seeds: int, init_logits):
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(seeds))
    params = jax.vmap(lambda k: config.init_params(k, maze, init_logits))(keys)
    return jax.jit(jax.vmap(make(config), in_axes=(0, None, None, 0)))(keys, hparams, maze, params)


def evaluate_seeds(config: PolicyConfig, maze: Maze, params, key, num: int, horizon: int, record: int = 0):
    """Monte Carlo evaluation of every seed of vmapped ``params``: ``(mean [seeds], stderr [seeds],
    success rate [seeds], walks)`` from ``num`` fresh walks per seed (the same keys for every seed)."""
    policy = config.sequence_policy(maze)
    sample = jax.jit(jax.vmap(lambda p: sample_sequences(policy, p, maze, key, num, horizon, record=record,
                                                         chunk=min(num, 256))))
    walks = sample(params)
    length = np.asarray(walks.length, np.float64)
    stderr = length.std(axis=1, ddof=1) / np.sqrt(num)
    return length.mean(axis=1), stderr, np.asarray(walks.success).mean(axis=1), walks


def _seeds(make, Config, HParams, maze, key, seeds, init_logits, settings, **data):
    static = {f.name for f in dataclasses.fields(Config)}
    config = Config(**{k: v for k, v in settings.items() if k in static})
    hparams = HParams.create(**data, **{k: v for k, v in settings.items() if k not in static})
    return _run_seeds(make, config, hparams, maze, key, seeds, init_logits), config


def reinforce_seeds(maze: Maze, key, seeds: int, *, init_logits=None, **settings):
    """REINFORCE of ``seeds`` runs vmapped as one program (``settings``: fields of
    :class:`NeuralReinforceConfig` and :class:`NeuralReinforceHParams`; seed ``i`` uses
    ``fold_in(key, i)`` for its initial network and its walks). Returns ``(NeuralResult, config)``."""
    return _seeds(make_neural_reinforce, NeuralReinforceConfig, NeuralReinforceHParams, maze, key, seeds,
                  init_logits, settings)


def ppo_seeds(maze: Maze, key, seeds: int, *, init_logits=None, **settings):
    """PPO of ``seeds`` runs vmapped (``settings``: fields of :class:`NeuralPPOConfig` and
    :class:`NeuralPPOHParams`). Returns ``(NeuralResult, config)``."""
    return _seeds(make_neural_ppo, NeuralPPOConfig, NeuralPPOHParams, maze, key, seeds, init_logits, settings)


def sft_seeds(maze: Maze, key, seeds: int, *, init_logits=None, teacher=None, **settings):
    """SFT / distillation of ``seeds`` runs vmapped (``settings``: fields of :class:`NeuralSFTConfig`
    and :class:`NeuralSFTHParams`; ``teacher``: tabular logits for ``data = "teacher"``).
    Returns ``(NeuralResult, config)``."""
    return _seeds(make_neural_sft, NeuralSFTConfig, NeuralSFTHParams, maze, key, seeds, init_logits, settings,
                  teacher=base.initial_logits(maze, teacher))


__all__ = [
    "DATA",
    "NeuralPPOConfig",
    "NeuralPPOHParams",
    "NeuralReinforceConfig",
    "NeuralReinforceHParams",
    "NeuralResult",
    "NeuralSFTConfig",
    "NeuralSFTHParams",
    "POLICIES",
    "PolicyConfig",
    "empirical_types",
    "evaluate_seeds",
    "make_neural_ppo",
    "make_neural_reinforce",
    "make_neural_sft",
    "optimizer",
    "ppo_seeds",
    "reinforce_seeds",
    "sample_golden",
    "sft_seeds",
]
