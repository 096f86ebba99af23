"""The sweep's methods: each trainer (and the untrained baselines) behind one interface.

A :class:`Method` declares its settings (:class:`Param`: default, rule, whether it is *static* --
it fixes the compiled program -- or a *leaf* a sweep may vary inside one program) and builds,
from the static ones and the padded maze capacity, a pure function

    run(key, leaves, maze, init_logits) -> Outcome

that :mod:`mazejax.sweep.driver` vmaps over runs. ``leaves`` is a dict of scalar arrays. A
*maze-free* method (the branch-symmetric RLVR fast path) gets ``sizes`` (int32 [3]: W, K, L)
instead of a maze and no initial logits (it starts from the pretrained model): a sweep of such
runs builds no maze at all. Methods
built on a trainer take its settings and defaults from the trainer's ``Config`` and ``HParams``
dataclasses (:mod:`mazejax.train.base`); only what the sweep adds (Monte Carlo evaluation of
the trained policy, the distillation teacher, the search scaffold) is declared here.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mazejax import exact, reference, simulate, validate
from mazejax.maze import Capacity, Maze
from mazejax.ordered import ordered_sum
from mazejax.policy import backtracker_logits, sft_limit_logits
from mazejax.train import (DISTILL, PPO, REINFORCE, RLVR_EXACT, RLVR_SYMMETRIC, RLVR_TRUNCATED, SFT, SFT_EXACT,
                           SFT_SEARCH, SFT_SEARCH_EXACT, Trainer)
from mazejax.simulate.sequence import CHUNK, sample_sequences
from mazejax.train import neural
from mazejax.train.base import F64, exact_types, record_steps
from mazejax.train.rlvr import symmetric_trajectory


class Outcome(NamedTuple):
    """What a method returns for one run.

    step: int32 [R] steps at which ``hitting_time`` [R] (float64, exact H) was recorded; the last
    record is the final policy. ``types``: dict ``a, b, c, d`` -> float64 scalars, the final
    policy's type probabilities averaged over the maze's depths. ``mc``: optional (length [n] int,
    success [n] bool) from rollouts of the final policy, for sampled methods.
    """

    step: jax.Array
    hitting_time: jax.Array
    types: dict
    mc: tuple | None


@dataclasses.dataclass(frozen=True)
class Param:
    """One setting of a method: default, rule, static (fixes the program) or a leaf, dtype, doc."""

    default: object
    rule: validate.Rule
    static: bool
    dtype: str = "float"
    doc: str = ""


@dataclasses.dataclass(frozen=True)
class Method:
    """A sweep method. ``build(static, capacity) -> run(key, leaves: dict, maze, init_logits) -> Outcome``.

    ``resolve(static, capacity)`` fills settings whose default depends on the grid (PPO's buffer
    length) before a run's identity is formed, so a row always records the value that was used.
    ``memory(static, capacity)`` estimates the bytes one run needs inside a vmapped chunk.
    ``maze_free``: ``run(key, leaves, sizes, None)`` with ``sizes`` = (W, K, L) instead of a maze.
    """

    name: str
    params: dict
    build: Callable
    memory: Callable
    resolve: Callable = staticmethod(lambda static, capacity: static)
    sampled: bool = False
    maze_free: bool = False
    doc: str = ""


def _settings(Config: type, HParams: type) -> dict:
    """A trainer's settings as sweep params: config fields static, hyperparameters leaves (data
    fields, such as a teacher's logits, are not settings)."""
    params = {f.name: Param(f.default, f.metadata["rule"], True, doc=f.metadata["doc"])
              for f in dataclasses.fields(Config)}
    for f in dataclasses.fields(HParams):
        if not f.metadata.get("data"):
            params[f.name] = Param(f.default, f.metadata["rule"], False, f.metadata["dtype"], f.metadata["doc"])
    return params


def _from_trainer(trainer: Trainer) -> dict:
    return _settings(trainer.Config, trainer.HParams)


_EVALUATION = {
    "eval_rollouts": Param(1000, validate.Integer(2), True, doc="Monte Carlo walks of the trained policy"),
    "eval_horizon": Param(100_000, validate.Integer(1, 2**31 - 1), True, doc="their horizon"),
}
_SEQUENCE_EVALUATION = {
    **_EVALUATION,
    "eval_record": Param(256, validate.Integer(2), True, doc="transformer: moves + 1 of each evaluation walk kept for "
                         "its empirical a, b, c, d"),
}
_SEARCH = {
    "rollouts": Param(1000, validate.Integer(2), True, doc="walks under the scaffold"),
    "horizon": Param(1_000_000, validate.Integer(1, 2**31 - 1), True, doc="their proposal horizon"),
    "mode": Param("aggregate", validate.Choice(*simulate.SEARCH_MODES), True, doc="scaffold semantics"),
}
_TEACHER = {
    "teacher_steps": Param(600, validate.Integer(1), True, doc="steps of the exact-RLVR teacher (symmetric fast path)"),
    "teacher_lr": Param(0.01, validate.Number(0, low_open=True), False, doc="its sign-ascent learning rate"),
}


def _config(trainer: Trainer, static: dict):
    return trainer.Config(**{f.name: static[f.name] for f in trainer.config_fields()})


def _hparams(trainer: Trainer, leaves: dict, **data):
    return trainer.HParams(**{f.name: leaves[f.name] for f in trainer.hparam_fields()}, **data)


def _trained(maze, result, mc=None) -> Outcome:
    return Outcome(result.step, result.hitting_time, summarise_types(maze, result.logits), mc)


def _evaluated(static, key, maze, result) -> Outcome:
    """The trained policy with ``eval_rollouts`` Monte Carlo walks of at most ``eval_horizon`` moves."""
    walks = simulate.sample_walks(maze, result.logits, key, static["eval_rollouts"], static["eval_horizon"])
    return _trained(maze, result, (walks.length, walks.success))


def _build_trainer(trainer: Trainer, evaluate: bool):
    def build(static, capacity):
        train = trainer.make(_config(trainer, static))

        def run(key, leaves, maze, init):
            train_key, eval_key = jax.random.split(key)
            result = train(train_key, _hparams(trainer, leaves), maze, init)
            return _evaluated(static, eval_key, maze, result) if evaluate else _trained(maze, result)

        return run

    return build


def _teacher(static):
    """``teacher(key, leaves, maze, init) -> logits``: the exact-RLVR teacher (symmetric fast path,
    ``teacher_steps`` sign-ascent steps of ``teacher_lr`` from ``init``)."""
    teacher = RLVR_SYMMETRIC.make(RLVR_SYMMETRIC.Config(steps=static["teacher_steps"], record_every=static["teacher_steps"]))

    def logits(key, leaves, maze, init):
        hparams = RLVR_SYMMETRIC.HParams(lr=leaves["teacher_lr"], beta=jnp.ones_like(leaves["teacher_lr"]))
        return teacher(key, hparams, maze, init).logits

    return logits


def _build_distill(static, capacity):
    teacher = _teacher(static)
    train = DISTILL.make(_config(DISTILL, static))

    def run(key, leaves, maze, init):
        train_key, eval_key = jax.random.split(key)
        teacher_logits = teacher(train_key, leaves, maze, init)
        result = train(train_key, _hparams(DISTILL, leaves, teacher_logits=teacher_logits), maze, init)
        return _evaluated(static, eval_key, maze, result)

    return run


def _build_neural(Config: type, HParams: type, make: Callable):
    """A sequence-policy trainer (:mod:`mazejax.train.neural`) as a sweep method.

    The run's key splits into the initial network's key, the training key and the evaluation key.
    The trained policy is evaluated by ``eval_rollouts`` walks (:func:`sample_sequences`). A tabular
    policy also gets its exact H and a, b, c, d (:func:`summarise_types`); a transformer has no
    exact H (NaN: the row's H is its Monte Carlo mean) and its a, b, c, d are the empirical
    frequencies of continuing the direction of travel in the first ``eval_record - 1`` moves of
    the evaluation walks, all depths pooled (:func:`mazejax.train.neural.empirical_types`).
    """

    def build(static, capacity):
        config = Config(**{f.name: static[f.name] for f in dataclasses.fields(Config)})
        train = make(config)
        teacher = _teacher(static) if static.get("data") == "teacher" else None
        num, tabular = static["eval_rollouts"], config.policy == "tabular"
        chunk = max(d for d in range(1, min(num, CHUNK) + 1) if num % d == 0)

        def run(key, leaves, maze, init):
            init_key, train_key, eval_key = jax.random.split(key, 3)
            data = {} if "teacher" not in {f.name for f in dataclasses.fields(HParams)} else {
                "teacher": init if teacher is None else teacher(train_key, leaves, maze, init)}
            hparams = HParams(**{n: leaves[n] for n in leaves if n not in _TEACHER}, **data)
            result = train(train_key, hparams, maze, config.init_params(init_key, maze, init))
            walks = sample_sequences(config.sequence_policy(maze), result.params, maze, eval_key, num,
                                     static["eval_horizon"], record=0 if tabular else static["eval_record"], chunk=chunk)
            if tabular:
                H, types = exact.hitting_time(maze, result.params.astype(init.dtype)), summarise_types(maze, result.params)
            else:
                H, types = jnp.asarray(jnp.nan, F64), neural.empirical_types(maze, walks.states)
            return Outcome(jnp.full(1, config.steps, jnp.int32), H[None], types, (walks.length, walks.success))

        return run

    return build


def _build_base(static, capacity):
    def run(key, leaves, maze, init_logits):
        H = exact.hitting_time(maze, init_logits)
        return Outcome(jnp.zeros(1, jnp.int32), H[None], summarise_types(maze, init_logits), None)

    return run


def _build_rlvr_symmetric(static, capacity):
    config = _config(RLVR_SYMMETRIC, static)
    theta = np.zeros((4, capacity.depths, 2), np.float32)  # the pretrained model (numpy: no dispatch at build time)

    def run(key, leaves, sizes, init_logits):
        W, K, L = sizes
        _, records = symmetric_trajectory(config, _hparams(RLVR_SYMMETRIC, leaves), W, K, L, theta)
        present = jnp.arange(1, capacity.depths + 1) <= K
        types = {k: ordered_sum(jnp.where(present, v[-1], 0.0)) / K for k, v in records["types"].items()}
        return Outcome(jnp.asarray(record_steps(config.steps, config.record_every)), records["hitting_time"], types, None)

    return run


def _build_search(policy):
    def build(static, capacity):
        def run(key, leaves, maze, init_logits):
            logits = policy(maze, init_logits.dtype)
            H = exact.hitting_time(maze, logits)
            walks = simulate.search_walks(maze, logits, key, static["rollouts"], static["horizon"], static["mode"])
            return Outcome(jnp.zeros(1, jnp.int32), H[None], summarise_types(maze, logits), (walks.length, walks.success))

        return run

    return build


def _resolve_ppo(static: dict, capacity: Capacity) -> dict:
    """PPO's buffer length when not given: twice the largest base H of the grid's capacity."""
    if static["horizon"] is not None:
        return static
    H0 = reference.base_hitting_time(capacity.branches, capacity.depths, capacity.group - 1)
    return {**static, "horizon": int(math.ceil(2 * H0)) + 1}


def _resolve_truncated(static: dict, capacity: Capacity) -> dict:
    """The truncated trainer's scan length when not given: twice the largest base H of the grid's
    capacity (horizons above it are capped, and the cap is what the run records)."""
    if static["max_horizon"] is not None:
        return static
    H0 = reference.base_hitting_time(capacity.branches, capacity.depths, capacity.group - 1)
    return {**static, "max_horizon": int(math.ceil(2 * H0)) + 1}


# ----------------------------------------------------------------------------------------
# Memory of one run inside a vmapped chunk (a planning estimate, bytes)


def _exact_bytes(capacity: Capacity) -> float:
    """One exact H with its gradient: the edge-state arrays and the chain solver's buffers, kept
    for reverse mode through the level scan."""
    S, D = capacity.states, capacity.out_degree
    chain = 2 * capacity.branches * (capacity.levels + 1) * (2 * capacity.group) ** 2
    return 8 * (6 * S * D + 40 * chain)


def _walk_bytes(capacity: Capacity, num: int, record: int = 0, counts: bool = False) -> float:
    """A batch of ``num`` walks: per-walk state (a few int32 vectors), a state buffer of ``record``
    int32 per walk, and a float32 [S, D] tally with the chunk's flat indices when counting."""
    S, D = capacity.states, capacity.out_degree
    per_walk = 4 * 8 + 4 * record * 3  # carries; the recorded states, then moves/slots derived from them
    tally = 4 * S * D + 4 * 128 * num if counts else 0
    return num * per_walk + tally + 8 * (S + 1) * D  # + alias and successor tables


def _trainer_bytes(capacity: Capacity) -> float:
    """Logits, optimizer state (Adam: two moments) and records, float32/float64."""
    return 4 * capacity.states * capacity.out_degree * 6 + _exact_bytes(capacity)


def _sequence_bytes(s: dict, c: Capacity) -> float:
    """A sequence-policy trainer (:mod:`mazejax.train.neural`): parameters with Adam's moments and a
    gradient, the step's recorded walks (states, frozen log-probabilities), the decoding caches, the
    activations of one teacher-forced group kept for reverse mode, and the evaluation walks."""
    S, D = c.states, c.out_degree
    width, layers, heads, context = s["width"], s["layers"], s["heads"], s["context"]
    network = 0 if s["policy"] == "tabular" else 2 * (S + 1) * width + layers * (12 * width * width + heads * context)
    params = 4 * 4 * (S * D + network)
    if "num_rollouts" in s:  # policy gradient: walks of at most `horizon` moves
        n, group, M = s["num_rollouts"], s["grad_chunk"], s["horizon"] + 1
        decode = 4 * s["chunk"] * layers * context * width * 2
    else:  # SFT: batch_size sequences of the longest golden path, DFS trace or teacher walk
        n = group = s["batch_size"]
        M = max(s["record"], c.paths + 1, (2 * c.branches - 1) * c.levels + 1)
        decode = 0
    forced = 4 * group * M * (layers * (16 * width + 4 * heads * context) + 4 * D)
    evaluation = _walk_bytes(c, s["eval_rollouts"], record=0 if s["policy"] == "tabular" else s["eval_record"])
    return params + 4 * 3 * n * M + decode + forced + evaluation + _exact_bytes(c)


_MEMORY = {
    "base": lambda s, c: _exact_bytes(c),
    "trainer": lambda s, c: _trainer_bytes(c),
    "reinforce": lambda s, c: _trainer_bytes(c) + 2 * _walk_bytes(c, s["num_rollouts"], counts=True)
    + _walk_bytes(c, s["eval_rollouts"]),
    "ppo": lambda s, c: _trainer_bytes(c) + _walk_bytes(c, s["num_rollouts"], record=s["horizon"] + 1)
    + 4 * s["num_rollouts"] * (s["horizon"] + 1) * 8 + 8 * c.targets * c.states + _walk_bytes(c, s["eval_rollouts"]),
    "distill": lambda s, c: 2 * _trainer_bytes(c) + _walk_bytes(c, s["num_traces"] or 1, counts=True)
    + _walk_bytes(c, s["eval_rollouts"]),
    "search": lambda s, c: _exact_bytes(c) + s["rollouts"] * (4 * c.states + 4 * c.out_degree * 8),
    "truncated": lambda s, c: _trainer_bytes(c) + 8 * s["max_horizon"] * c.targets * (c.states + 4),
    "sequence": _sequence_bytes,
    "symmetric": lambda s, c: 8 * (4 * c.depths * 60 + s["steps"] // s["record_every"] * 5 * c.depths),
}

METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("base", {}, _build_base, _MEMORY["base"], doc="the pretrained (uniform) model, untrained"),
        Method("sft_exact", _from_trainer(SFT_EXACT), _build_trainer(SFT_EXACT, False), _MEMORY["trainer"],
               doc=SFT_EXACT.doc),
        Method("sft", _from_trainer(SFT), _build_trainer(SFT, False), _MEMORY["trainer"], doc=SFT.doc),
        Method("rlvr_exact", _from_trainer(RLVR_EXACT), _build_trainer(RLVR_EXACT, False), _MEMORY["trainer"],
               doc=RLVR_EXACT.doc),
        Method("rlvr_truncated", _from_trainer(RLVR_TRUNCATED), _build_trainer(RLVR_TRUNCATED, False),
               _MEMORY["truncated"], resolve=_resolve_truncated,
               doc=RLVR_TRUNCATED.doc + "; max_horizon none = twice the largest base H of the grid"),
        Method("rlvr_symmetric", _from_trainer(RLVR_SYMMETRIC), _build_rlvr_symmetric, _MEMORY["symmetric"],
               maze_free=True, doc=RLVR_SYMMETRIC.doc + "; paper mazes from the pretrained model"),
        Method("reinforce", {**_from_trainer(REINFORCE), **_EVALUATION}, _build_trainer(REINFORCE, True),
               _MEMORY["reinforce"], sampled=True, doc=REINFORCE.doc),
        Method("ppo", {**_from_trainer(PPO), **_EVALUATION}, _build_trainer(PPO, True), _MEMORY["ppo"],
               resolve=_resolve_ppo, sampled=True,
               doc=PPO.doc + "; horizon none = twice the largest base H of the grid"),
        Method("distill", {**_from_trainer(DISTILL), **_TEACHER, **_EVALUATION}, _build_distill, _MEMORY["distill"],
               sampled=True, doc="distillation of the exact-RLVR teacher (symmetric fast path) into the pretrained model"),
        Method("search_sft", dict(_SEARCH), _build_search(sft_limit_logits), _MEMORY["search"], sampled=True,
               doc="search scaffold (Cor. 1) on the SFT-limit policy; cost = proposals"),
        Method("search_rlvr", dict(_SEARCH), _build_search(backtracker_logits), _MEMORY["search"], sampled=True,
               doc="search scaffold (Cor. 1) on the RLVR limit (backtracker); cost = proposals"),
        Method("sft_search_exact", _from_trainer(SFT_SEARCH_EXACT), _build_trainer(SFT_SEARCH_EXACT, False),
               _MEMORY["trainer"], doc=SFT_SEARCH_EXACT.doc + "; paper mazes"),
        Method("sft_search", _from_trainer(SFT_SEARCH), _build_trainer(SFT_SEARCH, False), _MEMORY["trainer"],
               doc=SFT_SEARCH.doc + "; paper mazes"),
        Method("neural_reinforce", {**_settings(neural.NeuralReinforceConfig, neural.NeuralReinforceHParams),
                                    **_SEQUENCE_EVALUATION},
               _build_neural(neural.NeuralReinforceConfig, neural.NeuralReinforceHParams, neural.make_neural_reinforce),
               _MEMORY["sequence"], sampled=True,
               doc="REINFORCE of a sequence policy (policy = transformer | tabular; mazejax.train.neural); "
                   "a transformer's H is its Monte Carlo mean"),
        Method("neural_ppo", {**_settings(neural.NeuralPPOConfig, neural.NeuralPPOHParams), **_SEQUENCE_EVALUATION},
               _build_neural(neural.NeuralPPOConfig, neural.NeuralPPOHParams, neural.make_neural_ppo),
               _MEMORY["sequence"], sampled=True,
               doc="PPO of a sequence policy (policy = transformer | tabular); a transformer's H is its Monte Carlo mean"),
        Method("neural_sft", {**_settings(neural.NeuralSFTConfig, neural.NeuralSFTHParams), **_TEACHER,
                              **_SEQUENCE_EVALUATION},
               _build_neural(neural.NeuralSFTConfig, neural.NeuralSFTHParams, neural.make_neural_sft),
               _MEMORY["sequence"], sampled=True,
               doc="SFT of a sequence policy by teacher forcing on golden paths, DFS traces or the exact-RLVR "
                   "teacher's walks (data; teacher_* used with data = teacher); paper mazes"),
    ]
}


def get(name: str) -> Method:
    """The method called ``name``; a ValueError lists the known ones otherwise."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}")
    return METHODS[name]


def setting_names() -> list[str]:
    """Every setting name of every method, sorted: the settings columns of ``runs.csv``."""
    return sorted({name for method in METHODS.values() for name in method.params})


def summarise_types(maze: Maze, logits: jax.Array) -> dict:
    """Mean over the maze's real depths of each per-depth type probability (float64 scalars)."""
    types = exact_types(maze, logits)
    depth = jnp.asarray(maze.depth)
    present = jnp.any(depth[None, :] == jnp.arange(1, types["a"].shape[-1] + 1)[:, None], axis=1)
    count = jnp.maximum(jnp.sum(present), 1)
    return {k: ordered_sum(jnp.where(present, v, 0.0)) / count for k, v in types.items()}


__all__ = ["METHODS", "Method", "Outcome", "Param", "get", "setting_names", "summarise_types"]
