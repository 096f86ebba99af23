"""The tree solver: exact hitting times of a tabular edge-state policy on a tree with multiedges.

On a tree (any :meth:`~mazejax.Maze.from_edges` graph whose simple graph is a tree, parallel copies
allowed, the source its root) a walk that enters the subtree of a node ``c`` along a copy ``k`` of
its parent edge must leave it along some copy ``j`` of the same edge, unless the target lies
inside. So the hitting time decomposes into *excursions*, each the solution of a small linear
system over the states whose head is one node (its in-states: the ``m`` copies arriving from the
parent and the copies arriving from each child; at most ``m_max (1 + b_max)`` states):

* down-excursions, bottom-up: from ``D(c, k)`` (parent -> c along copy k), the expected moves until
  the walk is back on the parent, and the distribution of the copy ``j`` it returns along;
* up-excursions, top-down: from ``U(v, j)`` (v -> parent along copy j), the expected moves until
  it re-enters ``v`` and the copy it re-enters by (it must: the target is below ``v``);
* arrivals, top-down: the expected moves from the start until the first state whose head is ``v``
  and the copy it arrives by. The hitting time of target ``x`` is the arrival time of ``x``.

Every target's hitting time comes out of one pass, at a cost of one ``N x N`` solve per node and
one per edge (``N`` the padded in-state count), against one ``S x S`` LU per target for the dense
solver: a ternary tree of depth 6 (2185 states, 729 targets) takes milliseconds. The node systems
are solved by LU in float64 (they are small and, for policies that leave every subtree with
probability bounded away from 0, well conditioned); tests check the solver against
:func:`mazejax.exact.dense_hitting_time`. Policies that can fail to leave a subtree (zero
probabilities) give ``inf`` or NaN, not a finite wrong number, only when the node system becomes
singular -- check against the dense solver for such policies. Differentiable in the logits.

The layout (:func:`tree_layout`) is built on the host from a maze compiled by
:meth:`~mazejax.Maze.from_edges` (or :meth:`~mazejax.Maze.tree`, :meth:`~mazejax.Maze.random_tree`), unpadded.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from mazejax import validate
from mazejax.maze import Maze
from mazejax.policy import probabilities

F64 = jnp.float64


@dataclasses.dataclass(frozen=True, eq=False)
class TreeLayout:
    """Host-side index tables of a tree maze (numpy; see :func:`tree_layout`).

    Attributes:
      node_states: int [n, N], the in-states of each node by local index (-1: none); for a
        non-root node the first ``m`` are the copies arriving from the parent, in copy order; for
        the root local 0 is the start state.
      parent, depth: int [n]; copies: int [n], multiplicity of the parent edge (0 at the root).
      is_down: bool [S]; tail: int [S], tail node of each state (-1 for the start); copy: int [S], copy index of each state on its edge (-1 for the start).
      land: int [S, M], for a down state ``D(c, k)``: the local index in its tail node of ``U(c, j)``.
      local: int [S], local index of each state in its head node.
      levels: tuple of int arrays, the nodes at each depth.
      target_nodes: int [T]; max_copies M; size N.
    """

    node_states: np.ndarray
    parent: np.ndarray
    depth: np.ndarray
    copies: np.ndarray
    is_down: np.ndarray
    tail: np.ndarray
    copy: np.ndarray
    land: np.ndarray
    local: np.ndarray
    levels: tuple
    target_nodes: np.ndarray
    max_copies: int
    size: int


def tree_layout(maze: Maze) -> TreeLayout:
    """The index tables of :mod:`mazejax.exact.tree` for an unpadded maze whose graph is a tree rooted at
    the source (multiedges allowed). Raises a ValueError naming the problem otherwise."""
    head = np.asarray(maze.head)
    if not np.all(np.asarray(maze.state_mask)):
        raise ValueError("the tree solver needs an unpadded maze")
    S = head.size
    if S < 3 or S % 2 == 0:
        raise ValueError("maze must be compiled from an edge list (start state + two states per edge)")
    succ, valid = np.asarray(maze.successors), np.asarray(maze.valid)
    reverse = np.arange(S) + np.where(np.arange(S) % 2 == 1, 1, -1)
    reverse[0] = -1
    tail = np.where(np.arange(S) > 0, head[np.maximum(reverse, 0)], -1)
    for s in range(1, S):  # the pairing of _compile: the U-turn of s is its reverse state
        if not np.any(valid[s] & (succ[s] == reverse[s])):
            raise ValueError("maze must be compiled from an edge list (states paired per edge)")
    n = int(head.max()) + 1
    neighbours = [set() for _ in range(n)]
    for s in range(1, S):
        neighbours[tail[s]].add(int(head[s]))
    if sum(len(x) for x in neighbours) != 2 * (n - 1):
        raise ValueError("the tree solver needs a tree: the graph without parallel copies has a cycle")
    parent, depth = np.full(n, -1), np.full(n, -1)
    depth[0], frontier = 0, [0]
    while frontier:
        grown = []
        for u in frontier:
            for v in neighbours[u]:
                if depth[v] < 0:
                    depth[v], parent[v] = depth[u] + 1, u
                    grown.append(v)
        frontier = grown
    if np.any(depth < 0):
        raise ValueError("the tree solver needs a connected graph")
    is_down = np.zeros(S, bool)
    is_down[1:] = depth[head[1:]] > depth[tail[1:]]
    copy = np.full(S, -1)
    down_of = [[] for _ in range(n)]
    for s in range(1, S):
        if is_down[s]:
            down_of[head[s]].append(s)
    copies = np.array([len(d) for d in down_of])
    for c in range(n):
        for j, s in enumerate(sorted(down_of[c])):
            copy[s] = copy[reverse[s]] = j
    M = int(max(copies.max(), 1))
    children = [[] for _ in range(n)]
    for v in range(1, n):
        children[parent[v]].append(v)
    in_states = []
    for u in range(n):
        first = [0] if u == 0 else sorted(down_of[u])
        in_states.append(first + [reverse[d] for g in children[u] for d in sorted(down_of[g])])
    N = max(len(x) for x in in_states)
    node_states = np.full((n, N), -1)
    local = np.full(S, -1)
    for u, states in enumerate(in_states):
        node_states[u, : len(states)] = states
        local[states] = np.arange(len(states))
    land = np.full((S, M), -1)
    for s in range(1, S):
        if is_down[s]:
            for j, d in enumerate(sorted(down_of[head[s]])):
                land[s, j] = local[reverse[d]]
    hit = np.asarray(maze.target_hit)[np.asarray(maze.target_mask)]
    target_nodes = np.array([int(head[np.flatnonzero(h)[0]]) for h in hit])
    if np.any(target_nodes == 0):
        raise ValueError("the tree solver needs targets other than the source")
    levels = tuple(np.flatnonzero(depth == d) for d in range(int(depth.max()) + 1))
    return TreeLayout(node_states, parent, depth, copies, is_down, tail, copy, land, local, levels, target_nodes, M, N)


def _local_solve(pi, moves, states, exit_slot, time, landing, M):
    """Solve one node system: ``states`` [N] (-1 pad); per move: probability ``pi`` [N, D], exit slot
    [N, D] (-1: not an exit), excursion time [N, D] and landing distribution [N, D, N] over locals.
    Returns (tau [N], x [N, M])."""
    N = states.shape[0]
    real = states >= 0
    moving = real[:, None] & moves
    weight = jnp.where(moving, pi, 0.0)
    exits = (exit_slot >= 0) & moving
    excursion = moving & ~exits
    Q = jnp.einsum("am,amb->ab", jnp.where(excursion, weight, 0.0), landing)
    rhs_time = jnp.where(real, 1.0 + jnp.sum(jnp.where(excursion, weight * time, 0.0), axis=1), 0.0)
    onehot = (exit_slot[..., None] == jnp.arange(M)) & exits[..., None]
    rhs_exit = jnp.sum(jnp.where(onehot, weight[..., None], 0.0), axis=1)
    A = jnp.eye(N, dtype=F64) - Q
    solution = jnp.linalg.solve(A, jnp.concatenate([rhs_time[:, None], rhs_exit], axis=1))
    return solution[:, 0], solution[:, 1:]


def target_hitting_times(layout: TreeLayout, maze: Maze, logits: jax.Array) -> jax.Array:
    """Expected hitting time of each real target from the start, float64 [T_real]. Traceable in
    ``logits`` (jit, grad, vmap over logits); ``layout`` and ``maze`` are fixed."""
    validate.require_x64("mazejax.exact.tree")
    L = layout
    S = L.is_down.size
    M, N = L.max_copies, L.size
    succ, valid = jnp.asarray(maze.successors), jnp.asarray(maze.valid)
    pi = probabilities(maze, jnp.asarray(logits).astype(F64))
    is_down, copy, land = jnp.asarray(L.is_down), jnp.asarray(L.copy), jnp.asarray(L.land)
    head = jnp.asarray(maze.head)
    landing_down = jnp.where(land[..., None] >= 0, land[..., None] == jnp.arange(N), False)  # [S, M, N]

    def gather(u):
        states = jnp.asarray(L.node_states[u])  # [k, N]
        safe = jnp.maximum(states, 0)
        return states, safe, succ[safe], valid[safe] & (states >= 0)[..., None], pi[safe]

    # 1. down-excursions, bottom-up: exits are the up moves (slot = copy), excursions the down moves
    E = jnp.zeros(S, F64)
    R = jnp.zeros((S, M), F64)
    for level in reversed(L.levels[1:]):
        states, safe, t, moves, p = gather(level)
        exit_slot = jnp.where(is_down[t], -1, copy[t])
        landing = jnp.einsum("kadm,kadmn->kadn", R[t], landing_down[t].astype(F64))
        tau, x = jax.vmap(lambda *a: _local_solve(*a, M))(p, moves, states, exit_slot, E[t], landing)
        m = jnp.asarray(L.copies[level])
        first = jnp.arange(N)[None, :] < m[:, None]  # locals 0..m-1: the copies arriving from the parent
        ids = jnp.where(first, safe, S)  # scatter the D(c, k) rows (S: dropped)
        E = E.at[ids].set(tau, mode="drop")
        R = R.at[ids].set(x, mode="drop")

    # 2. up-excursions and arrivals, top-down, one system per edge (u, v)
    Eup = jnp.zeros(S, F64)
    Rup = jnp.zeros((S, M), F64)
    n = L.parent.size
    arrive = jnp.zeros(n, F64)
    alpha = jnp.zeros((n, M), F64)
    landing_up = (jnp.arange(N)[None, :] == jnp.arange(M)[:, None]).astype(F64)  # copy k'' -> local k''
    for level in L.levels[1:]:
        u = L.parent[level]
        states, safe, t, moves, p = gather(u)
        v = jnp.asarray(level)
        into_v = is_down[t] & (head[t] == v[:, None, None])
        exit_slot = jnp.where(into_v, copy[t], -1)
        time = jnp.where(is_down[t], E[t], Eup[t])
        landing = jnp.where(is_down[t][..., None], jnp.einsum("kadm,kadmn->kadn", R[t], landing_down[t].astype(F64)),
                            jnp.einsum("kadm,mn->kadn", Rup[t], landing_up))
        tau, x = jax.vmap(lambda *a: _local_solve(*a, M))(p, moves, states, exit_slot, time, landing)
        # up-excursion of v: the rows of U(v, j) in u's system
        ups = jnp.asarray(L.node_states[u])
        mine = (ups >= 0) & ~is_down[jnp.maximum(ups, 0)] & (jnp.asarray(L.tail)[jnp.maximum(ups, 0)] == v[:, None]) & (ups > 0)
        ids = jnp.where(mine, ups, S)
        Eup = Eup.at[ids].set(tau, mode="drop")
        Rup = Rup.at[ids].set(x, mode="drop")
        root = jnp.asarray(u == 0)
        from_parent = alpha[u]  # [k, M]: arrival distribution over the copies into u
        time_here = jnp.where(root, tau[:, 0], arrive[u] + jnp.sum(from_parent * tau[:, :M], axis=1))
        dist_here = jnp.where(root[:, None], x[:, 0, :], jnp.einsum("km,kmj->kj", from_parent, x[:, :M, :]))
        arrive = arrive.at[v].set(time_here)
        alpha = alpha.at[v].set(dist_here)
    return arrive[jnp.asarray(L.target_nodes)]


def hitting_time(layout: TreeLayout, maze: Maze, logits: jax.Array) -> jax.Array:
    """``H``: the mean over targets of :func:`target_hitting_times`, float64 scalar."""
    return jnp.mean(target_hitting_times(layout, maze, logits))


__all__ = ["TreeLayout", "hitting_time", "target_hitting_times", "tree_layout"]
