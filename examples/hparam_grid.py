"""A hyperparameter grid as one program: REINFORCE over (lr x beta), a heat map of the final H.

The sweep runs the cartesian product of the learning rates, length penalties and seeds; lists of
hyperparameters (array leaves) run inside one compiled program (``runs.csv`` carries each run's
values), so the whole grid costs one compile. The heat map shows the mean over seeds of the exact
H of each final policy, beside the backtracker's ``4WK + 2W - 2K - 1``.

    python examples/hparam_grid.py                      # W, K, L = 6, 6, 5, 3 x 3 grid, 2 seeds
    python examples/hparam_grid.py --W 3 --K 3 --L 2    # a quick one
"""

from __future__ import annotations

import argparse
import pathlib
import time

import jax

jax.config.update("jax_enable_x64", True)  # exact analysis is float64 (README, "Precision")

import numpy as np  # noqa: E402

from mazejax import figures, reference, sweep  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--W", type=int, default=6)
    parser.add_argument("--K", type=int, default=6)
    parser.add_argument("--L", type=int, default=5)
    parser.add_argument("--lr", default="0.05,0.1,0.2", help="comma-separated learning rates")
    parser.add_argument("--beta", default="0.003,0.01,0.03", help="comma-separated length penalties")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", default="out/hparam_grid")
    args = parser.parse_args()
    lrs = [float(x) for x in args.lr.split(",")]
    betas = [float(x) for x in args.beta.split(",")]
    config = {"W": [args.W], "K": [args.K], "L": [args.L], "seeds": args.seeds, "methods": ["reinforce"],
              "reinforce": {"steps": args.steps, "record_every": args.steps // 10, "lr": lrs, "beta": betas,
                            "eval_rollouts": 200}}
    out = pathlib.Path(args.out)
    start = time.perf_counter()
    table = sweep.run_sweep(sweep.parse_spec(config), out, progress=True, tables=False)
    print(f"{len(lrs) * len(betas) * args.seeds} runs in {time.perf_counter() - start:.0f} s (one compiled program)")
    rows = sweep.read_runs(table)
    H = np.full((len(betas), len(lrs)), np.nan)
    for i, beta in enumerate(betas):
        for j, lr in enumerate(lrs):
            mine = [r["hitting_time"] for r in rows if float(r["lr"]) == lr and float(r["beta"]) == beta]
            H[i, j] = np.mean(mine)
    backtracker = float(reference.backtracker_hitting_time(args.W, args.K, args.L))
    base = float(reference.base_hitting_time(args.W, args.K, args.L))
    print(f"mean final exact H over {args.seeds} seeds (rows: beta, columns: lr); base {base:g}, backtracker {backtracker:g}")
    print("beta \\ lr " + "".join(f"{lr:>10g}" for lr in lrs))
    for beta, row in zip(betas, H):
        print(f"{beta:>9g} " + "".join(f"{h:>10.1f}" for h in row))
    path = figures.heatmap(lrs, betas, H, out / "hparam_grid.png", "learning rate (Adam)", "length penalty beta",
                           f"REINFORCE on W={args.W}, K={args.K}, L={args.L}: mean final exact H over {args.seeds} seeds "
                           f"({args.steps} steps; backtracker {backtracker:g}, base {base:g})")
    print(f"wrote {table} and {path}")


if __name__ == "__main__":
    main()
