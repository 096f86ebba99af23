"""Paper's Fig. 7 and beyond: a one-layer transformer over the walk, from the bigram base model.

Three experiments (docs/model.md §4.6), each with ``--seeds`` seeds vmapped as one program and a
Monte Carlo evaluation of every seed's final policy (``--eval`` fresh walks, 95% intervals):

* ``rlvr``: REINFORCE from the base model (the transformer initialised to reproduce it exactly);
* ``sft``: teacher forcing on golden paths (does the transformer, like the table, never learn to
  retreat? measures the empirical b, d and H);
* ``dfs``: teacher forcing on depth-first search traces (can it learn the history-aware search?).

Bounds: the tabular backtracker ``4WK + 2W - 2K - 1`` (35 at (3,3,2), 143 at (6,6,5)) and the best
target-blind policy with memory, a DFS that never re-enters an explored branch, ``W (2K + 1)``
(21 at (3,3,2), 78 at (6,6,5)). Writes ``fig7_<experiment>.csv`` (one row per seed and step) and
``fig7_rlvr.png``.

    python examples/fig7_transformer.py --out out/fig7                 # (3,3,2), CPU, a few minutes
    python examples/fig7_transformer.py --full --only rlvr --seeds 1 --steps 3 --eval 64   # (6,6,5): cost per step
"""

from __future__ import annotations

import argparse
import pathlib
import time

import jax
import numpy as np

import mazejax
from mazejax.sweep.store import write_csv
from mazejax.train.neural import empirical_types, evaluate_seeds, reinforce_seeds, sft_seeds

jax.config.update("jax_enable_x64", True)  # exact analysis is float64 (README, "Precision")

#: (3,3,2) defaults, and the ``--full`` settings at the paper's (6,6,5).
DEFAULT = {"maze": (3, 3, 2), "steps": 300, "horizon": 512, "eval_horizon": 2000}
FULL = {"maze": (6, 6, 5), "steps": 1500, "horizon": 4096, "eval_horizon": 20000, "context": 128, "num_rollouts": 64}


def bounds(W: int, K: int) -> dict:
    return {"backtracker (tabular)": 4 * W * K + 2 * W - 2 * K - 1, "history-aware DFS bound W(2K+1)": W * (2 * K + 1)}


def rlvr(maze, settings: dict, seeds: int, steps: int, num: int, out: pathlib.Path) -> dict:
    options = {k: settings[k] for k in ("horizon", "context", "num_rollouts") if k in settings}
    start = time.perf_counter()
    result, config = reinforce_seeds(maze, jax.random.key(0), seeds, steps=steps, **options)
    jax.block_until_ready(result)
    seconds = time.perf_counter() - start
    mean, stderr, success, _ = evaluate_seeds(config, maze, result.params, jax.random.key(1), num,
                                              settings["eval_horizon"])
    curve, curve_se = np.asarray(result.mean_length), np.asarray(result.stderr)
    write_csv(out / "fig7_rlvr.csv", [{"seed": i, "step": t, "mean_length": float(curve[i, t]),
                                       "stderr": float(curve_se[i, t])} for i in range(seeds) for t in range(steps)])
    return {"seconds": seconds, "per_step": seconds / steps, "H": mean, "stderr": stderr, "success": success,
            "curve": curve, "curve_stderr": curve_se}


def sft(maze, data: str, settings: dict, seeds: int, num: int) -> dict:
    result, config = sft_seeds(maze, jax.random.key(0), seeds, data=data, steps=300, lr=1e-2)
    mean, stderr, success, walks = evaluate_seeds(config, maze, result.params, jax.random.key(1), num,
                                                  settings["eval_horizon"], record=512)
    types = [empirical_types(maze, walks.states[i]) for i in range(seeds)]
    return {"H": mean, "stderr": stderr, "success": success,
            "b": np.array([float(t["b"]) for t in types]), "d": np.array([float(t["d"]) for t in types])}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/fig7"))
    parser.add_argument("--full", action="store_true", help="the paper's W = K = 6, L = 5 (GPU recommended)")
    parser.add_argument("--only", choices=("rlvr", "sft", "dfs"), action="append")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, help="REINFORCE steps (default 300; --full 1500)")
    parser.add_argument("--eval", type=int, default=2048, help="Monte Carlo walks per seed")
    args = parser.parse_args()
    settings = FULL if args.full else DEFAULT
    W, K, L = settings["maze"]
    maze = mazejax.Maze(W, K, L)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"maze (W, K, L) = {(W, K, L)}; bounds: {bounds(W, K)}; device {jax.devices()[0]}")
    for experiment in args.only or ("rlvr", "sft", "dfs"):
        if experiment == "rlvr":
            steps = args.steps or settings["steps"]
            r = rlvr(maze, settings, args.seeds, steps, args.eval, args.out)
            print(f"REINFORCE, {args.seeds} seeds x {steps} steps: {r['seconds']:.1f} s ({r['per_step']:.3f} s per step, "
                  "all seeds, compile included)")
            for i in range(args.seeds):
                print(f"  seed {i}: H = {r['H'][i]:.2f} +- {1.96 * r['stderr'][i]:.2f} (95%), hit rate {r['success'][i]:.3f}")
            target = 1.05 * bounds(W, K)["backtracker (tabular)"]
            print(f"  seeds with H <= {target:.2f}: {int(np.sum(r['H'] <= target))}/{args.seeds}; best {r['H'].min():.2f}")
            try:
                from mazejax import figures
                curves = {i: {"mean": r["curve"][i], "stderr": r["curve_stderr"][i]} for i in range(args.seeds)}
                path = figures.per_seed_curves(np.arange(steps), curves, bounds(W, K), args.out / "fig7_rlvr.png",
                                               f"Transformer REINFORCE from the bigram base, (W,K,L)={(W, K, L)}",
                                               ylabel="mean walk length of the step's batch (Monte Carlo H)")
                print(f"  wrote {path}")
            except ImportError:
                pass
        else:
            r = sft(maze, "golden" if experiment == "sft" else "dfs", settings, args.seeds, args.eval)
            base_b, base_d = L / (L + 1), 1 / (L + 1)
            print(f"SFT on {'golden paths' if experiment == 'sft' else 'DFS traces'}, {args.seeds} seeds "
                  f"(base b = {base_b:.3f}, d = {base_d:.3f}):")
            for i in range(args.seeds):
                print(f"  seed {i}: H = {r['H'][i]:.2f} +- {1.96 * r['stderr'][i]:.2f} (95%), hit rate "
                      f"{r['success'][i]:.3f}, b = {r['b'][i]:.3f}, d = {r['d'][i]:.3f}")


if __name__ == "__main__":
    main()
