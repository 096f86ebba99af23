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
from flax import struct
from jax import lax

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


@struct.dataclass
class TreeArrays:
    """The layout as a PyTree of arrays padded to common sizes (:func:`tree_arrays`), so trees of
    different sizes vmap together (with :func:`mazejax.stack`-ed mazes of the same padding)."""

    level_nodes: jax.Array  # int32 [depth_max, k_max]: nodes at depth 1..depth_max (-1 pad)
    node_states: jax.Array  # int32 [n_max, N]
    parent: jax.Array  # int32 [n_max]
    copies: jax.Array  # int32 [n_max]
    is_down: jax.Array  # bool [S]
    tail: jax.Array  # int32 [S]
    copy: jax.Array  # int32 [S]
    land: jax.Array  # int32 [S, M]
    target_nodes: jax.Array  # int32 [T] (0 for padded targets)
    target_mask: jax.Array  # bool [T]


def tree_arrays(layout: TreeLayout, states: int | None = None, nodes: int | None = None, depth: int | None = None,
                width: int | None = None, size: int | None = None, copies: int | None = None,
                targets: int | None = None) -> TreeArrays:
    """:class:`TreeArrays` of ``layout`` padded to the given sizes (default: its own). Use
    :func:`stack_trees` to pad several to common sizes."""
    L = layout
    S, n, N, M = L.is_down.size, L.parent.size, L.size, L.max_copies
    levels = L.levels[1:]
    depth = depth or len(levels)
    width = width or max(len(x) for x in levels)
    states, nodes, size, copies = states or S, nodes or n, size or N, copies or M
    targets = targets or L.target_nodes.size
    level_nodes = np.full((depth, width), -1, np.int32)
    for i, x in enumerate(levels):
        level_nodes[i, : len(x)] = x
    pad_s, pad_n = (0, states - S), (0, nodes - n)
    return TreeArrays(
        level_nodes=level_nodes,
        node_states=np.pad(L.node_states, (pad_n, (0, size - N)), constant_values=-1).astype(np.int32),
        parent=np.pad(L.parent, pad_n, constant_values=-1).astype(np.int32),
        copies=np.pad(L.copies, pad_n).astype(np.int32),
        is_down=np.pad(L.is_down, pad_s),
        tail=np.pad(L.tail, pad_s, constant_values=-1).astype(np.int32),
        copy=np.pad(L.copy, pad_s, constant_values=-1).astype(np.int32),
        land=np.pad(L.land, (pad_s, (0, copies - M)), constant_values=-1).astype(np.int32),
        target_nodes=np.pad(L.target_nodes, (0, targets - L.target_nodes.size)).astype(np.int32),
        target_mask=np.arange(targets) < L.target_nodes.size,
    )


def stack_trees(mazes) -> tuple[Maze, TreeArrays]:
    """Pad tree mazes and their layouts to common sizes and stack both (for ``vmap``)."""
    from mazejax.maze import stack

    layouts = [tree_layout(m) for m in mazes]
    sizes = dict(states=max(m.capacity.states for m in mazes), nodes=max(x.parent.size for x in layouts),
                 depth=max(len(x.levels) - 1 for x in layouts),
                 width=max(len(v) for x in layouts for v in x.levels[1:]), size=max(x.size for x in layouts),
                 copies=max(x.max_copies for x in layouts), targets=max(m.capacity.targets for m in mazes))
    arrays = [tree_arrays(x, **sizes) for x in layouts]
    return stack(mazes), jax.tree.map(lambda *xs: jnp.stack(xs), *arrays)


def target_hitting_times(arrays: TreeArrays, maze: Maze, logits: jax.Array) -> jax.Array:
    """Expected hitting time of each target from the start, float64 [T] (padded targets: 0).
    ``arrays``: a :class:`TreeArrays` (or a :class:`TreeLayout`, converted). Jit-compiled once per
    shape; traceable: jit, grad, vmap over logits and over stacked (maze, arrays) pairs."""
    validate.require_x64("mazejax.exact.tree")
    if isinstance(arrays, TreeLayout):
        arrays = tree_arrays(arrays)
    return _target_hitting_times(arrays, maze, logits)


@jax.jit
def _target_hitting_times(arrays: TreeArrays, maze: Maze, logits: jax.Array) -> jax.Array:
    A = arrays
    S = A.is_down.shape[0]
    M, N = A.land.shape[1], A.node_states.shape[1]
    n = A.parent.shape[0]
    succ, valid = jnp.asarray(maze.successors), jnp.asarray(maze.valid)
    pi = probabilities(maze, jnp.asarray(logits).astype(F64))
    is_down, copy, land, tail = (jnp.asarray(x) for x in (A.is_down, A.copy, A.land, A.tail))
    node_states, parent, copies = (jnp.asarray(x) for x in (A.node_states, A.parent, A.copies))
    head = jnp.asarray(maze.head)
    landing_down = (land[..., None] >= 0) & (land[..., None] == jnp.arange(N))  # [S, M, N]
    solve = jax.vmap(lambda *a: _local_solve(*a, M))

    def gather(u):  # u int [k] (already safe)
        states = node_states[u]
        safe = jnp.maximum(states, 0)
        return states, safe, succ[safe], valid[safe] & (states >= 0)[..., None], pi[safe]

    def down_landing(R, t):
        return jnp.einsum("kadm,kadmn->kadn", R[t], landing_down[t].astype(F64))

    # 1. down-excursions, bottom-up: exits are the up moves (slot = copy), excursions the down moves
    def down(carry, level):
        E, R = carry
        present = level >= 0
        states, safe, t, moves, p = gather(jnp.maximum(level, 0))
        moves = moves & present[:, None, None]
        exit_slot = jnp.where(is_down[t], -1, copy[t])
        tau, x = solve(p, moves, states, exit_slot, E[t], down_landing(R, t))
        first = (jnp.arange(N)[None, :] < copies[jnp.maximum(level, 0)][:, None]) & present[:, None]
        ids = jnp.where(first, safe, S)  # the D(c, k) rows (S: dropped)
        return (E.at[ids].set(tau, mode="drop"), R.at[ids].set(x, mode="drop")), None

    (E, R), _ = lax.scan(down, (jnp.zeros(S, F64), jnp.zeros((S, M), F64)), jnp.asarray(A.level_nodes), reverse=True)

    # 2. up-excursions and arrivals, top-down, one system per edge (u, v)
    landing_up = (jnp.arange(N)[None, :] == jnp.arange(M)[:, None]).astype(F64)  # copy k'' -> local k''

    def up(carry, level):
        Eup, Rup, arrive, alpha = carry
        present = level >= 0
        v = jnp.maximum(level, 0)
        u = jnp.maximum(parent[v], 0)
        states, safe, t, moves, p = gather(u)
        moves = moves & present[:, None, None]
        exit_slot = jnp.where(is_down[t] & (head[t] == v[:, None, None]), copy[t], -1)
        time = jnp.where(is_down[t], E[t], Eup[t])
        landing = jnp.where(is_down[t][..., None], down_landing(R, t), jnp.einsum("kadm,mn->kadn", Rup[t], landing_up))
        tau, x = solve(p, moves, states, exit_slot, time, landing)
        mine = (states > 0) & ~is_down[safe] & (tail[safe] == v[:, None]) & present[:, None]
        ids = jnp.where(mine, states, S)
        Eup, Rup = Eup.at[ids].set(tau, mode="drop"), Rup.at[ids].set(x, mode="drop")
        root = u == 0
        from_parent = alpha[u]  # [k, M]: arrival distribution over the copies into u
        time_here = jnp.where(root, tau[:, 0], arrive[u] + jnp.sum(from_parent * tau[:, :M], axis=1))
        dist_here = jnp.where(root[:, None], x[:, 0, :], jnp.einsum("km,kmj->kj", from_parent, x[:, :M, :]))
        target = jnp.where(present, v, n)
        return (Eup, Rup, arrive.at[target].set(time_here, mode="drop"), alpha.at[target].set(dist_here, mode="drop")), None

    start = (jnp.zeros(S, F64), jnp.zeros((S, M), F64), jnp.zeros(n, F64), jnp.zeros((n, M), F64))
    (_, _, arrive, _), _ = lax.scan(up, start, jnp.asarray(A.level_nodes))
    mask = jnp.asarray(A.target_mask)
    return jnp.where(mask, arrive[jnp.asarray(A.target_nodes)], 0.0)


def hitting_time(arrays: TreeArrays, maze: Maze, logits: jax.Array) -> jax.Array:
    """``H``: the mean over real targets of :func:`target_hitting_times`, float64 scalar."""
    if isinstance(arrays, TreeLayout):
        arrays = tree_arrays(arrays)
    per = target_hitting_times(arrays, maze, logits)
    mask = jnp.asarray(arrays.target_mask)
    return jnp.sum(jnp.where(mask, per, 0.0)) / jnp.sum(mask)


__all__ = ["TreeArrays", "TreeLayout", "hitting_time", "stack_trees", "target_hitting_times", "tree_arrays", "tree_layout"]
