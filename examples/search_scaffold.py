"""Inference-time search scaffold (paper's Corollary 1, docs/model.md §4.3): cost with and without it.

For the SFT limit and the efficient backtracker, over three sweeps around W = K = 6, L = 5
(L = 1..8, K = 1..8, W = 2..10), reports

* the expected hitting time without the scaffold (exact, :func:`mazejax.exact.hitting_time`);
* the scaffold's expected cost in proposals, by Monte Carlo, under both docs/model.md §4.3 semantics
  ("aggregate": parallel copies are one state and rejected proposals are redrawn; "mask": copies
  are distinct and visited moves are masked), with standard errors;
* the closed forms of the aggregate scaffold (:func:`mazejax.reference.scaffold_cost`, derived in
  tests/test_simulate.py):
  backtracker ``(W-1)/2 (4K+3) + 2K+1`` (independent of L), SFT limit
  ``(W-1)/2 (4K+3 + K(L + 1/L)) + 2K+1`` (linear in L, against ``W ((L+1)^2/L)^K`` without it).

Under "mask" the SFT limit dead-ends: back in a wrong branch it crosses a diamond forward by an
unvisited copy and then, with ``a = 1``, its only move (forward, visited) is masked. The walk then
restarts from ``s0 -> f`` (the convention of :func:`mazejax.simulate.search_walks`), which the
``mask_restarts_per_walk`` column counts.

Writes search_scaffold.csv and search_scaffold.png (log scale) to --out and prints the table.

    python examples/search_scaffold.py --out out/search_scaffold
    python examples/search_scaffold.py --quick
"""

from __future__ import annotations

import argparse
import csv
import pathlib
import time

import jax
import numpy as np

import mazejax
from mazejax import simulate

jax.config.update("jax_enable_x64", True)  # exact analysis is float64 (README, "Precision")

BASE = (6, 6, 5)
SWEEPS = {"L": [1, 2, 3, 4, 5, 6, 8], "K": [1, 2, 3, 4, 5, 6, 7, 8], "W": [2, 4, 6, 8, 10]}
QUICK_SWEEPS = {"L": [1, 2, 4, 8], "K": [1, 3, 6], "W": [2, 6]}
POLICIES = {"sft_limit": mazejax.sft_limit_logits, "backtracker": mazejax.backtracker_logits}
COLUMNS = [
    "sweep", "W", "K", "L", "policy", "exact_no_scaffold", "aggregate_mean", "aggregate_stderr",
    "aggregate_closed_form", "mask_mean", "mask_stderr", "mask_restarts_per_walk",
]


def measure(W, K, L, num, key, horizon):
    """One row per policy for maze (W, K, L)."""
    maze = mazejax.Maze(W, K, L)
    rows = []
    for policy, make in POLICIES.items():
        logits = make(maze)
        row = {"W": W, "K": K, "L": L, "policy": policy}
        row["exact_no_scaffold"] = float(mazejax.exact.hitting_time(maze, logits))
        for mode in simulate.SEARCH_MODES:
            walks = simulate.search_walks(maze, logits, key, num, horizon, mode)
            if not bool(np.all(walks.success)):
                raise RuntimeError(f"some walks exceeded the horizon {horizon} at {(W, K, L)}, {policy}, {mode}")
            cost = np.asarray(walks.length, np.float64)
            row[f"{mode}_mean"] = cost.mean()
            row[f"{mode}_stderr"] = cost.std(ddof=1) / np.sqrt(num)
            if mode == "mask":
                row["mask_restarts_per_walk"] = float(np.mean(walks.restarts))
        row["aggregate_closed_form"] = float(mazejax.reference.scaffold_cost(W, K, L, policy))
        rows.append(row)
    return rows


def plot(path: pathlib.Path, rows: list[dict]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping", path)
        return
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
    styles = {"sft_limit": "tab:red", "backtracker": "tab:blue"}
    for ax, sweep in zip(axes, SWEEPS):
        sub = [r for r in rows if r["sweep"] == sweep]
        for policy, color in styles.items():
            pts = [r for r in sub if r["policy"] == policy]
            x = [r[sweep] for r in pts]
            ax.semilogy(x, [r["exact_no_scaffold"] for r in pts], "-", color=color, label=f"{policy}: no scaffold (exact)")
            ax.errorbar(x, [r["aggregate_mean"] for r in pts], yerr=[2 * r["aggregate_stderr"] for r in pts],
                        fmt="o--", color=color, ms=4, label=f"{policy}: scaffold, aggregate")
            ax.errorbar(x, [r["mask_mean"] for r in pts], yerr=[2 * r["mask_stderr"] for r in pts],
                        fmt="s:", color=color, ms=4, mfc="none", label=f"{policy}: scaffold, mask")
        fixed = ", ".join(f"{k}={v}" for k, v in zip("WKL", BASE) if k != sweep)
        ax.set(xlabel=sweep, ylabel="expected cost (moves / proposals)", title=f"vary {sweep} ({fixed})")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Search scaffold (Corollary 1): SFT limit vs backtracker, error bars 2 s.e.")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print("wrote", path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/search_scaffold", help="output folder")
    parser.add_argument("--num", type=int, default=4000, help="rollouts per point (default 4000)")
    parser.add_argument("--horizon", type=int, default=10**7, help="proposal limit per walk")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="fewer points and rollouts")
    args = parser.parse_args()
    sweeps = QUICK_SWEEPS if args.quick else SWEEPS
    num = min(args.num, 1000) if args.quick else args.num
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    key = jax.random.key(args.seed)
    rows, start = [], time.perf_counter()
    for sweep, values in sweeps.items():
        for value in values:
            W, K, L = (value if name == sweep else base for name, base in zip("WKL", BASE))
            point_key = jax.random.fold_in(key, 10_000 * W + 100 * K + L)  # independent points
            for row in measure(W, K, L, num, point_key, args.horizon):
                rows.append({"sweep": sweep, **row})
    with (out / "search_scaffold.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"{num} rollouts per point, {time.perf_counter() - start:.0f} s; wrote {out / 'search_scaffold.csv'}")
    print(f"{'sweep':>5} {'W':>3} {'K':>3} {'L':>3} {'policy':>12} {'no scaffold':>12} "
          f"{'aggregate':>16} {'closed form':>11} {'mask':>16} {'restarts':>8}")
    for r in rows:
        print(f"{r['sweep']:>5} {r['W']:>3} {r['K']:>3} {r['L']:>3} {r['policy']:>12} {r['exact_no_scaffold']:12.4g} "
              f"{r['aggregate_mean']:9.1f} ± {r['aggregate_stderr']:4.1f} {r['aggregate_closed_form']:11.1f} "
              f"{r['mask_mean']:9.1f} ± {r['mask_stderr']:4.1f} {r['mask_restarts_per_walk']:8.2f}")
    plot(out / "search_scaffold.png", rows)


if __name__ == "__main__":
    main()
