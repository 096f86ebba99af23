"""Demonstration data beyond golden paths: depth-first search traces, exactly and sampled.

SFT on golden paths never shows a retreat (docs/model.md §4.1). A *search trace* does: the
history-aware depth-first search (DFS) that tries the branches in a uniformly random order,
never re-entering one it has explored, walks each wrong branch forward to its dead end, back to
the fork, and finally down the target's branch -- ``W (2K + 1)`` moves on average on
``Maze(W, K, L)`` (the best any target-blind policy with memory of the walk can do). Within a
branch it crosses each diamond by a uniformly drawn copy; at the fork it enters the next branch
of its order.

A dataset mixes sources by *sequences* (a fraction ``p`` of search traces, the rest golden
paths) and the loss is the mean cross-entropy over all the moves of the dataset, so the
population transition frequencies of a mixture are
``w = ((1 - p) E[counts_golden] + p E[counts_dfs]) / ((1 - p) E[len_golden] + p E[len_dfs])``
(:func:`mixture_transitions`). :func:`dfs_counts` gives the DFS's exact expected move counts (the
order of branches is uniform: a wrong branch is explored with probability 1/2, and the move from
the fork after branch ``b`` into branch ``b'`` has probability ``1/W`` if ``b'`` is the target's
branch and ``1/(2W)`` otherwise); :func:`sample_dfs` draws traces move by move (the walks a
history-aware policy is trained on by teacher forcing). Both need a chain layout (the paper's
mazes, heterogeneous ones, path-stars).

The other kind of search trace, the efficient backtracker's walks (:func:`backtracker_counts`), and
any tabular policy's walks (:func:`policy_counts`) have exact expected counts ``E_x[d_x(s)] pi(m | s)``;
:func:`mixture_transitions` mixes either kind (:data:`SEARCH_KINDS`) with golden paths, and
:mod:`mazejax.train.search_sft` trains on the mixture.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from mazejax import validate
from mazejax.maze import Maze
from mazejax.ordered import ordered_sum, ordered_total

F64 = jnp.float64


def _require_chain(maze: Maze) -> None:
    if not maze.capacity.structured:
        raise ValueError("maze must have a chain layout (Maze(W, K, L), heterogeneous mazes, path-stars) for "
                         "depth-first search traces")


def within_branch_policy(maze: Maze, dtype=F64) -> jax.Array:
    """[S, D]: the DFS inside a branch: uniform over the moves that keep the direction of travel
    (forward into the next link's copies, or backward), the U-turn at a dead end; zero at the fork."""
    succ, valid = jnp.asarray(maze.successors), jnp.asarray(maze.valid)
    forward = jnp.asarray(maze.forward)
    same = valid & (forward[succ] == forward[:, None]) & (forward[:, None] >= 0)
    allowed = jnp.where(jnp.any(same, axis=1, keepdims=True), same, valid)
    in_branch = (jnp.asarray(maze.head) != 0) & (forward >= 0)
    allowed = allowed & in_branch[:, None]
    return (allowed / jnp.maximum(jnp.sum(allowed, axis=1, keepdims=True), 1)).astype(dtype)


def _entries(maze: Maze):
    """int32 [B]: the state entering each branch from the fork; its exit state back into the fork."""
    chain = jnp.asarray(maze.chain_state)
    return chain[:, 1, 0], chain[:, 0, 0]


def _traversal_counts(maze: Maze, policy, start_state, absorbing, steps: int) -> jax.Array:
    """Expected move counts [S, D] of the chain ``policy`` from ``start_state`` until ``absorbing``."""
    S = maze.capacity.states
    succ = jnp.asarray(maze.successors).ravel()

    def push(mass, _):
        flow = mass[:, None] * policy
        return jnp.where(absorbing, 0.0, jnp.zeros(S, policy.dtype).at[succ].add(flow.ravel())), flow

    start = jnp.zeros(S, policy.dtype).at[start_state].set(1.0)
    _, flows = lax.scan(push, start, None, length=steps)
    return ordered_sum(flows, axis=0)


def dfs_counts(maze: Maze, dtype=F64) -> tuple[jax.Array, jax.Array]:
    """Expected move counts [S, D] and expected length (scalar) of a DFS trace, averaged over targets.

    Exact (module docstring); traceable (vmap over :func:`mazejax.stack`-ed mazes with a chain layout).
    """
    _require_chain(maze)
    cap = maze.capacity
    B, N = cap.branches, cap.levels
    policy = within_branch_policy(maze, dtype)
    head, succ = jnp.asarray(maze.head), jnp.asarray(maze.successors)
    entry, exit_ = _entries(maze)
    real = entry >= 0  # padded branches have no entry
    W = jnp.sum(real).astype(dtype)
    at_fork = head == 0
    round_trip = jax.vmap(lambda e: _traversal_counts(maze, policy, jnp.maximum(e, 0), at_fork, 2 * N))(entry)  # [B, S, D]
    target_branch = jnp.asarray(maze.target_branch)
    to_target = jax.vmap(lambda t, hit: _traversal_counts(maze, policy, jnp.maximum(entry[t], 0), hit, N))(
        target_branch, jnp.asarray(maze.target_hit))  # [T, S, D]
    # moves at the fork: from s0 -> f into each branch (1/W), from the exit of b into b'
    into = (succ[None, :, :] == entry[:, None, None]) & jnp.asarray(maze.valid)[None] & real[:, None, None]  # [B, S, D]

    rows = jnp.arange(cap.states)[None, :] == exit_[:, None]  # [B, S]: the exit row of each branch
    first = ordered_sum(jnp.where(real[:, None, None], into, False).astype(dtype), axis=0) / W  # s0 -> f: 1/W each
    first = jnp.where((jnp.arange(cap.states) == 0)[:, None], first, 0.0)

    def per_target(t, to_t):
        wrong = real & (jnp.arange(B) != t)
        counts = to_t + first + ordered_sum(jnp.where(wrong[:, None, None], 0.5 * round_trip, 0.0), axis=0)
        # from the exit of a wrong branch b into b' != b: 1/W if b' is the target's branch, else 1/(2W)
        after = jnp.where(jnp.arange(B) == t, 1.0, 0.5) / W  # [b']
        pair = wrong[:, None] & real[None, :] & (jnp.arange(B)[:, None] != jnp.arange(B)[None, :])  # [b, b']
        weight = jnp.where(pair, after[None, :], 0.0).astype(dtype)  # [b, b']
        into_from = ordered_sum(weight[:, :, None, None] * into[None].astype(dtype), axis=1)  # [b, S, D]
        fork = ordered_sum(jnp.where(rows[:, :, None], into_from, 0.0), axis=0)
        return counts + fork

    per = jax.vmap(per_target)(target_branch, to_target)
    mask = jnp.asarray(maze.target_mask)
    counts = ordered_sum(jnp.where(mask[:, None, None], per, 0.0), axis=0) / jnp.sum(mask)
    return counts, ordered_total(counts)


def golden_counts(maze: Maze, dtype=F64) -> tuple[jax.Array, jax.Array]:
    """Expected move counts [S, D] and expected length of a golden path, averaged over targets."""
    from mazejax.train.sft import golden_policy

    policy = golden_policy(maze, dtype)  # [T, S, D]
    per = jax.vmap(lambda p, hit: _traversal_counts(maze, p, 0, hit, maze.capacity.paths))(
        policy, jnp.asarray(maze.target_hit))
    mask = jnp.asarray(maze.target_mask)
    counts = ordered_sum(jnp.where(mask[:, None, None], per, 0.0), axis=0) / jnp.sum(mask)
    return counts, ordered_total(counts)


def _jitted(function):
    """``function(maze, dtype)`` compiled once per maze capacity and dtype (a traced call inlines it)."""
    compiled = jax.jit(function, static_argnames="dtype")

    @functools.wraps(function)
    def call(maze: Maze, dtype=F64):
        return compiled(maze, dtype=dtype)

    return call


dfs_counts = _jitted(dfs_counts)
golden_counts = _jitted(golden_counts)

#: Kinds of search trace a dataset may mix in (:func:`search_counts`).
SEARCH_KINDS = ("dfs", "backtracker")


def policy_counts(maze: Maze, logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Expected move counts float64 [S, D] and expected length of the walks of a tabular policy from
    ``s0 -> f`` to a uniformly drawn target: ``E_x[d_x(s)] * pi(m | s)`` with ``d_x`` the expected
    visits before the hit (:func:`mazejax.exact.expected_visits`). Any maze; traceable."""
    from mazejax import exact
    from mazejax.policy import probabilities

    visits = exact.expected_visits(maze, logits)  # [T, S]
    mask = jnp.asarray(maze.target_mask)
    mean_visits = ordered_sum(jnp.where(mask[:, None], visits, 0.0), axis=0) / jnp.sum(mask)
    counts = mean_visits[:, None] * probabilities(maze, jnp.asarray(logits).astype(F64))
    return counts, ordered_total(counts)


def backtracker_counts(maze: Maze) -> tuple[jax.Array, jax.Array]:
    """Expected move counts [S, D] and length of the efficient backtracker's walks (``a = b = c = d = 1``,
    the frozen fork row uniform over all W branches, the one just left included): on ``Maze(W, K, L)``
    the length is ``4WK + 2W - 2K - 1``. Paper mazes only (the backtracker is defined by state types)."""
    from mazejax.policy import backtracker_logits

    return policy_counts(maze, backtracker_logits(maze, F64))


def search_counts(maze: Maze, kind: str = "dfs") -> tuple[jax.Array, jax.Array]:
    """Expected move counts [S, D] and length of one search trace of ``kind``: ``"dfs"`` (the
    history-aware depth-first search, :func:`dfs_counts`) or ``"backtracker"`` (the efficient
    backtracker's walks, :func:`backtracker_counts`)."""
    kind = validate.choice("kind", kind, SEARCH_KINDS)
    return dfs_counts(maze) if kind == "dfs" else backtracker_counts(maze)


def mixture_transitions(maze: Maze, fraction, dtype=F64, kind: str = "dfs") -> jax.Array:
    """Population transition frequencies [S, D] (summing to 1) of a dataset with a fraction
    ``fraction`` (may be traced, in [0, 1]) of search traces of ``kind`` (:data:`SEARCH_KINDS`;
    DFS by default) and the rest golden paths (module docstring)."""
    if not validate.is_traced(fraction):
        validate.number("fraction", fraction, 0.0, 1.0)
    golden, golden_length = golden_counts(maze, F64)
    search, search_length = search_counts(maze, kind)
    p = jnp.asarray(fraction, F64)
    return (((1 - p) * golden + p * search) / ((1 - p) * golden_length + p * search_length)).astype(dtype)


def sample_dfs(key: jax.Array, maze: Maze, num: int, record: int | None = None):
    """``num`` DFS traces: ``(states int32 [num, record], length int32 [num], target int32 [num])``.

    Trace ``i`` uses ``jax.random.fold_in(key, i)``: its target (uniform over the real targets), its
    order of branches (uniform) and its copies. ``states[i, t]`` is the state at time t (``-1`` after
    the trace ends); ``record`` defaults to the longest possible trace plus one,
    ``(2 * branches - 1) * levels + 1``. Traceable, vmappable.
    """
    _require_chain(maze)
    num = validate.positive_int("num", num)
    cap = maze.capacity
    longest = (2 * cap.branches - 1) * cap.levels + 1
    record = longest if record is None else validate.positive_int("record", record)
    policy = within_branch_policy(maze, jnp.float32)
    succ, valid, head = jnp.asarray(maze.successors), jnp.asarray(maze.valid), jnp.asarray(maze.head)
    entry, _ = _entries(maze)
    real_targets = jnp.asarray(maze.target_mask)

    def trace(index):
        target_key, order_key, walk_key = jax.random.split(jax.random.fold_in(key, index), 3)
        target = jax.random.categorical(target_key, jnp.where(real_targets, 0.0, -jnp.inf))
        noise = jnp.where(entry >= 0, jax.random.uniform(order_key, entry.shape), jnp.inf)
        order = jnp.argsort(noise).astype(jnp.int32)  # real branches first, uniformly ordered
        hit = jnp.asarray(maze.target_hit)[target]

        def move(carry, step_key):
            state, position, done = carry
            at_fork = head[state] == 0
            branch = order[jnp.minimum(position, cap.branches - 1)]
            into = valid[state] & (succ[state] == entry[branch])
            row = jnp.where(at_fork, into.astype(jnp.float32), policy[state])
            slot = jax.random.categorical(step_key, jnp.log(row))
            nxt = jnp.where(done, state, succ[state, slot])
            position = position + (at_fork & ~done)
            done = done | hit[nxt]
            return (nxt, position, done), jnp.where(carry[2], -1, nxt)

        start = (jnp.int32(0), jnp.int32(0), jnp.bool_(False))
        (_, _, done), states = lax.scan(move, start, jax.random.split(walk_key, record - 1))
        states = jnp.concatenate([jnp.zeros(1, jnp.int32), states.astype(jnp.int32)])
        return states, jnp.sum(states[1:] >= 0).astype(jnp.int32), target.astype(jnp.int32)

    return jax.vmap(trace)(jnp.arange(num, dtype=jnp.int32))


def trace_counts(maze: Maze, states: jax.Array, weights: jax.Array | None = None) -> jax.Array:
    """Move counts [S, D] of recorded traces ``states`` [n, M] (``-1`` after each trace's end);
    with ``weights`` [n] each trace's moves count ``weights[i]`` times (default 1)."""
    succ, valid = jnp.asarray(maze.successors), jnp.asarray(maze.valid)
    before, after = states[:, :-1], states[:, 1:]
    moving = after >= 0
    state = jnp.where(moving, before, 0)
    slot = jnp.argmax((succ[state] == after[..., None]) & valid[state], axis=-1)
    D = maze.capacity.out_degree
    flat = jnp.where(moving, state * D + slot, maze.capacity.states * D)
    per_move = jnp.broadcast_to((jnp.ones(states.shape[0], jnp.float32) if weights is None
                                 else jnp.asarray(weights, jnp.float32))[:, None], flat.shape)
    counts = jnp.zeros(maze.capacity.states * D + 1, jnp.float32).at[flat.ravel()].add(per_move.ravel())
    return counts[:-1].reshape(-1, D)


__all__ = ["SEARCH_KINDS", "backtracker_counts", "dfs_counts", "golden_counts", "mixture_transitions", "policy_counts",
           "sample_dfs", "search_counts", "trace_counts", "within_branch_policy"]
