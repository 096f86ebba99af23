"""The trainer skeleton: every trainer is a static configuration, hyperparameters and a pure loop.

A trainer comes as three pieces (the purejaxrl / rejax shape):

* ``<Name>Config``: a frozen, hashable dataclass of *static* settings (number of steps, batch
  sizes, the optimizer's name, ...): what fixes the compiled program. Each field holds its
  default and its :class:`~mazejax.validate.Rule` once (:func:`setting`); constructing a config
  validates it.
* ``<Name>HParams``: a PyTree dataclass of *leaves* a sweep may vary (learning rate, length
  penalty, ...), each field with its default, rule and dtype (:func:`hparam`);
  ``HParams.create(**values)`` validates and casts them (scalars for one run, arrays to vmap over).
* ``make_<name>(config) -> train(key, hparams, maze, init_logits) -> TrainResult``: a pure
  function that runs the whole training inside ``lax.scan``; ``jax.jit(jax.vmap(train))`` runs
  many runs (seeds, hyperparameters, :func:`mazejax.stack`-ed mazes) as one program.

A :class:`Trainer` ties the three together for the one-run convenience functions
(``mazejax.train.reinforce(maze, key, lr=0.1)``), the sweep's methods and the reproduction, which
all read the defaults from the dataclasses. The pieces every trainer repeats live here: the
records (:func:`train_loop`, :func:`exact_metrics`), the masked optax optimizer
(:func:`trainable_optimizer`) and the result type (:class:`TrainResult`).

Trainers record exact float64 quantities, so they need ``jax_enable_x64`` (checked when a trainer
is built and when it is traced); logits and hyperparameters keep their own dtypes (float32 by
default).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax import lax

from mazejax import exact, validate
from mazejax.maze import Maze
from mazejax.policy import _type_probabilities, pretrained_logits, trainable_moves

F64 = jnp.float64

#: Optimizers by name (static settings, so sweeps can name them in TOML): ``lr -> transformation``.
OPTIMIZERS: dict[str, Callable[[jax.Array], optax.GradientTransformation]] = {
    "adam": optax.adam,
    "sgd": optax.sgd,
    "sign_sgd": optax.sign_sgd,
    "rmsprop": optax.rmsprop,
}


# ----------------------------------------------------------------------------------------
# Declaring settings and hyperparameters


def setting(default, rule: validate.Rule, doc: str = ""):
    """A static field of a trainer configuration: its default, its rule and a one-line doc."""
    return dataclasses.field(default=default, metadata={"rule": rule, "doc": doc})


def hparam(default, rule: validate.Rule, doc: str = "", *, dtype: str = "float"):
    """A hyperparameter leaf: default, rule, doc and its kind of dtype (``"float"``: the run's float
    dtype, float32 by default; ``"int32"``)."""
    return struct.field(default=default, metadata={"rule": rule, "doc": doc, "dtype": dtype})


def steps(default: int, doc: str = "optimizer steps"):
    """The ``steps`` field every configuration has."""
    return setting(default, validate.Integer(1), doc)


def record_every(default: int):
    """The ``record_every`` field every configuration has (it must divide ``steps``)."""
    return setting(default, validate.Integer(1), "record the exact H, the loss and a, b, c, d every this many steps")


def optimizer(default: str):
    """The ``optimizer`` field (a name of :data:`OPTIMIZERS`; it only sees the trainable logits)."""
    return setting(default, OPTIMIZER, "optimizer name")


def _optimizer_rule(name: str, value):
    if callable(value):
        return value
    return validate.choice(name, value, tuple(OPTIMIZERS))


OPTIMIZER = validate.Rule(_optimizer_rule, "one of " + ", ".join(map(repr, OPTIMIZERS)) + " (or an lr -> optax "
                          "transformation in Python)", "str")


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of every static configuration: validates each field with its rule on construction.

    Subclasses are frozen dataclasses whose fields are made with :func:`setting`; every one has
    ``steps`` and ``record_every`` (which must divide ``steps``).
    """

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = field.metadata["rule"](field.name, getattr(self, field.name))
            object.__setattr__(self, field.name, value)
        if self.steps % self.record_every:
            raise ValueError(f"record_every must divide steps = {self.steps}, got {self.record_every}")

    def optimizer_fn(self, lr) -> optax.GradientTransformation:
        """The configured optimizer at learning rate ``lr``."""
        make = self.optimizer if callable(self.optimizer) else OPTIMIZERS[self.optimizer]
        return make(lr)


class HParams:
    """Base of every hyperparameter PyTree (subclasses are ``flax.struct`` dataclasses)."""

    @classmethod
    def create(cls, dtype=np.float32, **values):
        """Validated hyperparameters: defaults updated by ``values``, cast to arrays (floats in
        ``dtype``, int fields int32) and broadcast to one shape (scalars for one run, arrays of
        sweep values for a vmap over runs). Unknown names raise a ValueError naming them."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(f"{cls.__name__} has no hyperparameter {unknown[0]!r}; allowed: {', '.join(fields)}")
        out = {}
        for name, field in fields.items():
            if field.metadata.get("data"):  # an array input (e.g. a teacher policy), not a scalar setting
                if name not in values:
                    raise ValueError(f"{cls.__name__} needs {name}")
                out[name] = values[name]
                continue
            value = values.get(name, field.default)
            field.metadata["rule"](name, value)
            out[name] = np.asarray(value, np.int32 if field.metadata["dtype"] == "int32" else dtype)
        scalars = [n for n, f in fields.items() if not f.metadata.get("data")]
        for name, value in zip(scalars, np.broadcast_arrays(*(out[n] for n in scalars))):
            out[name] = value
        return cls(**out)


def data(doc: str = ""):
    """A required array field of a hyperparameter PyTree that is data, not a setting (no default)."""
    return struct.field(metadata={"data": True, "doc": doc})


# ----------------------------------------------------------------------------------------
# Results and the loop


@struct.dataclass
class TrainResult:
    """What every trainer returns. ``R = steps // record_every`` (``R + 1`` records, step 0 included).

    Attributes:
      logits: final logits [S, D], dtype of the initial logits.
      step: int32 [R + 1], the step after which each record was taken (0, record_every, ..., steps).
      hitting_time: float64 [R + 1], exact expected hitting time H of the policy at each record.
      loss: float64 [R + 1], the exact objective the trainer minimises at each record (SFT: the
        population cross-entropy of its data; RLVR: ``-J = beta * H - 1``).
      types: dict ``"a", "b", "c", "d"`` -> float64 [R + 1, depths], the per-depth type
        probabilities (docs/model.md §2.1) at each record (zeros on mazes without typed states).
      extra: dict of further records a trainer keeps (each with ``R + 1`` rows), e.g. the sign of
        each per-depth gradient of the branch-symmetric RLVR trainer.
    Under ``vmap`` every field gains the batch axes in front.
    """

    logits: jax.Array
    step: jax.Array
    hitting_time: jax.Array
    loss: jax.Array
    types: dict
    extra: dict = struct.field(default_factory=dict)


def record_steps(steps: int, record_every: int) -> np.ndarray:
    """int32 [steps // record_every + 1]: the step index of each record."""
    return np.arange(0, steps + 1, record_every, dtype=np.int32)


def exact_metrics(maze: Maze, logits: jax.Array) -> dict:
    """Exact H (float64 scalar) and per-depth ``a, b, c, d`` (float64 [depths] each) of a policy."""
    return {"hitting_time": exact.hitting_time(maze, logits), "types": exact_types(maze, logits)}


def exact_types(maze: Maze, logits: jax.Array) -> dict:
    """Per-depth ``a, b, c, d`` in float64 (zeros on mazes without typed states); traceable."""
    return _type_probabilities(maze, logits.astype(F64))


def train_loop(step, carry, *, steps: int, record_every: int, probe):
    """Run ``steps`` training steps inside ``lax.scan``, recording every ``record_every`` steps.

    Args:
      step: ``(carry, t) -> (carry, measured)``; ``measured`` is a dict of quantities the step
        computes anyway at the policy *before* its update (e.g. the exact H with its gradient).
      carry: initial carry; ``carry[0]`` must be the logits.
      probe: ``carry -> dict`` of quantities recorded at each checkpoint on top of ``measured``.

    Returns ``(final carry, records)``: records are dicts of arrays with a leading axis of size
    ``steps // record_every + 1`` (before step 0, then after every ``record_every`` steps).

    The final policy is recorded by one more chunk whose first step (``t = steps``) runs for its
    ``measured`` only (its update is discarded; skipped too when ``measured`` is empty) and whose
    other steps are skipped (``lax.cond``), so the compiled program holds one copy of ``step`` and of
    ``probe``: a separate final evaluation doubled the exact solver in every trainer's program.
    """
    step = jax.jit(step)  # traced once: the shapes below come from the same trace as the call

    def guarded(carry, t):
        shapes = jax.eval_shape(step, carry, t)[1]
        last = steps + 1 if jax.tree.leaves(shapes) else steps

        def run(carry):
            new, measured = step(carry, t)
            return jax.tree.map(lambda n, o: jnp.where(t < steps, n, o), new, carry), measured

        def skip(carry):
            return carry, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

        return lax.cond(t < last, run, skip, carry)

    def chunk(carry, start):
        probed = probe(carry)
        carry, measured = lax.scan(guarded, carry, start + jnp.arange(record_every, dtype=jnp.int32))
        return carry, {**probed, **jax.tree.map(lambda m: m[0], measured)}

    starts = record_every * jnp.arange(steps // record_every + 1, dtype=jnp.int32)
    return lax.scan(chunk, carry, starts)


def result(logits, records, config: Config, extra: dict | None = None) -> TrainResult:
    """Pack the final logits and the records of :func:`train_loop` into a :class:`TrainResult`."""
    return TrainResult(
        logits=logits,
        step=jnp.asarray(record_steps(config.steps, config.record_every)),
        hitting_time=records["hitting_time"],
        loss=records["loss"],
        types=records["types"],
        extra=extra or {},
    )


def masked(optimizer: optax.GradientTransformation, mask: jax.Array) -> optax.GradientTransformation:
    """``optimizer`` that only sees the gradient where ``mask`` (bool [S, D]) is True (zero elsewhere),
    so its state never accumulates anything for frozen logits. Apply its updates with :func:`descend`."""

    def update(updates, state, params=None):
        return optimizer.update(jnp.where(mask, updates, 0.0), state, params)

    return optax.GradientTransformation(optimizer.init, update)


def train_fork(config) -> bool:
    """The static ``train_fork`` setting of ``config`` (False, the paper's frozen fork rows, for
    trainers without one)."""
    return bool(getattr(config, "train_fork", False))


def fork_setting():
    """The ``train_fork`` field of the RLVR-family configurations (issue 12, item 1)."""
    return setting(False, validate.BOOLEAN, "also train the fork rows (the paper freezes them uniform over all W "
                   "branches, the one just left included)")


def trainable_optimizer(config: Config, lr: jax.Array, maze: Maze) -> optax.GradientTransformation:
    """The configured optimizer at ``lr``, applied to the trainable logits of ``maze`` only
    (fork rows included when ``config.train_fork``)."""
    return masked(config.optimizer_fn(lr), trainable_moves(maze, train_fork(config)))


def descend(tx: optax.GradientTransformation, logits, opt_state, gradient, maze: Maze, fork: bool = False):
    """One optimizer step down ``gradient`` (of a loss) on the trainable logits; returns (logits, state).

    Frozen logits keep their bits exactly (``-inf`` included). The mask is applied *after* the add:
    in ``logits + where(mask, u, -0.0)`` XLA:CPU fuses the select into a fused multiply-add in full
    vector registers but rounds twice in the loop's remainder, so a logit's bits depended on its
    position in the array, hence on the padded capacity of the maze. ``fork``: the fork rows are
    trainable too (pass :func:`train_fork` of the configuration).
    """
    updates, opt_state = tx.update(gradient.astype(logits.dtype), opt_state, logits)
    return jnp.where(trainable_moves(maze, fork), logits + updates, logits), opt_state


# ----------------------------------------------------------------------------------------
# Trainers as values: one-run calls and the sweep


@dataclasses.dataclass(frozen=True)
class Trainer:
    """A trainer: its configuration and hyperparameter classes and its ``make`` function.

    ``run(maze, key, init_logits, **settings)`` trains once (settings: any field of either
    class), compiling once per configuration.
    """

    name: str
    Config: type
    HParams: type
    make: Callable[[Any], Callable]
    doc: str = ""

    def config_fields(self) -> list[dataclasses.Field]:
        return list(dataclasses.fields(self.Config))

    def hparam_fields(self) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(self.HParams) if not f.metadata.get("data")]

    def split(self, settings: dict) -> tuple[dict, dict]:
        """Split keyword settings into (config values, hyperparameter values); unknown names raise."""
        static = {f.name for f in self.config_fields()}
        leaves = {f.name for f in dataclasses.fields(self.HParams)}
        unknown = sorted(set(settings) - static - leaves)
        if unknown:
            raise ValueError(f"{self.name} has no setting {unknown[0]!r}; allowed: {', '.join(sorted(static | leaves))}")
        return ({k: v for k, v in settings.items() if k in static}, {k: v for k, v in settings.items() if k in leaves})

    def run(self, maze: Maze, key, init_logits=None, **settings) -> TrainResult:
        """One training run on ``maze`` from ``init_logits`` (default: the pretrained model)."""
        validate.require_x64(f"mazejax.train.{self.name}")
        if not isinstance(maze, Maze):
            raise ValueError(f"maze must be a mazejax.Maze, got {type(maze).__name__}")
        static, leaves = self.split(settings)
        for field in self.hparam_fields():
            if field.name in leaves and np.ndim(leaves[field.name]) != 0:
                raise ValueError(f"{field.name} must be a scalar for a single run (vmap the make_* trainer "
                                 f"for sweeps), got shape {np.shape(leaves[field.name])}")
        init_logits = initial_logits(maze, init_logits)
        config = self.Config(**static)
        hparams = self.HParams.create(dtype=init_logits.dtype, **leaves)
        key = jax.random.key(0) if key is None else key
        return _compiled(self.make, config)(key, hparams, maze, init_logits)


@functools.cache
def _compiled(make: Callable, config: Config) -> Callable:
    """``jax.jit(make(config))``, built once per static configuration."""
    return jax.jit(make(config))


def initial_logits(maze: Maze, init_logits) -> jax.Array:
    """Validated initial logits [S, D]: ``init_logits`` or the pretrained (uniform) model."""
    if init_logits is None:
        return pretrained_logits(maze)
    validate.logits_shape(maze, init_logits)
    return jnp.asarray(init_logits)


__all__ = [
    "Config",
    "HParams",
    "OPTIMIZER",
    "OPTIMIZERS",
    "TrainResult",
    "Trainer",
    "data",
    "descend",
    "exact_metrics",
    "exact_types",
    "fork_setting",
    "hparam",
    "initial_logits",
    "masked",
    "record_steps",
    "result",
    "setting",
    "train_fork",
    "train_loop",
    "trainable_optimizer",
]
