"""Issue 12, items 1, 3, 5: a trainable fork row, a truncated horizon, the early dip.

Exact values are checked against independent computations: the dense LU solve of the same chain
(``exact.dense_hitting_time``), numpy matrix powers for the truncated horizon, the closed forms of
:mod:`mazejax.reference` and finite differences for the gradient signs.
"""

from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mazejax
import mazejax.train as tr
from mazejax import exact, fork, reference
from mazejax.policy import fork_rows, typed_logits
from mazejax.sweep import methods


def _with_fork(maze, logits, reenter=None, order=None):
    """``logits`` with the fork rows replaced: a symmetric fork (re-enter with ``reenter``) or a
    deterministic order of branches ``order`` (start -> order[0], back from order[k] -> order[k+1])."""
    lg = np.array(logits, dtype=np.float64)
    succ, valid, branch = np.asarray(maze.successors), np.asarray(maze.valid), np.asarray(maze.branch)
    W = int(np.sum(maze.target_mask))
    for s in np.flatnonzero(np.asarray(fork_rows(maze))):
        for slot in np.flatnonzero(valid[s]):
            to = int(branch[succ[s, slot]])
            if order is not None:
                nxt = order[0] if s == 0 else order[(order.index(int(branch[s])) + 1) % W]
                lg[s, slot] = 0.0 if to == nxt else -np.inf
            elif s != 0:
                share = reenter if to == branch[s] else (1 - reenter) / (W - 1)
                lg[s, slot] = np.log(share) if share > 0 else -np.inf
    return jnp.asarray(lg)


# ----------------------------------------------------------------------------------------
# Item 1: a trainable fork row


def test_train_fork_mask_and_settings():
    maze = mazejax.Maze(3, 2, 2)
    frozen, trained = np.asarray(mazejax.trainable_moves(maze)), np.asarray(mazejax.trainable_moves(maze, True))
    rows = np.asarray(fork_rows(maze))
    assert rows.sum() == 1 + 3 and rows[0]  # the start state and the W "arrived from" states
    assert not frozen[rows].any() and (trained[rows] == np.asarray(maze.valid)[rows]).all()
    assert (trained[~rows] == frozen[~rows]).all()
    for name in ("rlvr_exact", "reinforce", "ppo", "rlvr_truncated"):
        param = methods.get(name).params["train_fork"]
        assert param.static and param.default is False
    with pytest.raises(ValueError, match="train_fork must be true or false"):
        tr.RLVRConfig(train_fork="yes")


def test_symmetric_fork_hitting_time_matches_dense():
    W, K, L = 4, 3, 2
    maze = mazejax.Maze(W, K, L)
    p = np.random.default_rng(W + K).uniform(0.3, 0.95, (4, K))
    for r in (0.0, 0.17, 1 / W, 0.6):
        logits = _with_fork(maze, typed_logits(maze, *p, dtype=jnp.float64), reenter=r)
        dense = float(exact.dense_hitting_time(maze, logits))
        assert float(exact.symmetric_hitting_time(p, W, K, reenter=r)) == pytest.approx(dense, rel=1e-10)
        assert float(exact.hitting_time(maze, logits)) == pytest.approx(dense, rel=1e-10)
    default = float(exact.symmetric_hitting_time(p, W, K))
    assert float(exact.symmetric_hitting_time(p, W, K, reenter=1 / W)) == pytest.approx(default, rel=1e-13)


def test_fork_reference_values_against_dense():
    W, K, L = 4, 3, 2
    maze = mazejax.Maze(W, K, L)
    bt = mazejax.backtracker_logits(maze, jnp.float64)
    for r in (Fraction(0), Fraction(1, 4), Fraction(1, 3)):
        dense = float(exact.dense_hitting_time(maze, _with_fork(maze, bt, reenter=float(r))))
        assert float(reference.symmetric_fork_hitting_time(W, K, L, r)) == pytest.approx(dense, rel=1e-12)
    assert reference.symmetric_fork_hitting_time(W, K, L, Fraction(1, W)) == reference.backtracker_hitting_time(W, K, L)
    ordered = _with_fork(maze, bt, order=[2, 0, 3, 1])
    assert float(exact.dense_hitting_time(maze, ordered)) == pytest.approx(W * (2 * K + 1), rel=1e-12)
    assert reference.depth_first_hitting_time(W, K, L) == W * (2 * K + 1)
    summary = fork.fork_summary(maze, ordered)
    assert summary["depth_first"] and not summary["symmetric"] and summary["order"] == (2, 0, 3, 1)
    summary = fork.fork_summary(maze, _with_fork(maze, bt, reenter=0.0))
    assert summary["symmetric"] and summary["reenter_max"] == 0.0 and summary["other_max"] == pytest.approx(1 / 3)
    base = fork.fork_summary(maze, mazejax.pretrained_logits(maze))
    assert base["symmetric"] and base["reenter_mean"] == pytest.approx(1 / W)


@pytest.mark.slow
def test_exact_rlvr_with_trained_fork_beats_the_frozen_value():
    W, K, L = 3, 2, 1
    maze = mazejax.Maze(W, K, L)
    trained = tr.rlvr_exact(maze, steps=300, lr=0.03, record_every=100, train_fork=True)
    rows = np.asarray(fork_rows(maze))
    assert not np.array_equal(np.asarray(trained.logits)[rows], np.asarray(mazejax.pretrained_logits(maze))[rows])
    H = float(trained.hitting_time[-1])
    assert H == pytest.approx(float(exact.dense_hitting_time(maze, trained.logits)), rel=1e-9)
    assert W * (2 * K + 1) - 1e-9 <= H < float(reference.symmetric_fork_hitting_time(W, K, L))
    assert fork.fork_summary(maze, trained.logits)["reenter_max"] < 0.05


def test_symmetric_fork_trajectory_converges_to_the_symmetric_value():
    traj = fork.symmetric_fork_trajectory(3, 3, 2, steps=1000, lr=0.01, record_every=100)
    assert traj["hitting_time"][0] == pytest.approx(275, rel=1e-12)
    assert traj["hitting_time"][-1] == pytest.approx(float(reference.symmetric_fork_hitting_time(3, 3, 2)), rel=1e-6)
    assert traj["reenter"][0] == pytest.approx(1 / 3) and traj["reenter"][-1] < 1e-6
    assert np.all(np.diff(traj["hitting_time"]) < 0)


def test_reinforce_trains_the_fork_row():
    maze = mazejax.Maze(3, 2, 1)
    result = tr.reinforce(maze, jax.random.key(1), steps=100, record_every=50, train_fork=True)
    rows = np.asarray(fork_rows(maze))
    assert not np.array_equal(np.asarray(result.logits)[rows], np.asarray(mazejax.pretrained_logits(maze))[rows])
    assert float(result.hitting_time[-1]) < float(result.hitting_time[0])


# ----------------------------------------------------------------------------------------
# Item 3: a truncated horizon


def _truncated_numpy(maze, logits, T):
    """P(tau <= T) and E[min(tau, T)] by dense numpy matrix powers (independent of the DP)."""
    P = np.asarray(exact.dense.transition_matrix(maze, jnp.asarray(logits, jnp.float64)))
    hits, lengths = [], []
    for hit in np.asarray(maze.target_hit)[np.asarray(maze.target_mask)]:
        Q = np.where(hit[None, :], 0.0, P)  # absorbed mass leaves
        mass = np.zeros(P.shape[0])
        mass[0] = 1.0
        survive = []
        for _ in range(T):
            survive.append(mass.sum())
            mass = mass @ Q
        hits.append(1.0 - mass.sum())
        lengths.append(sum(survive))
    return float(np.mean(hits)), float(np.mean(lengths))


def test_truncated_trainer_records_match_matrix_powers():
    maze = mazejax.Maze(2, 2, 2)
    H0 = float(reference.base_hitting_time(2, 2, 2))
    result = tr.rlvr_truncated(maze, horizon_ratio=0.5, beta=0.01, steps=40, lr=0.05, record_every=20)
    T = int(result.extra["horizon"])
    assert T == int(np.ceil(0.5 * H0))
    hit, length = _truncated_numpy(maze, result.logits, T)
    assert float(result.extra["hit_probability"][-1]) == pytest.approx(hit, rel=1e-12)
    assert float(result.extra["truncated_length"][-1]) == pytest.approx(length, rel=1e-12)
    assert float(result.loss[-1]) == pytest.approx(float(np.float32(0.01)) * length - hit, rel=1e-12)  # beta: float32
    hit0, length0 = _truncated_numpy(maze, mazejax.pretrained_logits(maze), T)
    assert float(result.extra["hit_probability"][0]) == pytest.approx(hit0, rel=1e-12)
    assert float(result.hitting_time[-1]) == pytest.approx(float(exact.dense_hitting_time(maze, result.logits)), rel=1e-9)
    assert float(result.extra["hit_probability"][-1]) > hit0


@pytest.mark.slow
def test_truncated_horizon_too_short_to_retreat_unlearns_backtracking():
    """With T below the cost of one failed branch plus a retreat, only the first branch counts:
    the trained policy stops backtracking (b, d fall) and its unlimited-horizon H explodes."""
    maze = mazejax.Maze(3, 3, 2)
    settings = dict(beta=0.0, steps=100, lr=0.02, record_every=50, max_horizon=275)  # one compiled program
    short = tr.rlvr_truncated(maze, horizon=14, **settings)
    long = tr.rlvr_truncated(maze, horizon=275, **settings)
    assert int(short.extra["horizon"]) == 14 and int(long.extra["horizon"]) == 275
    assert float(np.mean(short.types["d"][-1])) < 0.05 and float(short.hitting_time[-1]) > 1e6
    assert float(np.mean(long.types["d"][-1])) > 0.9 and float(long.hitting_time[-1]) < 45


# ----------------------------------------------------------------------------------------
# Item 5: the sign of each per-depth gradient


@pytest.mark.slow
def test_gradient_signs_full_and_symmetric_agree():
    maze = mazejax.Maze(2, 4, 2)
    sym = tr.rlvr_symmetric(maze, steps=10, lr=0.01)
    full = tr.rlvr_exact(maze, steps=10, lr=0.01)
    np.testing.assert_array_equal(np.asarray(sym.extra["gradient_sign"]), np.asarray(full.extra["gradient_sign"]))
    assert np.asarray(full.extra["gradient_sign"]).shape == (11, 4, 4)
    assert (np.asarray(full.extra["gradient_sign"])[0] < 0).any()  # W small relative to K: the dip's signature


def test_gradient_sign_at_the_base_model_matches_finite_differences():
    K, L, eps = 15, 5, 1e-6
    base = np.array([1 / (L + 1), L / (L + 1), L / (L + 1), 1 / (L + 1)])[:, None] * np.ones((4, K))
    bumps = eps * np.eye(4 * K).reshape(4 * K, 4, K)
    for W in (3, 15):
        sym = tr.rlvr_symmetric(mazejax.Maze(W, K, L), steps=1, lr=0.01)
        recorded = np.asarray(sym.extra["gradient_sign"])[0]  # [4, K] at the base model
        H = jax.jit(jax.vmap(lambda p: exact.symmetric_hitting_time(p, W, K)))
        dH = (np.asarray(H(base + bumps)) - np.asarray(H(base - bumps))).reshape(4, K)
        np.testing.assert_array_equal(recorded, -np.sign(dH))
        assert ((recorded[1] < 0).any() or (recorded[3] < 0).any()) == (W == 3)


# ----------------------------------------------------------------------------------------
# Figures and reproduce sections


def test_figures_and_sections_registered(tmp_path):
    from mazejax import figures, reproduce

    assert {"fork", "truncated", "dip"} <= set(reproduce.EXPERIMENTS)
    assert {"fork", "truncated", "dip"} <= set(reproduce.OPT_IN)  # the default run skips them
    maze = mazejax.Maze(3, 2, 1)
    M = fork.fork_matrix(maze, mazejax.pretrained_logits(maze))
    np.testing.assert_allclose(M, 1 / 3)
    paths = [
        figures.fork_training([{"label": "rlvr_exact[train_fork]", "sizes": (3, 2, 1), "steps": [0, 10, 20],
                                "H": [77.0, 30.0, 16.0]}], {(3, 2, 1): {"frozen fork": 21.0, "depth-first": 15.0}},
                              tmp_path / "fork.png"),
        figures.fork_matrices({"base": M}, tmp_path / "matrices.png"),
        figures.dip({"W=3": {"steps": np.arange(5), "b": np.ones((5, 2)), "d": np.ones((5, 2)),
                             "sign_b": -np.ones((5, 2)), "sign_d": np.ones((5, 2))}}, tmp_path / "dip.png"),
    ]
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths)


@pytest.mark.slow
def test_dip_section_runs(tmp_path):
    from mazejax import reproduce

    section = reproduce.EXPERIMENTS["dip"](False, tmp_path)
    assert (tmp_path / "early_dip.csv").exists() and section.figures
    assert "none" in section.rows[-2][2]  # W = 15: no negative sign


@pytest.mark.slow
def test_sweep_settings_train_fork_and_truncated_horizon(tmp_path):
    from mazejax import sweep
    from mazejax.sweep import store

    config = {"W": [2], "K": [2], "L": [1], "methods": ["rlvr_exact", "rlvr_truncated"],
              "rlvr_exact": {"steps": 20, "record_every": 10, "lr": 0.05, "train_fork": [False, True]},
              "rlvr_truncated": {"steps": 10, "record_every": 5, "lr": 0.05, "horizon_ratio": [0.5, 1.0],
                                 "max_horizon": 60}}
    sweep.run_sweep(sweep.parse_spec(config), tmp_path, progress=False, tables=False)
    rows = store.read_runs(tmp_path / "runs.csv")
    assert len(rows) == 4
    maze = mazejax.Maze(2, 2, 1)
    for row in rows:
        if row["method"] == "rlvr_exact":
            trained_fork = str(row["train_fork"]).lower() == "true"
            single = tr.rlvr_exact(maze, steps=20, record_every=10, lr=0.05, train_fork=trained_fork)
        else:
            single = tr.rlvr_truncated(maze, steps=10, record_every=5, lr=0.05, horizon_ratio=float(row["horizon_ratio"]),
                                       max_horizon=60)
        assert row["hitting_time"] == pytest.approx(float(single.hitting_time[-1]), rel=1e-12), row
    fork_rows_ = [r for r in rows if r["method"] == "rlvr_exact"]
    assert {str(r["train_fork"]).lower() for r in fork_rows_} == {"false", "true"}
