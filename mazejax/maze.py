"""The maze: an undirected multigraph compiled to a fixed-shape edge-state representation.

A *state* is a directed edge ``u -> v``; every parallel copy of an edge is its own state. A walk
starts on a virtual directed edge into the source (``s0 -> f`` in the paper's maze, state 0) and
moves from ``u -> v`` to any ``v -> w``, the immediate U-turn ``v -> u`` included (docs/model.md §2).

:class:`Maze` is a PyTree. Its leaves are arrays (the successor table padded to the largest
out-degree with a validity mask, the head node of each state, which states hit which target,
which rows are trainable, type/branch/depth tags and the chain layout used by the structured
exact solver). Its static part is a hashable :class:`Capacity`: the padded sizes. Mazes padded
to one capacity (:func:`pad`, :func:`stack`) share a tree structure and vmap together; padding
never changes a result.

*Chain layout.* When the graph is a "spider" (the source is a cut vertex joined by single edges
to ``B`` branches, each branch a chain of links ``v_0 = source, v_1, ..., v_N = leaf`` whose
consecutive nodes are joined by any number of parallel edges, and every target is a branch
leaf), each state ``v_n -> v_{n+1}`` (forward) or ``v_{n+1} -> v_n`` (backward) belongs to the
*group* of its head node: ``level`` is the index of its head on the chain and ``position`` its
slot in that group (forward states first). Moves go only from level ``k`` to levels ``k - 1`` and
``k + 1``, which :mod:`mazejax.exact` exploits. The paper's mazes and path-star graphs are spiders.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Hashable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mazejax import validate

#: State-type codes of ``Maze.state_type`` (docs/model.md §2.1); -1 marks states without a type.
TYPE_NAMES = ("R+", "R-", "L+", "L-")
R_PLUS, R_MINUS, L_PLUS, L_MINUS = range(4)


@dataclasses.dataclass(frozen=True)
class Capacity:
    """Static, hashable padded sizes of a :class:`Maze`.

    Attributes:
      states: rows of the successor table (real states plus padding).
      out_degree: move slots per state.
      targets: target slots.
      branches, levels, group: chain-layout sizes (branches, deepest leaf level, states per
        group); all 0 when ``structured`` is False.
      paths: moves of the longest shortest path from the start to a target (golden paths).
      structured: whether the chain layout is present (the fast exact solver applies).
    """

    states: int
    out_degree: int
    targets: int
    branches: int = 0
    levels: int = 0
    group: int = 0
    structured: bool = False
    paths: int = 0

    @classmethod
    def paper(cls, W: int, K: int, L: int) -> "Capacity":
        """The capacity of ``Maze(W, K, L)``, computed without building the maze."""
        return cls(states=1 + W * (2 * K * L + 2 * K + 2), out_degree=max(W, L + 1), targets=W, branches=W,
                   levels=2 * K + 1, group=max(2, L + 1), structured=True, paths=2 * K + 1)

    @property
    def depths(self) -> int:
        """Diamond depths a paper-style maze of this capacity can hold: ``(levels - 1) // 2``."""
        return max(self.levels - 1, 0) // 2

    def union(self, other: "Capacity") -> "Capacity":
        """The smallest capacity that holds both ``self`` and ``other``."""
        structured = self.structured and other.structured
        return Capacity(
            states=max(self.states, other.states),
            out_degree=max(self.out_degree, other.out_degree),
            targets=max(self.targets, other.targets),
            branches=max(self.branches, other.branches) if structured else 0,
            levels=max(self.levels, other.levels) if structured else 0,
            group=max(self.group, other.group) if structured else 0,
            structured=structured,
            paths=max(self.paths, other.paths),
        )


# Array fields of a Maze, in PyTree order, with the value that fills padding.
_STATE_FIELDS = {  # per state, shape [states]
    "head": -1,
    "state_mask": False,
    "trainable": False,
    "state_type": -1,
    "branch": -1,
    "depth": -1,
    "forward": -1,
    "level": -1,
    "position": -1,
}
_MOVE_FIELDS = {"successors": 0, "valid": False}  # per move slot, shape [states, out_degree]
_FIELDS = tuple(_MOVE_FIELDS) + tuple(_STATE_FIELDS) + (
    "target_hit",  # [targets, states] bool: the head of state s is target t
    "distance",  # [targets, states] int32: fewest moves from state s to target t (-1: unreachable)
    "target_mask",  # [targets] bool: real target slots
    "target_branch",  # [targets] int32: branch whose leaf is the target (-1 if unstructured)
    "chain_state",  # [branches, levels + 1, group] int32: state at each chain slot, -1 if none
)


@jax.tree_util.register_pytree_node_class
class Maze:
    """A maze compiled to edge-state arrays (see the module docstring).

    Construct with ``Maze(W, K, L)`` (the paper's graph), ``Maze(branch_K=(6, 5, 4, 3, 3), L=5)``
    (heterogeneous depths), ``Maze(W, K, diamond_L=[[...], ...])`` (per-diamond multiplicities)
    or :meth:`Maze.from_edges` (any undirected multigraph).

    Array attributes (``S`` = ``capacity.states``, ``D`` = ``capacity.out_degree``,
    ``T`` = ``capacity.targets``):
      successors: int32 [S, D], the state reached by each move slot (0 where invalid).
      valid: bool [S, D], which move slots exist.
      head: int32 [S], head node of each state (-1 for padding); node 0 is the source.
      state_mask: bool [S], real states.
      trainable: bool [S], rows training may change (not fork rows, not single-move rows).
      state_type: int32 [S], docs/model.md §2.1 type (0 R+, 1 R-, 2 L+, 3 L-) or -1.
      branch, depth: int32 [S], branch index and diamond depth (1-based) or -1.
      forward: int32 [S], 1 if the state moves away from the source along its branch, 0 if
        towards it, -1 if neither (start state, padding, unstructured graphs).
      level, position: int32 [S], chain layout (see module docstring) or -1.
      target_hit: bool [T, S]; target_mask: bool [T]; target_branch: int32 [T].
      distance: int32 [T, S], the fewest moves from state s to a state whose head is target t
        (0 on the target's states, -1 where unreachable or padded): the shortest ("golden") paths.
      chain_state: int32 [B, N + 1, G], chain layout inverse, -1 where empty.

    Host-side metadata (``info``: sizes and node labels) is kept on the object but does not
    survive JAX tree transformations; the arrays do.
    """

    def __init__(self, W=None, K=None, L=None, *, branch_K=None, diamond_L=None):
        branch_K, diamond_L = _paper_sizes(W, K, L, branch_K, diamond_L)
        edges, targets = _paper_edges(branch_K, diamond_L)
        arrays, capacity, nodes = _compile(edges, "f", targets)
        _add_paper_tags(arrays, branch_K)
        self._set(arrays, capacity)
        uniform_L = {m for row in diamond_L for m in row}
        self.info = {
            "kind": "paper",
            "W": len(branch_K),
            "K": branch_K[0] if len(set(branch_K)) == 1 else None,
            "L": uniform_L.pop() if len(uniform_L) == 1 else None,
            "branch_K": branch_K,
            "diamond_L": diamond_L,
            "nodes": nodes,
        }

    @classmethod
    def from_edges(cls, edges: Sequence[tuple[Hashable, Hashable]], source, targets) -> "Maze":
        """A maze on any undirected multigraph.

        Args:
          edges: node pairs ``(u, v)`` (any hashable labels); repeated pairs are parallel edges.
          source: the start node; the walk starts on a virtual directed edge into it.
          targets: nodes the walk may be prompted to reach (one drawn uniformly per walk).
        """
        edges, targets = _check_edges(edges, source, targets)
        arrays, capacity, nodes = _compile(edges, source, targets)
        maze = cls.__new__(cls)
        maze._set(arrays, capacity)
        maze.info = {"kind": "edges", "nodes": nodes, "source": source, "targets": targets}
        return maze

    @classmethod
    def path_star(cls, d: int, l: int) -> "Maze":
        """Path-star graph (Bachmann & Nagarajan, 2024): ``d`` arms of ``l`` edges from a centre.

        The source is the centre ``"c"``, nodes are ``(arm, step)``, the target is the tip
        ``(0, l)`` of arm 0.
        """
        d, l = validate.positive_int("d", d), validate.positive_int("l", l)
        edges = [
            ("c" if step == 1 else (arm, step - 1), (arm, step))
            for arm in range(d)
            for step in range(1, l + 1)
        ]
        return cls.from_edges(edges, "c", [(0, l)])

    @classmethod
    def tree(cls, branching: int, depth: int, multiplicity: int = 1) -> "Maze":
        """A complete ``branching``-ary tree of ``depth`` levels below its root (the source), each
        edge repeated ``multiplicity`` times, its ``branching**depth`` leaves the targets.

        Nodes are tuples of child indices from the root ``()``. A tree with branching > 1 below
        the root is not a spider, so exact analysis uses the dense solver.
        """
        branching = _checks_int("branching", branching)
        depth = _checks_int("depth", depth)
        multiplicity = _checks_int("multiplicity", multiplicity)
        if branching**depth > 4096:
            raise ValueError(f"branching**depth must be <= 4096 leaves, got {branching}**{depth}")
        nodes = [()]
        edges = []
        for level in range(depth):
            children = [node + (c,) for node in nodes if len(node) == level for c in range(branching)]
            edges += [(child[:-1], child) for child in children for _ in range(multiplicity)]
            nodes += children
        return cls.from_edges(edges, (), [node for node in nodes if len(node) == depth])

    @classmethod
    def random_tree(cls, seed: int, depth: int, branching=(1, 3), multiplicity=(1, 3)) -> "Maze":
        """A random tree: every node above ``depth`` gets a number of children drawn uniformly from
        the range ``branching`` (inclusive), every edge a multiplicity drawn from ``multiplicity``;
        the root is the source (it gets at least two children) and every leaf is a target.
        ``numpy.random.default_rng(seed)`` makes it reproducible."""
        seed = _checks_int("seed", seed, 0)
        depth = _checks_int("depth", depth)
        (b_lo, b_hi), (m_lo, m_hi) = (_int_range(n, r) for n, r in (("branching", branching), ("multiplicity", multiplicity)))
        rng = np.random.default_rng(seed)
        edges, frontier, leaves = [], [()], []
        for level in range(depth):
            grown = []
            for node in frontier:
                count = int(rng.integers(max(b_lo, 2) if level == 0 else b_lo, max(b_hi, 2) + 1 if level == 0 else b_hi + 1))
                if count == 0:
                    leaves.append(node)
                for c in range(count):
                    child = node + (c,)
                    edges += [(node, child)] * int(rng.integers(m_lo, m_hi + 1))
                    grown.append(child)
            frontier = grown
            if len(leaves) + len(frontier) > 4096:
                raise ValueError("the random tree has more than 4096 leaves; lower depth or branching")
        return cls.from_edges(edges, (), leaves + frontier)

    def _set(self, arrays: dict, capacity: Capacity) -> None:
        for name in _FIELDS:
            setattr(self, name, arrays[name])
        self.capacity = capacity

    # -- PyTree protocol ----------------------------------------------------------------
    def tree_flatten(self):
        return tuple(getattr(self, name) for name in _FIELDS), self.capacity

    @classmethod
    def tree_unflatten(cls, capacity, leaves):
        maze = cls.__new__(cls)
        maze._set(dict(zip(_FIELDS, leaves)), capacity)
        maze.info = None
        return maze

    # -- host-side conveniences --------------------------------------------------------
    @property
    def structured(self) -> bool:
        """Whether the chain layout is present (the fast exact solver applies)."""
        return self.capacity.structured

    @property
    def num_states(self) -> int:
        """Number of real (unpadded) edge-states, the start state included."""
        return int(np.sum(self.state_mask))

    @property
    def num_targets(self) -> int:
        """Number of real targets."""
        return int(np.sum(self.target_mask))

    def __repr__(self) -> str:
        info = self.info or {}
        if info.get("kind") == "paper":
            if info["K"] is not None and info["L"] is not None:
                desc = f"W={info['W']}, K={info['K']}, L={info['L']}"
            else:
                desc = f"branch_K={info['branch_K']}, diamond_L={info['diamond_L']}"
        elif info.get("kind") == "edges":
            desc = f"{len(info['nodes'])} nodes, {len(info['targets'])} targets"
        else:
            desc = "arrays"
        return f"Maze({desc}; {self.capacity})"


# ----------------------------------------------------------------------------------------
# Building


def _checks_int(name, value, minimum=1):
    return validate.positive_int(name, value, minimum)


def _int_range(name, value) -> tuple[int, int]:
    """``(lo, hi)`` of an inclusive integer range argument (an int means ``(n, n)``)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be an integer or a (low, high) pair of integers, got {value!r}")
    low = validate.positive_int(f"{name}[0]", value[0], 0 if name == "branching" else 1)
    high = validate.positive_int(f"{name}[1]", value[1], max(low, 1))
    return low, high


def _paper_sizes(W, K, L, branch_K, diamond_L):
    """Validate the paper-maze size arguments; return per-branch depths and multiplicities."""
    if branch_K is not None:
        if K is not None:
            raise ValueError("give either K or branch_K, not both")
        if isinstance(branch_K, (str, bytes)) or not hasattr(branch_K, "__len__"):
            raise ValueError(f"branch_K must be a sequence of integers >= 1, got {branch_K!r}")
        if len(branch_K) == 0:
            raise ValueError("branch_K must be a non-empty sequence of integers >= 1, got []")
        branch_K = tuple(validate.positive_int(f"branch_K[{i}]", k) for i, k in enumerate(branch_K))
        if W is not None and validate.positive_int("W", W) != len(branch_K):
            raise ValueError(f"W must equal len(branch_K) = {len(branch_K)}, got {W!r}")
    else:
        if W is None or K is None:
            raise ValueError("give W and K (integers >= 1), or branch_K")
        W, K = validate.positive_int("W", W), validate.positive_int("K", K)
        branch_K = (K,) * W
    if diamond_L is None:
        if L is None:
            raise ValueError("give L (an integer >= 1) or diamond_L")
        L = validate.positive_int("L", L)
        return branch_K, tuple((L,) * k for k in branch_K)
    if L is not None:
        raise ValueError("give either L or diamond_L, not both")
    if len(diamond_L) != len(branch_K):
        raise ValueError(
            f"diamond_L must have one row per branch ({len(branch_K)}), got {len(diamond_L)}"
        )
    rows = []
    for i, (row, k) in enumerate(zip(diamond_L, branch_K)):
        if len(row) != k:
            raise ValueError(f"diamond_L[{i}] must have {k} entries (the branch's depth)")
        rows.append(tuple(validate.positive_int(f"diamond_L[{i}][{j}]", m) for j, m in enumerate(row)))
    return branch_K, tuple(rows)


def _paper_edges(branch_K, diamond_L):
    """Edge list of the paper's maze: fork ``f``, nodes ``("u", i, j, "l"/"r")``, leaves ``("t", i)``."""
    edges = []
    for i, (k, row) in enumerate(zip(branch_K, diamond_L)):
        previous = "f"
        for j in range(1, k + 1):
            left, right = ("u", i, j, "l"), ("u", i, j, "r")
            edges.append((previous, left))
            edges.extend([(left, right)] * row[j - 1])
            previous = right
        edges.append((previous, ("t", i)))
    return edges, [("t", i) for i in range(len(branch_K))]


def _check_edges(edges, source, targets):
    try:
        edges = [tuple(e) for e in edges]
    except TypeError:
        raise ValueError("edges must be a sequence of (u, v) node pairs") from None
    if not edges:
        raise ValueError("edges must be a non-empty sequence of (u, v) node pairs")
    for i, e in enumerate(edges):
        if len(e) != 2:
            raise ValueError(f"edges[{i}] must be a (u, v) node pair, got {e!r}")
        if e[0] == e[1]:
            raise ValueError(f"edges[{i}] = {e!r} is a self-loop; edges must join two distinct nodes")
        for node in e:
            try:
                hash(node)
            except TypeError:
                raise ValueError(f"edges[{i}] has an unhashable node label {node!r}") from None
    nodes = {n for e in edges for n in e}
    if source not in nodes:
        raise ValueError(f"source {source!r} is not a node of edges")
    if isinstance(targets, (str, bytes)) or not hasattr(targets, "__iter__"):
        raise ValueError(f"targets must be a sequence of nodes, got {targets!r}")
    targets = list(targets)
    if not targets:
        raise ValueError("targets must name at least one node")
    if len(set(targets)) != len(targets):
        raise ValueError(f"targets must be distinct, got {targets!r}")
    neighbours = defaultdict(set)
    for u, v in edges:
        neighbours[u].add(v)
        neighbours[v].add(u)
    reached, frontier = {source}, [source]
    while frontier:
        frontier = [w for v in frontier for w in neighbours[v] if w not in reached]
        reached.update(frontier)
    for t in targets:
        if t not in nodes:
            raise ValueError(f"target {t!r} is not a node of edges")
        if t == source:
            raise ValueError(f"target {t!r} is the source; targets must differ from the source")
        if t not in reached:
            raise ValueError(f"target {t!r} is unreachable from source {source!r}")
    return edges, targets


def _compile(edges, source, targets):
    """Compile an edge list to the edge-state arrays (numpy) and their capacity."""
    nodes = [source]
    index = {source: 0}
    for e in edges:
        for n in e:
            if n not in index:
                index[n] = len(nodes)
                nodes.append(n)
    tail = [-1]
    head = [0]
    for u, v in edges:
        tail += [index[u], index[v]]
        head += [index[v], index[u]]
    tail, head = np.array(tail), np.array(head)
    num_states = len(head)
    leaving = defaultdict(list)
    for s in range(1, num_states):
        leaving[tail[s]].append(s)
    degree = max(len(leaving[h]) for h in head)
    successors = np.zeros((num_states, degree), np.int32)
    valid = np.zeros((num_states, degree), bool)
    for s in range(num_states):
        moves = leaving[head[s]]
        successors[s, : len(moves)] = moves
        valid[s, : len(moves)] = True
    target_nodes = np.array([index[t] for t in targets])
    arrays = {
        "successors": successors,
        "valid": valid,
        "head": head.astype(np.int32),
        "state_mask": np.ones(num_states, bool),
        "trainable": (valid.sum(1) > 1) & (head != 0),
        "target_hit": head[None, :] == target_nodes[:, None],
        "target_mask": np.ones(len(targets), bool),
    }
    arrays["distance"] = _distances(successors, valid, arrays["target_hit"])
    for name in ("state_type", "branch", "depth", "forward", "level", "position"):
        arrays[name] = np.full(num_states, -1, np.int32)
    capacity = Capacity(states=num_states, out_degree=degree, targets=len(targets),
                        paths=int(arrays["distance"][:, 0].max()))
    chain = _spider_chains(edges, index, tail, head, target_nodes)
    if chain is None:
        arrays["target_branch"] = np.full(len(targets), -1, np.int32)
        arrays["chain_state"] = np.full((0, 1, 0), -1, np.int32)
    else:
        capacity = dataclasses.replace(capacity, structured=True, **chain.pop("capacity"))
        arrays.update(chain)
    return arrays, capacity, tuple(nodes)


def _distances(successors: np.ndarray, valid: np.ndarray, target_hit: np.ndarray) -> np.ndarray:
    """int32 [T, S]: fewest moves from each state to each target (-1 if unreachable), by backward BFS."""
    S = successors.shape[0]
    entering = defaultdict(list)  # state -> the states that move into it
    for s, row in enumerate(successors):
        for nxt in row[valid[s]]:
            entering[int(nxt)].append(s)
    out = np.full(target_hit.shape, -1, np.int32)
    for t, hit in enumerate(target_hit):
        frontier = list(np.flatnonzero(hit))
        out[t, frontier] = 0
        d = 0
        while frontier:
            d += 1
            nxt = []
            for s in frontier:
                for prev in entering[s]:
                    if out[t, prev] < 0:
                        out[t, prev] = d
                        nxt.append(prev)
            frontier = nxt
    return out[:, :S]


def _spider_chains(edges, index, tail, head, target_nodes):
    """The chain layout if the graph is a spider around the source (module docstring), else None."""
    copies = defaultdict(list)  # (u, v) node ids -> edge ids, both orientations
    for e, (u, v) in enumerate(edges):
        copies[index[u], index[v]].append(e)
        copies[index[v], index[u]].append(e)
    neighbours = defaultdict(set)
    for u, v in copies:
        neighbours[u].add(v)
    targets = set(target_nodes.tolist())
    chains = []
    seen = {0}
    for first in sorted(neighbours[0]):
        if len(copies[0, first]) != 1:
            return None
        chain = [0, first]
        while True:
            here = chain[-1]
            if here in seen:
                return None
            seen.add(here)
            onward = neighbours[here] - {chain[-2]}
            if not onward:
                break  # a leaf
            if len(onward) != 1 or here in targets:
                return None
            chain.append(onward.pop())
        chains.append(chain)
    if len(seen) != len(index) or not targets <= {c[-1] for c in chains}:
        return None

    def state(u, v, e):  # state id of edge e traversed u -> v
        return 1 + 2 * e + (0 if tail[1 + 2 * e] == u else 1)

    num_states = len(head)
    level = np.full(num_states, -1, np.int32)
    position = np.full(num_states, -1, np.int32)
    branch = np.full(num_states, -1, np.int32)
    forward = np.full(num_states, -1, np.int32)
    groups = []
    for b, chain in enumerate(chains):
        n_links = len(chain) - 1
        per_level = [[] for _ in range(n_links + 1)]
        for n in range(n_links):
            u, v = chain[n], chain[n + 1]
            for e in copies[u, v]:
                per_level[n + 1].append((state(u, v, e), 1))
        for n in range(n_links):
            u, v = chain[n], chain[n + 1]
            for e in copies[u, v]:
                per_level[n].append((state(v, u, e), 0))
        for k, members in enumerate(per_level):
            for p, (s, fwd) in enumerate(members):
                level[s], position[s], branch[s], forward[s] = k, p, b, fwd
        groups.append([[s for s, _ in members] for members in per_level])
    levels = max(len(c) - 1 for c in chains)
    group = max(2, max(len(g) for gs in groups for g in gs))
    chain_state = np.full((len(chains), levels + 1, group), -1, np.int32)
    for b, gs in enumerate(groups):
        for k, members in enumerate(gs):
            chain_state[b, k, : len(members)] = members
    leaf_branch = {c[-1]: b for b, c in enumerate(chains)}
    return {
        "capacity": {"branches": len(chains), "levels": levels, "group": group},
        "level": level,
        "position": position,
        "branch": branch,
        "forward": forward,
        "target_branch": np.array([leaf_branch[t] for t in target_nodes.tolist()], np.int32),
        "chain_state": chain_state,
    }


def _add_paper_tags(arrays, branch_K):
    """docs/model.md §2.1 types and diamond depths of a paper maze (chain links alternate connector/diamond).

    Link ``n`` of a branch is a connector for even ``n`` and diamond ``(n + 1) // 2`` for odd ``n``.
    A forward state on link ``n`` heads level ``n + 1``; a backward one heads level ``n``.
    """
    level, forward = arrays["level"], arrays["forward"]
    link = np.where(forward == 1, level - 1, level)
    state_type = np.full_like(level, -1)
    depth = np.full_like(level, -1)
    fwd, bwd = forward == 1, forward == 0
    branch_depth = np.array(branch_K)[np.maximum(arrays["branch"], 0)]
    odd = link % 2 == 1
    rules = [  # (mask, type, depth)
        (fwd & odd, R_PLUS, (link + 1) // 2),
        (bwd & ~odd & (link >= 2), R_MINUS, link // 2),
        (fwd & ~odd & (link < 2 * branch_depth), L_PLUS, link // 2 + 1),
        (bwd & odd, L_MINUS, (link + 1) // 2),
    ]
    for mask, code, d in rules:
        state_type = np.where(mask, code, state_type)
        depth = np.where(mask, d, depth)
    arrays["state_type"] = state_type.astype(np.int32)
    arrays["depth"] = depth.astype(np.int32)


# ----------------------------------------------------------------------------------------
# Padding and stacking


def pad(maze: Maze, capacity: Capacity) -> Maze:
    """Pad ``maze`` to ``capacity`` (every size >= the maze's own). Padding never changes a result.

    Padded states have no valid moves and are never reached; padded targets are excluded from
    every mean over targets. If ``capacity.structured`` is False the chain layout is dropped and
    the dense exact solver is used.
    """
    own = maze.capacity
    for field in ("states", "out_degree", "targets", "branches", "levels", "group", "paths"):
        if capacity.structured or field in ("states", "out_degree", "targets", "paths"):
            if getattr(capacity, field) < getattr(own, field):
                raise ValueError(
                    f"capacity.{field} must be >= the maze's {getattr(own, field)}, "
                    f"got {getattr(capacity, field)}"
                )
    if capacity.structured and not own.structured:
        raise ValueError("capacity.structured must be False for a maze without a chain layout")
    S, D, T = capacity.states - own.states, capacity.out_degree - own.out_degree, capacity.targets - own.targets
    out = {}
    for name, fill in _MOVE_FIELDS.items():
        out[name] = np.pad(np.asarray(getattr(maze, name)), ((0, S), (0, D)), constant_values=fill)
    for name, fill in _STATE_FIELDS.items():
        out[name] = np.pad(np.asarray(getattr(maze, name)), (0, S), constant_values=fill)
    out["target_hit"] = np.pad(np.asarray(maze.target_hit), ((0, T), (0, S)))
    out["distance"] = np.pad(np.asarray(maze.distance), ((0, T), (0, S)), constant_values=-1)
    out["target_mask"] = np.pad(np.asarray(maze.target_mask), (0, T))
    out["target_branch"] = np.pad(np.asarray(maze.target_branch), (0, T), constant_values=-1)
    if capacity.structured:
        widths = [
            (0, capacity.branches - own.branches),
            (0, capacity.levels - own.levels),
            (0, capacity.group - own.group),
        ]
        out["chain_state"] = np.pad(np.asarray(maze.chain_state), widths, constant_values=-1)
    else:
        for name in ("level", "position", "forward"):
            out[name] = np.full_like(out[name], -1)
        out["target_branch"] = np.full_like(out["target_branch"], -1)
        out["chain_state"] = np.full((0, 1, 0), -1, np.int32)
        capacity = dataclasses.replace(capacity, branches=0, levels=0, group=0)
    padded = Maze.tree_unflatten(capacity, [out[name] for name in _FIELDS])
    padded.info = maze.info
    return padded


def common_capacity(mazes: Sequence[Maze]) -> Capacity:
    """The smallest capacity that holds every maze in ``mazes``."""
    if not mazes:
        raise ValueError("mazes must be a non-empty sequence of Maze")
    capacity = mazes[0].capacity
    for maze in mazes[1:]:
        capacity = capacity.union(maze.capacity)
    return capacity


def stack(mazes: Sequence[Maze]) -> Maze:
    """Pad ``mazes`` to their common capacity and stack them along a new leading axis (for vmap)."""
    capacity = common_capacity(mazes)
    padded = [pad(m, capacity) for m in mazes]
    return jax.tree.map(lambda *xs: jnp.stack(xs), *padded)
