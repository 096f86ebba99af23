"""Tests of the rollout engine (mazejax.simulate): Monte Carlo against exact values, determinism,
padding, recording, counts, the search scaffold against closed forms and an independent
pure-Python reference, and argument checks."""

import random
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mazejax
from mazejax import exact, monte_carlo
from mazejax.simulate import alias as alias_tables
from mazejax.simulate import rollout, sample_walks, scaffold, search_walks, walks

BIG = 10**7  # a horizon no walk here reaches


def random_typed_logits(maze, seed):
    a, b, c, d = np.random.default_rng(seed).uniform(0.3, 0.9, (4, maze.capacity.depths))
    return mazejax.typed_logits(maze, a, b, c, d)


def grid_maze():
    """A 3x3 grid graph (not a spider: the exact value comes from the dense solver)."""
    edges = [((i, j), (i + 1, j)) for i in range(2) for j in range(3)]
    edges += [((i, j), (i, j + 1)) for i in range(3) for j in range(2)]
    return mazejax.Maze.from_edges(edges, (0, 0), [(2, 2), (0, 2)])


# ----------------------------------------------------------------------------------------
# Monte Carlo against the exact hitting time


MC_CASES = {
    "base (3,3,2)": lambda: (mazejax.Maze(3, 3, 2), None),
    "random typed (3,3,2)": lambda: (mazejax.Maze(3, 3, 2), 1),
    "SFT limit (3,3,2)": lambda: (mazejax.Maze(3, 3, 2), "sft"),
    "backtracker (3,3,2)": lambda: (mazejax.Maze(3, 3, 2), "bt"),
    "heterogeneous K": lambda: (mazejax.Maze(branch_K=(3, 2, 1), L=2), None),
    "heterogeneous L, random typed": lambda: (mazejax.Maze(3, 2, diamond_L=[[1, 2], [2, 3], [3, 1]]), 2),
    "grid graph": lambda: (grid_maze(), None),
}


@pytest.mark.parametrize("case", list(MC_CASES))
def test_monte_carlo_mean_matches_exact_hitting_time(case):
    maze, policy = MC_CASES[case]()
    if policy is None:
        logits = mazejax.pretrained_logits(maze)
    elif policy == "sft":
        logits = mazejax.sft_limit_logits(maze)
    elif policy == "bt":
        logits = mazejax.backtracker_logits(maze)
    else:
        logits = random_typed_logits(maze, policy)
    mc = monte_carlo(maze, logits, jax.random.key(7), 20_000, BIG)
    assert mc.success_rate == 1.0
    assert mc.exact == pytest.approx(float(exact.hitting_time(maze, logits)))
    assert abs(mc.z) < 4, mc
    assert mc.stderr == pytest.approx(mc.mean / np.sqrt(20_000), rel=0.5)  # geometric-like tails


@pytest.mark.slow
def test_sft_limit_walks_of_millions_of_moves():
    """docs/model.md §3: the SFT limit at W = K = 6, L = 5 has H = 2966043.18944 (walks of 1e6+ moves)."""
    maze = mazejax.Maze(6, 6, 5)
    mc = monte_carlo(maze, mazejax.sft_limit_logits(maze), jax.random.key(0), 256, 10**9)
    assert mc.exact == pytest.approx(2966043.18944, rel=1e-9)
    assert mc.success_rate == 1.0 and abs(mc.z) < 4, mc


def test_reference_values_by_simulation():
    """docs/model.md §3: base H0 = 275 and backtracker 35 at (3,3,2), via the simulator alone."""
    maze = mazejax.Maze(3, 3, 2)
    for logits, value in ((mazejax.pretrained_logits(maze), 275.0), (mazejax.backtracker_logits(maze), 35.0)):
        length = np.asarray(rollout(maze, logits, jax.random.key(11), 20_000, BIG).length, np.float64)
        assert abs(length.mean() - value) < 4 * length.std() / np.sqrt(length.size)


def test_success_rate_within_horizon_matches_exact_hit_probability():
    maze = mazejax.Maze(3, 3, 2)
    logits = mazejax.pretrained_logits(maze)
    horizon = 200  # not a multiple of CHUNK: the last chunk is partial
    mc = monte_carlo(maze, logits, jax.random.key(3), 20_000, horizon)
    p = float(exact.hit_probability(maze, logits, horizon))
    assert 0.3 < p < 0.7
    assert abs(mc.success_rate - p) < 4 * np.sqrt(p * (1 - p) / 20_000)
    assert np.isnan(mc.z)  # truncated walks: no comparison with H


def test_visit_counts_match_exact_expected_visits():
    maze = mazejax.Maze(3, 2, 2)
    logits = random_typed_logits(maze, 5)
    num = 20_000
    walks = sample_walks(maze, logits, jax.random.key(4), num, BIG, counts=True)
    visits = np.asarray(walks.counts).sum(1) / num
    expected = np.asarray(exact.expected_visits(maze, logits)).mean(0)  # targets are uniform
    assert visits[0] == 1.0  # s0 -> f is left exactly once
    assert float(np.asarray(walks.counts).sum()) == float(np.asarray(walks.length).sum())
    busy = expected > 0.5
    # Poisson-like bound on a visit count's spread, generous: per-state counts are correlated.
    spread = np.sqrt(np.maximum(expected, 1.0) * np.asarray(walks.length).mean() / num)
    assert np.all(np.abs(visits - expected)[busy] < 6 * spread[busy])


# ----------------------------------------------------------------------------------------
# Determinism, jit/vmap/scan, padding


def test_rollout_is_independent_of_batch_size_and_jit():
    maze = mazejax.Maze(3, 3, 2)
    logits = random_typed_logits(maze, 3)
    key = jax.random.key(42)
    small = rollout(maze, logits, key, 2, BIG)
    large = rollout(maze, logits, key, 1000, BIG)
    for field in ("length", "success", "target"):
        np.testing.assert_array_equal(np.asarray(getattr(small, field)), np.asarray(getattr(large, field))[:2])
    again = rollout(maze, logits, key, 1000, BIG)
    np.testing.assert_array_equal(np.asarray(large.length), np.asarray(again.length))
    jitted = jax.jit(lambda l, k, h: sample_walks(maze, l, k, 1000, h).length)(
        jnp.asarray(logits), key, jnp.int32(BIG)
    )
    np.testing.assert_array_equal(np.asarray(large.length), np.asarray(jitted))
    raw = rollout(maze, logits, jax.random.key_data(key), 2, BIG)  # a raw uint32[2] key
    np.testing.assert_array_equal(np.asarray(small.length), np.asarray(raw.length))
    wide = rollout(maze, jnp.asarray(logits, jnp.float64), key, 2, BIG)  # float64 logits: same walks
    np.testing.assert_array_equal(np.asarray(small.length), np.asarray(wide.length))
    assert len(np.unique(np.asarray(large.length))) > 100  # rollouts differ from each other


def test_horizon_truncates_the_same_walks():
    """A smaller horizon (also traced, also mid-chunk) cuts the same walks short."""
    maze = mazejax.Maze(3, 3, 2)
    logits = mazejax.pretrained_logits(maze)
    key = jax.random.key(5)
    full = rollout(maze, logits, key, 1000, BIG)
    short = rollout(maze, logits, key, 1000, 300)
    length = np.asarray(full.length)
    np.testing.assert_array_equal(np.asarray(short.length), np.minimum(length, 300))
    np.testing.assert_array_equal(np.asarray(short.success), length <= 300)
    assert np.any(length > 300) and np.any(length <= 300)


def test_given_target_gives_the_same_walk():
    maze = mazejax.Maze(3, 3, 2)
    logits = mazejax.pretrained_logits(maze)
    key = jax.random.key(8)
    drawn = sample_walks(maze, logits, key, 1000, BIG)
    given = sample_walks(maze, logits, key, 1000, BIG, target=drawn.target)
    np.testing.assert_array_equal(np.asarray(drawn.length), np.asarray(given.length))
    one = sample_walks(maze, logits, key, 1000, BIG, target=2)
    assert np.all(np.asarray(one.target) == 2)
    H2 = float(exact.target_hitting_times(maze, logits)[2])
    length = np.asarray(one.length, np.float64)
    assert abs(length.mean() - H2) < 4 * length.std() / np.sqrt(length.size)
    targets = np.bincount(np.asarray(rollout(maze, logits, key, 20_000, 1).target), minlength=3)
    assert np.all(np.abs(targets - 20_000 / 3) < 4 * np.sqrt(20_000 * 2 / 9))  # uniform targets


def test_padded_mazes_vmapped_give_the_unpadded_results():
    mazes = [mazejax.Maze(3, 3, 2), mazejax.Maze(branch_K=(2, 1), L=4), grid_maze()]
    logits = [random_typed_logits(mazes[0], 1), mazejax.pretrained_logits(mazes[1]), mazejax.pretrained_logits(mazes[2])]
    capacity = mazejax.common_capacity(mazes)
    stacked = mazejax.stack(mazes)
    padded_logits = jnp.stack([
        jnp.pad(l, ((0, capacity.states - l.shape[0]), (0, capacity.out_degree - l.shape[1])), constant_values=-jnp.inf)
        for l in logits
    ])
    key = jax.random.key(9)
    batched = jax.vmap(lambda m, l: sample_walks(m, l, key, 1000, BIG))(stacked, padded_logits)
    for i, (maze, l) in enumerate(zip(mazes, logits)):
        alone = sample_walks(maze, l, key, 1000, BIG)
        np.testing.assert_array_equal(np.asarray(batched.length[i]), np.asarray(alone.length))
        np.testing.assert_array_equal(np.asarray(batched.target[i]), np.asarray(alone.target))
        assert bool(np.all(batched.success[i]))


def test_sample_walks_inside_scan_matches_direct_calls():
    maze = mazejax.Maze(3, 2, 2)
    logits = jnp.asarray(mazejax.pretrained_logits(maze))
    keys = jax.random.split(jax.random.key(1), 3)

    def body(total, key):
        walks = sample_walks(maze, logits, key, 50, jnp.int32(BIG), record=16)
        return total + jnp.sum(walks.length, dtype=jnp.int32), walks.length

    total, lengths = jax.lax.scan(body, jnp.int32(0), keys)
    for key, length in zip(keys, lengths):
        np.testing.assert_array_equal(np.asarray(length), np.asarray(sample_walks(maze, logits, key, 50, BIG).length))
    assert int(total) == int(np.asarray(lengths).sum())


SPLIT_SCRIPT = textwrap.dedent(
    """
    import jax, numpy as np, mazejax
    jax.config.update("jax_enable_x64", True)
    from mazejax.simulate import sample_walks, search_walks
    devices = jax.local_devices()
    assert len(devices) == 2, devices
    maze = mazejax.Maze(3, 3, 2)
    logits = mazejax.pretrained_logits(maze)
    key = jax.random.key(3)
    # drawn targets are made before the split (one code path): given ones stand for them in the plain walk
    for kwargs in ({"target": 1}, {"record": 40, "counts": True}, {"lanes": 32, "record": 40, "counts": True}):
        one = sample_walks(maze, logits, key, 64, 300, **kwargs)
        split = sample_walks(maze, logits, key, 64, 300, devices=devices, **kwargs)
        assert split.length.sharding.device_set == set(devices), split.length.sharding
        for name, a, b in zip(one._fields, one, split):
            assert (a is None) == (b is None) and (a is None or np.array_equal(a, b)), (kwargs, name)
    for mode in ("aggregate", "mask"):
        one = search_walks(maze, logits, key, 64, 3000, mode)
        split = search_walks(maze, logits, key, 64, 3000, mode, devices=devices)
        assert all(np.array_equal(a, b) for a, b in zip(one, split)), mode
    try:
        sample_walks(maze, logits, key, 63, 300, devices=devices)
    except ValueError as error:
        assert "multiple of the number of devices (2)" in str(error), error
    else:
        raise AssertionError("num = 63 over 2 devices was accepted")
    print("ok")
    """
)


def test_walks_split_over_devices_are_identical(cpu_devices_env):
    """``devices=``: two virtual CPU devices (a subprocess) give the single-device results."""
    done = subprocess.run([sys.executable, "-c", SPLIT_SCRIPT], env=cpu_devices_env(2), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


# ----------------------------------------------------------------------------------------
# Recorded states and counts


def test_recorded_states_are_the_walk():
    maze = mazejax.Maze(3, 2, 2)
    logits = random_typed_logits(maze, 4)
    record = 300  # > CHUNK, not a multiple of it
    walks = sample_walks(maze, logits, jax.random.key(6), 400, BIG, record=record, counts=True)
    states, length = np.asarray(walks.states), np.asarray(walks.length)
    overflow = np.asarray(walks.overflow)
    np.testing.assert_array_equal(overflow, length >= record)
    assert overflow.any() and not overflow.all()
    succ, valid, hit = np.asarray(maze.successors), np.asarray(maze.valid), np.asarray(maze.target_hit)
    target = np.asarray(walks.target)
    counts = np.zeros_like(valid, dtype=np.float64)
    for i in range(len(length)):
        assert states[i, 0] == 0
        kept = min(int(length[i]) + 1, record)
        walk = states[i, :kept]
        assert np.all(states[i, kept:] == -1)
        for s, t in zip(walk[:-1], walk[1:]):
            slot = np.flatnonzero(valid[s] & (succ[s] == t))
            assert slot.size == 1  # every step is a move of the maze
            counts[s, slot[0]] += 0 if overflow[i] else 1
            assert not hit[target[i], t] or (t == walk[-1] and not overflow[i])  # stops at the hit
        if not overflow[i]:
            assert hit[target[i], walk[-1]]
    # Counts of the walks that fit the buffer, and of all walks, from the same kernel.
    fit = ~overflow
    fitted = sample_walks(
        maze, logits, jax.random.key(6), 400, BIG, record=record, counts=True, weights=fit.astype(np.float32)
    )
    np.testing.assert_array_equal(np.asarray(fitted.counts), counts)
    np.testing.assert_array_equal(np.asarray(walks.counts).sum(), length.sum())


# ----------------------------------------------------------------------------------------
# The stepper's alias tables: exact implied probabilities


def test_alias_tables_reproduce_the_policy_to_24_bits():
    maze = mazejax.Maze(3, 2, 3)
    rng = np.random.default_rng(0)
    logits = np.asarray(mazejax.pretrained_logits(maze), np.float32)
    logits = np.where(np.isfinite(logits), rng.normal(0, 4, logits.shape), -np.inf).astype(np.float32)
    logits[5, 1] = -25.0  # a probability of ~1e-11: must stay positive
    layout = alias_tables.layout(maze)
    table, degree = alias_tables.stepper_tables(maze, jnp.asarray(logits))
    assert layout.words == 2
    code, alias_code = (np.asarray(c).reshape(-1, layout.degree) for c in alias_tables.row_codes(table, layout))
    entry = np.asarray(table)[:, 0].reshape(-1, layout.degree)[:-1]
    degree, r = int(degree), layout.resolution
    p = np.asarray(mazejax.probabilities(maze, jnp.asarray(logits, jnp.float32)), np.float64)
    implied = np.zeros_like(p)
    for j in range(degree):  # slot j is drawn by the uniforms x with floor(x * degree / 2**r) = j
        lo = -(-(j << r) // degree)
        keep = entry[:, j] >> layout.alias_bits
        cut = -(-((j << r) + keep) // degree)  # x below cut keep slot j
        hi = -(-((j + 1) << r) // degree)
        implied[:, j] += (cut - lo) / 2**r
        alias = np.where(keep > 0, entry[:, j] & (2**layout.alias_bits - 1), entry[:, j])
        np.add.at(implied, (np.arange(len(p)), alias), (hi - cut) / 2**r)
    real = np.asarray(maze.state_mask)
    assert np.all(np.abs(implied - p)[real] < 4 * degree / 2**r)
    assert np.all((implied > 0) == (p > 0))  # zero stays zero, positive stays positive
    # each row also holds the successor codes of its slot and of its alias slot; the sink row stays in S
    succ = np.asarray(maze.successors)
    S = layout.states
    np.testing.assert_array_equal(code[:-1] & (2**layout.state_bits - 1), succ)
    targets = np.asarray(alias_tables.target_codes(maze))
    np.testing.assert_array_equal(code[:-1] >> layout.state_bits, targets[succ])
    alias_slot = np.where(entry >> layout.alias_bits > 0, entry & (2**layout.alias_bits - 1), entry)
    np.testing.assert_array_equal(alias_code[:-1], np.take_along_axis(code[:-1], alias_slot, axis=1))
    np.testing.assert_array_equal(np.asarray(table)[:, 0].reshape(-1, layout.degree)[-1], 0)  # the sink row stays in S
    np.testing.assert_array_equal(code[-1], S)
    np.testing.assert_array_equal(alias_code[-1], S)


def test_move_table_codes_of_16_bits_unpack_whole():
    """At (15,15,5) a successor code takes all 16 bits of its half-word, so the alias slot's code
    reaches the word's sign bit: it must come back unsigned (a logical shift)."""
    maze = mazejax.Maze(15, 15, 5)
    layout = alias_tables.layout(maze)
    assert layout.words == 2 and layout.state_bits + int(maze.capacity.targets).bit_length() == 16
    table, _ = alias_tables.stepper_tables(maze, mazejax.pretrained_logits(maze))
    code, alias_code = (np.asarray(c).reshape(-1, layout.degree)[:-1] for c in alias_tables.row_codes(table, layout))
    succ, valid = np.asarray(maze.successors), np.asarray(maze.valid)
    expected = succ | (np.asarray(alias_tables.target_codes(maze))[succ] << layout.state_bits)
    np.testing.assert_array_equal(code[valid], expected[valid])
    assert int(expected.max()) >= 2**15  # some code has the top bit of its half-word
    for c in (code, alias_code):
        assert c.min() >= 0 and np.isin(c[valid], expected[valid]).all()


# ----------------------------------------------------------------------------------------
# The search scaffold


def scaffold_backtracker_cost(W, K, mode):
    """Exact expected cost of the backtracker under the scaffold (independent of L).

    Branches are tried in a uniformly random order, (W - 1) / 2 wrong ones on average, each a round
    trip of 4K + 2 moves, then 2K + 1 moves to the target. With aggregate semantics, the j-th fork
    decision (j wrong branches visited) rejects j / (W - j) proposals on average, (W - 1) / 2 in all
    (:func:`mazejax.reference.scaffold_cost`); masking makes no rejections.
    """
    aggregate = float(mazejax.reference.scaffold_cost(W, K, 1, "backtracker"))
    return aggregate - ((W - 1) / 2 if mode == "mask" else 0.0)


def scaffold_sft_aggregate_cost(W, K, L):
    """Exact expected cost of the SFT limit under the aggregate scaffold: linear in L.

    Forward moves are deterministic (a = c = 1); on the way back from a wrong leaf each depth
    rejects 1/L proposals (R-: forward is visited, accepted with b = L/(L+1)) and L proposals
    (L-: all forward copies are one visited state, accepted with d = 1/(L+1)), on top of the
    backtracker's cost (:func:`mazejax.reference.scaffold_cost`).
    """
    return float(mazejax.reference.scaffold_cost(W, K, L, "sft_limit"))


def mean_within(values, expected, sigmas=4):
    values = np.asarray(values, np.float64)
    return abs(values.mean() - expected) < sigmas * values.std() / np.sqrt(values.size)


@pytest.mark.parametrize("mode", ["aggregate", pytest.param("mask", marks=pytest.mark.slow)])
def test_scaffold_backtracker_cost_is_exact_and_independent_of_L(mode):  # mask: the literal-reference test covers it
    W, K = 4, 2
    key = jax.random.key(12)
    lengths = []
    mazes = [mazejax.Maze(W, K, L) for L in (1, 4)]
    for maze in [mazejax.pad(m, mazejax.common_capacity(mazes)) for m in mazes]:  # one compiled kernel for both
        walks = search_walks(maze, mazejax.backtracker_logits(maze), key, 4000, BIG, mode)
        assert bool(np.all(walks.success)) and int(np.sum(walks.restarts)) == 0
        assert mean_within(walks.length, scaffold_backtracker_cost(W, K, mode))
        lengths.append(np.asarray(walks.length))
    # The cost is a function of the branch order only, drawn with the same numbers for every L.
    np.testing.assert_array_equal(lengths[0], lengths[1])


@pytest.mark.slow
def test_scaffold_sft_cost_is_linear_in_L():
    W, K = 4, 2
    for L in (1, 2, 4):
        maze = mazejax.Maze(W, K, L)
        walks = search_walks(maze, mazejax.sft_limit_logits(maze), jax.random.key(L), 4000, BIG, "aggregate")
        assert bool(np.all(walks.success))
        assert mean_within(walks.length, scaffold_sft_aggregate_cost(W, K, L))


@pytest.mark.slow
def test_scaffold_mask_with_distinct_copies_equals_aggregate_moves():
    """With L = 1 both semantics make the same moves; mask costs one proposal per move."""
    maze = mazejax.Maze(3, 3, 1)
    logits = random_typed_logits(maze, 6)
    key = jax.random.key(2)
    aggregate = search_walks(maze, logits, key, 4000, BIG, "aggregate")
    mask = search_walks(maze, logits, key, 4000, BIG, "mask")
    np.testing.assert_array_equal(np.asarray(mask.length), np.asarray(aggregate.moves))
    np.testing.assert_array_equal(np.asarray(mask.length), np.asarray(mask.moves))
    assert np.all(np.asarray(aggregate.length) >= np.asarray(aggregate.moves))


def reference_search(maze, probs, mode, num, seed):
    """Independent pure-Python scaffold: literal proposals, rejections and restarts. Mean cost."""
    rand = random.Random(seed)
    succ, head = np.asarray(maze.successors).tolist(), np.asarray(maze.head).tolist()
    tail = {}
    for s, row in enumerate(succ):
        for j, t in enumerate(row):
            if probs[s][j] > 0 or np.asarray(maze.valid)[s, j]:
                tail[t] = head[s]
    targets = [int(np.flatnonzero(row)[0]) for row in np.asarray(maze.target_hit)]
    target_nodes = [head[s] for s in targets]

    def cls(s):
        return (tail.get(s, -1), head[s]) if mode == "aggregate" else s

    costs = []
    for _ in range(num):
        goal = rand.choice(target_nodes)
        state, cost, visited = 0, 0, {cls(0)}
        while head[state] != goal:
            moves = [(j, t) for j, t in enumerate(succ[state]) if probs[state][j] > 0]
            allowed = [(j, t) for j, t in moves if cls(t) not in visited]
            if not allowed:
                state, visited = 0, {cls(0)}
                continue
            if mode == "aggregate":
                while True:  # propose from the full policy until an allowed move comes up
                    cost += 1
                    j = rand.choices(range(len(probs[state])), weights=probs[state])[0]
                    if cls(succ[state][j]) not in visited:
                        break
            else:
                cost += 1
                j = rand.choices([j for j, _ in allowed], weights=[probs[state][j] for j, _ in allowed])[0]
            state = succ[state][j]
            visited.add(cls(state))
        costs.append(cost)
    return np.array(costs, np.float64)


@pytest.mark.parametrize("mode", ["aggregate", "mask"])
def test_scaffold_matches_a_literal_reference(mode):
    maze = mazejax.Maze(3, 2, 2)
    logits = random_typed_logits(maze, 9)
    probs = np.asarray(mazejax.probabilities(maze, logits), np.float64).tolist()
    ours = np.asarray(search_walks(maze, logits, jax.random.key(0), 4000, BIG, mode).length, np.float64)
    ref = reference_search(maze, probs, mode, 4000, seed=1)
    se = np.sqrt(ours.var() / ours.size + ref.var() / ref.size)
    assert abs(ours.mean() - ref.mean()) < 4 * se, (ours.mean(), ref.mean(), se)


def test_scaffold_restarts_when_every_move_is_forbidden():
    """The SFT limit under masking dead-ends (a = 1 leaves no allowed move): restart from s0."""
    L = 3
    maze = mazejax.Maze(3, 2, L)
    logits = mazejax.sft_limit_logits(maze)
    walks = search_walks(maze, logits, jax.random.key(1), 4000, BIG, "mask")
    probs = np.asarray(mazejax.probabilities(maze, logits), np.float64).tolist()
    ref = reference_search(maze, probs, "mask", 2000, seed=2)
    assert int(np.sum(walks.restarts)) > 0 and bool(np.all(walks.success))
    np.testing.assert_array_equal(np.asarray(walks.length), np.asarray(walks.moves))
    ours = np.asarray(walks.length, np.float64)
    assert abs(ours.mean() - ref.mean()) < 4 * np.sqrt(ours.var() / ours.size + ref.var() / ref.size)


def test_scaffold_horizon_caps_the_cost():
    maze = mazejax.Maze(4, 2, 2)
    logits = mazejax.pretrained_logits(maze)
    walks = search_walks(maze, logits, jax.random.key(3), 4000, 20, "aggregate")
    length, success = np.asarray(walks.length), np.asarray(walks.success)
    assert np.all(length <= 20) and np.all(length[~success] == 20) and success.any() and not success.all()
    full = search_walks(maze, logits, jax.random.key(3), 4000, BIG, "aggregate")
    np.testing.assert_array_equal(success, np.asarray(full.length) <= 20)


# ----------------------------------------------------------------------------------------
# Argument checks: ValueError before anything compiles


@pytest.fixture
def no_compile(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("a kernel was called despite invalid arguments")

    monkeypatch.setattr(walks, "_runs_jit", boom)
    monkeypatch.setattr(walks, "_split_kernel", boom)
    monkeypatch.setattr(scaffold, "_search_kernel", boom)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num": 0}, "num"),
        ({"num": 2.5}, "num"),
        ({"horizon": 0}, "horizon"),
        ({"horizon": 2**31}, "horizon"),
        ({"horizon": 1.5}, "horizon"),
        ({"search": "prune"}, "search"),
        ({"logits": np.zeros((3, 3), np.float32)}, "logits"),
        ({"key": 3}, "key"),
        ({"key": "split"}, "key"),
    ],
)
def test_invalid_arguments_raise_before_compiling(no_compile, kwargs, match):
    maze = mazejax.Maze(3, 3, 2)
    args = {"maze": maze, "logits": mazejax.pretrained_logits(maze), "key": jax.random.key(0), "num": 4, "horizon": 10}
    args.update(kwargs)
    if args["key"] == "split":
        args["key"] = jax.random.split(jax.random.key(0), 2)
    with pytest.raises(ValueError, match=match):
        rollout(**args)


def test_invalid_sample_walks_options_raise(no_compile):
    maze = mazejax.Maze(3, 3, 2)
    logits, key = mazejax.pretrained_logits(maze), jax.random.key(0)
    with pytest.raises(ValueError, match="record"):
        sample_walks(maze, logits, key, 4, 10, record=-1)
    with pytest.raises(ValueError, match="target"):
        sample_walks(maze, logits, key, 4, 10, target=3)
    with pytest.raises(ValueError, match="target"):
        sample_walks(maze, logits, key, 4, 10, target=np.zeros(5, int))
    with pytest.raises(ValueError, match="weights"):
        sample_walks(maze, logits, key, 4, 10, weights=np.ones(4))
    with pytest.raises(ValueError, match="weights"):
        sample_walks(maze, logits, key, 4, 10, counts=True, weights=np.ones(3))
    with pytest.raises(ValueError, match="logits"):
        bad = np.asarray(logits).copy()
        bad[0] = -np.inf
        sample_walks(maze, bad, key, 4, 10)
    with pytest.raises(ValueError, match="devices"):
        sample_walks(maze, logits, key, 4, 10, devices="all")
    with pytest.raises(ValueError, match="devices"):
        rollout(maze, logits, key, 4, 10, devices=[])
    with pytest.raises(ValueError, match="devices"):
        rollout(maze, logits, key, 4, 10, devices=jax.local_devices() * 2)
    with pytest.raises(ValueError, match="devices"):
        search_walks(maze, logits, key, 4, 10, "mask", devices=[0])


# ----------------------------------------------------------------------------------------
# The pool of lanes: refills and shrinking stages never change a result


def _fields_equal(a, b):
    for name, x, y in zip(a._fields, a, b):
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=name)


@pytest.mark.slow  # suite time; the pool-size independence of the sampled trainers is also checked by the slow sweep bit-identity tests
def test_results_do_not_depend_on_the_pool_size():
    """One stage with every walk in its own lane, against pools that refill and shrink (128..1000 lanes)."""
    maze = mazejax.Maze(3, 3, 2)
    logits = random_typed_logits(maze, 3)
    key = jax.random.key(42)
    one_stage = sample_walks(maze, logits, key, 3000, BIG, lanes=3000, record=40, counts=True)
    for lanes in (128, 1000):
        walks, stats = sample_walks(maze, logits, key, 3000, BIG, lanes=lanes, record=40, counts=True, stats=True)
        _fields_equal(one_stage, walks)
        assert len(stats.sizes) > 1 or lanes == 128
        assert int(np.asarray(walks.length).sum()) <= float(stats.lane_steps)
    first = sample_walks(maze, logits, key, 700, BIG, lanes=256)  # the first 700 of a bigger call
    for a, b in zip(first[:3], one_stage[:3]):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b)[:700])
    big = search_walks(maze, mazejax.sft_limit_logits(maze), key, 1500, BIG, "aggregate", lanes=1500)  # both modes
    _fields_equal(big, search_walks(maze, mazejax.sft_limit_logits(maze), key, 1500, BIG, "aggregate", lanes=128))


def test_round_lengths_stage_sizes_and_lookups_do_not_change_a_walk_or_its_float_sums(monkeypatch):
    """When each walk has its own lane no lane is ever refilled, so the stages may have any sizes and
    their rounds any length: the walks, records and float sums of weighted counts keep their bits. So
    does drawing a move with two gathers (entry, then code: very large batches of runs) instead of one,
    and from 3-word rows (codes too wide to share a word) instead of 2-word ones; and the same walks
    uncounted (a plain walk with two gathers carries the row of each move) have the same fields."""
    from mazejax.simulate import pool as pool_module
    from mazejax.simulate import walks as walks_module

    maze = mazejax.Maze(3, 2, 2)
    logits = random_typed_logits(maze, 4)
    keys = jax.random.split(jax.random.key(9), 3)
    weights = np.random.default_rng(1).normal(size=(3, 300)).astype(np.float32)  # sums not exact in float32

    def run():  # 3 runs of 300 walks folded into one pool of 900 lanes, one per walk
        walks_module._runs_jit.clear_cache()
        return jax.vmap(lambda k, w: sample_walks(maze, logits, k, 300, 200, record=20, counts=True, weights=w,
                                                  stats=True))(keys, weights)

    def plain():  # the same walks uncounted (a plain walk carries its rows when it looks up twice)
        walks_module._runs_jit.clear_cache()
        return jax.vmap(lambda k: sample_walks(maze, logits, k, 300, 200, record=20))(keys)

    before, coarse = run()
    plain_one = plain()
    monkeypatch.setattr(pool_module, "COARSE_LANES", 100)  # halve down to 225 lanes instead of one stage of 900
    monkeypatch.setattr(pool_module, "MIN_BATCH_LANES", 200)
    monkeypatch.setattr(walks_module, "SHORT_ROUND", 5)  # the 900-lane stage's rounds
    monkeypatch.setattr(walks_module, "SHORT_ROUND_LANES", 500)
    monkeypatch.setattr(walks_module, "ROUND", 7)  # the smaller stages
    after, halved = run()
    monkeypatch.undo()
    layout = alias_tables.layout(maze)
    assert layout.words == 2  # both codes in one word
    assert 3 * (layout.states + 1) * layout.degree * 4 * layout.words <= walks_module.ONE_LOOKUP_BYTES  # one gather
    monkeypatch.setattr(walks_module, "ONE_LOOKUP_BYTES", 0)
    two, _ = run()
    plain_two = plain()
    monkeypatch.setattr(alias_tables, "CODE_BITS", 0)  # 3-word rows (codes too wide to pack), one and two gathers
    jax.clear_caches()
    three_two, _ = run()
    plain_three_two = plain()
    monkeypatch.setattr(walks_module, "ONE_LOOKUP_BYTES", 2**30)
    three_one, _ = run()
    monkeypatch.undo()
    jax.clear_caches()
    _fields_equal(before, after)
    _fields_equal(before, two)
    _fields_equal(before, three_two)
    _fields_equal(before, three_one)
    for uncounted in (plain_one, plain_two, plain_three_two):
        _fields_equal(before._replace(counts=None), uncounted)
    np.testing.assert_array_equal(coarse.sizes[0], [900])  # the shared pool's stages, as run
    np.testing.assert_array_equal(halved.sizes[0], [900, 450, 225])
    assert np.all(np.asarray(coarse.rounds[0]) > 0) and np.all(np.asarray(halved.rounds[0]) > 0)  # every stage ran
    assert 0 < int(np.asarray(before.length >= 200).sum()) < 900  # some walks are cut inside a round


def test_weighted_counts_of_a_refilling_pool_match_the_recorded_walks():
    maze = mazejax.Maze(3, 2, 2)
    logits = random_typed_logits(maze, 4)
    num = 400
    weights = np.random.default_rng(0).integers(-8, 9, num) / 4.0  # sums exact in float32
    key = jax.random.key(6)
    walks = sample_walks(maze, logits, key, num, BIG, counts=True, weights=weights, lanes=128)
    length = np.asarray(walks.length)
    full = np.asarray(sample_walks(maze, logits, key, num, BIG, record=int(length.max()) + 1, lanes=128).states)
    succ, valid = np.asarray(maze.successors), np.asarray(maze.valid)
    expected = np.zeros(valid.shape)
    for i in range(num):
        walk = full[i, : length[i] + 1]
        slots = [np.flatnonzero(valid[s] & (succ[s] == t))[0] for s, t in zip(walk[:-1], walk[1:])]
        np.add.at(expected, (walk[:-1], slots), weights[i])
    np.testing.assert_array_equal(np.asarray(walks.counts), expected)


def test_horizon_cut_inside_a_round_of_the_pool():
    maze = mazejax.Maze(3, 2, 2)
    logits = random_typed_logits(maze, 4)
    key = jax.random.key(6)
    full = sample_walks(maze, logits, key, 300, BIG, record=80, lanes=128)
    for horizon in (1, 50, 100):  # not multiples of a round
        cut = sample_walks(maze, logits, key, 300, horizon, record=80, counts=True, lanes=128)
        length = np.asarray(cut.length)
        np.testing.assert_array_equal(length, np.minimum(np.asarray(full.length), horizon))
        assert float(np.asarray(cut.counts).sum()) == float(length.sum())
        kept = np.where(np.arange(80)[None, :] <= length[:, None], np.asarray(full.states), -1)
        np.testing.assert_array_equal(np.asarray(cut.states), kept)
