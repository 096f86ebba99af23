"""RLVR with a truncated horizon, exact gradients (issue 12, item 3).

The paper's RLVR objective assumes an unlimited horizon (every walk ends at the target, so
``J = 1 - beta * H``). A real RLVR pipeline cuts generation at a budget of ``T`` moves and pays no
reward to a walk that misses the target within it:

    J_T = P(tau <= T) - beta * E[min(tau, T)],

which this trainer ascends with exact gradients: both terms come from the dynamic programme of
:mod:`mazejax.exact.truncated` (the state distribution pushed forward ``T`` moves, differentiable;
``T`` is a traced leaf below the static ``max_horizon``, so a sweep vmaps over horizons). The
horizon is ``horizon`` moves, or ``ceil(horizon_ratio * H0)`` with ``H0`` the exact H of the
initial policy (``horizon = 0``), capped at ``max_horizon`` (the horizon used is recorded). Unlike
the unlimited objective, ``beta`` matters here: it trades the hit bonus against length. The
records hold the unlimited-horizon exact H of the policy (does it still backtrack?) beside
``P(tau <= T)`` and ``E[min(tau, T)]``.

Cost per step O(max_horizon * S * D * targets) (the scan runs ``max_horizon`` moves whatever the
horizon); reverse mode keeps one [S] vector per move and target.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import struct

from mazejax import exact, validate
from mazejax.maze import Maze
from mazejax.train import base


@dataclasses.dataclass(frozen=True)
class TruncatedConfig(base.Config):
    """Static settings of truncated-horizon exact RLVR."""

    steps: int = base.steps(400)
    max_horizon: int | None = base.setting(None, validate.OptionalInteger(1),
                                           "length of the dynamic programme's scan: the largest horizon; None: "
                                           "ceil(horizon_ratio * H0) of the initial policy (one-run calls) or twice "
                                           "the largest base H of a sweep's grid")
    record_every: int = base.record_every(10)
    optimizer: str = base.optimizer("sign_sgd")
    train_fork: bool = base.fork_setting()


@struct.dataclass
class TruncatedHParams(base.HParams):
    """Hyperparameters a sweep may vary (array leaves, shape [] per run)."""

    lr: jax.Array = base.hparam(0.01, validate.Number(0, low_open=True), "learning rate")
    beta: jax.Array = base.hparam(1e-3, validate.Number(0), "length penalty (per move, on min(tau, T))")
    horizon: jax.Array = base.hparam(0, validate.Integer(0, 2**31 - 2), "horizon T in moves; 0: from horizon_ratio",
                                     dtype="int32")
    horizon_ratio: jax.Array = base.hparam(1.0, validate.Number(0, low_open=True),
                                           "T / H0 with H0 the exact H of the initial policy (used when horizon = 0)")


def truncated_horizon(hparams: TruncatedHParams, base_hitting_time, max_horizon: int) -> jax.Array:
    """int32 scalar: ``horizon`` if > 0, else ``ceil(horizon_ratio * H0)``; within [1, max_horizon]."""
    ratio = jnp.ceil(jnp.asarray(hparams.horizon_ratio).astype(base.F64) * base_hitting_time)
    T = jnp.where(hparams.horizon > 0, hparams.horizon.astype(base.F64), ratio)
    return jnp.clip(jnp.where(jnp.isfinite(T), T, max_horizon), 1, max_horizon).astype(jnp.int32)


def make_rlvr_truncated(config: TruncatedConfig):
    """Build the truncated-horizon exact RLVR trainer (``config.max_horizon`` must be set).

    Returns ``train(key, hparams, maze, init_logits) -> TrainResult`` (``key`` unused: the method is
    deterministic). ``loss`` is ``-J_T``; ``extra`` holds ``hit_probability`` (``P(tau <= T)``),
    ``truncated_length`` (``E[min(tau, T)]``) at each record and ``horizon`` (the T used, int32 []).
    """
    validate.require_x64("mazejax.train.rlvr_truncated")
    if config.max_horizon is None:
        raise ValueError("TruncatedConfig.max_horizon must be set to build the trainer (it is the scan length); "
                         "mazejax.train.rlvr_truncated() derives it from the initial policy")
    max_horizon = config.max_horizon

    def train(key: jax.Array, hparams: TruncatedHParams, maze: Maze, init_logits: jax.Array) -> base.TrainResult:
        validate.require_x64("mazejax.train.rlvr_truncated")
        del key
        tx = base.trainable_optimizer(config, hparams.lr, maze)
        beta = hparams.beta.astype(base.F64)
        horizon = truncated_horizon(hparams, exact.hitting_time(maze, init_logits), max_horizon)

        def objective(logits):
            hit, length = exact.truncated_objective(maze, logits, horizon, max_horizon)
            return beta * length - hit, (hit, length)

        def step(carry, t):
            logits, opt_state = carry
            (loss, (hit, length)), grad = jax.value_and_grad(objective, has_aux=True)(logits)
            carry = base.descend(tx, logits, opt_state, grad, maze, base.train_fork(config))
            return carry, {"loss": loss, "hit_probability": hit, "truncated_length": length}

        (logits, _), records = base.train_loop(
            step, (init_logits, tx.init(init_logits)), steps=config.steps, record_every=config.record_every,
            probe=lambda carry: base.exact_metrics(maze, carry[0]),
        )
        extra = {"hit_probability": records["hit_probability"], "truncated_length": records["truncated_length"],
                 "horizon": horizon}
        return base.result(logits, records, config, extra=extra)

    return train


def default_max_horizon(maze: Maze, init_logits, hparams: dict) -> int:
    """The scan length of a one-run call: ``horizon``, or ``ceil(horizon_ratio * H0)`` (host int)."""
    defaults = {f.name: f.default for f in dataclasses.fields(TruncatedHParams)}
    horizon = int(hparams.get("horizon", defaults["horizon"]))
    if horizon > 0:
        return horizon
    H0 = float(exact.hitting_time(maze, init_logits))
    if not math.isfinite(H0):
        raise ValueError("the initial policy misses a target (H = inf): pass horizon or max_horizon explicitly")
    return max(1, math.ceil(float(hparams.get("horizon_ratio", defaults["horizon_ratio"])) * H0))


RLVR_TRUNCATED = base.Trainer("rlvr_truncated", TruncatedConfig, TruncatedHParams, make_rlvr_truncated,
                              "exact-gradient RLVR with a truncated horizon T (no reward unless the target is hit "
                              "within T moves; sign ascent)")


def rlvr_truncated(maze: Maze, *, init_logits: jax.Array | None = None, **settings) -> base.TrainResult:
    """Truncated-horizon exact RLVR on one maze; ``settings``: fields of :class:`TruncatedConfig` and
    :class:`TruncatedHParams` (e.g. ``horizon_ratio=0.1, beta=1e-3``). Without ``max_horizon`` the
    scan covers exactly the horizon (:func:`default_max_horizon`; needs concrete inputs)."""
    if settings.get("max_horizon") is None:
        with jax.ensure_compile_time_eval():
            init_logits = base.initial_logits(maze, init_logits)
            settings["max_horizon"] = default_max_horizon(maze, init_logits, settings)
    return RLVR_TRUNCATED.run(maze, None, init_logits, **settings)


__all__ = ["RLVR_TRUNCATED", "TruncatedConfig", "TruncatedHParams", "default_max_horizon", "make_rlvr_truncated",
           "rlvr_truncated", "truncated_horizon"]
