"""Pieces every trainer shares: the result type, masked optax optimizers, exact metrics, the loop.

A trainer is built by a ``make_*`` function from its *static* configuration (number of steps,
recording resolution, batch size, optimizer factory) and returns a pure function
``train(key, hparams, maze, init_logits) -> TrainResult`` that runs the whole training inside
``lax.scan``. Everything a sweep varies (learning rate, beta, the maze itself when mazes are
padded to one capacity) is an array leaf, so ``x64_jit(jax.vmap(train))`` runs a sweep as one
program. Exact quantities (hitting time, its gradient, the records) are float64 from
:mod:`mazejax.exact`, so trainer bodies run, and must be compiled, with x64 enabled
(:func:`in_x64`, :func:`x64_jit`); logits keep their own dtype (float32 by default).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax import lax

from mazejax import _checks, exact
from mazejax.maze import Maze
from mazejax.policy import _type_probabilities, pretrained_logits, trainable_moves

F64 = jnp.float64

#: An optimizer factory: learning rate (a scalar array, possibly traced) -> optax transformation.
OptimizerFactory = Callable[[jax.Array], optax.GradientTransformation]


@struct.dataclass
class TrainResult:
    """What a trainer returns. ``R = steps // record_every`` (``R + 1`` records, step 0 included).

    Attributes:
      logits: final logits [S, D], dtype of the initial logits.
      step: int32 [R + 1], the step after which each record was taken (0, record_every, ..., steps).
      hitting_time: float64 [R + 1], exact expected hitting time H of the policy at each record.
      loss: float64 [R + 1], the exact objective the trainer minimises at each record (SFT: the
        population cross-entropy on golden paths; RLVR: ``-J = beta * H - 1``).
      types: dict ``"a", "b", "c", "d"`` -> float64 [R + 1, depths], the per-depth type
        probabilities (SPEC 2.1) at each record (zeros on mazes without typed states).
    Under ``vmap`` every field gains the batch axes in front.
    """

    logits: jax.Array
    step: jax.Array
    hitting_time: jax.Array
    loss: jax.Array
    types: dict


def check_schedule(steps, record_every) -> tuple[int, int]:
    """Validate the static loop sizes on the host; return them as ints."""
    steps = _checks.positive_int("steps", steps)
    record_every = _checks.positive_int("record_every", record_every)
    if steps % record_every:
        raise ValueError(f"record_every must divide steps = {steps}, got {record_every}")
    return steps, record_every


def check_scalar(name: str, value) -> None:
    """Raise unless ``value`` is a scalar (one run; sweeps vmap the ``make_*`` trainers instead)."""
    if np.ndim(value) != 0:
        raise ValueError(f"{name} must be a scalar for a single run, got shape {np.shape(value)}")


def record_steps(steps: int, record_every: int) -> np.ndarray:
    """int32 [steps // record_every + 1]: the step index of each record."""
    return np.arange(0, steps + 1, record_every, dtype=np.int32)


def masked(optimizer: optax.GradientTransformation, mask: jax.Array) -> optax.GradientTransformation:
    """``optimizer`` restricted to the logits where ``mask`` (bool [S, D]) is True.

    Gradients outside the mask are zeroed before ``optimizer`` sees them, and updates outside the
    mask are set to ``-0.0``: ``x + (-0.0) == x`` bit for bit for every float ``x`` (``-inf`` and
    ``-0.0`` included), so frozen logits stay bit-identical under ``optax.apply_updates``.
    """

    def update(updates, state, params=None):
        updates = jnp.where(mask, updates, 0.0)
        updates, state = optimizer.update(updates, state, params)
        return jnp.where(mask, updates, -0.0), state

    return optax.GradientTransformation(optimizer.init, update)


def trainable_optimizer(factory: OptimizerFactory, lr: jax.Array, maze: Maze) -> optax.GradientTransformation:
    """``factory(lr)`` applied to the trainable logits of ``maze`` only (:func:`masked`)."""
    return masked(factory(lr), trainable_moves(maze))


def in_x64(fn: Callable) -> Callable:
    """``fn`` run inside ``jax.enable_x64(True)`` (the trainers' bodies, :func:`x64_jit`).

    JAX re-traces a loop body when the loop is bound (``vmap`` of a ``scan``, say) and lowers
    each operation when the program is compiled, each time under the configuration active at that
    moment; a program holding float64 values (the exact solver, the records) must therefore be
    traced *and* lowered with x64 enabled, not just have its solver call wrapped. Code inside keeps
    explicit dtypes: logits and hyperparameters keep theirs, exact metrics are float64.
    """

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with jax.enable_x64(True):
            return fn(*args, **kwargs)

    return wrapped


def x64_jit(fn: Callable, **jit_kwargs) -> Callable:
    """``jax.jit(fn, **jit_kwargs)`` whose calls trace and compile with x64 enabled.

    Use it (or call ``jax.jit`` inside ``with jax.enable_x64(True):``) to compile anything built
    from the ``make_*`` trainers, e.g. ``x64_jit(jax.vmap(train))(keys, hparams, mazes, logits)``:
    compiled with x64 disabled, values traced as 64-bit (loop indices, sampled integers) fail to lower.
    """
    return in_x64(jax.jit(fn, **jit_kwargs))


def exact_hitting_time(maze: Maze, logits: jax.Array) -> jax.Array:
    """Exact H of the policy, float64 scalar (traceable; see :func:`mazejax.exact.hitting_time`)."""
    with jax.enable_x64(True):
        return exact._hitting_time(maze, logits.astype(F64))


def exact_types(maze: Maze, logits: jax.Array) -> dict[str, jax.Array]:
    """Per-depth ``a, b, c, d``, float64 [depths] each (traceable; see ``type_probabilities``)."""
    with jax.enable_x64(True):
        return _type_probabilities(maze, logits.astype(F64))


def train_loop(step, carry, *, steps: int, record_every: int, probe, measure):
    """Run ``steps`` training steps inside ``lax.scan``, recording every ``record_every`` steps.

    Args:
      step: ``(carry, t) -> (carry, measured)``; ``measured`` is a dict of quantities the step
        computes anyway at the policy *before* its update (e.g. the exact H with its gradient).
      carry: initial carry; ``carry[0]`` must be the logits.
      probe: ``carry -> dict`` of quantities recorded at each checkpoint on top of ``measured``.
      measure: ``carry -> dict`` with the same keys as ``measured``, for the final policy.

    Returns ``(final carry, records)``: records are dicts of arrays with a leading axis of size
    ``steps // record_every + 1`` (before step 0, then after every ``record_every`` steps).
    """

    def chunk(carry, start):
        probed = probe(carry)
        carry, measured = lax.scan(step, carry, start + jnp.arange(record_every, dtype=jnp.int32))
        return carry, {**probed, **jax.tree.map(lambda m: m[0], measured)}

    starts = record_every * jnp.arange(steps // record_every, dtype=jnp.int32)
    carry, records = lax.scan(chunk, carry, starts)
    last = {**probe(carry), **measure(carry)}
    return carry, jax.tree.map(lambda r, x: jnp.concatenate([r, x[None]]), records, last)


def result(logits, records, steps: int, record_every: int) -> TrainResult:
    """Pack the final logits and the records of :func:`train_loop` into a :class:`TrainResult`."""
    return TrainResult(
        logits=logits,
        step=jnp.asarray(record_steps(steps, record_every)),
        hitting_time=records["hitting_time"],
        loss=records["loss"],
        types=records["types"],
    )


def initial_logits(maze: Maze, init_logits) -> jax.Array:
    """Validated initial logits [S, D]: ``init_logits`` or the pretrained (uniform) model."""
    if init_logits is None:
        return pretrained_logits(maze)
    _checks.logits_shape(maze, init_logits)
    return init_logits


@functools.cache
def compiled(factory: Callable, *args, **kwargs) -> Callable:
    """``jax.jit(factory(*args, **kwargs))``, built once per static configuration, called under x64.

    The call (hence tracing and lowering) runs inside ``jax.enable_x64(True)``: float64 initial
    logits stay float64, and the float64 solver lowers in the configuration it was traced in.
    """
    return x64_jit(factory(*args, **kwargs))


__all__ = [
    "OptimizerFactory",
    "TrainResult",
    "check_scalar",
    "check_schedule",
    "compiled",
    "exact_hitting_time",
    "exact_types",
    "in_x64",
    "initial_logits",
    "masked",
    "record_steps",
    "result",
    "train_loop",
    "x64_jit",
    "trainable_optimizer",
]
