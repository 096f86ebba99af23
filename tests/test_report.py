"""Scaling tables from runs.csv, and the reproduction report."""

import math

import pytest

from mazejax import report, reproduce


def _row(method, W, K, L, H, seed=0):
    return {"method": method, "W": W, "K": K, "L": L, "seed": seed, "hitting_time": H, "mc_mean": float("nan")}


def test_growth_table_recovers_an_exact_exponential():
    rows = [_row("sft_exact", 6, K, 2, 3.0 * 4.5**K) for K in range(1, 6)]
    rows += [_row("rlvr_exact", 6, K, 2, 24.0 * K, seed) for K in range(1, 6) for seed in (0, 1)]
    table = {r["method"]: r for r in report.growth_table(rows)}
    sft = table["sft_exact"]
    assert sft["growth"] == pytest.approx(4.5, rel=1e-12)
    assert sft["ci_low"] == pytest.approx(4.5, rel=1e-6) and sft["ci_high"] == pytest.approx(4.5, rel=1e-6)
    assert sft["theory"] == 4.5 and table["rlvr_exact"]["theory"] == 1.0


def test_slope_table_and_interval():
    rows = [_row("rlvr_exact", W, K, 5, 4.0 * W * K + 2) for W in (2, 4) for K in (1, 2, 3)]
    (fit,) = report.slope_table(rows, ("rlvr_exact",), lambda W, K, L: W * K, "W*K", 4.0)
    assert fit["slope"] == pytest.approx(4.0) and fit["intercept"] == pytest.approx(2.0)
    assert fit["ci"] == pytest.approx(0.0, abs=1e-9)
    slope, intercept, half = report.linear_fit([0, 1, 2, 3], [0, 1.1, 1.9, 3.2])
    assert 0 < half < 1 and slope == pytest.approx(1.04)
    assert math.isnan(report.linear_fit([1, 2], [1, 2])[2])  # no interval from two points


def test_ratio_table():
    rows = [_row("sft_exact", 2, 3, 2, 400.0), _row("rlvr_exact", 2, 3, 2, 40.0), _row("base", 2, 3, 2, 10.0)]
    (ratio,) = report.ratio_table(rows)
    assert ratio["ratio"] == pytest.approx(10.0)


def test_reproduce_writes_a_report(tmp_path):
    path = reproduce.reproduce(tmp_path, only=["ablation"])
    text = path.read_text()
    assert "| H at p = 1 | paper: 143 (the backtracker) | 143 | yes |" in text
    assert "![Fig. 5 (right): supervising backward states](fig5_right_ablation.png)" in text
    assert "**no**" not in text
    assert (tmp_path / "fig5_right_ablation.csv").exists()
    with pytest.raises(ValueError, match="unknown experiment 'fig99'"):
        reproduce.reproduce(tmp_path, only=["fig99"])
