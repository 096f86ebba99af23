"""Scaling tables and plots from a sweep's ``runs.csv``.

* growth of H per unit of depth: a least-squares fit of ``log H = alpha + K log g`` at fixed
  (W, L) per method, with a 95% interval, beside the theory (``(L+1)^2/L`` for SFT, 1 for RLVR);
* H against ``W*K`` for RLVR methods: fitted slope and interval beside the theory 4;
* the SFT/RLVR ratio per (W, K, L);
* search-scaffold costs against ``W*K*L`` (SFT limit) and ``W*K`` (RLVR limit).

Tables are written as markdown and CSV under ``DIR/tables/``; plots (matplotlib, optional) as PNG
under ``DIR/plots/``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

from mazejax.sweep.store import read_runs, write_csv

SFT_METHODS = ("sft_exact", "sft")
RLVR_METHODS = ("rlvr_exact", "rlvr_symmetric", "reinforce", "ppo", "distill", "neural_reinforce", "neural_ppo")


def _t975(dof: int) -> float:
    """Student t 97.5% quantile (95% two-sided intervals)."""
    return float(stats.t.ppf(0.975, dof))


def linear_fit(x, y) -> tuple[float, float, float]:
    """Least-squares slope, intercept and the slope's 95% half-width (nan with < 3 points)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or np.ptp(x) == 0:
        return float("nan"), float("nan"), float("nan")
    slope, intercept = np.polyfit(x, y, 1)
    if len(x) < 3:
        return float(slope), float(intercept), float("nan")
    residual = y - (slope * x + intercept)
    stderr = math.sqrt(np.sum(residual**2) / (len(x) - 2) / np.sum((x - x.mean()) ** 2))
    return float(slope), float(intercept), _t975(len(x) - 2) * stderr


def label_settings(rows: list[dict]) -> list[dict]:
    """Rows whose ``method`` names also the settings that vary among that method's rows, e.g.
    ``reinforce[lr=0.1]``, so every table and plot keeps different hyperparameters apart."""
    from mazejax.sweep.store import SETTINGS

    varying = defaultdict(list)
    for method in {r["method"] for r in rows}:
        mine = [r for r in rows if r["method"] == method]
        varying[method] = [c for c in SETTINGS if len({r.get(c, "") for r in mine}) > 1]
    out = []
    for row in rows:
        columns = varying[row["method"]]
        label = row["method"] + ("[" + ", ".join(f"{c}={row[c]}" for c in columns) + "]" if columns else "")
        out.append({**row, "method": label})
    return out


def _base(method: str) -> str:
    return method.split("[")[0]


def _mean_by(rows, keys, value="hitting_time"):
    groups = defaultdict(list)
    for row in rows:
        if np.isfinite(row[value]):
            groups[tuple(row[k] for k in keys)].append(row[value])
    return {k: float(np.mean(v)) for k, v in groups.items()}


def growth_table(rows) -> list[dict]:
    """Growth factor of H per unit of depth at fixed (method, W, L), fitted in log space."""
    means = _mean_by(rows, ("method", "W", "L", "K"))
    series = defaultdict(dict)
    for (method, W, L, K), H in means.items():
        if H > 0:
            series[(method, W, L)][K] = H
    table = []
    for (method, W, L), by_k in sorted(series.items()):
        if len(by_k) < 2:
            continue
        ks = sorted(by_k)
        slope, _, half = linear_fit(ks, [math.log(by_k[k]) for k in ks])
        kind = _base(method)
        theory = (L + 1) ** 2 / L if kind in SFT_METHODS else 1.0 if kind in RLVR_METHODS else float("nan")
        table.append({
            "method": method, "W": W, "L": L, "K": f"{ks[0]}-{ks[-1]}", "growth": math.exp(slope),
            "ci_low": math.exp(slope - half) if np.isfinite(half) else float("nan"),
            "ci_high": math.exp(slope + half) if np.isfinite(half) else float("nan"),
            "theory": theory,
        })
    return table


def slope_table(rows, methods, size, label, theory) -> list[dict]:
    """Fit H (or cost) = slope * size(W, K, L) + intercept per method; ``size`` maps a row to x."""
    table = []
    for method in sorted({r["method"] for r in rows if _base(r["method"]) in methods}):
        mine = [r for r in rows if r["method"] == method]
        value = "mc_mean" if method.startswith("search") else "hitting_time"
        means = _mean_by(mine, ("W", "K", "L"), value)
        if len(means) < 2:
            continue
        xs = [size(*k) for k in means]
        slope, intercept, half = linear_fit(xs, list(means.values()))
        table.append({"method": method, "x": label, "slope": slope, "ci": half, "intercept": intercept,
                      "theory": theory, "points": len(xs)})
    return table


def ratio_table(rows) -> list[dict]:
    """H(SFT) / H(RLVR) per (W, K, L) for every SFT and RLVR method present (means over seeds)."""
    means = _mean_by(rows, ("method", "W", "K", "L"))
    sizes = sorted({k[1:] for k in means})
    labels = sorted({k[0] for k in means})
    table = []
    for size in sizes:
        for sft in (m for m in labels if _base(m) in SFT_METHODS):
            for rl in (m for m in labels if _base(m) in RLVR_METHODS):
                if (sft, *size) in means and (rl, *size) in means:
                    W, K, L = size
                    table.append({"W": W, "K": K, "L": L, "sft": sft, "rlvr": rl,
                                  "ratio": means[(sft, *size)] / means[(rl, *size)]})
    return table


def _write(table: list[dict], stem: Path, title: str) -> str:
    """Write ``table`` as CSV and markdown; return the markdown."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    if not table:
        text = f"### {title}\n\n(no data in this sweep)\n"
        stem.with_suffix(".md").write_text(text)
        return text
    columns = list(table[0])
    write_csv(stem.with_suffix(".csv"), table, columns)

    def cell(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = [f"### {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in table]
    text = "\n".join(lines) + "\n"
    stem.with_suffix(".md").write_text(text)
    return text


def monte_carlo_where_no_exact(rows: list[dict]) -> list[dict]:
    """Rows whose H is their Monte Carlo mean where no exact H exists (a transformer policy reads
    the walk, so ``hitting_time`` is empty in ``runs.csv``): the tables and plots draw those."""
    return [{**r, "hitting_time": r["mc_mean"]} if math.isnan(r["hitting_time"]) else r for r in rows]


def write_tables(runs_csv, out) -> str:
    """All scaling tables of a sweep under ``out/tables/``; returns their markdown. Rows without an
    exact H (transformer policies) enter with their Monte Carlo mean."""
    rows = monte_carlo_where_no_exact(label_settings(read_runs(runs_csv)))
    tables = Path(out) / "tables"
    parts = [
        _write(growth_table(rows), tables / "growth_per_depth", "Growth of H per unit of depth (fit of log H against K)"),
        _write(slope_table(rows, RLVR_METHODS, lambda W, K, L: W * K, "W*K", 4.0), tables / "rlvr_vs_WK",
               "RLVR: H against W*K (theory: slope 4)"),
        _write(ratio_table(rows), tables / "sft_over_rlvr", "SFT / RLVR ratio of H"),
        _write(slope_table(rows, ("search_sft",), lambda W, K, L: W * K * L, "W*K*L", float("nan"))
               + slope_table(rows, ("search_rlvr",), lambda W, K, L: W * K, "W*K", float("nan")),
               tables / "search_costs", "Search scaffold: cost against W*K*L (SFT) and W*K (RLVR)"),
    ]
    write_plots(rows, Path(out) / "plots")
    return "\n".join(parts)


def write_plots(rows, folder: Path) -> list[Path]:
    """The sweep's plots under ``folder`` (:mod:`mazejax.figures`): H against K per method and maze
    size (``H_vs_K.png``), RLVR H against W*K (``rlvr_H_vs_WK.png``) and the search-scaffold costs
    (``search_costs.png``), each when the sweep has such runs; [] without matplotlib."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        print("matplotlib is not installed: skipping plots (pip install 'mazejax[plot]')")
        return []
    from mazejax import figures

    folder = Path(folder)
    kinds = {_base(r["method"]) for r in rows}
    written = []
    if kinds - set(figures.SEARCH_METHODS):
        written.append(figures.scaling(rows, folder / "H_vs_K.png"))
    if kinds & set(figures.RLVR_METHODS):
        written.append(figures.rlvr_vs_wk(rows, folder / "rlvr_H_vs_WK.png"))
    if kinds & set(figures.SEARCH_METHODS):
        written.append(figures.search_costs(rows, folder / "search_costs.png"))
    return written


__all__ = ["growth_table", "linear_fit", "ratio_table", "slope_table", "write_plots", "write_tables"]
