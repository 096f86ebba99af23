"""Monte Carlo rollouts of a tabular policy on a maze (SPEC 2), and the search scaffold (SPEC 4.3).

A walk starts in state 0 (``s0 -> f``) at time 0 with a prompted target (drawn uniformly among
the maze's real targets, or given), moves with the target-blind policy ``softmax(logits[s])``
and stops at the first state whose head is the target (``maze.target_hit[t, s]``) or when the
horizon is reached. ``length`` counts the moves taken; ``success`` says whether the target was hit
within ``horizon`` moves.

Entry points:

* :func:`rollout` -- the public API: lengths and successes of ``num`` rollouts, with or without
  the search scaffold.
* :func:`sample_walks` -- arrays in, arrays out, for trainers: callable inside ``jax.jit``,
  ``lax.scan`` and ``jax.vmap`` (also over a stack of padded mazes, :func:`mazejax.stack`) with
  ``num``, ``record`` and ``counts`` static (Python values); ``horizon``, ``logits``, the maze's
  arrays, ``target``, ``weights`` and the key may be traced, and a new ``horizon`` does not
  recompile. Optionally records the visited states (a fixed-size buffer with an overflow flag) and
  (weighted) move counts. For example, inside a trainer::

      def update(logits, key):
          walks = sample_walks(maze, logits, key, 1024, horizon, record=256)
          ...

      logits, _ = lax.scan(lambda l, k: (update(l, k), None), logits, keys)

* :func:`search_walks` -- the walk under the search scaffold of Corollary 1.
* :func:`monte_carlo` -- mean hitting time with its standard error, success rate, and the exact
  value from :mod:`mazejax.exact` for comparison.

**Reproducibility.** All randomness of rollout ``i`` comes from ``threefry2x32(key, (i, c))``
for counters ``c = 0, 1, ...`` (``c = 0`` draws the target, ``c >= 1`` seeds chunk ``c - 1``), so
a rollout's result does not depend on how many rollouts run beside it, on jit, or on padding of
the maze (``out_degree`` padding included, while it stays <= 128). Results depend on
:data:`CHUNK`, which is fixed.

**Random numbers.** Threefry is too slow to call once per move on a CPU, so each rollout re-keys
once per chunk of :data:`CHUNK` moves: the chunk's threefry output is a 64-bit seed ``(w, g)``
and move ``k`` of the chunk uses the 32-bit word ``fmix32(w + (k + 1) * (g | 1))`` (a Weyl
sequence through MurmurHash3's finaliser, as in SplitMix). The stepper picks a move with a Walker
alias table from 24 bits of that word (fewer only when the padded out-degree exceeds 128): every
move probability is resolved to about ``2**-24`` (absolute), probability-0 moves are never taken,
and a move of positive probability keeps a probability of at least ``2**-24 / D`` (``D`` the
largest out-degree). The scaffold samples in float32 by inverse CDF over the allowed moves.

**Cost.** The stepper is batch-major (``[num]`` state vectors) in a ``lax.while_loop`` over
chunks that stops as soon as every walk has ended or the horizon is reached: memory is O(num)
whatever the horizon (plus ``num * record`` for a state buffer), so horizons of 1e8 moves are
fine. A move is two table lookups (the alias table, then the successor table packed with the
target code of the successor), one hash and a few integer operations, branch-free; a walk that
hits its target moves to an absorbing sink row, so finished walks need no masking.

**Devices.** ``devices=`` (:func:`rollout`, :func:`sample_walks`, :func:`search_walks`,
:func:`monte_carlo`) splits the rollouts over several devices with identical results (rollout
``i`` still depends only on the key and ``i``). On one CPU device XLA already spreads every step
over the cores, but synchronises them at each step; starting Python with
``XLA_FLAGS=--xla_force_host_platform_device_count=<cores>`` and passing
``devices=jax.local_devices()`` lets each core run its share of the walks on its own (10-20% more
edge-steps per second at 65536 walks on a 2-core machine, ``bench/rollout.py``).
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.random import threefry_2x32
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mazejax import _checks
from mazejax import exact as exact_module
from mazejax.maze import Maze
from mazejax.policy import probabilities

#: Moves per chunk: each rollout re-keys its random stream once per chunk. Changing it changes
#: every sampled walk (not their distribution).
CHUNK = 128
_UNROLL = 8  # scan unroll inside a chunk (speed only)
_MAX_INT32 = 2**31 - 1
SEARCH_MODES = ("aggregate", "mask")
_AXIS = "rollouts"  # mesh axis of the rollout batch (``devices=``)


# ----------------------------------------------------------------------------------------
# Results


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


class SearchWalks(NamedTuple):
    """Rollouts under the search scaffold (:func:`search_walks`).

    Attributes:
      length: int32 [num], proposals made (every proposal counts, rejected ones included),
        capped at ``horizon``.
      success: bool [num], the target was hit within ``horizon`` proposals.
      target: int32 [num], the target slot of each rollout.
      moves: int32 [num], accepted moves (over all attempts).
      restarts: int32 [num], attempts abandoned because every move was forbidden.
    """

    length: jax.Array
    success: jax.Array
    target: jax.Array
    moves: jax.Array
    restarts: jax.Array


class MonteCarlo(NamedTuple):
    """Monte Carlo estimate of the expected hitting time (host floats).

    Attributes:
      mean: mean of ``length`` over the rollouts (moves, or proposals with the scaffold); walks that
        missed the target count ``horizon``, so this is ``E[min(T, horizon)]``.
      stderr: standard error of ``mean`` (sample standard deviation / sqrt(num)).
      success_rate: fraction of rollouts that hit the target within the horizon.
      success_stderr: its standard error, ``sqrt(p (1 - p) / num)``.
      exact: the exact expected hitting time ``H`` (:func:`mazejax.exact.hitting_time`), or NaN where
        no exact value exists (the search scaffold).
      z: ``(mean - exact) / stderr``; NaN unless every walk hit the target and ``exact`` is finite.
      num: number of rollouts.
    """

    mean: float
    stderr: float
    success_rate: float
    success_stderr: float
    exact: float
    z: float
    num: int


# ----------------------------------------------------------------------------------------
# Public API


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
        (SPEC 4.3, see :func:`search_walks`).
      devices: None to run on the default device, or a sequence of devices (e.g.
        ``jax.local_devices()``) to split the rollouts over; ``num`` must be a multiple of their
        number. The results do not depend on it.

    Returns:
      :class:`Walks` (``search`` None) or :class:`SearchWalks`; both have ``.length`` (int32 [num]:
      moves taken, or proposals made with ``search``) and ``.success`` (bool [num]).
    """
    if search is None:
        return sample_walks(maze, logits, key, num, horizon, devices=devices)
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
) -> Walks:
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
      record: length of the state buffer (static); 0 records nothing.
      counts: also return move counts [S, D] (static flag).
      weights: float [num] per-rollout weights of ``counts`` (default 1), e.g. advantages for a
        REINFORCE gradient ``sum_i A_i (N_i[s, a] - N_i[s] pi(a | s))``.
      devices: None, or a sequence of devices to split the rollouts over (``num`` a multiple of
        their number; see :func:`rollout`). Identical results; e.g. both cores of a CPU run as two
        XLA devices (``XLA_FLAGS=--xla_force_host_platform_device_count=2``) without the per-move
        thread synchronisation of one device.

    Returns:
      :class:`Walks`. Inside ``jax.jit``, pass ``num``, ``record`` and ``counts`` as Python values.
    """
    num = _checks.positive_int("num", num)
    mesh = _rollout_mesh(devices, num)
    record = _checks.positive_int("record", record, minimum=0)
    if not isinstance(counts, (bool, np.bool_)):
        raise ValueError(f"counts must be a bool, got {counts!r}")
    _check_common(maze, logits, key, horizon)
    _layout(maze)  # raises if the maze is too large to pack
    target = _target_argument(maze, target, num)
    if weights is not None:
        if not counts:
            raise ValueError("weights are only used with counts=True")
        if np.shape(weights) != (num,):
            raise ValueError(f"weights must have shape (num,) = ({num},), got {np.shape(weights)}")
        weights = jnp.asarray(weights, jnp.float32)
    elif counts:
        weights = jnp.ones(num, jnp.float32)
    tables = _stepper_tables(maze, jnp.asarray(logits))
    return _walks_kernel(
        maze, tables, _key_words(key), jnp.asarray(horizon, jnp.int32), target, weights,
        num=num, record=record, counts=bool(counts), mesh=mesh,
    )


def search_walks(
    maze: Maze, logits: jax.Array, key: jax.Array, num: int, horizon, mode: str, *, target=None, devices=None
) -> SearchWalks:
    """Rollouts under the inference-time search scaffold (paper's Corollary 1, SPEC 4.3).

    Within an *attempt*, the wrapper forbids entering any edge-state already visited in that
    attempt, and the cost counts every proposal, rejected ones included:

    * ``"aggregate"`` (SPEC 4.3 (a)): the parallel copies of an edge in one direction count as one
      state (visiting any copy forbids all of them); the policy proposes moves, forbidden proposals
      are rejected and redrawn. Simulated exactly in distribution and branch-free: the accepted
      move is drawn from the policy restricted to the allowed moves and the number of rejected
      proposals from the geometric distribution with success probability ``p_allowed`` (the
      policy's total probability on allowed moves); the cost of the move is ``1 + rejections``.
    * ``"mask"`` (SPEC 4.3 (b)): copies are distinct states; visited moves are masked and the
      policy renormalised over the rest, so every proposal is accepted (cost 1 per move).

    Convention (the paper is silent): when every move of the current state is forbidden (or has
    probability 0), the attempt is abandoned and the walk restarts from ``s0 -> f`` with an empty
    visited set, keeping the cost spent so far; the restart itself costs nothing. A walk that
    would exceed ``horizon`` proposals stops with ``length = horizon`` and ``success = False``.

    Memory: an int32 [num, S] table of visit marks. Arguments as in :func:`sample_walks`;
    ``mode`` is ``"aggregate"`` or ``"mask"``.
    """
    num = _checks.positive_int("num", num)
    mesh = _rollout_mesh(devices, num)
    if mode not in SEARCH_MODES:
        raise ValueError(f"search mode must be one of {SEARCH_MODES} (or None for no scaffold), got {mode!r}")
    _check_common(maze, logits, key, horizon)
    target = _target_argument(maze, target, num)
    return _search_kernel(
        maze, jnp.asarray(logits), _key_words(key), jnp.asarray(horizon, jnp.int32), target,
        num=num, mode=mode, mesh=mesh,
    )


def monte_carlo(
    maze: Maze, logits: jax.Array, key: jax.Array, num: int, horizon: int, search: Optional[str] = None, *, devices=None
) -> MonteCarlo:
    """Monte Carlo mean hitting time of ``num`` rollouts, compared with the exact ``H``.

    Host-level helper (returns Python floats; not for use under ``jit``). With ``search`` the mean
    is the scaffold's expected cost in proposals, for which no exact solver exists (``exact`` and
    ``z`` are NaN). Arguments as in :func:`rollout`.
    """
    result = rollout(maze, logits, key, num, horizon, search, devices=devices)
    length = np.asarray(result.length, np.float64)
    success = np.asarray(result.success)
    mean = float(length.mean())
    stderr = float(length.std(ddof=1) / np.sqrt(num)) if num > 1 else float("nan")
    rate = float(success.mean())
    exact = float("nan")
    if search is None:
        exact = float(exact_module.hitting_time(maze, logits))
    z = (mean - exact) / stderr if (rate == 1.0 and np.isfinite(exact) and stderr > 0) else float("nan")
    return MonteCarlo(mean, stderr, rate, float(np.sqrt(rate * (1 - rate) / num)), exact, float(z), num)


# ----------------------------------------------------------------------------------------
# Argument checks (host, before compiling)


def _check_common(maze, logits, key, horizon) -> None:
    if not isinstance(maze, Maze):
        raise ValueError(f"maze must be a mazejax.Maze, got {type(maze).__name__}")
    if _checks.is_traced(maze):  # maze values unknown (e.g. vmapped): check the shape only
        expected = (maze.capacity.states, maze.capacity.out_degree)
        if tuple(np.shape(logits)) != expected:
            raise ValueError(
                f"logits must have shape (states, out_degree) = {expected} for this maze, got {np.shape(logits)}"
            )
    else:
        _checks.logits_shape(maze, logits)
    if not _checks.is_traced(horizon):
        if np.ndim(horizon) != 0:
            raise ValueError(f"horizon must be an integer in [1, {_MAX_INT32}], got shape {np.shape(horizon)}")
        value = horizon.item() if isinstance(horizon, (np.ndarray, np.generic, jax.Array)) else horizon
        _checks.positive_int("horizon", value)
        if value > _MAX_INT32:
            raise ValueError(f"horizon must be an integer in [1, {_MAX_INT32}], got {value}")
    elif np.ndim(horizon) != 0 or not jnp.issubdtype(jnp.result_type(horizon), jnp.integer):
        raise ValueError("horizon must be an integer scalar")
    _key_words(key)


def _key_words(key) -> jax.Array:
    """uint32 [2]: the threefry key of a typed key or of a raw ``jax.random.PRNGKey``."""
    if isinstance(key, (jax.Array, jax.core.Tracer)) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"key must be a single PRNG key, got a key array of shape {key.shape}")
        key = jax.random.key_data(key)
    if np.shape(key) != (2,) or not jnp.issubdtype(jnp.result_type(key), jnp.unsignedinteger):
        raise ValueError(
            "key must be a single threefry PRNG key (jax.random.key(seed) or jax.random.PRNGKey(seed))"
        )
    return jnp.asarray(key, jnp.uint32)


def _rollout_mesh(devices, num: int) -> Optional[Mesh]:
    """A one-axis mesh ("rollouts") over ``devices``, or None; checks ``num`` divides evenly."""
    if devices is None:
        return None
    if isinstance(devices, (str, bytes)) or not all(isinstance(d, jax.Device) for d in devices) or not len(devices):
        raise ValueError(f"devices must be None or a non-empty sequence of jax.Device (e.g. jax.local_devices()), got {devices!r}")
    if len(set(devices)) != len(devices):
        raise ValueError(f"devices must be distinct, got {list(devices)}")
    if num % len(devices):
        raise ValueError(f"num must be a multiple of the number of devices ({len(devices)}), got {num}")
    return Mesh(np.array(devices), (_AXIS,))


def _split(x, mesh: Optional[Mesh], axis: int = 0):
    """``x`` with its rollout axis split over ``mesh`` (identity when ``mesh`` is None)."""
    if mesh is None:
        return x
    spec = [None] * x.ndim
    spec[axis] = _AXIS
    return lax.with_sharding_constraint(x, NamedSharding(mesh, PartitionSpec(*spec)))


def _target_argument(maze: Maze, target, num: int) -> jax.Array:
    """int32 [num]: given target slots, or -1 where the target is to be drawn."""
    if target is None:
        return jnp.full(num, -1, jnp.int32)
    if np.ndim(target) not in (0, 1) or (np.ndim(target) == 1 and np.shape(target)[0] != num):
        raise ValueError(f"target must be an int or an int array of shape ({num},), got shape {np.shape(target)}")
    if not jnp.issubdtype(jnp.result_type(target), jnp.integer):
        raise ValueError(f"target must hold integer target slots, got dtype {jnp.result_type(target)}")
    if not _checks.is_traced(target) and not _checks.is_traced(maze):
        values = np.asarray(target)
        mask = np.asarray(maze.target_mask)
        inside = np.all((values >= 0) & (values < mask.shape[0]))
        if not inside or not np.all(mask[values]):
            real = np.flatnonzero(mask).tolist()
            raise ValueError(f"target must be a real target slot of the maze ({real}), got {target!r}")
    return jnp.broadcast_to(jnp.asarray(target, jnp.int32), (num,))


# ----------------------------------------------------------------------------------------
# Tables


class _Layout(NamedTuple):
    """Static bit layout of the packed tables (from the maze's capacity)."""

    states: int  # S; the sink is internal state S
    degree: int  # D
    state_bits: int  # bits of a state id in a successor code (states 0..S)
    alias_bits: int  # bits of an alias slot in an alias entry
    resolution: int  # bits r of the uniform that pick (slot, fraction)


def _layout(maze: Maze) -> _Layout:
    cap = maze.capacity
    state_bits = int(cap.states).bit_length()
    target_bits = int(cap.targets).bit_length()
    if state_bits + target_bits > 31:
        raise ValueError(
            f"maze too large for the stepper: states * (targets + 1) must be < 2**31 "
            f"(capacity {cap.states} states, {cap.targets} targets)"
        )
    alias_bits = int(cap.out_degree - 1).bit_length()
    return _Layout(cap.states, cap.out_degree, state_bits, alias_bits, min(24, 31 - alias_bits))


def _alias_tables(p: jax.Array, degree: jax.Array):
    """Walker alias tables of the rows of ``p`` over their first ``degree`` slots (Robin Hood).

    Args:
      p: float32 [R, D] probabilities (rows sum to 1, or to 0 for rows never used).
      degree: int32 scalar <= D: the number of slots the sampler draws from.

    Returns:
      (keep, alias): float32 [R, D] in [0, 1] and int32 [R, D]. Drawing ``j`` uniform in
      ``[0, degree)`` and ``f`` uniform in [0, 1) and taking ``j`` if ``f < keep[j]`` else
      ``alias[j]`` samples the row's distribution. Slots of probability 0 get ``keep = 0``.

    Each of the D - 1 rounds pairs, in every row, the open slot of least mass ("poor", whose keep
    probability is then final) with the open slot of most mass ("rich", its alias, which gives the
    poor slot's shortfall). Computed slot-major ([D, R]) so every reduction is a vectorised
    elementwise pass over rows.
    """
    width = p.shape[1]
    cols = jnp.arange(width, dtype=jnp.int32)[:, None]
    mass = p.T * degree.astype(p.dtype)  # [D, R], in units of one slot
    open_ = jnp.broadcast_to(cols < degree, mass.shape)

    def first(mask):  # int32 [R]: the first slot where ``mask`` holds
        return jnp.min(jnp.where(mask, cols, width), axis=0)

    def body(_, carry):
        mass, keep, alias, open_ = carry
        busy = jnp.sum(open_, axis=0) >= 2
        open_mass = jnp.where(open_, mass, jnp.inf)
        is_poor = cols == first(open_ & (open_mass == jnp.min(open_mass, axis=0)))
        other_mass = jnp.where(open_ & ~is_poor, mass, -jnp.inf)
        rich = first(open_ & ~is_poor & (other_mass == jnp.max(other_mass, axis=0)))
        poor_mass = jnp.sum(jnp.where(is_poor, mass, 0.0), axis=0)
        set_poor = is_poor & busy
        keep = jnp.where(set_poor, jnp.clip(poor_mass, 0.0, 1.0), keep)
        alias = jnp.where(set_poor, rich, alias)
        mass = jnp.where((cols == rich) & busy, mass + poor_mass - 1.0, mass)
        return mass, keep, alias, open_ & ~set_poor

    init = (mass, jnp.ones_like(mass), jnp.broadcast_to(cols, mass.shape), open_)
    _, keep, alias, _ = lax.fori_loop(0, max(width - 1, 0), body, init)
    return jnp.where(p > 0, keep.T, 0.0), alias.T


def _target_codes(maze: Maze) -> jax.Array:
    """int32 [S]: 1 + the target slot whose node is the head of each state, 0 if none.

    A state's head is one node, so at most one target matches; a plain sum (not an argmax) keeps
    this cheap for XLA to constant-fold when the maze is closed over.
    """
    hits = jnp.asarray(maze.target_hit) & jnp.asarray(maze.target_mask)[:, None]
    slot = jnp.arange(1, hits.shape[0] + 1, dtype=jnp.int32)[:, None]
    return jnp.sum(jnp.where(hits, slot, 0), axis=0, dtype=jnp.int32)


def _max_degree(maze: Maze) -> jax.Array:
    """int32 scalar: 1 + the last valid move slot of any state (its largest out-degree; padding
    columns excluded, so padding does not change the sampler)."""
    valid = jnp.asarray(maze.valid)
    return jnp.max(jnp.where(valid, jnp.arange(1, valid.shape[1] + 1), 0)).astype(jnp.int32)


@jax.jit
def _stepper_tables(maze: Maze, logits: jax.Array):
    """Flat packed tables of the stepper, with a sink row S (walks that hit their target).

    Jitted on its own (one program per capacity), so the walk kernels for different ``num``,
    ``record`` and ``counts`` share it.

    Returns:
      alias_entry: int32 [(S + 1) * D], ``keep_bits << alias_bits | alias_slot`` where
        ``keep_bits`` = keep probability in units of ``2**-resolution`` (an always-kept slot is
        stored as keep 0 with itself as alias).
      successor_code: int32 [(S + 1) * D], ``next_state | target_code(next_state) << state_bits``.
      degree: uint32 scalar, the number of slots the sampler draws from.
    """
    layout = _layout(maze)
    S, D = layout.states, layout.degree
    p = probabilities(maze, logits.astype(jnp.float32))
    degree = _max_degree(maze)
    keep, alias = _alias_tables(p, degree)
    scale = 2**layout.resolution
    keep_bits = jnp.round(keep * scale).astype(jnp.int32)
    keep_bits = jnp.where((p > 0) & (keep_bits == 0), 1, keep_bits)  # positive stays positive
    slots = jnp.broadcast_to(jnp.arange(D, dtype=jnp.int32), (S, D))
    full = keep_bits >= scale
    entry = jnp.where(full, slots, (keep_bits << layout.alias_bits) | alias)
    succ = jnp.asarray(maze.successors).astype(jnp.int32)
    code = succ | (_target_codes(maze)[succ] << layout.state_bits)
    sink_entry = jnp.zeros((1, D), jnp.int32)
    sink_code = jnp.full((1, D), S, jnp.int32)
    return (
        jnp.concatenate([entry, sink_entry]).ravel(),
        jnp.concatenate([code, sink_code]).ravel(),
        degree.astype(jnp.uint32),
    )


# ----------------------------------------------------------------------------------------
# Randomness


def _fmix32(x: jax.Array) -> jax.Array:
    """MurmurHash3's 32-bit finaliser (a bijection of uint32 with full avalanche)."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * jnp.uint32(0xC2B2AE35)
    return x ^ (x >> 16)


def _counter_words(key: jax.Array, num: int, counter) -> tuple[jax.Array, jax.Array]:
    """Two uint32 [num] words ``threefry2x32(key, (i, counter))`` for rollouts ``i < num``."""
    count = jnp.concatenate([jnp.arange(num, dtype=jnp.uint32), jnp.full(num, counter, jnp.uint32)])
    words = threefry_2x32((key[0], key[1]), count)
    return words[:num], words[num:]


def _chunk_seeds(key: jax.Array, num: int, chunk: jax.Array):
    """(w, g): uint32 [num] Weyl start and odd increment of each rollout's stream in one chunk."""
    w, g = _counter_words(key, num, chunk.astype(jnp.uint32) + 1)
    return w, g | jnp.uint32(1)


def _targets(maze: Maze, key: jax.Array, given: jax.Array) -> jax.Array:
    """int32 [num]: given target slots, or slots drawn uniformly among the real targets.

    The draw uses the word ``threefry2x32(key, (i, 0))`` (chunks use counters 1, 2, ...) with
    ``31 - bit_length(T)`` bits of resolution.
    """
    mask = jnp.asarray(maze.target_mask)
    bits = 31 - int(mask.shape[0]).bit_length()
    real = jnp.sum(mask).astype(jnp.uint32)
    order = jnp.argsort(~mask, stable=True).astype(jnp.int32)  # real slots first, in order
    word, _ = _counter_words(key, given.shape[0], 0)
    rank = (((word >> (32 - bits)) * real) >> bits).astype(jnp.int32)
    return jnp.where(given >= 0, given, order[rank])


# ----------------------------------------------------------------------------------------
# The stepper


@functools.partial(jax.jit, static_argnames=("num", "record", "counts", "mesh"))
def _walks_kernel(maze, tables, key, horizon, given_target, weights, *, num, record, counts, mesh):
    layout = _layout(maze)
    S, D = layout.states, layout.degree
    alias_entry, successor_code, degree = tables
    target = _split(_targets(maze, key, given_target), mesh)
    goal = target + 1  # the target code of a state that ends the walk
    shift = 32 - layout.resolution
    frac_mask = jnp.uint32(2**layout.resolution - 1)
    state_mask = jnp.int32(2**layout.state_bits - 1)
    alias_mask = jnp.int32(2**layout.alias_bits - 1)
    no_count = (S + 1) * D  # out-of-range scatter index: dropped

    def move(state, word):
        """One move of every walk: (next state (sink after a hit), state entered, flat (s, slot))."""
        x = (word >> shift) * degree
        slot = (x >> layout.resolution).astype(jnp.int32)
        frac = (x & frac_mask).astype(jnp.int32)
        base = state * D
        entry = alias_entry.at[base + slot].get(mode="promise_in_bounds")
        slot = jnp.where(frac < (entry >> layout.alias_bits), slot, entry & alias_mask)
        code = successor_code.at[base + slot].get(mode="promise_in_bounds")
        entered = code & state_mask
        return jnp.where((code >> layout.state_bits) == goal, S, entered), entered, base + slot

    def chunk(carry, partial):
        """CHUNK moves of every walk; ``partial``: the horizon ends inside this chunk (masked)."""
        c, state, length, buffer, tally = carry
        w, g = _chunk_seeds(key, num, c)
        start = c * CHUNK

        def step(inner, k):
            state, length, w = inner
            w = w + g
            nxt, entered, flat = move(state, _fmix32(w))
            moving = state != S
            if partial:
                moving = moving & (start + k < horizon)
                nxt = jnp.where(moving, nxt, state)
            out = (
                jnp.where(moving, entered, -1) if record else None,
                jnp.where(moving, flat, no_count) if counts else None,
            )
            return (nxt, length + moving, w), out

        (state, length, _), (entered, flat) = lax.scan(
            step, (state, length, w), jnp.arange(CHUNK, dtype=jnp.int32), unroll=1 if partial else _UNROLL
        )
        if record:
            row = jnp.minimum(1 + start, buffer.shape[0] - CHUNK)  # past `record`: a scratch zone
            buffer = lax.dynamic_update_slice(buffer, entered, (row, jnp.int32(0)))
        if counts:
            ones = jnp.broadcast_to(weights, flat.shape)
            tally = tally + jnp.zeros(no_count, jnp.float32).at[flat.ravel()].add(ones.ravel(), mode="drop")
        return c + 1, state, length, buffer, tally

    def alive(carry, chunks):
        c, state = carry[0], carry[1]
        return (c < chunks) & jnp.any(state != S)

    # Time-major buffer: row 0 holds state 0, chunk c writes rows 1 + c * CHUNK onwards; chunks past
    # ``record`` write into one extra scratch chunk at the end.
    rows = (-(-max(record - 1, 0) // CHUNK) + 1) * CHUNK + 1 if record else 0
    buffer = _split(jnp.full((rows, num), -1, jnp.int32).at[0].set(0), mesh, axis=1) if record else None
    tally = jnp.zeros(no_count, jnp.float32) if counts else None
    zeros = _split(jnp.zeros(num, jnp.int32), mesh)
    carry = (jnp.int32(0), zeros, zeros, buffer, tally)
    # Whole chunks unmasked (the sink row keeps finished walks in place), then the last partial one.
    whole = horizon // CHUNK
    carry = lax.while_loop(functools.partial(alive, chunks=whole), functools.partial(chunk, partial=False), carry)
    carry = lax.while_loop(
        functools.partial(alive, chunks=-(-horizon // CHUNK)), functools.partial(chunk, partial=True), carry
    )
    _, state, length, buffer, tally = carry
    return Walks(
        _split(length, mesh),
        success=_split(state == S, mesh),
        target=target,
        states=buffer[:record].T if record else None,
        overflow=length >= record if record else None,
        counts=tally[: S * D].reshape(S, D) if counts else None,
    )


# ----------------------------------------------------------------------------------------
# The search scaffold


def _direction_classes(maze: Maze) -> jax.Array:
    """int32 [S]: a representative of each state's class of parallel copies in one direction.

    Copies of an edge traversed the same way share tail and head nodes; the representative is the
    smallest state id with the same (tail, head). The tail of a state is the head of any state that
    can move into it (state 0 and padding have none and are their own class).
    """
    S = maze.capacity.states
    valid = jnp.asarray(maze.valid)
    head = jnp.asarray(maze.head)
    succ = jnp.where(valid, jnp.asarray(maze.successors), S)
    tails = jnp.broadcast_to(head[:, None], succ.shape).ravel()
    tail = jnp.full(S + 1, -1, jnp.int32).at[succ.ravel()].max(tails)[:S]
    ids = jnp.arange(S, dtype=jnp.int32)
    tail = jnp.where(tail >= 0, tail, -1 - ids)  # no tail: a class of its own
    sorted_tail, sorted_head, sorted_ids = lax.sort((tail, head, ids), num_keys=3)
    first = jnp.concatenate(
        [jnp.ones(1, bool), (sorted_tail[1:] != sorted_tail[:-1]) | (sorted_head[1:] != sorted_head[:-1])]
    )
    start = lax.cummax(jnp.where(first, ids, 0))  # position of the first member of each class
    return jnp.zeros(S, jnp.int32).at[sorted_ids].set(sorted_ids[start])


@functools.partial(jax.jit, static_argnames=("num", "mode", "mesh"))
def _search_kernel(maze, logits, key, horizon, given_target, *, num, mode, mesh):
    S, D = maze.capacity.states, maze.capacity.out_degree
    p = probabilities(maze, logits.astype(jnp.float32))
    succ = jnp.asarray(maze.successors).astype(jnp.int32)
    classes = jnp.arange(S, dtype=jnp.int32) if mode == "mask" else _direction_classes(maze)
    successor_class = classes[succ]  # [S, D]
    codes = _target_codes(maze)
    target = _split(_targets(maze, key, given_target), mesh)
    goal = target + 1

    def uniform(word):  # float32 in [0, 1) with 24 bits
        return (word >> 8).astype(jnp.float32) * jnp.float32(2.0**-24)

    def step(carry, _):
        state, cost, done, hit, moves, restarts, attempt, marks, w, g = carry
        w1 = w + g
        w = w1 + g
        u_move, u_reject = uniform(_fmix32(w1)), uniform(_fmix32(w))
        prob = p[state]  # [num, D]
        forbidden = jnp.take_along_axis(marks, successor_class[state], axis=1) == attempt[:, None]
        weight = jnp.where(forbidden, 0.0, prob)
        allowed_mass = jnp.sum(weight, axis=1)
        stuck = ~jnp.any(weight > 0, axis=1)
        cdf = jnp.cumsum(weight, axis=1)
        slot = jnp.sum(cdf <= (u_move * cdf[:, -1])[:, None], axis=1)
        last = D - 1 - jnp.argmax((weight > 0)[:, ::-1], axis=1)
        slot = jnp.minimum(slot, last)
        if mode == "aggregate":  # rejected proposals before the accepted one: Geometric(allowed)
            forbidden_mass = jnp.sum(jnp.where(forbidden, prob, 0.0), axis=1)
            log_reject = jnp.where(allowed_mass < 0.5, jnp.log1p(-allowed_mass), jnp.log(forbidden_mass))
            rejected = jnp.floor(jnp.log1p(-u_reject) / log_reject)
            rejected = jnp.where(forbidden_mass > 0, rejected, 0.0)
        else:
            rejected = jnp.zeros(num, jnp.float32)
        remaining = horizon - cost  # proposals left; the accepted one needs 1 of them
        rejected = jnp.minimum(rejected, remaining.astype(jnp.float32)).astype(jnp.int32)
        nxt = succ[state, slot]
        new_cost = cost + 1 + rejected
        live = ~done
        over = live & ~stuck & (rejected >= remaining)
        moving = live & ~stuck & ~over
        restart = live & stuck
        reached = moving & (codes[nxt] == goal)
        attempt = attempt + restart
        state = jnp.where(restart, 0, jnp.where(moving, nxt, state))
        mark = jnp.where(moving, classes[nxt], jnp.where(restart, classes[0], S))
        marks = jax.vmap(lambda row, j, a: row.at[j].set(a, mode="drop"))(marks, mark, attempt)
        cost = jnp.where(over, horizon, jnp.where(moving, new_cost, cost))
        return (
            state, cost, done | over | reached, hit | reached, moves + moving, restarts + restart,
            attempt, marks, w, g,
        ), None

    def chunk(carry):
        c, inner = carry
        w, g = _chunk_seeds(key, num, c)
        inner, _ = lax.scan(step, inner[:-2] + (w, g), None, length=CHUNK)
        return c + 1, inner

    zeros = _split(jnp.zeros(num, jnp.int32), mesh)
    marks = _split(jnp.full((num, S), -1, jnp.int32).at[:, classes[0]].set(0), mesh)
    no = jnp.zeros(num, bool)
    seeds = jnp.zeros(num, jnp.uint32)  # replaced at the start of every chunk
    inner = (zeros, zeros, no, no, zeros, zeros, zeros, marks, seeds, seeds)
    _, inner = lax.while_loop(lambda carry: jnp.any(~carry[1][2]), chunk, (jnp.int32(0), inner))
    _, cost, _, hit, moves, restarts = inner[:6]
    return SearchWalks(cost, hit, target, moves, restarts)


__all__ = [
    "CHUNK",
    "MonteCarlo",
    "SEARCH_MODES",
    "SearchWalks",
    "Walks",
    "monte_carlo",
    "rollout",
    "sample_walks",
    "search_walks",
]
