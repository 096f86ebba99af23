"""Figures: every function writes a PNG from small synthetic data; palette, integer ticks, legends."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from mazejax import figures, reference, report  # noqa: E402
from mazejax.sweep import methods  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def _png(path):
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 10_000, path
    return path


def _rows(methods_=("base", "sft_exact", "rlvr_symmetric"), sizes=((2, 2), (2, 5), (4, 2), (4, 5)), Ks=(1, 2, 3, 4),
          seeds=(0,)):
    closed = {"base": reference.base_hitting_time, "sft_exact": reference.sft_limit_hitting_time,
              "sft": reference.sft_limit_hitting_time}
    rows = []
    for method in methods_:
        for W, L in sizes:
            for K in Ks:
                for seed in seeds:
                    H = float(closed.get(method, reference.backtracker_hitting_time)(W, K, L)) * (1 + 0.02 * seed)
                    rows.append({"method": method, "W": W, "K": K, "L": L, "seed": seed, "hitting_time": H,
                                 "mc_mean": float("nan"), "mc_stderr": float("nan"), "mode": ""})
    return rows


def _search_rows():
    rows = []
    for method, policy in (("search_sft", "sft_limit"), ("search_rlvr", "backtracker")):
        for W, L in ((2, 2), (3, 3)):
            for K in (1, 2, 3):
                cost = float(reference.scaffold_cost(W, K, L, policy))
                rows.append({"method": method, "W": W, "K": K, "L": L, "seed": 0, "hitting_time": cost * 3,
                             "mc_mean": cost * 1.01, "mc_stderr": 0.3, "mode": "aggregate"})
    return rows


def _tick_labels(fig, axis="x", index=0):
    fig.draw_without_rendering()
    ax = fig.axes[index]
    return [t.get_text() for t in (ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()) if t.get_text()]


def _all_integers(labels):
    assert labels
    for label in labels:
        assert label.replace(",", "").lstrip("-").isdigit(), labels


def test_palette_gives_every_method_its_own_colour():
    named = ["base", "sft_exact", "sft", "rlvr_exact", "rlvr_symmetric", "reinforce", "ppo", "distill",
             "search_sft", "search_rlvr", "backtracker", "SFT limit", "transformer"]
    assert set(named) <= set(figures.PALETTE) and set(methods.METHODS) <= set(figures.PALETTE)
    colours = [figures.color(name) for name in named]
    assert len(set(colours)) == len(colours)
    assert figures.color("reinforce[lr=0.1]") == figures.PALETTE["reinforce"]
    assert figures.color("sft_limit") == figures.PALETTE["SFT limit"]
    variants = figures.label_colors(["ppo[lr=0.1]", "ppo[lr=0.3]", "sft"])
    assert len(set(variants.values())) == 3 and variants["sft"] == figures.PALETTE["sft"]


def test_integer_ticks():
    assert figures.integer_ticks([1, 2, 3, 4, 5, 6]) == [1, 2, 3, 4, 5, 6]
    assert figures.integer_ticks([2.0, 4.0, 8.0, 12.0]) == [2, 4, 8, 12]
    ticks = figures.integer_ticks(range(1, 41))
    assert len(ticks) <= 12 and all(isinstance(t, int) for t in ticks) and ticks[0] >= 1 and ticks[-1] <= 40
    crowded = figures.integer_ticks([0, 2, 3, 4, 60, 100, 200])  # 2, 3, 4 would overlap
    assert all(isinstance(t, int) for t in crowded) and np.all(np.diff(crowded) >= 10)
    assert figures.integer_ticks([]) == []


def test_scaling_plot(tmp_path):
    rows = _rows(seeds=(0, 1))
    _png(figures.scaling(rows, tmp_path / "H_vs_K.png"))
    fig = figures._scaling(rows)
    _all_integers(_tick_labels(fig))
    entries = figures.legend_entries(fig)
    assert len(entries) <= 12  # 3 methods + 4 (W, L) + 3 closed forms, not 12 lines
    assert any(e.startswith("theory: SFT limit") for e in entries)
    assert any(e.startswith("theory: backtracker") for e in entries)
    assert fig.axes[0].get_yscale() == "log"
    assert "W = {2, 4}" in fig.get_suptitle() and "L = {2, 5}" in fig.get_suptitle()


def test_rlvr_vs_wk_and_search_costs(tmp_path):
    rows = _rows(("rlvr_exact", "reinforce[lr=0.1]", "reinforce[lr=0.3]"), seeds=(0, 1))
    _png(figures.rlvr_vs_wk(rows, tmp_path / "rlvr.png"))
    fig = figures._rlvr_vs_wk(rows)
    _all_integers(_tick_labels(fig))
    assert any("4WK" in e for e in figures.legend_entries(fig))
    _png(figures.search_costs(_search_rows(), tmp_path / "search.png"))
    fig = figures._search_costs(_search_rows())
    _all_integers(_tick_labels(fig, index=0))
    _all_integers(_tick_labels(fig, index=1))


def test_paper_figures(tmp_path):
    steps = np.arange(0, 101)
    H = 50141 * np.exp(-steps / 20) + 899
    reference_points = {0: 50141, 50: 20239, 100: 8951}
    _png(figures.rlvr_trajectory(steps, H, reference_points, tmp_path / "fig3.png", "test", sizes=(15, 15, 5)))
    types = {t: np.clip(np.linspace(0.2, 1, 101)[:, None] * np.ones((1, 4)), 0, 1) for t in "abcd"}
    _png(figures.type_probabilities(steps, types, tmp_path / "fig4.png", "test", L=5))
    _png(figures.type_probabilities(steps, {t: v[:, 0] for t, v in types.items()}, tmp_path / "fig4_mean.png"))

    table = [{"W": 6, "K": K, "L": L, "sft_limit": float(reference.sft_limit_hitting_time(6, K, L)),
              "base": float(reference.base_hitting_time(6, K, L)),
              "backtracker": float(reference.backtracker_hitting_time(6, K, L))} for L in (1, 2, 5) for K in range(1, 7)]
    _png(figures.sft_limit_vs_depth(table, tmp_path / "fig5_left.png"))
    fig = figures._sft_limit_vs_depth(table)
    _all_integers(_tick_labels(fig))
    assert fig.axes[0].get_yscale() == "log"

    p = np.linspace(0, 1, 11)
    draws = np.exp(np.linspace(np.log(2.97e6), np.log(143), 11))[:, None] * np.exp(np.random.default_rng(0).normal(0, 0.5, (11, 20)))
    _png(figures.ablation(p, draws.mean(1), draws, tmp_path / "fig5_right.png", sizes=(6, 6, 5)))
    _png(figures.ablation(p, draws.mean(1), None, tmp_path / "fig5_right_mean.png"))

    scaffold = []
    for L in (1, 2, 5):
        for policy, plain in (("sft_limit", reference.sft_limit_hitting_time), ("backtracker",
                                                                              reference.backtracker_hitting_time)):
            theory = float(reference.scaffold_cost(4, 4, L, policy))
            scaffold.append({"W": 4, "K": 4, "L": L, "policy": policy, "no_scaffold_exact": float(plain(4, 4, L)),
                             "scaffold_mean": theory * 1.01, "scaffold_stderr": 0.5, "scaffold_theory": theory})
    _png(figures.scaffold(scaffold, tmp_path / "scaffold.png"))
    _all_integers(_tick_labels(figures._scaffold(scaffold)))

    values = {"base": 1414.44, "SFT limit": 552176.4, "backtracker": 84.6, "rlvr_exact": 84.1}
    _png(figures.heterogeneous(values, tmp_path / "fig8.png", branch_K=(6, 5, 4, 3, 3), L=5))
    _png(figures.heterogeneous(values, tmp_path / "fig8_curve.png", steps=steps, hitting_time=H / 30))


def test_per_seed_curves_and_heatmap(tmp_path):
    steps = np.arange(0, 50)
    curves = {seed: (455 * np.exp(-steps / 10) + 35 + seed, np.full(50, 2.0)) for seed in range(3)}
    bounds = {"backtracker (tabular)": 35, "history-aware DFS bound": 21}
    _png(figures.per_seed_curves(steps, curves, bounds, tmp_path / "seeds.png", "test"))
    nested = {"reinforce": curves, "ppo": {0: {"mean": curves[0][0] * 1.1, "stderr": None}}}
    fig = figures._per_seed_curves(steps, nested, bounds)
    assert any(e.startswith("backtracker (tabular) = 35") for e in figures.legend_entries(fig))
    _png(figures.per_seed_curves(steps, nested, None, tmp_path / "seeds_nested.png"))
    # methods recording at different steps (REINFORCE 400 steps, PPO 200 iterations, every 10): x per method
    grids = {"reinforce": np.arange(0, 410, 10), "ppo": np.arange(0, 210, 10)}
    curves = {m: {0: 275.0 * np.exp(-x / 100) + 35} for m, x in grids.items()}
    lines = figures._per_seed_curves(grids, curves, bounds).axes[0].get_lines()
    assert sorted(len(line.get_xdata()) for line in lines if len(line.get_xdata()) > 2) == [21, 41]

    z = np.array([[40.0, 80.0, np.nan], [35.0, 120.0, 900.0]])
    _png(figures.heatmap([0.01, 0.1, 1.0], [1e-4, 3e-4], z, tmp_path / "heat.png", "lr", "beta", "final H"))
    _png(figures.heatmap([0.01, 0.1, 1.0], [1e-4, 3e-4], z - 50, tmp_path / "heat_lin.png", "lr", "beta", "H - 50"))
    texts = [t.get_text() for t in figures._heatmap([0.01, 0.1, 1.0], [1e-4, 3e-4], z, "lr", "beta", "t").axes[0].texts]
    assert texts == ["40", "80", "–", "35", "120", "900"]


def test_write_plots(tmp_path, monkeypatch, capsys):
    rows = _rows(seeds=(0, 1)) + _search_rows()
    written = report.write_plots(report.label_settings(rows), tmp_path)
    assert sorted(p.name for p in written) == ["H_vs_K.png", "rlvr_H_vs_WK.png", "search_costs.png"]
    for path in written:
        _png(path)
    only_sft = report.write_plots(_rows(("sft_exact",)), tmp_path / "sft")
    assert [p.name for p in only_sft] == ["H_vs_K.png"]

    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else find_spec(name, *a))
    assert report.write_plots(rows, tmp_path / "none") == []
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "matplotlib is not installed" in out
    assert not (tmp_path / "none").exists()
