"""The chain solver: expected hitting costs of a tabular policy on a maze with a chain layout.

Applies when the source is a cut vertex and each branch a chain of node groups with moves only
between neighbouring groups (the paper's mazes, heterogeneous ones, path-stars; see
:mod:`mazejax.maze`). The walk is eliminated one group at a time from each leaf towards the
source, then over the fork states. Elimination uses the Grassmann-Taksar-Heyman (GTH) rule: the
probability of leaving a state is the *sum* of its outgoing probabilities, never ``1 - p_stay``,
so no step subtracts and values of 1e14 keep ~1e-15 relative accuracy (a dense float64 LU solve
is about 1% off at the SFT limit of W=K=15, L=5, where H = 4.3e14). A trap (a closed set of states
without the target) shows up as an exactly zero exit probability and gives ``+inf``, never NaN.

Cost: O(W * K * (L + 1)^3) per evaluation. Differentiable in both modes: reverse and forward
mode go through the level scan; the fork level (:func:`fork_level`) has a custom JVP by implicit
differentiation of the equivalent ``B x B`` linear solve (:func:`solve_m_matrix`, no LAPACK), from
which JAX derives reverse mode by transposition, so ``jax.grad``, ``jax.jvp`` and ``jax.hessian``
all work.

Everything here computes in float64 and must run with ``jax_enable_x64`` on (checked by the
public functions of :mod:`mazejax.exact`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

from mazejax.maze import Maze
from mazejax.ordered import ordered_sum
from mazejax.policy import probabilities

F64 = jnp.float64
UNROLL = 8  # differentiated eliminations of at most this many states are unrolled (see eliminate)


@functools.partial(jax.custom_jvp, nondiff_argnums=(4, 5))
def eliminate(Z, tgt, r, doomed, first, stop):
    """Eliminate states ``first, ..., stop - 1`` from a sub-chain, GTH style.

    ``Z`` [n, n] holds transition probabilities among the kept and to-be-eliminated states,
    ``tgt`` [n] the probability of moving into the (absorbing) target, ``r`` [n] the expected
    cost accumulated before the next transition recorded in ``Z``/``tgt``, ``doomed`` [n] whether
    the walk from a state misses the target with positive probability (its ``r`` is then
    meaningless). Rows of pivots must be complete (all their outgoing probability is in ``Z`` or
    ``tgt``). Afterwards the rows of kept states describe the chain watched on kept states only.
    A pivot whose leaving probability is exactly zero is a trap: whoever can enter it is doomed.

    The pivots run in a loop; only a derivative unrolls them (at most ``UNROLL`` pivots, through the
    custom JVP, which JAX also transposes for reverse mode). Measured on one core of the Intel Xeon
    host: unrolled, the value alone compiles ~1.6x slower and runs up to 2x slower under ``vmap``
    (8 policies at W = K = 6, L = 5: 5.6 against 2.9 ms), while the value and gradient run up to 2x
    faster ((6, 6, 5): 1.2 against 2.4 ms) for a longer compile.
    """
    return _eliminate(Z, tgt, r, doomed, first, stop, unroll=False)


@functools.partial(eliminate.defjvp, symbolic_zeros=True)
def _eliminate_jvp(first, stop, primals, tangents):
    # differentiate in the inputs with nonzero tangents only, as JAX would without the custom rule
    # (e.g. costs that do not depend on the logits): no arithmetic on zeros
    live = [not isinstance(t, SymbolicZero) for t in tangents]

    def unrolled(*args):
        given = iter(args)
        return _eliminate(*(next(given) if l else x for x, l in zip(primals, live)), first, stop,
                          unroll=stop - first <= UNROLL)

    return jax.jvp(unrolled, [x for x, l in zip(primals, live) if l], [t for t, l in zip(tangents, live) if l])


def _eliminate(Z, tgt, r, doomed, first, stop, unroll: bool):
    """:func:`eliminate`, its pivots in a loop or (``unroll``) written out one by one."""
    idx = jnp.arange(Z.shape[0])

    def pivot(p, carry):
        Z, tgt, r, doomed = carry
        off = idx != p
        row = jnp.where(off, Z[p], 0.0)
        leave = ordered_sum(row) + tgt[p]  # probability of leaving p: a sum, never 1 - Z[p, p]
        col = jnp.where(off, Z[:, p], 0.0)
        frac = col / jnp.where(leave > 0, leave, 1.0)
        doomed = doomed | ((col > 0) & (doomed[p] | (leave == 0)))
        Z = jnp.where(off[None, :], Z + frac[:, None] * row[None, :], 0.0)
        return Z, tgt + frac * tgt[p], r + frac * r[p], doomed

    return lax.fori_loop(first, stop, pivot, (Z, tgt, r, doomed), unroll=unroll)


def target_costs(maze: Maze, logits: jax.Array, rewards: jax.Array) -> jax.Array:
    """Expected cost from state 0 until each target, leaving state s costing ``rewards[s]``. float64 [T]."""
    cap = maze.capacity
    B, N, G = cap.branches, cap.levels, cap.group
    pi = probabilities(maze, jnp.asarray(logits).astype(F64))
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
            Z, tgt2, r2, doomed2 = eliminate(Z, tgt2, r2, doomed2, G, 2 * G)
            return (Z[:G, :G], tgt2[:G], r2[:G], doomed2[:G]), None

        # Levels N, ..., 1 with the level above each: (down[k], up[k - 1], cost[k - 1], absorb[k]).
        levels = (down_b[:0:-1], up_b[-2::-1], cost_b[-2::-1], absorb[:0:-1])
        init = (jnp.zeros((G, G), F64), jnp.zeros(G, F64), cost_b[-1], jnp.zeros(G, bool))
        (A, tgt, r, doomed), _ = lax.scan(step, init, levels)
        return A[1, 0], tgt[1], r[1], doomed[1]

    per_branch = jax.vmap(exit_statistics, in_axes=(0, 0, 0, 0, None))
    return jax.vmap(lambda target: per_branch(down, up, cost, leaf, target))(jnp.array([False, True]))


@jax.custom_jvp
def fork_level(fork, q, p, R, lost, fork_cost):
    """Expected cost from s0 given each branch's excursion statistics (the fork chain).

    Fork states are s0 (row 0 of ``fork`` [B + 1, B]) and the exit states e_b (rows 1..B); from
    fork state phi the walk enters branch b with probability ``fork[phi, b]``, then returns to e_b
    with probability ``q[b]``, hits the target with ``p[b]``, at expected cost ``R[b]``; ``lost[b]``
    flags a branch the walk may never leave. The value is computed by GTH elimination (accurate
    for every policy); its derivatives by implicit differentiation of the equivalent B x B linear
    solve (:func:`_fork_level_solve`), cheap in both modes for hundreds of branches.
    """
    B = q.shape[0]
    Z = jnp.zeros((B + 1, B + 1), F64).at[:, 1:].set(fork * q[None, :])
    doomed = jnp.any((fork > 0) & lost[None, :], axis=1)
    fork_p, fork_R = ordered_sum(fork * p[None, :], axis=1), ordered_sum(fork * R[None, :], axis=1)
    _, _, r, doomed = eliminate(Z, fork_p, fork_cost + fork_R, doomed, 1, B + 1)
    return jnp.where(doomed[0], jnp.inf, r[0])


def solve_m_matrix(A: jax.Array, b: jax.Array) -> jax.Array:
    """``A^-1 b`` for a nonsingular M-matrix ``A`` (here ``I - M`` with ``M >= 0`` substochastic), by
    Gaussian elimination without pivoting (never a zero pivot for such matrices) in a fixed order.

    Written out rather than ``jnp.linalg.solve``: jaxlib's batched LAPACK triangular solve can
    deadlock XLA:CPU's thread pool under a large ``vmap`` (seen with 1000 vmapped runs on this
    project's CI machine), and this solve is differentiable in both modes like any JAX loop.
    """
    n = A.shape[0]
    idx = jnp.arange(n)

    def forward(k, carry):
        A, b = carry
        factor = jnp.where(idx > k, A[:, k] / A[k, k], 0.0)
        return A - factor[:, None] * A[k][None, :], b - factor * b[k]

    A, b = lax.fori_loop(0, n, forward, (A, b))

    def backward(i, x):
        k = n - 1 - i
        return x.at[k].set((b[k] - ordered_sum(A[k] * x)) / A[k, k])

    return lax.fori_loop(0, n, backward, jnp.zeros_like(b))


def _fork_level_solve(fork, q, R, fork_cost, doomed):
    """The fork chain as a linear solve: cost from s0 = c0 + (f0 q) . (I - F q)^-1 c_exit."""
    cost = fork_cost + ordered_sum(fork * R[None, :], axis=1)
    M = jnp.where(doomed, 0.0, fork[1:] * q[None, :])
    h_exit = solve_m_matrix(jnp.eye(q.shape[0], dtype=F64) - M, cost[1:])
    return cost[0] + ordered_sum(fork[0] * q * h_exit)


@fork_level.defjvp
def _fork_level_jvp(primals, tangents):
    fork, q, p, R, lost, fork_cost = primals
    d_fork, d_q, _, d_R, _, d_cost = tangents
    value = fork_level(*primals)
    doomed = jnp.isinf(value)
    _, tangent = jax.jvp(lambda *a: _fork_level_solve(*a, doomed), (fork, q, R, fork_cost), (d_fork, d_q, d_R, d_cost))
    return value, jnp.where(doomed, 0.0, tangent)


__all__ = ["F64", "branch_exits", "eliminate", "fork_level", "solve_m_matrix", "target_costs"]
