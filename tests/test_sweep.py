"""The sweep driver: spec validation, agreement with single runs, resume after SIGKILL, devices, processes."""

import csv
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
from mazejax.train import rlvr_exact

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
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {(r["method"], r["W"], r["K"], r["L"], r["seed"]): r for r in rows}, len(rows)


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
        ({"seeds": 0}, "seeds must be an integer >= 1"),
        ({"rlvr_exact": {"lr": -1.0}}, "rlvr_exact.lr must be a finite number > 0"),
        ({"rlvr_exact": {"steps": 0}}, "rlvr_exact.steps must be an integer >= 1"),
        ({"rlvr_exact": {"momentum": 0.9}}, "has no hyperparameter 'momentum'"),
        ({"ppo_tables": {}}, "names no method"),
        ({"memory_gb": 1e-6}, "memory_gb = 1e-06 is too small"),
    ],
)
def test_invalid_specs_name_the_key(change, match):
    config = {"W": [2], "K": [1, 2], "L": [1], "methods": ["base", "rlvr_exact"], **change}
    with pytest.raises(ValueError, match=match):
        sweep.parse_spec(config)


def test_rows_match_single_runs(reference_table):
    rows, count = reference_table
    assert count == 2 * 2 * 2 * 2
    for (method, W, K, L, _), row in rows.items():
        if method == "base":
            expected = float(reference.base_hitting_time(int(W), int(K), int(L)))
            assert float(row["hitting_time"]) == pytest.approx(expected, rel=1e-12)
    for W, K, L in [(2, 1, 1), (3, 2, 2)]:  # trained runs: one compile each, so two sizes
        expected = float(rlvr_exact(mj.Maze(W, K, L), 20, 0.05, record_every=5).hitting_time[-1])
        row = rows[("rlvr_exact", str(W), str(K), str(L), "0")]
        assert float(row["hitting_time"]) == pytest.approx(expected, rel=1e-9)
        assert float(row["hitting_time"]) < float(rows[("base", str(W), str(K), str(L), "0")]["hitting_time"])


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


def test_four_devices_give_identical_values(config_file, reference_table, tmp_path):
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    _finish(_cli(["sweep", "--config", str(config_file), "--out", str(tmp_path), "--quiet"], env=env))
    assert _values(tmp_path / "runs.csv")[0] == reference_table[0]
    assert "cpu:3" in (tmp_path / "meta.json").read_text().replace("CpuDevice(id=3)", "cpu:3")


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
