"""The pool of lanes behind every walk kernel: cost proportional to the moves actually made.

Walk lengths are roughly geometric, so a batch-major stepper that moves all ``num`` walks until the
*longest* ends spends most of its lane-steps on walks that already ended (about 10x at 65536
full-length walks). The kernels keep a fixed **pool of lanes** instead:

* each lane holds one walk (its index, state, move count, random-stream seed, goal); a *round* is
  a fixed number of moves of every lane; a walk that ends waits in place until the round is over;
* stage 0 (``P`` lanes) *refills* after every round: finished lanes write their walk's results to
  the ``[num]`` outputs and take the next walk indices from a queue counter (exclusive prefix sum
  over the finished lanes). When every walk has a lane from the start (``num <= P``, e.g. a
  trainer's batch) there is no queue and stage 0 only moves (the plain-walk kernel then uses
  shorter rounds in its large stages, so a lane whose walk ended waits less for the round to end);
* when the queue runs dry the pool **shrinks**: stage ``s`` has ``P / 2**s`` lanes (static shapes,
  its own ``while_loop``) down to :data:`MIN_LANES` (a plain-walk pool without a queue divides by 8
  below :data:`COARSE_LANES`, down to :data:`MIN_BATCH_LANES`); a stage is left when the walks in progress fit
  the next one, whose lanes are then filled by compacting them (prefix sum); later stages only move.

Memory is O(lanes) whatever the horizon, plus O(num) for the outputs and per-walk seeds. Under
``jax.vmap`` every run shrinks its own pool; runs that are done are frozen by the batched loop's
select. Randomness never depends on the lane (:mod:`mazejax.simulate.rng`), so results do not
depend on the pool's sizes. Measured: 82-91% of lane-steps are useful moves at 65536 full-length
walks (``bench/rollout.py``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec

from mazejax.simulate.common import AXIS

#: The smallest stage (lanes) of a pool with a queue.
MIN_LANES = 128
#: A plain-walk pool without a queue (every walk has its lane from the start, e.g. a trainer's batch) halves its
#: stages only while they have more than this many lanes, then divides them by 8 (down to
#: :data:`MIN_BATCH_LANES`): its small stages are bound by per-round overhead more than by lanes, and every
#: stage is one more copy of the walk kernel to compile (1024 REINFORCE runs on two devices: 7 stages
#: instead of 10, compiled in 11.3 s instead of 13.6-14.5 s, and no slower).
COARSE_LANES = 4096
#: The smallest stage of a pool without a queue. Its last stages hold the longest walks of every run for a
#: few rounds, bound by per-round overhead, so a stage of 128 lanes after 512 saved no time and was one
#: more copy of the walk kernel (Intel Xeon host, one process, old and new alternating: REINFORCE's
#: gradient kernel for 512 runs at (3,3,2) compiled in 5.0-6.2 s instead of 6.5-7.1 s (382 fusions
#: instead of 432) and ran in the same time at the base policy and the backtracker; PPO's recorded walks
#: of 4 seeds at (6,6,5), one stage of 256 lanes instead of 256 and 128: compile 2.0-2.3 s instead of
#: 3.0-3.1 s, run 3.2 against 3.1 ms at the backtracker and 30 against 27 ms at the base policy).
MIN_BATCH_LANES = 512


class PoolStats(NamedTuple):
    """Diagnostics of one pool run.

    Attributes:
      sizes: the stage sizes (lanes): a static tuple, or int32 [stages] from ``sample_walks`` without
        ``devices`` (under vmap: of the pool that all runs' walks share, like ``rounds``).
      rounds: int32 [stages] ([devices, stages] with ``devices``): rounds run in each stage (under
        vmap: rounds of the batched loop, the same for every run).
      lane_steps: float32 scalar, ``sum rounds * sizes * round_moves`` (over devices too): the
        lane-steps spent, useful moves included.
    """

    sizes: tuple | jax.Array
    rounds: jax.Array
    lane_steps: jax.Array


def stage_sizes(num: int, lanes: int, queue: bool = True) -> tuple:
    """Static pool sizes ``P, P / 2, ...`` (``P = min(num, lanes)``) down to :data:`MIN_LANES`; without a
    ``queue``, ``/ 8`` instead of ``/ 2`` from :data:`COARSE_LANES` lanes down, to :data:`MIN_BATCH_LANES`."""
    sizes = [min(num, lanes)]
    smallest = MIN_LANES if queue else MIN_BATCH_LANES
    while sizes[-1] // 2 >= smallest:
        ratio = 2 if queue or sizes[-1] > COARSE_LANES else 8
        sizes.append(max(sizes[-1] // ratio, smallest))
    return tuple(sizes)


def stats(sizes, rounds, round_moves, mesh) -> PoolStats:
    """:class:`PoolStats` from the rounds of each stage ([..., stages] or [..., devices, stages]);
    ``round_moves``: the moves per round, one for all stages or one per stage."""
    moves = jnp.asarray(sizes, jnp.float32) * jnp.asarray(round_moves, jnp.float32)
    lane_steps = jnp.sum(rounds.astype(jnp.float32) * moves, axis=-1)
    if mesh is not None:
        lane_steps = jnp.sum(lane_steps, axis=-1)
    return PoolStats(sizes, rounds, lane_steps)


def devices_of(mesh) -> int:
    return 1 if mesh is None else int(mesh.devices.size)


def sharded(local, mesh, num: int, replicated: tuple, split: tuple, out_specs):
    """Run ``local(*replicated, *split, start, num=num_local)`` on every device of ``mesh``.

    ``split`` arrays have a leading [num] axis divided in contiguous blocks; device ``d`` runs walks
    ``d * num_local, ...`` (``start``), so results equal a single-device run. ``local`` returns
    (outputs, rounds); rounds come back as [devices, stages].
    """
    n = int(mesh.devices.size)
    num_local = num // n

    def per_device(*args):
        start = lax.axis_index(AXIS).astype(jnp.int32) * num_local
        out, rounds = local(*args, start, num=num_local)
        return out, rounds[None]

    specs = tuple(PartitionSpec() for _ in replicated) + tuple(PartitionSpec(AXIS) for _ in split)
    return jax.shard_map(
        per_device, mesh=mesh, in_specs=specs, out_specs=(out_specs, PartitionSpec(AXIS)), check_vma=False
    )(*replicated, *split)


def compact(lanes: dict, active, size: int, fills: dict) -> dict:
    """Move the active lanes (in order) to the first slots of new arrays of ``size`` lanes.

    One scatter finds each new lane's source lane, then every lane array is gathered from it (XLA's CPU
    scatters are slow: with one scatter per lane array, 1024 REINFORCE runs at (3,3,2) on two CPU
    devices, old and new code alternating, took 52-55 instead of 45-47 ms per step at the converged
    policy and 26.2-26.5 instead of 23.1-23.5 s for the whole 400-step training run).
    """
    n = active.shape[0]
    dest = jnp.where(active, jnp.cumsum(active, dtype=jnp.int32) - 1, size)
    source = jnp.full(size, n, jnp.int32).at[dest].set(jnp.arange(n, dtype=jnp.int32), mode="drop")
    return {name: x.at[source].get(mode="fill", fill_value=fills[name]) for name, x in lanes.items()}


def next_walks(done, queue, num: int):
    """For the finished lanes ``done``: the next walk indices of the queue (``num`` where it is dry),
    whether each got a walk, its index clipped into range, and the advanced queue counter."""
    done_i = done.astype(jnp.int32)
    new = queue + jnp.cumsum(done_i, dtype=jnp.int32) - done_i
    fresh = done & (new < num)
    return jnp.where(fresh, new, num), fresh, jnp.minimum(new, num - 1), jnp.minimum(queue + jnp.sum(done_i, dtype=jnp.int32), num)


def run_stages(lanes: dict, glob: dict, sizes, *, moves, refill, flush, active, fills, pending=None):
    """The stage loops of a pool kernel.

    ``moves(lanes, glob)`` runs one round of moves,
    ``refill(lanes, glob)`` writes the ended walks' results and hands their lanes new walks from
    the queue (None when every walk already has its lane: stage 0 then only moves, like the
    others), ``flush(lanes, glob)`` writes the results of ended walks (without refilling),
    ``active(lanes)`` is a bool [lanes] mask of the walks still in progress, ``pending(glob)`` whether
    walks wait in the queue (default ``glob["next"] < len(glob["length"])``). Stage 0 refills after
    every round and runs while the queue has walks or the active walks do not fit stage 1; later
    stages only move while the active walks do not fit the next stage; at the end of a stage the
    finished walks are flushed and the active ones compacted into the next. The last stage runs
    until every walk has ended. Returns the final glob and the rounds of each stage.
    """
    if pending is None:
        pending = lambda glob: glob["next"] < glob["length"].shape[0]  # noqa: E731
    rounds = []
    for s, size in enumerate(sizes):
        fit = 0 if s == len(sizes) - 1 else sizes[s + 1]
        if s:
            lanes = compact(lanes, active(lanes), size, fills)

        def cond(carry, fit=fit, first=s == 0):
            lanes, glob, _ = carry
            busy = jnp.sum(active(lanes), dtype=jnp.int32) > fit
            return (busy | pending(glob)) if first and refill is not None else busy

        def body(carry, first=s == 0):
            lanes, glob, r = carry
            lanes, glob = moves(lanes, glob)
            if first and refill is not None:
                lanes, glob = refill(lanes, glob)
            return lanes, glob, r + 1

        lanes, glob, r = lax.while_loop(cond, body, (lanes, glob, jnp.int32(0)))
        if s or refill is None:
            lanes, glob = flush(lanes, glob)
        rounds.append(r)
    return glob, jnp.stack(rounds)


__all__ = ["COARSE_LANES", "MIN_BATCH_LANES", "MIN_LANES", "PoolStats", "compact", "devices_of", "next_walks",
           "run_stages", "sharded", "stage_sizes", "stats"]
