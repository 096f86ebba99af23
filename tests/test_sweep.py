"""The sweep: spec validation, run identity, every method end to end, resume after SIGKILL,
reproducibility over grids, chunks, devices and processes."""

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mazejax as mj
from mazejax import reference, sweep
from mazejax.sweep import store

CONFIG = """
W = [2, 3]
K = [1, 2]
L = [1, 2]
seeds = 1
methods = ["base", "rlvr_exact"]
[rlvr_exact]
steps = 20
lr = 0.05
record_every = 5
"""


def _cli(args, env=None, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "mazejax.cli", *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _finish(process, timeout=300):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return out


def _values(path):
    rows = store.read_rows(path)
    return {store.row_identity(r): r for r in rows}, len(rows)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "sweep.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def reference_table(config_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    _finish(_cli(["sweep", "--config", str(config_file), "--out", str(out), "--quiet"]))
    return _values(out / "runs.csv")


@pytest.mark.parametrize(
    "change,match",
    [
        ({"colour": 1}, "unknown key 'colour'"),
        ({"methods": ["base", "magic"]}, "unknown method 'magic'"),
        ({"W": []}, "W must be a non-empty list"),
        ({"K": [0]}, r"K\[0\] must be an integer >= 1"),
        ({"L": [2, 2]}, "L must not repeat"),
        ({"seeds": 0}, "seeds must be an integer >= 1"),
        ({"rlvr_exact": {"lr": -1.0}}, "rlvr_exact.lr must be a finite number > 0"),
        ({"rlvr_exact": {"lr": [0.1, -1.0]}}, r"rlvr_exact.lr\[1\] must be a finite number > 0"),
        ({"rlvr_exact": {"lr": []}}, "non-empty list"),
        ({"rlvr_exact": {"steps": 0}}, "rlvr_exact.steps must be an integer >= 1"),
        ({"rlvr_exact": {"steps": 10, "record_every": 3}}, "record_every must divide steps"),
        ({"rlvr_exact": {"momentum": 0.9}}, "has no setting 'momentum'"),
        ({"rlvr_exact": {"optimizer": "adamax"}}, "optimizer must be one of"),
        ({"ppo_tables": {}}, "names no method"),
        ({"memory_gb": 1e-6}, "memory_gb = 1e-06 is too small"),
    ],
)
def test_invalid_specs_name_the_key(change, match):
    config = {"W": [2], "K": [1, 2], "L": [1], "methods": ["base", "rlvr_exact"], **change}
    with pytest.raises(ValueError, match=match):
        sweep.parse_spec(config)


def test_rows_match_single_runs_and_carry_every_setting(reference_table):
    rows, count = reference_table
    assert count == 2 * 2 * 2 * 2
    for row in rows.values():
        W, K, L = int(row["W"]), int(row["K"]), int(row["L"])
        assert row["version"] == mj.RESULTS_VERSION
        if row["method"] == "base":
            assert float(row["hitting_time"]) == pytest.approx(float(reference.base_hitting_time(W, K, L)), rel=1e-12)
            assert row["lr"] == "" and row["steps"] == ""
        else:
            assert (row["lr"], row["steps"], row["record_every"], row["beta"], row["optimizer"]) == (
                "0.05", "20", "5", "1.0", "sign_sgd")
    for W, K, L in [(2, 1, 1), (3, 2, 2)]:  # trained runs: one compile each, so two sizes
        expected = float(mj.train.rlvr_exact(mj.Maze(W, K, L), steps=20, lr=0.05, record_every=5).hitting_time[-1])
        (row,) = [r for r in rows.values() if r["method"] == "rlvr_exact" and (r["W"], r["K"], r["L"]) == (str(W), str(K), str(L))]
        assert float(row["hitting_time"]) == pytest.approx(expected, rel=1e-12)


@pytest.mark.slow
def test_other_settings_add_rows_beside_the_old_ones(config_file, reference_table, tmp_path):
    """Issue: a rerun with lr = 0.5 into the same folder used to keep the lr = 0.05 rows silently."""
    out = str(tmp_path)
    small = ["sweep", "--out", out, "--W", "2", "--K", "2", "--L", "2", "--methods", "rlvr_exact", "--quiet",
             "--set", "rlvr_exact.steps=100"]
    _finish(_cli(small))
    _finish(_cli([*small, "--set", "rlvr_exact.lr=0.5"]))
    rows = store.read_runs(tmp_path / "runs.csv")
    by_lr = {r["lr"]: r["hitting_time"] for r in rows}
    assert sorted(by_lr) == ["0.01", "0.5"]
    assert by_lr["0.01"] == pytest.approx(25.667, rel=1e-4)  # the values quoted in the issue
    assert by_lr["0.5"] == pytest.approx(15.0, rel=1e-9)  # the backtracker: 4WK + 2W - 2K - 1
    assert by_lr["0.01"] == float(mj.train.rlvr_exact(mj.Maze(2, 2, 2), steps=100, record_every=100).hitting_time[-1])
    _finish(_cli([*small, "--set", "rlvr_exact.lr=0.5"]))  # nothing new to run
    assert len(store.read_rows(tmp_path / "runs.csv")) == 2


def test_a_folder_of_another_version_or_a_file_is_refused(tmp_path):
    (tmp_path / "runs.csv").write_text("W,K,L,method,seed,hitting_time\n2,2,2,rlvr_exact,0,25.6\n")
    spec = sweep.parse_spec({"W": [2], "K": [2], "L": [2], "methods": ["base"]})
    with pytest.raises(ValueError, match="another version of mazejax"):
        sweep.run_sweep(spec, tmp_path, progress=False)
    a_file = tmp_path / "runs.csv"
    process = _cli(["sweep", "--out", str(a_file), "--W", "2", "--K", "1", "--L", "1", "--methods", "base"])
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2 and "is a file, not a folder" in err and "Traceback" not in err


@pytest.mark.slow  # suite time; test_leaf_lists_trace_once_per_group checks the one-program grouping in the default run
def test_hyperparameter_lists_run_as_one_program_per_static_setting(tmp_path):
    config = {"W": [2], "K": [1, 2], "L": [1], "methods": ["rlvr_exact"],
              "rlvr_exact": {"steps": [4, 8], "record_every": 2, "lr": [0.01, 0.1, 0.3]}}
    spec = sweep.parse_spec(config)
    runs = spec.runs()
    assert len(runs) == 2 * 3 * 2 and len({r.static() for r in runs}) == 2
    sweep.run_sweep(spec, tmp_path, progress=False, tables=False)
    rows = store.read_runs(tmp_path / "runs.csv")
    assert len(rows) == 12
    meta = (tmp_path / "meta.json").read_text()
    assert meta.count('"method": "rlvr_exact"') == 2  # two compiled groups, six runs each
    for row in {int(r["steps"]): r for r in rows}.values():  # one row of each static group
        single = mj.train.rlvr_exact(mj.Maze(row["W"], row["K"], row["L"]), steps=int(row["steps"]),
                                     lr=float(row["lr"]), record_every=2)
        assert row["hitting_time"] == float(single.hitting_time[-1])


# ----------------------------------------------------------------------------------------
# Resume, devices, processes


def test_resume_after_sigkill(config_file, reference_table, tmp_path):
    process = _cli(["sweep", "--config", str(config_file), "--out", str(tmp_path), "--chunk", "1", "--quiet"])
    table = tmp_path / "runs.csv"
    deadline = time.time() + 240
    while not (table.exists() and table.read_text().count("\n") >= 2):
        assert process.poll() is None and time.time() < deadline, "the sweep ended before it was killed"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_rows = table.read_text().count("\n") - 1
    assert 1 <= killed_rows < 16
    _finish(_cli(["sweep", "--config", str(config_file), "--out", str(tmp_path), "--quiet"]))
    values, count = _values(table)
    assert count == 16 and len(values) == 16  # every run exactly once
    assert values == reference_table[0]


@pytest.mark.slow
def test_two_processes_merge_into_the_same_table(config_file, reference_table, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    common = ["sweep", "--config", str(config_file), "--out", str(tmp_path), "--quiet",
              "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
    processes = [_cli([*common, "--process-id", str(p)]) for p in (0, 1)]
    for process in processes:
        _finish(process)
    assert _values(tmp_path / "runs.csv")[0] == reference_table[0]
    assert not list(Path(tmp_path).glob("runs.part*.csv"))


def test_leaf_lists_trace_once_per_group(monkeypatch, tmp_path):
    """Hyperparameter lists (leaves) run in one compiled program: the method's run traces once."""
    from mazejax.sweep import methods as methods_module

    method = methods_module.METHODS["rlvr_exact"]
    traces = []

    def build(static, capacity):
        run = method.build(static, capacity)

        def counted(*args):
            traces.append(1)  # runs at trace time only
            return run(*args)

        return counted

    monkeypatch.setitem(methods_module.METHODS, "rlvr_exact", dataclasses.replace(method, build=build))
    config = {"W": [2], "K": [1], "L": [1, 2], "methods": ["rlvr_exact"],
              "rlvr_exact": {"steps": 4, "record_every": 2, "lr": [0.01, 0.05, 0.2], "beta": [0.5, 1.0]}}
    sweep.run_sweep(sweep.parse_spec(config), tmp_path, progress=False, tables=False)
    rows = store.read_runs(tmp_path / "runs.csv")
    assert len(rows) == 2 * 3 * 2 and len(traces) == 1
    assert sorted({(r["lr"], r["beta"]) for r in rows}) == sorted(
        {(lr, b) for lr in ("0.01", "0.05", "0.2") for b in ("0.5", "1.0")})


def test_a_small_memory_budget_splits_into_more_chunks_with_identical_rows(tmp_path):
    config = {"W": [2, 3], "K": [1, 2], "L": [2], "methods": ["reinforce"],
              "reinforce": {"steps": 4, "record_every": 2, "num_rollouts": 8, "eval_rollouts": 50}}
    spec = sweep.parse_spec(config)
    method = sweep.METHODS["reinforce"]
    need = method.memory(dict(spec.runs()[0].static()), spec.capacity) / 2**30
    tables = {}
    for name, budget in (("roomy", 1.0), ("tight", 1.5 * need)):
        folder = tmp_path / name
        sweep.run_sweep(sweep.parse_spec({**config, "memory_gb": budget}), folder, progress=False, tables=False)
        tables[name] = {store.row_identity(r): r for r in store.read_rows(folder / "runs.csv")}
        tables[name + " chunks"] = (folder / "meta.json").read_text()
    assert tables["roomy"] == tables["tight"] and len(tables["roomy"]) == 4
    import json

    groups = {name: json.loads(tables[name + " chunks"])["groups"][0] for name in ("roomy", "tight")}
    assert groups["roomy"]["chunks"] == 1 and groups["tight"]["chunks"] == 4
