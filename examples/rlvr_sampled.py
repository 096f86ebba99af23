"""Sampled RLVR (docs/model.md §4.2): REINFORCE and PPO over seeds, exact H of the policy along training.

Runs each method with its default settings (see mazejax.train.reinforce / mazejax.train.ppo) for
``--seeds`` seeds as one vmapped program, records the exact expected hitting time H of the policy
after every step (iteration, for PPO), and reports its mean and spread over seeds. Writes
rlvr_sampled.csv (one row per method, seed and step) and rlvr_sampled.png, and prints the key
numbers: final H against the efficient backtracker, seeds within 15% / 25% of it, wall time and
the number of sampled moves (an upper bound: walks per step times the sum of H over the steps, since
a walk cut at twice H has expected length below H; REINFORCE steps each walk twice, once for the
advantages and once for the weighted move counts).

    python examples/rlvr_sampled.py --out out/rlvr_sampled                  # W, K, L = 3, 3, 2
    python examples/rlvr_sampled.py --W 6 --K 6 --L 5 --methods ppo         # the paper's Fig. 5 maze
"""

from __future__ import annotations

import argparse
import csv
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

import mazejax
from mazejax.train.ppo import PPOConfig, ppo
from mazejax.train.reinforce import ReinforceConfig, reinforce

jax.config.update("jax_enable_x64", True)  # exact analysis is float64 (README, "Precision")

METHODS = {"reinforce": reinforce, "ppo": ppo}
CONFIGS = {"reinforce": ReinforceConfig(), "ppo": PPOConfig()}  # the defaults each method runs with


def run(method, maze, seeds: int, steps: int | None):
    """Exact H [seeds, steps + 1] of ``method`` with default settings, vmapped over seed keys."""
    options = {"record_every": 1} | ({"steps": steps} if steps else {})
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(seeds))
    train = jax.jit(jax.vmap(lambda key: METHODS[method](maze, key, **options).hitting_time))
    start = time.perf_counter()
    hitting_time = np.asarray(train(keys))  # blocks until done
    return hitting_time, time.perf_counter() - start


def sampled_moves(method: str, H: np.ndarray) -> float:
    """Upper bound on the moves one seed samples with default settings: walks per step times the
    sum of H over the steps (plus PPO's critic warm-up batches of the initial policy)."""
    config = CONFIGS[method]
    batches = H[:, :-1].sum(1) + getattr(config, "critic_warmup", 0) * H[:, 0]
    return float(config.num_rollouts * batches.mean())


def write_csv(path: pathlib.Path, curves: dict) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "seed", "step", "hitting_time"])
        for method, H in curves.items():
            for seed, row in enumerate(H):
                for step, h in enumerate(row):
                    writer.writerow([method, seed, step, repr(float(h))])


def plot(path: pathlib.Path, curves: dict, backtracker: float, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping", path)
        return
    fig, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 4), squeeze=False)
    for ax, (method, H) in zip(axes[0], curves.items()):
        step = np.arange(H.shape[1])
        ax.fill_between(step, H.min(0), H.max(0), alpha=0.25, label="min-max over seeds")
        ax.semilogy(step, np.exp(np.log(H).mean(0)), label="geometric mean")
        ax.axhline(backtracker, color="k", ls="--", lw=1, label=f"backtracker {backtracker:g}")
        ax.set(xlabel="iteration" if method == "ppo" else "step", ylabel="exact expected hitting time H",
               title=f"{method}: {title}, {H.shape[0]} seeds")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/rlvr_sampled"))
    parser.add_argument("--W", type=int, default=3)
    parser.add_argument("--K", type=int, default=3)
    parser.add_argument("--L", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=32)
    parser.add_argument("--methods", default="reinforce,ppo", help="comma-separated: reinforce, ppo")
    parser.add_argument("--steps", type=int, default=None, help="steps (iterations) instead of each method's default")
    args = parser.parse_args()
    methods = args.methods.split(",")
    unknown = set(methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; choose from {sorted(METHODS)}")
    args.out.mkdir(parents=True, exist_ok=True)

    maze = mazejax.Maze(args.W, args.K, args.L)
    backtracker = 4 * args.W * args.K + 2 * args.W - 2 * args.K - 1
    print(f"{maze}, {args.seeds} seeds, default settings, device {jax.devices()[0]}")
    print(f"base H = {float(mazejax.exact.hitting_time(maze, mazejax.pretrained_logits(maze))):.1f}, "
          f"backtracker H = {backtracker}")
    curves = {}
    for method in methods:
        H, seconds = run(method, maze, args.seeds, args.steps)
        curves[method] = H
        final = H[:, -1]
        print(f"\n{method}: {H.shape[1] - 1} steps, wall time (compile + run) {seconds:.1f} s")
        print(f"  final H: mean {final.mean():.2f}, std {final.std():.2f}, min {final.min():.2f}, max {final.max():.2f}")
        for tolerance in (1.15, 1.25):
            print(f"  seeds with H <= {tolerance:.2f} x {backtracker}: {np.sum(final <= tolerance * backtracker)}/{args.seeds}")
        print(f"  sampled moves per seed: at most {sampled_moves(method, H):.3g}")
        for step in sorted({0, (H.shape[1] - 1) // 4, (H.shape[1] - 1) // 2, H.shape[1] - 1}):
            print(f"  step {step:>4}: H mean {H[:, step].mean():10.2f}  (min {H[:, step].min():.2f}, max {H[:, step].max():.2f})")

    write_csv(args.out / "rlvr_sampled.csv", curves)
    plot(args.out / "rlvr_sampled.png", curves, backtracker, f"W={args.W}, K={args.K}, L={args.L}")
    print("\nwrote", args.out / "rlvr_sampled.csv", "and", args.out / "rlvr_sampled.png")


if __name__ == "__main__":
    main()
