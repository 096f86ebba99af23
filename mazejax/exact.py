"""Exact Markov-chain analysis of a tabular policy on a maze, in float64.

Conventions (SPEC 2): the walk starts in state 0 (``s0 -> f``) at time 0; the hitting time of
target ``x`` is the number of moves until the first state whose head is ``x``; ``H`` is the mean
over targets of the expected hitting time. A policy that reaches a target with probability < 1
has ``H = +inf`` (never NaN).

Every function validates its arguments on the host, then runs a jit-compiled float64 program
under ``jax.enable_x64`` and returns float64 arrays, whatever the global x64 flag. Arithmetic on
those arrays outside this module follows the caller's own x64 setting.

Two solvers:

* **Chain solver** (mazes with a chain layout: the paper's mazes, heterogeneous ones, path-stars).
  The source is a cut vertex and each branch a chain of node groups with moves only between
  neighbouring groups, so the walk is eliminated one group at a time from each leaf towards the
  source, then over the fork states. Elimination uses the Grassmann-Taksar-Heyman rule: the
  probability of leaving a state is the *sum* of its outgoing probabilities, never ``1 - p_stay``,
  so no step subtracts and values of 1e14 keep ~1e-15 relative accuracy. A trap (a closed set of
  states without the target) shows up as an exactly zero exit probability and gives ``+inf``.
  Cost: O(W * K * (L + 1)^3) per evaluation, differentiable (reverse mode through a scan).
* **Dense solver** (any maze; per-state quantities): one ``[S, S]`` LU solve per target in
  float64. Its relative error grows with the condition number (about 1% at the SFT limit of
  W=K=15, L=5), so :func:`hitting_time` uses the chain solver whenever it applies.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mazejax import _checks
from mazejax.maze import Maze
from mazejax.policy import probabilities

F64 = jnp.float64
UNROLL = 8  # eliminations of at most this many states are unrolled (faster, longer compile)


# ----------------------------------------------------------------------------------------
# Public API


def hitting_time(maze: Maze, logits: jax.Array) -> jax.Array:
    """Expected hitting time ``H`` from ``s0 -> f``, averaged over targets. float64 scalar.

    Differentiable in ``logits`` (the gradient has the dtype of ``logits``). Uses the chain
    solver when the maze has a chain layout, else the dense solver.
    """
    _checks.logits_shape(maze, logits)
    with jax.enable_x64(True):
        return _hitting_time(maze, logits)


def target_hitting_times(maze: Maze, logits: jax.Array) -> jax.Array:
    """Expected hitting time from ``s0 -> f`` of each target. float64 [T] (padded targets: 0)."""
    _checks.logits_shape(maze, logits)
    with jax.enable_x64(True):
        return _target_hitting_times(maze, logits, _unit_rewards(maze))


def expected_visits(maze: Maze, logits: jax.Array) -> jax.Array:
    """Expected visits to each state before hitting each target, from ``s0 -> f``. float64 [T, S].

    Computed as the derivative of the hitting time with respect to a per-state cost of one move
    (exact, since the hitting time is linear in those costs), through the same solver as
    :func:`hitting_time`; target-head states and padding get 0.
    """
    _checks.logits_shape(maze, logits)
    with jax.enable_x64(True):
        return _expected_visits(maze, logits)


def hitting_times(maze: Maze, logits: jax.Array) -> jax.Array:
    """Expected hitting time of each target from every state. float64 [T, S] (dense solver).

    Target-head states have 0; states that reach the target with probability < 1 have ``+inf``.
    Uses one [S, S] LU solve per target: meant for small and medium mazes and for checks.
    """
    _checks.logits_shape(maze, logits)
    with jax.enable_x64(True):
        return _dense_hitting_times(maze, logits)


def hit_probability(maze: Maze, logits: jax.Array, horizon: int) -> jax.Array:
    """Probability of hitting the target within ``horizon`` moves, averaged over targets. float64.

    Propagates the exact state distribution for ``horizon`` steps (O(horizon * S * D) work).
    """
    _checks.logits_shape(maze, logits)
    horizon = _checks.positive_int("horizon", horizon)
    with jax.enable_x64(True):
        return _hit_probability(maze, logits, horizon)


def dense_hitting_time(maze: Maze, logits: jax.Array) -> jax.Array:
    """``H`` by the dense solver, for cross-checks of the chain solver. float64 scalar."""
    _checks.logits_shape(maze, logits)
    with jax.enable_x64(True):
        return _mean_over_targets(maze, _dense_hitting_times(maze, logits)[:, 0])


# ----------------------------------------------------------------------------------------
# Jitted kernels (always traced under enable_x64)


def _unit_rewards(maze: Maze) -> jax.Array:
    return jnp.asarray(maze.state_mask, F64)


def _mean_over_targets(maze: Maze, per_target: jax.Array) -> jax.Array:
    mask = jnp.asarray(maze.target_mask)
    return jnp.sum(jnp.where(mask, per_target, 0.0)) / jnp.sum(mask)


@jax.jit
def _hitting_time(maze: Maze, logits: jax.Array) -> jax.Array:
    return _mean_over_targets(maze, _target_hitting_times(maze, logits, _unit_rewards(maze)))


@jax.jit
def _expected_visits(maze: Maze, logits: jax.Array) -> jax.Array:
    solve = functools.partial(_target_hitting_times, maze, jax.lax.stop_gradient(logits))
    visits = jax.jacrev(solve)(_unit_rewards(maze))
    absorbed = jnp.asarray(maze.target_hit)
    return jnp.where(absorbed | ~jnp.asarray(maze.state_mask)[None, :], 0.0, visits)


def _target_hitting_times(maze: Maze, logits: jax.Array, rewards: jax.Array) -> jax.Array:
    """Per-target expected cost from state 0, where leaving state s costs ``rewards[s]``. [T]."""
    if maze.capacity.structured:
        return _chain_solve(maze, logits, rewards)
    return _dense_costs(maze, logits, rewards)


def _transition_probabilities(maze: Maze, logits: jax.Array) -> jax.Array:
    return probabilities(maze, jnp.asarray(logits).astype(F64))


def _eliminate(Z, tgt, r, doomed, first, stop):
    """Eliminate states ``first, ..., stop - 1`` from a sub-chain, GTH style.

    ``Z`` [n, n] holds transition probabilities among the kept and to-be-eliminated states,
    ``tgt`` [n] the probability of moving into the (absorbing) target, ``r`` [n] the expected
    cost accumulated before the next transition recorded in ``Z``/``tgt``, ``doomed`` [n] whether
    the walk from a state misses the target with positive probability (its ``r`` is then
    meaningless). Rows of pivots must be complete (all their outgoing probability is in ``Z`` or
    ``tgt``). Afterwards the rows of kept states describe the chain watched on kept states only.
    A pivot whose leaving probability is exactly zero is a trap: whoever can enter it is doomed.
    """
    idx = jnp.arange(Z.shape[0])

    def pivot(p, carry):
        Z, tgt, r, doomed = carry
        off = idx != p
        row = jnp.where(off, Z[p], 0.0)
        leave = jnp.sum(row) + tgt[p]  # probability of leaving p: a sum, never 1 - Z[p, p]
        col = jnp.where(off, Z[:, p], 0.0)
        frac = col / jnp.where(leave > 0, leave, 1.0)
        doomed = doomed | ((col > 0) & (doomed[p] | (leave == 0)))
        Z = jnp.where(off[None, :], Z + frac[:, None] * row[None, :], 0.0)
        return Z, tgt + frac * tgt[p], r + frac * r[p], doomed

    return lax.fori_loop(first, stop, pivot, (Z, tgt, r, doomed), unroll=stop - first <= UNROLL)


def _chain_solve(maze: Maze, logits: jax.Array, rewards: jax.Array) -> jax.Array:
    """Chain solver (module docstring) for every target. float64 [T]."""
    cap = maze.capacity
    B, N, G = cap.branches, cap.levels, cap.group
    pi = _transition_probabilities(maze, logits)
    succ = jnp.asarray(maze.successors)
    valid = jnp.asarray(maze.valid)
    level, position, branch = (jnp.asarray(getattr(maze, n)) for n in ("level", "position", "branch"))
    head = jnp.asarray(maze.head)

    # Scatter every move into the chain buffers: down[b, k, i, j] (level k -> k - 1),
    # up[b, k, i, j] (k -> k + 1) and fork[phi, b'] (fork state phi -> entry of branch b').
    lv_from, lv_to = level[:, None], level[succ]
    is_fork = (head == 0)[:, None] & valid
    fork_phi = jnp.where(jnp.arange(cap.states) == 0, 0, branch + 1)[:, None]
    size = B * (N + 1) * G * G
    flat_level = ((branch[:, None] * (N + 1) + lv_from) * G + position[:, None]) * G + position[succ]
    dest = jnp.where(lv_to == lv_from - 1, flat_level, jnp.where(lv_to == lv_from + 1, size + flat_level, -1))
    dest = jnp.where(is_fork, 2 * size + fork_phi * B + branch[succ], jnp.where(valid & (lv_from >= 0), dest, -1))
    dest = jnp.where(dest >= 0, dest, 2 * size + (B + 1) * B)  # out of range: dropped
    buffer = jnp.zeros(2 * size + (B + 1) * B, F64).at[dest.ravel()].add(pi.ravel(), mode="drop")
    down = buffer[:size].reshape(B, N + 1, G, G)
    up = buffer[size : 2 * size].reshape(B, N + 1, G, G)
    fork = buffer[2 * size :].reshape(B + 1, B)
    # Level 0 is, per branch, {exit state e_b at slot 0, virtual entry eps at slot 1}; eps moves
    # to the branch's entry state (level 1, slot 0) with probability 1 at no cost.
    up = up.at[:, 0].set(jnp.zeros((G, G), F64).at[1, 0].set(1.0))

    chain_state = jnp.asarray(maze.chain_state)
    rewards_pad = jnp.concatenate([rewards, jnp.zeros(1, F64)])
    cost = rewards_pad[jnp.where(chain_state >= 0, chain_state, cap.states)]  # [B, N + 1, G]
    cost = cost.at[:, 0].set(0.0)
    hits_any = jnp.concatenate([jnp.any(jnp.asarray(maze.target_hit), axis=0), jnp.zeros(1, bool)])
    leaf = hits_any[jnp.where(chain_state >= 0, chain_state, cap.states)]  # [B, N + 1, G]

    q, p, R, lost = branch_exits(down, up, cost, leaf)
    fork_states = jnp.concatenate([jnp.zeros(1, jnp.int32), chain_state[:, 0, 0]])  # s0, e_1..e_B
    fork_cost = rewards_pad[jnp.where(fork_states >= 0, fork_states, cap.states)]

    def per_target(tb):
        chosen = jnp.arange(B) == tb
        q_t, p_t, R_t, lost_t = (jnp.where(chosen, x[1], x[0]) for x in (q, p, R, lost))
        return fork_level(fork, q_t, p_t, R_t, lost_t, fork_cost)

    target_branch = jnp.asarray(maze.target_branch)
    per = jax.vmap(per_target)(target_branch)
    return jnp.where(jnp.asarray(maze.target_mask), per, 0.0)


def branch_exits(down, up, cost, leaf):
    """Excursion statistics of every branch, with its leaf an ordinary state or the target.

    Args (``B`` branches, ``N`` leaf level, ``G`` states per group, float64):
      down, up: [B, N + 1, G, G] move probabilities from slot i of level k to slot j of level
        k - 1 (``down``) or k + 1 (``up``); level 0 holds the exit state e_b (slot 0) and a virtual
        entry (slot 1) whose ``up`` row moves to the entry state (level 1, slot 0).
      cost: [B, N + 1, G] cost of leaving each state (0 at level 0).
      leaf: bool [B, N + 1, G], the states whose head is the branch's leaf.

    Returns ``(q, p, R, lost)``, each [2, B] (index 0: leaf not the target, 1: leaf the target):
    from the virtual entry, the probability of returning to e_b, of hitting the target, the
    expected cost until either, and whether the walk may never do either.
    """
    G = down.shape[-1]

    def exit_statistics(down_b, up_b, cost_b, leaf_b, target):
        absorb = leaf_b & target

        def step(carry, level):
            A, tgt, r, doomed = carry  # this level, deeper levels already eliminated
            down_k, up_above, cost_above, absorb_k = level
            keep = ~absorb_k
            tgt = jnp.where(absorb_k, 1.0, tgt)
            r = jnp.where(absorb_k, 0.0, r)
            Z = jnp.zeros((2 * G, 2 * G), F64)
            Z = Z.at[:G, G:].set(up_above).at[G:, :G].set(down_k * keep[:, None]).at[G:, G:].set(A * keep[:, None])
            tgt2 = jnp.concatenate([jnp.zeros(G, F64), tgt])
            r2 = jnp.concatenate([cost_above, r])
            doomed2 = jnp.concatenate([jnp.zeros(G, bool), doomed & keep])
            Z, tgt2, r2, doomed2 = _eliminate(Z, tgt2, r2, doomed2, G, 2 * G)
            return (Z[:G, :G], tgt2[:G], r2[:G], doomed2[:G]), None

        # Levels N, ..., 1 with the level above each: (down[k], up[k - 1], cost[k - 1], absorb[k]).
        levels = (down_b[:0:-1], up_b[-2::-1], cost_b[-2::-1], absorb[:0:-1])
        init = (jnp.zeros((G, G), F64), jnp.zeros(G, F64), cost_b[-1], jnp.zeros(G, bool))
        (A, tgt, r, doomed), _ = lax.scan(step, init, levels)
        return A[1, 0], tgt[1], r[1], doomed[1]

    per_branch = jax.vmap(exit_statistics, in_axes=(0, 0, 0, 0, None))
    return jax.vmap(lambda target: per_branch(down, up, cost, leaf, target))(jnp.array([False, True]))


@jax.custom_vjp
def fork_level(fork, q, p, R, lost, fork_cost):
    """Expected cost from s0 given each branch's excursion statistics (the fork chain).

    Fork states are s0 (row 0 of ``fork`` [B + 1, B]) and the exit states e_b (rows 1..B); from
    fork state phi the walk enters branch b with probability ``fork[phi, b]``, then returns to e_b
    with probability ``q[b]``, hits the target with ``p[b]``, at expected cost ``R[b]``; ``lost[b]``
    flags a branch the walk may never leave. The value is computed by GTH elimination (accurate
    for every policy); its gradient by implicit differentiation of the equivalent B x B linear
    solve, which stays cheap in reverse mode for hundreds of branches.
    """
    B = q.shape[0]
    Z = jnp.zeros((B + 1, B + 1), F64).at[:, 1:].set(fork * q[None, :])
    doomed = jnp.any((fork > 0) & lost[None, :], axis=1)
    _, _, r, doomed = _eliminate(Z, fork @ p, fork_cost + fork @ R, doomed, 1, B + 1)
    return jnp.where(doomed[0], jnp.inf, r[0])


def _fork_level_solve(fork, q, R, fork_cost, doomed):
    """The fork chain as a linear solve: cost from s0 = c0 + (f0 q) . (I - F q)^-1 c_exit."""
    cost = fork_cost + fork @ R
    M = jnp.where(doomed, 0.0, fork[1:] * q[None, :])
    h_exit = jnp.linalg.solve(jnp.eye(q.shape[0], dtype=F64) - M, cost[1:])
    return cost[0] + (fork[0] * q) @ h_exit


def _fork_level_fwd(fork, q, p, R, lost, fork_cost):
    H = fork_level(fork, q, p, R, lost, fork_cost)
    return H, (fork, q, p, R, lost, fork_cost, jnp.isinf(H))


def _fork_level_bwd(residuals, g):
    fork, q, p, R, lost, fork_cost, doomed = residuals
    _, vjp = jax.vjp(lambda *a: _fork_level_solve(*a, doomed), fork, q, R, fork_cost)
    d_fork, d_q, d_R, d_cost = vjp(jnp.where(doomed, 0.0, g))
    return d_fork, d_q, jnp.zeros_like(p), d_R, None, d_cost


fork_level.defvjp(_fork_level_fwd, _fork_level_bwd)


def _transition_matrix(maze: Maze, logits: jax.Array) -> jax.Array:
    """Dense float64 [S, S] transition matrix of the policy."""
    S = maze.capacity.states
    pi = _transition_probabilities(maze, logits)
    rows = jnp.broadcast_to(jnp.arange(S)[:, None], pi.shape)
    return jnp.zeros((S, S), F64).at[rows, jnp.asarray(maze.successors)].add(pi)


def _doomed(P: jax.Array, live: jax.Array, absorbing: jax.Array) -> jax.Array:
    """bool [n]: live states from which the walk misses ``absorbing`` with positive probability.

    ``P`` [n, n] are transition probabilities; only ``live`` states move (absorbing and padding
    rows are ignored). A state is doomed if it can reach, along positive-probability moves, a
    state that cannot reach the absorbing set.
    """
    live = live & ~absorbing
    edge = (P > 0) & live[:, None]

    def closure(seed):  # states that can reach ``seed`` along positive-probability moves
        def body(state):
            reach, _ = state
            new = reach | (live & jnp.any(edge & reach[None, :], axis=1))
            return new, jnp.any(new != reach)

        return lax.while_loop(lambda s: s[1], body, (seed, jnp.array(True)))[0]

    reaches = closure(absorbing)
    return closure(live & ~reaches) & live


@jax.jit
def _dense_hitting_times(maze: Maze, logits: jax.Array) -> jax.Array:
    P = _transition_matrix(maze, logits)
    return jax.vmap(lambda hit: _dense_solve(maze, P, hit, _unit_rewards(maze)))(jnp.asarray(maze.target_hit))


def _dense_costs(maze: Maze, logits: jax.Array, rewards: jax.Array) -> jax.Array:
    P = _transition_matrix(maze, logits)
    per = jax.vmap(lambda hit: _dense_solve(maze, P, hit, rewards)[0])(jnp.asarray(maze.target_hit))
    return jnp.where(jnp.asarray(maze.target_mask), per, 0.0)


def _dense_solve(maze: Maze, P, absorbing, rewards):
    """Expected cost to reach ``absorbing`` from every state; +inf where it is missed. [S]."""
    S = P.shape[0]
    absorbing = absorbing & jnp.asarray(maze.state_mask)
    doomed = _doomed(lax.stop_gradient(P), jnp.asarray(maze.state_mask), absorbing)
    solvable = jnp.asarray(maze.state_mask) & ~absorbing & ~doomed
    Q = jnp.where(solvable[:, None] & solvable[None, :], P, 0.0)
    h = jnp.linalg.solve(jnp.eye(S, dtype=F64) - Q, jnp.where(solvable, rewards, 0.0))
    return jnp.where(doomed, jnp.inf, jnp.where(solvable, h, 0.0))


@functools.partial(jax.jit, static_argnums=2)
def _hit_probability(maze: Maze, logits: jax.Array, horizon: int) -> jax.Array:
    pi = _transition_probabilities(maze, logits)
    succ = jnp.asarray(maze.successors)
    S = maze.capacity.states

    def per_target(hit):
        def body(_, carry):
            mass, absorbed = carry
            flow = jnp.zeros(S, F64).at[succ.ravel()].add((mass[:, None] * pi).ravel())
            return jnp.where(hit, 0.0, flow), absorbed + jnp.sum(jnp.where(hit, flow, 0.0))

        start = jnp.zeros(S, F64).at[0].set(1.0)
        return lax.fori_loop(0, horizon, body, (start, jnp.zeros((), F64)))[1]

    return _mean_over_targets(maze, jax.vmap(per_target)(jnp.asarray(maze.target_hit)))


__all__ = [
    "dense_hitting_time",
    "expected_visits",
    "hit_probability",
    "hitting_time",
    "hitting_times",
    "target_hitting_times",
]
