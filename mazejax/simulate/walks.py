"""Batched walks of a tabular policy on a pool of lanes: the stepper.

A walk starts in state 0 (``s0 -> f``) at time 0 with a prompted target (drawn uniformly among
the maze's real targets, or given), moves with the target-blind policy ``softmax(logits[s])``
and stops at the first state whose head is the target (``maze.target_hit[t, s]``) or when the
horizon is reached. ``length`` counts the moves taken; ``success`` says whether the target was
hit within ``horizon`` moves.

:func:`sample_walks` is arrays in, arrays out, for trainers: callable inside ``jax.jit``,
``lax.scan`` and ``jax.vmap`` (also over a stack of padded mazes, :func:`mazejax.stack`) with
``num``, ``record``, ``counts`` and ``lanes`` static (Python values); ``horizon``, ``logits``, the
maze's arrays, ``target``, ``weights`` and the key may be traced, and a new ``horizon`` does not
recompile. Optionally records the visited states and (weighted) move counts.

**Cost.** Walks run on a pool of lanes (:mod:`mazejax.simulate.pool`) that take the next walk as
soon as theirs ends and shrink when the queue runs dry, so the cost is proportional to the moves
made, not to ``num x`` the longest walk, and memory is O(lanes) whatever the horizon (plus O(num)
for the results and ``num * record`` for a state buffer). A move is one table lookup (two for
very large batches of runs, :data:`ONE_LOOKUP_BYTES`; :mod:`mazejax.simulate.alias`), one hash
(:mod:`mazejax.simulate.rng`) and a few integer operations, branch-free; a walk that hits its
target moves to an absorbing sink row. Walks past the horizon are cut at the end of a round
(:data:`ROUND` or :data:`SHORT_ROUND` moves; their extra moves are never recorded or counted).

**Devices.** ``devices=`` splits the walks in contiguous blocks over several devices, each running
its own pool, with identical results (counts with non-integer weights are summed in another
order). On one CPU device XLA spreads every move over the cores and synchronises them, which only
pays for very wide steps; starting Python with
``XLA_FLAGS=--xla_force_host_platform_device_count=<cores>`` and passing
``devices=jax.local_devices()`` lets each core run its own pool.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import PartitionSpec

from mazejax import validate
from mazejax.maze import Maze
from mazejax.simulate import alias, common, pool, rng

#: Moves between refills of the pool, and per round of every stage that :data:`SHORT_ROUND` does not
#: cover (speed only: results do not depend on it).
ROUND = 64
#: Moves per round of the stages of more than :data:`SHORT_ROUND_LANES` lanes when every walk has its
#: own lane (``num <= lanes``, e.g. a trainer's batch, whose short walks then wait less for their
#: round to end). Speed only: without refills a walk's moves are made and counted in the same order,
#: whatever the round length. 8 rather than 16 since compaction became cheap (stop 30: 1024 REINFORCE runs at
#: (3,3,2) on two CPU devices, whole training runs 22.1-23.6 s (five) against 22.9-23.6 s (five), alternating;
#: 4 was no faster; PPO at (6,6,5) the same).
SHORT_ROUND = 8
#: See :data:`SHORT_ROUND` (smaller stages are overhead-bound and keep :data:`ROUND`).
SHORT_ROUND_LANES = 2048
#: Default pool size (speed only).
LANES = 16384
#: A pool whose runs' move tables take at most this many bytes in all draws a move with one gather of its
#: row (:func:`mazejax.simulate.alias.stepper_tables`); larger ones gather the alias entry, then the chosen
#: slot's code, from two 1-word tables. Speed only (the same walks): on the AMD EPYC host of stop 28, with
#: 3-word rows, one gather was faster for one run at (6,6,5) to (15,15,5) (40980 rows; 25-30%) and for PPO's
#: 4 seeds per device at (6,6,5) (10704 rows; its run 12.6-13.1 against 14.2-14.3 s), slower for 512
#: REINFORCE runs per device at (3,3,2) (95232 rows, 1.1 MB; training run 47-49 against 39-40 s). Their
#: 2-word rows (762 KB, stop 31) still take two: with one, 100 steps from the backtracker took 36 against
#: 39 ms each, but whole 400-step training runs were no faster (20.7-21.2 against 20.7-21.0 s, alternating).
ONE_LOOKUP_BYTES = 2**19
#: A counting pass adds the moves that are not counted (ended walks, overshoot past the horizon) into spare
#: entries of the tally, lane ``i`` into spare ``i % SPARE_ENTRIES``, never read. Speed only (the counted
#: entries get the same adds in the same order). With one spare entry, whose adds each waited for the last,
#: 1024 REINFORCE runs at (3,3,2) on two devices trained in 22.0-22.8 s against 21.0-21.1 s with 64 (old and
#: new code alternating); a counting pass of the backtracker's walks cost 20-22 ms against 17-19 ms for the
#: same walks uncounted, and 18-19 ms with 64.
SPARE_ENTRIES = 64


class Walks(NamedTuple):
    """Rollouts of the plain stepper (:func:`sample_walks`).

    Attributes:
      length: int32 [num], moves taken (``horizon`` for walks that missed the target).
      success: bool [num], the target was hit within ``horizon`` moves.
      target: int32 [num], the target slot of each rollout (index into ``maze.target_mask``).
      states: int32 [num, record] or None: ``states[i, t]`` is the state at time ``t``
        (``states[i, 0] == 0``; the last one is the target state on success), -1 after the end.
      overflow: bool [num] or None: the walk had more than ``record`` states (``length >= record``),
        so ``states`` holds only its first ``record``.
      counts: float32 [S, D] or None: ``sum_i weights[i] * (moves of rollout i from state s by
        slot j)``; ``counts.sum(-1)`` are the (weighted) visit counts of each state before the hit.
    """

    length: jax.Array
    success: jax.Array
    target: jax.Array
    states: Optional[jax.Array] = None
    overflow: Optional[jax.Array] = None
    counts: Optional[jax.Array] = None


def rollout(
    maze: Maze, logits: jax.Array, key: jax.Array, num: int, horizon: int, search: Optional[str] = None, *, devices=None
):
    """``num`` rollouts of the policy ``logits`` on ``maze``, each with a uniformly drawn target.

    Args:
      maze: a :class:`~mazejax.Maze`.
      logits: float [S, D] policy logits (``-inf`` on invalid moves).
      key: a threefry PRNG key (``jax.random.key`` or ``jax.random.PRNGKey``); rollout ``i``
        depends only on ``key`` and ``i``.
      num: number of rollouts (static), >= 1.
      horizon: maximum moves (proposals with ``search``) per rollout, 1 <= horizon < 2**31.
      search: None for the plain walk; ``"aggregate"`` or ``"mask"`` for the search scaffold
        (docs/model.md §4.3, see :func:`search_walks`).
      devices: None to run on the default device, or a sequence of devices (e.g.
        ``jax.local_devices()``) to split the rollouts over; ``num`` must be a multiple of their
        number. The results do not depend on it.

    Returns:
      :class:`Walks` (``search`` None) or :class:`SearchWalks`; both have ``.length`` (int32 [num]:
      moves taken, or proposals made with ``search``) and ``.success`` (bool [num]).
    """
    if search is None:
        return sample_walks(maze, logits, key, num, horizon, devices=devices)
    from mazejax.simulate.scaffold import search_walks

    return search_walks(maze, logits, key, num, horizon, search, devices=devices)


def sample_walks(
    maze: Maze,
    logits: jax.Array,
    key: jax.Array,
    num: int,
    horizon,
    *,
    target=None,
    record: int = 0,
    counts: bool = False,
    weights: Optional[jax.Array] = None,
    devices=None,
    lanes: int = LANES,
    stats: bool = False,
):
    """Batched rollouts of the plain walk (module docstring); jit/vmap/scan friendly.

    Args:
      maze: a :class:`~mazejax.Maze` (its arrays may be traced, e.g. vmapped over a stack).
      logits: float [S, D] (cast to float32).
      key: a threefry PRNG key (typed or raw uint32[2]); rollout ``i`` depends only on ``key``
        and ``i``.
      num: number of rollouts; a Python int (static).
      horizon: maximum moves per rollout: a Python int or an int32 scalar (may be traced: a new
        horizon does not recompile), 1 <= horizon < 2**31.
      target: None to draw each rollout's target uniformly among the real targets, or target
        slot(s): an int or int array [num]. A given target leaves the walk's random stream unchanged,
        so rollout ``i`` with its drawn target given explicitly is the same walk.
      record: length of the state buffer (static); 0 records nothing (``num * record < 2**31``).
      counts: also return move counts [S, D] (static flag).
      weights: float [num] per-rollout weights of ``counts`` (default 1), e.g. advantages for a
        REINFORCE gradient ``sum_i A_i (N_i[s, a] - N_i[s] pi(a | s))``. All zero: nothing is
        counted (the counts are zeros), so a pass that needs only lengths can share the kernel
        of a counting pass, e.g. in a loop, at about the cost of an uncounted call.
      devices: None, or a sequence of devices to split the rollouts over (``num`` a multiple of
        their number; see :func:`rollout`).
      lanes: the pool size (static; speed only, split over ``devices``).
      stats: also return :class:`~mazejax.simulate.pool.PoolStats` (lane-steps spent).

    Returns:
      :class:`Walks` (and the stats). Inside ``jax.jit``, pass ``num``, ``record``, ``counts`` and
      ``lanes`` as Python values.
    """
    num = validate.positive_int("num", num)
    mesh = common.rollout_mesh(devices, num)
    record = validate.positive_int("record", record, minimum=0)
    lanes = validate.positive_int("lanes", lanes)
    if not isinstance(counts, (bool, np.bool_)):
        raise ValueError(f"counts must be a bool, got {counts!r}")
    if num * record >= 2**31:
        raise ValueError(f"num * record must be < 2**31, got {num} * {record}")
    common.check_common(maze, logits, key, horizon)
    alias.layout(maze)  # raises if the maze is too large to pack
    target = common.target_argument(maze, target, num)
    if weights is not None:
        if not counts:
            raise ValueError("weights are only used with counts=True")
        if np.shape(weights) != (num,):
            raise ValueError(f"weights must have shape (num,) = ({num},), got {np.shape(weights)}")
        weights = jnp.asarray(weights, jnp.float32)
    elif counts:
        weights = jnp.ones(num, jnp.float32)
    tables = alias.stepper_tables(maze, jnp.asarray(logits))
    layout = alias.layout(maze)
    key = rng.key_words(key)
    horizon = jnp.asarray(horizon, jnp.int32)
    drawn = rng.targets(maze, key, target)
    if mesh is not None:  # one run, its walks split over devices in contiguous blocks
        n = pool.devices_of(mesh)
        sizes = pool.stage_sizes(num // n, max(lanes // n, 1), queue=num // n > max(lanes // n, 1))
        walks, rounds = _split_kernel(tables, key, horizon, drawn, weights, layout=layout, num=num, record=record,
                                      counts=bool(counts), lanes=max(lanes // n, 1), mesh=mesh)
        return (walks, pool.stats(sizes, rounds, _round_moves(num // n, max(lanes // n, 1), sizes), mesh)) if stats \
            else walks
    zero = jnp.zeros(num, jnp.float32) if weights is None else weights
    out = _runs_kernel(num, record, bool(counts), min(num, lanes), layout)(
        *(x[None] for x in (*tables, key, horizon, drawn, zero, jnp.int32(0))))
    out = {k: v if k in _DIAGNOSTICS else v[0] for k, v in out.items()}
    walks = _walks(out, drawn, num, record, counts, layout)
    if stats:  # of the whole pool: under vmap, of all runs' walks folded together
        return walks, pool.PoolStats(out["sizes"], out["rounds"], out["lane_steps"])
    return walks


def _walks(out: dict, target, num: int, record: int, counts: bool, layout) -> Walks:
    length = out["length"]
    S, D = layout.states, layout.degree
    return Walks(
        length,
        success=out["success"],
        target=target,
        states=out["buffer"].reshape(num, record) if record else None,
        overflow=length >= record if record else None,
        counts=out["tally"].reshape(S + 1, D)[:S] if counts else None,
    )


_DIAGNOSTICS = ("sizes", "rounds", "lane_steps")  # pool diagnostics: of the whole batch of runs, not per run


@functools.cache
def _runs_kernel(num: int, record: int, counts: bool, lanes: int, layout):
    """The walks of ``B`` runs (a leading axis on every input) on one pool of lanes, as a function
    whose ``vmap`` folds the vmapped axis into ``B``: a sweep of trainers, each sampling walks, is
    one pool, whose lanes move to the runs still walking as the others finish, and whose counts
    are one scatter (not a batched one per run).

    Inputs: the stepper tables (move table [B, (S + 1) D, words], degree [B]), key
    words [B, 2], horizon [B], targets [B, num], count weights [B, num], first walk index [B].
    Each run owns ``lanes`` lanes (its walks, in order, as in a pool of its own), so a run's walks,
    move counts and their float sums (in the same order) do not depend on the other runs.
    """

    return common.fold_runs(functools.partial(_runs_jit, num=num, record=record, counts=counts, lanes=lanes,
                                              layout=layout), shared=_DIAGNOSTICS)


@functools.partial(jax.jit, static_argnames=("num", "record", "counts", "lanes", "layout"))
def _runs_jit(table, degree, key, horizon, target, weights, start, *, num, record, counts, lanes, layout):
    B = table.shape[0]
    sizes = pool.stage_sizes(B * lanes, B * lanes, queue=num > lanes)
    out, rounds = _pool_walks(table, degree, key, horizon, target, weights, start, num=num, record=record,
                              counts=counts, lanes=lanes, layout=layout, sizes=sizes)
    moves = jnp.asarray(sizes, jnp.float32) * jnp.asarray(_round_moves(num, lanes, sizes), jnp.float32)
    lane_steps = jnp.sum(rounds.astype(jnp.float32) * moves)
    return {**out, "sizes": jnp.asarray(sizes, jnp.int32), "rounds": rounds, "lane_steps": lane_steps}


@functools.partial(jax.jit, static_argnames=("layout", "num", "record", "counts", "lanes", "mesh"))
def _split_kernel(tables, key, horizon, target, weights, *, layout, num, record, counts, lanes, mesh):
    """One run's walks split over the devices of ``mesh`` in contiguous blocks, a pool on each."""
    if weights is None:
        weights = jnp.zeros(num, jnp.float32)  # unused

    def local(table, degree, key, horizon, drawn, weights, start, *, num):
        sizes = pool.stage_sizes(num, lanes, queue=num > lanes)
        out, rounds = _pool_walks(*(x[None] for x in (table, degree, key, horizon, drawn, weights, start)), num=num,
                                  record=record, counts=counts, lanes=min(num, lanes), layout=layout, sizes=sizes)
        out = jax.tree.map(lambda x: x[0], out)
        walks = _walks(out, drawn, num, record, counts, layout)
        if counts:
            walks = walks._replace(counts=lax.psum(walks.counts, common.AXIS))
        return walks, rounds

    split = PartitionSpec(common.AXIS)
    specs = Walks(split, split, split, split if record else None, split if record else None,
                  PartitionSpec() if counts else None)
    return pool.sharded(local, mesh, num, (*tables, key, horizon), (target, weights), specs)


def _round_moves(num: int, lanes: int, sizes) -> tuple:
    """Moves per round of each stage: :data:`SHORT_ROUND` in the stages of more than
    :data:`SHORT_ROUND_LANES` lanes of a pool without a queue (``num <= lanes``), :data:`ROUND`
    elsewhere."""
    return tuple(SHORT_ROUND if num <= lanes and size > SHORT_ROUND_LANES else ROUND for size in sizes)


def _pool_walks(table, degree, key, horizon, target, weights, start, *, num, record, counts, lanes, layout, sizes):
    """The plain-walk pool of ``B`` runs (leading axis of every input): each run's walks
    ``start[b], ..., start[b] + num - 1`` on its own ``lanes`` lanes in stage 0 (refilled from its own
    queue), then all active lanes compacted together as the pool shrinks."""
    B = table.shape[0]
    S, D = layout.states, layout.degree
    P = B * lanes
    seed_w, seed_g = jax.vmap(lambda k, s: rng.walk_seeds(k, s, num))(key, start)  # [B, num]
    goals = target + 1
    shift = 32 - layout.resolution
    frac_mask = jnp.uint32(2**layout.resolution - 1)
    state_mask = jnp.int32(2**layout.state_bits - 1)
    alias_mask = jnp.int32(2**layout.alias_bits - 1)
    rows = (S + 1) * D  # rows of a run's move table
    table = table.reshape(B * rows, layout.words)
    one_lookup = table.size * 4 <= ONE_LOOKUP_BYTES
    entries, codes = (None, None) if one_lookup else (table[:, 0], alias.row_codes(table, layout)[0])
    no_count = B * rows  # the tally's entries from here on take the moves that are not counted
    hz = horizon.astype(jnp.uint32)  # [B]
    queue = num > lanes  # stage 0 refills lanes from a queue (else every walk has its own lane)
    # all weights zero (e.g. a first pass that only needs lengths): the counts are zeros, skip them
    counting = jnp.any(weights != 0) if counts else None
    round_of = dict(zip(sizes, _round_moves(num, lanes, sizes)))  # moves per round, by stage size

    def move(state, x, goal, run):
        """One move of every lane: (next state (sink after a hit), state entered, flat (run, s, slot))."""
        slot = (x >> layout.resolution).astype(jnp.int32)
        frac = (x & frac_mask).astype(jnp.int32)
        base = state * D if B == 1 else run * rows + state * D
        if one_lookup:
            row = table.at[(base + slot).astype(jnp.uint32)].get(mode="promise_in_bounds")  # [lanes, words]
            keep = frac < (row[:, 0] >> layout.alias_bits)
            slot = jnp.where(keep, slot, row[:, 0] & alias_mask)
            code = jnp.where(keep, *alias.row_codes(row, layout))
        else:
            entry = entries.at[(base + slot).astype(jnp.uint32)].get(mode="promise_in_bounds")
            slot = jnp.where(frac < (entry >> layout.alias_bits), slot, entry & alias_mask)
            code = codes.at[(base + slot).astype(jnp.uint32)].get(mode="promise_in_bounds")
        entered = code & state_mask
        return jnp.where((code >> layout.state_bits) == goal, S, entered), entered, base + slot

    def write(lanes_, glob, ended):
        """Write the results of the walks whose lanes are ``ended``."""
        k, run, idx = lanes_["k"], lanes_["run"], lanes_["idx"]
        length, success = jnp.minimum(k, hz[run]).astype(jnp.int32), k <= hz[run]
        glob = dict(glob)
        # without a queue, only the first stage has B * num lanes (later ones are compacted, smaller), and in it
        # lane i still holds walk i: its results are written in place
        if not queue and k.shape[0] == B * num:
            glob["length"] = jnp.where(ended, length, glob["length"])
            glob["success"] = jnp.where(ended, success, glob["success"])
            return glob
        out = jnp.where(ended & (idx < num), run * num + idx, B * num)  # idle lanes (idx = num): dropped
        glob["length"] = glob["length"].at[out].set(length, mode="drop")
        glob["success"] = glob["success"].at[out].set(success, mode="drop")
        return glob

    def refill(lanes_, glob):
        """Write the ended walks' results and hand their lanes the next walks of their run's queue
        (stage 0: each run's lanes are still its own block)."""
        done = lanes_["state"] == S  # ended walks, and idle lanes (idx == num: not written)
        glob = write(lanes_, glob, done)
        idx, fresh, j, glob["next"] = jax.vmap(lambda d, q: pool.next_walks(d, q, num))(done.reshape(B, lanes), glob["next"])
        idx, fresh, j = idx.ravel(), fresh.ravel(), j.reshape(B, lanes)
        take = lambda x: jnp.take_along_axis(x, j, axis=1).ravel()  # noqa: E731
        lanes_ = dict(
            lanes_,
            idx=jnp.where(done, idx, lanes_["idx"]),
            state=jnp.where(fresh, 0, lanes_["state"]),
            k=jnp.where(done, jnp.uint32(0), lanes_["k"]),
            w=jnp.where(done, take(seed_w), lanes_["w"]),
            g=jnp.where(done, take(seed_g), lanes_["g"]),
            goal=jnp.where(done, take(goals), lanes_["goal"]),
            **({"weight": jnp.where(done, take(weights), lanes_["weight"])} if counts else {}),
        )
        return lanes_, glob

    def flush(lanes_, glob):
        """Write the results of the walks that ended (without refilling their lanes)."""
        ended = (lanes_["state"] == S) & (lanes_["idx"] < num)
        return dict(lanes_, idx=jnp.where(ended, num, lanes_["idx"])), write(lanes_, glob, ended)

    def moves(lanes_, glob):
        """``R`` moves of every lane, then lanes at their run's horizon are sent to the sink."""
        w, g, goal, run = lanes_["w"], lanes_["g"], lanes_["goal"], lanes_["run"]
        R = round_of[lanes_["state"].shape[0]]

        h = hz[run]
        weight = lanes_["weight"] if counts else None

        def uniform(k):  # the uniform of the walk's move k as x = (slot, fraction) bits
            return (rng.fmix32(w + (k + 1) * g) >> shift) * degree[run]

        # a plain walk with two lookups carries the row of each lane's last move (``aux``; a counting pass
        # carries its tally there): written out every move, the row index is computed once, where fused
        # into the second lookup it made that lookup about 2x slower (XLA:CPU). AMD EPYC host (stop 32), two
        # devices, old and new code in alternating processes, best of 7-9 calls, the same walks: 1024 runs x
        # 128 walks at (3,3,2), a table per run, 457-518 against 312-374 M moves/s at the base policy (horizon
        # 550) and 272-277 against 137-216 at the backtracker (horizon 70); one run of 65536 walks at
        # (20,20,5), horizon 512: 552-582 against 374-405. One lookup (a simple index) only pays the
        # write: carrying the row there made single runs at (3,3,2) and (6,6,5) 3-17% slower.
        carry_row = not counts and not one_lookup and B * rows < 2**31

        def step(inner, _):
            state, k, x, aux = inner
            nxt, entered, flat = move(state, x, goal, run)
            # the updates below read the lookups' results rather than the carried state, k and x, so
            # XLA updates the loop's buffers in place (no copy of them per move; full-length walks at
            # (6,6,5), old and new code alternating: 12-40% faster, the same walks)
            moving = entered != S  # i.e. state != S: only the sink row enters S
            k = k + moving.astype(jnp.uint32)
            if counts:  # counted in the loop (same order as a scatter of the round's [R, lanes] moves)
                # moves past the horizon (at most R - 1 per walk) are overshoot: never counted
                # (k is already this move's count: k <= h is "the count before it was < h")
                spare = no_count + jnp.arange(state.shape[0], dtype=jnp.int32) % SPARE_ENTRIES  # by lane
                at = jnp.where(moving & (k <= h), flat, spare)
                aux = lax.cond(counting, lambda t: t.at[at].add(weight, mode="promise_in_bounds"), lambda t: t, aux)
                # at >= 0 always: orders the index (it reads the move's state and x) before the
                # writes of the next state and uniform (else XLA copies both every move)
                nxt = jnp.where(at >= 0, nxt, 0)
            elif carry_row:
                aux = flat  # the second lookup's index
            # the next move's uniform, hashed here (once, carried) rather than in the move's two uses
            # of it, from the walk's move count (the Weyl word of move k is w + (k + 1) g) rather
            # than a carried word, one update less per move; nxt >= 0 always: the condition only
            # orders the hash after the lookups that read x (else XLA copies x every move). In a
            # finished walk (the sink row, where every slot leads to S) x is never used.
            x = jnp.where(nxt >= 0, uniform(k), 0)
            return (nxt, k, x, aux), jnp.where(moving, entered, -1) if record else None

        k0 = lanes_["k"]
        aux = glob["tally"] if counts else jnp.zeros_like(lanes_["state"]) if carry_row else None
        (state, k, _, aux), entered = lax.scan(step, (lanes_["state"], k0, uniform(k0), aux), None, length=R)
        # a walk that reached the horizon ends (its moves past the horizon, at most R - 1, are
        # overshoot: never recorded or counted); k = horizon + 1 marks it as a miss
        cut = (state != S) & (k >= h)
        if carry_row:  # always true (a row index, and B * rows < 2**31): a use, else XLA drops the carried row
            cut = cut & (aux >= 0)
        lanes_ = dict(lanes_, state=jnp.where(cut, S, state), k=jnp.where(cut, h + 1, k))
        glob = dict(glob, **({"tally": aux} if counts else {}))
        if record:
            r = jnp.arange(R, dtype=jnp.uint32)[:, None]  # move r of the round is move k0 + r of its walk
            kept = (k0[None, :] + r) < h[None, :]
            col = jnp.minimum(k0, jnp.uint32(record))[None, :] + 1 + r  # column of the entered state
            ok = kept & (entered >= 0) & (col < record)
            walk = run * num + lanes_["idx"]
            pos = jnp.where(ok, walk[None, :] * record + col.astype(jnp.int32), B * num * record)
            glob["buffer"] = glob["buffer"].at[pos.ravel()].set(entered.ravel(), mode="drop")
        return lanes_, glob

    fills = dict(run=0, idx=num, state=S, k=0, w=0, g=1, goal=0, weight=0.0)
    first = lambda x: x[:, :lanes].ravel()  # noqa: E731  (lane j of run b starts with its walk j)
    lanes_ = dict(
        run=jnp.repeat(jnp.arange(B, dtype=jnp.int32), lanes),
        idx=jnp.tile(jnp.arange(lanes, dtype=jnp.int32), B),
        state=jnp.zeros(P, jnp.int32),
        k=jnp.zeros(P, jnp.uint32),
        w=first(seed_w),
        g=first(seed_g),
        goal=first(goals),
        **({"weight": first(weights)} if counts else {}),
    )
    glob = dict(next=jnp.full(B, lanes, jnp.int32), length=jnp.zeros(B * num, jnp.int32),
                success=jnp.zeros(B * num, bool))
    if record:
        glob["buffer"] = jnp.full((B * num, record), -1, jnp.int32).at[:, 0].set(0).ravel()
    if counts:
        glob["tally"] = jnp.zeros(no_count + SPARE_ENTRIES, jnp.float32)
    glob, rounds = pool.run_stages(
        lanes_, glob, sizes, moves=moves, refill=refill if queue else None, flush=flush,
        active=lambda lanes_: lanes_["state"] != S, fills=fills, pending=lambda glob: jnp.any(glob["next"] < num),
    )
    out = {"length": glob["length"].reshape(B, num), "success": glob["success"].reshape(B, num)}
    if record:
        out["buffer"] = glob["buffer"].reshape(B, num * record)
    if counts:
        out["tally"] = glob["tally"][:no_count].reshape(B, rows)
    return out, rounds


__all__ = ["LANES", "ONE_LOOKUP_BYTES", "ROUND", "SHORT_ROUND", "SHORT_ROUND_LANES", "SPARE_ENTRIES", "Walks", "rollout", "sample_walks"]
