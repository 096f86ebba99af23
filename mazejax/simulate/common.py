"""What the walk kernels share: argument checks and the split of a batch of walks over devices."""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_batching import custom_vmap
from jax.sharding import Mesh

from mazejax import validate
from mazejax.maze import Maze
from mazejax.simulate import rng

_MAX_INT32 = 2**31 - 1
AXIS = "rollouts"  # mesh axis of the rollout batch (``devices=``)


def check_common(maze, logits, key, horizon) -> None:
    if not isinstance(maze, Maze):
        raise ValueError(f"maze must be a mazejax.Maze, got {type(maze).__name__}")
    if validate.is_traced(maze):  # maze values unknown (e.g. vmapped): check the shape only
        expected = (maze.capacity.states, maze.capacity.out_degree)
        if tuple(np.shape(logits)) != expected:
            raise ValueError(
                f"logits must have shape (states, out_degree) = {expected} for this maze, got {np.shape(logits)}"
            )
    else:
        validate.logits_shape(maze, logits)
    if not validate.is_traced(horizon):
        if np.ndim(horizon) != 0:
            raise ValueError(f"horizon must be an integer in [1, {_MAX_INT32}], got shape {np.shape(horizon)}")
        value = horizon.item() if isinstance(horizon, (np.ndarray, np.generic, jax.Array)) else horizon
        validate.positive_int("horizon", value)
        if value > _MAX_INT32:
            raise ValueError(f"horizon must be an integer in [1, {_MAX_INT32}], got {value}")
    elif np.ndim(horizon) != 0 or not jnp.issubdtype(jnp.result_type(horizon), jnp.integer):
        raise ValueError("horizon must be an integer scalar")
    rng.key_words(key)


def rollout_mesh(devices, num: int) -> Optional[Mesh]:
    """A one-axis mesh ("rollouts") over ``devices``, or None; checks ``num`` divides evenly."""
    if devices is None:
        return None
    if isinstance(devices, (str, bytes)) or not all(isinstance(d, jax.Device) for d in devices) or not len(devices):
        raise ValueError(f"devices must be None or a non-empty sequence of jax.Device (e.g. jax.local_devices()), got {devices!r}")
    if len(set(devices)) != len(devices):
        raise ValueError(f"devices must be distinct, got {list(devices)}")
    if num % len(devices):
        raise ValueError(f"num must be a multiple of the number of devices ({len(devices)}), got {num}")
    return Mesh(np.array(devices), (AXIS,))


def target_argument(maze: Maze, target, num: int) -> jax.Array:
    """int32 [num]: given target slots, or -1 where the target is to be drawn."""
    if target is None:
        return jnp.full(num, -1, jnp.int32)
    if np.ndim(target) not in (0, 1) or (np.ndim(target) == 1 and np.shape(target)[0] != num):
        raise ValueError(f"target must be an int or an int array of shape ({num},), got shape {np.shape(target)}")
    if not jnp.issubdtype(jnp.result_type(target), jnp.integer):
        raise ValueError(f"target must hold integer target slots, got dtype {jnp.result_type(target)}")
    if not validate.is_traced(target) and not validate.is_traced(maze):
        values = np.asarray(target)
        mask = np.asarray(maze.target_mask)
        inside = np.all((values >= 0) & (values < mask.shape[0]))
        if not inside or not np.all(mask[values]):
            real = np.flatnonzero(mask).tolist()
            raise ValueError(f"target must be a real target slot of the maze ({real}), got {target!r}")
    return jnp.broadcast_to(jnp.asarray(target, jnp.int32), (num,))


def fold_runs(fn, shared=()):
    """``fn`` (every input and every output of its dict with a leading axis of runs) as a function whose
    ``vmap`` folds the vmapped axis into the run axis: all runs of a vmap (of vmaps) in one call.

    Outputs named in ``shared`` are of the whole call, not per run: under ``vmap`` each run gets a copy.
    """

    @custom_vmap
    def kernel(*args):
        return fn(*args)

    @kernel.def_vmap
    def batched(axis_size, in_batched, *args):
        args = [x if b else jnp.broadcast_to(x, (axis_size,) + x.shape) for x, b in zip(args, in_batched)]
        runs = args[0].shape[1]
        out = kernel(*(x.reshape((axis_size * runs,) + x.shape[2:]) for x in args))
        out = {k: (jnp.broadcast_to(v, (axis_size,) + v.shape) if k in shared
                   else v.reshape((axis_size, runs) + v.shape[1:])) for k, v in out.items()}
        return out, {k: True for k in out}

    return kernel


__all__ = ["AXIS", "check_common", "fold_runs", "rollout_mesh", "target_argument"]
