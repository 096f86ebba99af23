"""The sweep's methods: each training method (and the untrained baselines) behind one interface.

A :class:`Method` declares its hyperparameters (name, default, whether it is *static* — it sets
a shape or a loop length and is baked into the compiled program — or a *leaf* a sweep may vary),
and builds, from the static ones and the padded maze capacity, a pure function

    run(key, leaves, maze, init_logits) -> Outcome

that :mod:`mazejax.sweep` vmaps over runs. ``leaves`` is a dict of scalar arrays. The sweep's
mazes are paper mazes ``Maze(W, K, L)`` and runs start from the pretrained model.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from mazejax import _checks, reference, simulate
from mazejax.maze import R_PLUS, Maze
from mazejax.policy import backtracker_logits, sft_limit_logits
from mazejax.symmetric import full_logits, make_rlvr_symmetric
from mazejax.train import RLVRHParams, SFTHParams, make_rlvr_exact, make_sft, make_sft_exact
from mazejax.train.distill import DistillHParams, distill, make_distill
from mazejax.train.ppo import PPOHParams, make_ppo, ppo
from mazejax.train.reinforce import ReinforceHParams, make_reinforce, reinforce
from mazejax.train.common import exact_hitting_time


class Outcome(NamedTuple):
    """What a method returns for one run.

    logits: final policy [S, D]. step: int32 [R] steps at which ``hitting_time`` [R] (float64,
    exact H) was recorded; the last record is the final policy. ``mc``: optional
    (length [n] int, success [n] bool) from rollouts of the final policy, for sampled methods.
    """

    logits: jax.Array
    step: jax.Array
    hitting_time: jax.Array
    mc: tuple | None


@dataclasses.dataclass(frozen=True)
class Param:
    """One hyperparameter: its default, whether it is static, the check of its value and, for a
    leaf, its array dtype."""

    default: object
    static: bool
    check: Callable[[str, object], object]
    dtype: str = "float32"


def _int(name, value):
    return _checks.positive_int(name, value)


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    _checks.positive_float(name, value)
    return float(value)


def _non_negative(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    _checks.positive_float(name, value, allow_zero=True)
    return float(value)


def _non_negative_int(name, value):
    return _checks.positive_int(name, value, minimum=0)


def _search_mode(name, value):
    if value not in ("aggregate", "mask"):
        raise ValueError(f"{name} must be 'aggregate' or 'mask', got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Method:
    """A sweep method. ``build(static, capacity) -> run(key, leaves: dict, maze, init_logits) -> Outcome``."""

    name: str
    params: dict
    build: Callable
    sampled: bool = False
    doc: str = ""

    def resolve(self, overrides: dict) -> tuple[dict, dict]:
        """Validated (static, leaves) hyperparameters: defaults updated by ``overrides``."""
        unknown = sorted(set(overrides) - set(self.params))
        if unknown:
            raise ValueError(
                f"[{self.name}] has no hyperparameter {unknown[0]!r}; allowed: {', '.join(sorted(self.params))}"
            )
        static, leaves = {}, {}
        for key, param in self.params.items():
            value = param.check(f"{self.name}.{key}", overrides.get(key, param.default))
            (static if param.static else leaves)[key] = value
        return static, leaves


def _trained(result, mc=None) -> Outcome:
    return Outcome(result.logits, result.step, result.hitting_time, mc)


def _evaluated(static, key, maze, result) -> Outcome:
    """The trained policy with ``eval_rollouts`` Monte Carlo walks of at most ``eval_horizon`` moves."""
    walks = simulate.sample_walks(maze, result.logits, key, static["eval_rollouts"], static["eval_horizon"])
    return _trained(result, (walks.length, walks.success))


def _build_reinforce(static, capacity):
    train = make_reinforce(static["steps"], static["num_rollouts"], record_every=static["record_every"])

    def run(key, leaves, maze, init):
        train_key, eval_key = jax.random.split(key)
        return _evaluated(static, eval_key, maze, train(train_key, ReinforceHParams(**leaves), maze, init))

    return run


def _build_ppo(static, capacity):
    horizon = static["horizon"] or int(2 * reference.base_hitting_time(capacity.branches, capacity.depths, capacity.group - 1)) + 1
    train = make_ppo(static["steps"], horizon, static["num_rollouts"], epochs=static["epochs"],
                     minibatches=static["minibatches"], record_every=static["record_every"])

    def run(key, leaves, maze, init):
        train_key, eval_key = jax.random.split(key)
        return _evaluated(static, eval_key, maze, train(train_key, PPOHParams(**leaves), maze, init))

    return run


def _build_distill(static, capacity):
    teacher = make_rlvr_symmetric(static["teacher_steps"], capacity.depths, capacity.branches,
                                  record_every=static["teacher_steps"])
    train = make_distill(static["steps"], static["num_traces"], record_every=static["record_every"])

    def run(key, leaves, maze, init):
        train_key, eval_key = jax.random.split(key)
        theta, _, _ = teacher(RLVRHParams(lr=leaves["teacher_lr"], beta=jnp.ones_like(leaves["teacher_lr"])), *_sizes(maze))
        hparams = DistillHParams(lr=leaves["lr"], horizon=leaves["horizon"])
        result = train(train_key, hparams, maze, init, full_logits(maze, theta.astype(init.dtype)))
        return _evaluated(static, eval_key, maze, result)

    return run


def _build_base(static, capacity):
    def run(key, leaves, maze, init_logits):
        H = exact_hitting_time(maze, init_logits)
        return Outcome(init_logits, jnp.zeros(1, jnp.int32), H[None], None)

    return run


def _sizes(maze: Maze):
    """(W, K, L) of a (padded, possibly traced) paper maze ``Maze(W, K, L)``."""
    W = jnp.sum(maze.target_mask)
    K = jnp.max(maze.depth)
    L = jnp.sum((maze.state_type == R_PLUS) & (maze.depth == 1)) // W
    return W, K, L


def _build_rlvr_exact(static, capacity):
    if static["symmetric"]:
        train = make_rlvr_symmetric(static["steps"], capacity.depths, capacity.branches,
                                    record_every=static["record_every"])

        def run(key, leaves, maze, init):
            W, K, L = _sizes(maze)
            theta, H, _ = train(RLVRHParams(**leaves), W, K, L)
            return Outcome(full_logits(maze, theta.astype(init.dtype)), jnp.asarray(train.record_steps), H, None)

        return run
    train = make_rlvr_exact(static["steps"], record_every=static["record_every"])
    return lambda key, leaves, maze, init: _trained(train(key, RLVRHParams(**leaves), maze, init))


def _bool(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def _build_sft_exact(static, capacity):
    train = make_sft_exact(static["steps"], record_every=static["record_every"])
    return lambda key, leaves, maze, init: _trained(train(key, SFTHParams(**leaves), maze, init))


def _build_sft(static, capacity):
    train = make_sft(static["steps"], static["batch_size"], record_every=static["record_every"])
    return lambda key, leaves, maze, init: _trained(train(key, SFTHParams(**leaves), maze, init))


def _build_search(policy):
    def build(static, capacity):
        def run(key, leaves, maze, init_logits):
            logits = policy(maze, init_logits.dtype)
            H = exact_hitting_time(maze, logits)
            walks = simulate.search_walks(maze, logits, key, static["rollouts"], static["horizon"], static["mode"])
            return Outcome(logits, jnp.zeros(1, jnp.int32), H[None], (walks.length, walks.success))

        return run

    return build


def _default(fn, name):
    return inspect.signature(fn).parameters[name].default


def _from_signature(fn, static=(), leaves=()):
    """Params whose defaults are those of the one-run trainer ``fn`` (one source of truth)."""
    out = {name: Param(_default(fn, name), True, _int) for name in static}
    positive = {"lr", "clip", "critic_rate"}
    out.update({name: Param(_default(fn, name), False, _positive if name in positive else _non_negative) for name in leaves})
    return out


_SCHEDULE = {"record_every": Param(10, True, _int)}
_EVALUATION = {"eval_rollouts": Param(1000, True, _int), "eval_horizon": Param(100_000, True, _int)}
_SEARCH = {
    "rollouts": Param(1000, True, _int),
    "horizon": Param(1_000_000, True, _int),
    "mode": Param("aggregate", True, _search_mode),
}

METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("base", {}, _build_base, doc="the pretrained (uniform) model, untrained"),
        Method(
            "sft_exact",
            {"steps": Param(300, True, _int), "lr": Param(0.1, False, _positive), **_SCHEDULE},
            _build_sft_exact,
            doc="exact population SFT on golden paths (Adam)",
        ),
        Method(
            "sft",
            {"steps": Param(300, True, _int), "batch_size": Param(32, True, _int),
             "lr": Param(0.1, False, _positive), **_SCHEDULE},
            _build_sft,
            doc="sampled minibatch SFT on golden paths (Adam)",
        ),
        Method(
            "rlvr_exact",
            {"steps": Param(600, True, _int), "lr": Param(0.01, False, _positive),
             "beta": Param(1.0, False, _non_negative), "symmetric": Param(True, True, _bool), **_SCHEDULE},
            _build_rlvr_exact,
            doc="exact-gradient RLVR with sign ascent (paper's Thm 3); symmetric = true uses the "
                "branch-symmetric fast path (identical trajectory, O(K) per step)",
        ),
        Method(
            "reinforce",
            {**_from_signature(reinforce, static=("steps", "num_rollouts"), leaves=("lr", "beta", "horizon_scale")),
             "horizon": Param(_default(reinforce, "horizon"), False, _int, "int32"), **_SCHEDULE, **_EVALUATION},
            _build_reinforce, sampled=True,
            doc="REINFORCE with a leave-one-out baseline, horizon twice the current exact H (Adam)",
        ),
        Method(
            "ppo",
            {**_from_signature(ppo, static=("steps", "num_rollouts", "epochs", "minibatches"),
                               leaves=("lr", "beta", "clip", "gae_lambda", "critic_rate", "horizon_scale")),
             "horizon": Param(0, True, _non_negative_int), **_SCHEDULE, **_EVALUATION},
            _build_ppo, sampled=True,
            doc="PPO (clipped surrogate, tabular critic, GAE); horizon 0 = twice the largest base H of the grid",
        ),
        Method(
            "distill",
            {**_from_signature(distill, static=("steps", "num_traces"), leaves=("lr",)),
             "horizon": Param(_default(distill, "horizon"), False, _int, "int32"),
             "teacher_steps": Param(600, True, _int), "teacher_lr": Param(0.01, False, _positive),
             **_SCHEDULE, **_EVALUATION},
            _build_distill, sampled=True,
            doc="distillation of the exact-RLVR teacher (symmetric fast path) into the pretrained model",
        ),
        Method("search_sft", dict(_SEARCH), _build_search(sft_limit_logits), sampled=True,
               doc="search scaffold (Cor. 1) on the SFT-limit policy; cost = proposals"),
        Method("search_rlvr", dict(_SEARCH), _build_search(backtracker_logits), sampled=True,
               doc="search scaffold (Cor. 1) on the RLVR limit (backtracker); cost = proposals"),
    ]
}


def get(name: str) -> Method:
    """The method called ``name``; a ValueError lists the known ones otherwise."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}")
    return METHODS[name]


def summarise_types(maze: Maze, types: dict) -> dict:
    """Mean over the maze's real depths of each per-depth type probability (float64 scalars)."""
    depth = jnp.asarray(maze.depth)
    present = jnp.any(depth[None, :] == jnp.arange(1, types["a"].shape[-1] + 1)[:, None], axis=1)
    count = jnp.maximum(jnp.sum(present), 1)
    return {k: jnp.sum(jnp.where(present, v, 0.0)) / count for k, v in types.items()}


__all__ = ["METHODS", "Method", "Outcome", "Param", "get", "summarise_types"]
