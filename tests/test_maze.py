"""The maze graph: state counts, successor semantics, tags, chain layout, padding and input checks."""

from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mazejax as mj
from mazejax.maze import L_MINUS, L_PLUS, R_MINUS, R_PLUS


@pytest.mark.parametrize("W,K,L", [(1, 1, 1), (3, 3, 2), (4, 3, 3), (6, 6, 5), (15, 15, 5)])
def test_state_count(W, K, L):
    assert mj.Maze(W, K, L).num_states == 1 + W * (2 * K * L + 2 * K + 2)


def test_paper_size_has_2731_states():
    maze = mj.Maze(15, 15, 5)
    assert maze.num_states == 2731
    assert maze.num_targets == 15


def test_heterogeneous_counts():
    maze = mj.Maze(branch_K=(6, 5, 4, 3, 3), L=5)
    assert maze.num_states == 1 + sum(2 * k * 5 + 2 * k + 2 for k in (6, 5, 4, 3, 3))
    rows = [[1, 2], [3], [2, 2, 2]]
    maze = mj.Maze(branch_K=(2, 1, 3), diamond_L=rows)
    assert maze.num_states == 1 + sum(2 * sum(r) + 2 * len(r) + 2 for r in rows)
    assert maze.structured


@pytest.mark.parametrize("make", [lambda: mj.Maze(2, 2, 3), lambda: mj.Maze.from_edges(
    [("a", "b"), ("b", "c"), ("c", "a"), ("a", "b"), ("c", "d")], "a", ["d"])])
def test_successors_are_all_onward_edge_states(make):
    """Re-derive docs/model.md §2 moves from the edge list: u->v moves to every v->w, U-turns and copies included."""
    maze = make()
    nodes = maze.info["nodes"]
    # States 1 + 2e and 2 + 2e traverse edge e = (u, v) as u -> v and v -> u.
    edges = [(nodes[maze.head[s + 1]], nodes[maze.head[s]]) for s in range(1, maze.num_states, 2)]

    def traversal(s):  # (edge, tail, head) of state s >= 1
        e, back = divmod(s - 1, 2)
        u, v = edges[e]
        return (e, v, u) if back else (e, u, v)

    for s in range(maze.num_states):
        head = nodes[maze.head[s]]
        expected = Counter((e, x) for e, (u, v) in enumerate(edges) for x, y in ((u, v), (v, u)) if x == head)
        got = Counter(traversal(t)[:2] for t in maze.successors[s][maze.valid[s]])
        assert got == expected


def test_type_tags_per_depth():
    W, K, L = 3, 4, 2
    maze = mj.Maze(W, K, L)
    for depth in range(1, K + 1):
        at = maze.depth == depth
        counts = Counter(maze.state_type[at].tolist())
        assert counts == {R_PLUS: W * L, L_MINUS: W * L, R_MINUS: W, L_PLUS: W}
    untyped = maze.state_type[: maze.num_states] == -1
    assert untyped.sum() == 1 + 2 * W  # s0->f, the W exits to the fork and the W leaf arrivals


def test_trainable_rows_exclude_fork_and_single_move_rows():
    W, K, L = 4, 3, 2
    maze = mj.Maze(W, K, L)
    assert maze.trainable.sum() == maze.num_states - 1 - 2 * W
    assert not maze.trainable[0]
    assert not np.any(maze.trainable & (maze.head == 0))
    assert not np.any(maze.trainable & (maze.valid.sum(1) == 1))


def test_spider_detection():
    assert mj.Maze.path_star(3, 4).structured
    cycle = mj.Maze.from_edges([("s", "a"), ("a", "b"), ("b", "s"), ("b", "t")], "s", ["t"])
    assert not cycle.structured
    interior_target = mj.Maze.from_edges([("s", "a"), ("a", "t"), ("t", "z")], "s", ["t"])
    assert not interior_target.structured
    parallel_at_fork = mj.Maze.from_edges([("s", "a"), ("s", "a"), ("a", "t")], "s", ["t"])
    assert not parallel_at_fork.structured


def test_pad_and_stack_shapes():
    small, big = mj.Maze(2, 2, 2), mj.Maze(3, 3, 3)
    cap = mj.common_capacity([small, big])
    assert cap == big.capacity
    padded = mj.pad(small, cap)
    assert padded.num_states == small.num_states
    assert padded.successors.shape == big.successors.shape
    stacked = mj.stack([small, big])
    assert stacked.successors.shape == (2,) + big.successors.shape
    assert jax.tree.structure(stacked) == jax.tree.structure(jax.tree.map(jnp.asarray, padded))


def test_pad_rejects_smaller_capacity():
    big = mj.Maze(3, 3, 3)
    with pytest.raises(ValueError, match="capacity.states"):
        mj.pad(big, mj.Maze(2, 2, 2).capacity)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(W=0, K=1, L=1), "W must be an integer >= 1"),
        (dict(W=2, K=1.5, L=1), "K must be an integer >= 1"),
        (dict(W=2, K=2, L=True), "L must be an integer >= 1"),
        (dict(W="3", K=2, L=2), "W must be an integer >= 1"),
        (dict(W=2, K=2, L=-1), "L must be an integer >= 1"),
        (dict(W=2, K=2), "give L"),
        (dict(branch_K=(), L=2), "branch_K must be a non-empty"),
        (dict(branch_K=(2, 0), L=2), r"branch_K\[1\] must be an integer >= 1"),
        (dict(W=3, branch_K=(2, 2), L=2), "W must equal len"),
        (dict(branch_K=(2, 1), diamond_L=[[1, 1]]), "one row per branch"),
        (dict(branch_K=(2, 1), diamond_L=[[1, 1], [1, 1]]), r"diamond_L\[1\] must have 1 entries"),
        (dict(branch_K=(1,), diamond_L=[[0]]), r"diamond_L\[0\]\[0\] must be an integer >= 1"),
    ],
)
def test_invalid_paper_sizes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mj.Maze(**kwargs)


@pytest.mark.parametrize(
    "edges,source,targets,match",
    [
        ([], "a", ["b"], "non-empty"),
        ([("a", "b", "c")], "a", ["b"], "node pair"),
        ([("a", "a")], "a", ["b"], "self-loop"),
        ([("a", "b")], "z", ["b"], "source 'z' is not a node"),
        ([("a", "b")], "a", ["q"], "target 'q' is not a node"),
        ([("a", "b")], "a", ["a"], "target 'a' is the source"),
        ([("a", "b"), ("c", "d")], "a", ["d"], "target 'd' is unreachable"),
        ([("a", "b")], "a", [], "at least one node"),
        ([("a", "b")], "a", ["b", "b"], "distinct"),
    ],
)
def test_invalid_edges(edges, source, targets, match):
    with pytest.raises(ValueError, match=match):
        mj.Maze.from_edges(edges, source, targets)


@pytest.mark.parametrize("W,K,L", [(2, 1, 1), (3, 3, 2), (15, 15, 5), (2, 5, 7), (16, 10, 10), (7, 1, 3)])
def test_paper_capacity_without_building_the_maze(W, K, L):
    assert mj.Capacity.paper(W, K, L) == mj.Maze(W, K, L).capacity
