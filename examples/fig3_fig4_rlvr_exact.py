"""Paper's Figs. 3-4: exact-gradient RLVR (sign ascent) from the pretrained model.

Trains W = K = 15, L = 5 for 600 steps at lr = 0.01 with exact gradients of J = 1 - beta * H and
records the exact hitting time H and the type probabilities a, b, c, d at every depth after every
step. Writes rlvr_exact.csv (one row per step) and rlvr_exact.png, and prints H at the steps the
paper (docs/model.md §4.2) lists beside its values.

    python examples/fig3_fig4_rlvr_exact.py --out out/fig3_fig4
"""

from __future__ import annotations

import argparse
import csv
import pathlib
import time

import jax
import numpy as np

import mazejax
import mazejax.train

jax.config.update("jax_enable_x64", True)  # exact analysis is float64 (README, "Precision")

#: docs/model.md §4.2: exact H at W = K = 15, L = 5, lr = 0.01.
PAPER = {0: 50141, 50: 20239, 100: 8951, 150: 4177, 200: 2172, 300: 1077, 400: 923, 500: 902, 600: 899.44}


def write_csv(path: pathlib.Path, result: mazejax.train.TrainResult) -> None:
    depths = np.asarray(result.types["a"]).shape[1]
    header = ["step", "hitting_time"] + [f"{t}_{j}" for t in "abcd" for j in range(1, depths + 1)]
    types = np.concatenate([np.asarray(result.types[t]) for t in "abcd"], axis=1)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for step, h, row in zip(np.asarray(result.step), np.asarray(result.hitting_time), types):
            writer.writerow([int(step), repr(float(h))] + [repr(float(x)) for x in row])


def plot(path: pathlib.Path, result: mazejax.train.TrainResult, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping", path)
        return
    step = np.asarray(result.step)
    fig, axes = plt.subplots(1, 5, figsize=(22, 4))
    axes[0].semilogy(step, np.asarray(result.hitting_time))
    axes[0].set(xlabel="step", ylabel="exact expected hitting time H", title=title)
    for ax, name in zip(axes[1:], "abcd"):
        values = np.asarray(result.types[name])
        colors = plt.cm.viridis(np.linspace(0, 1, values.shape[1]))
        for j in range(values.shape[1]):
            ax.plot(step, values[:, j], color=colors[j], lw=1, label=f"depth {j + 1}" if j in (0, values.shape[1] - 1) else None)
        ax.set(xlabel="step", ylabel=name, ylim=(0, 1.02), title=f"{name} by depth")
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/fig3_fig4"))
    parser.add_argument("--W", type=int, default=15)
    parser.add_argument("--K", type=int, default=15)
    parser.add_argument("--L", type=int, default=5)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=0.01)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    maze = mazejax.Maze(args.W, args.K, args.L)
    print(f"{maze}, {args.steps} steps of exact sign ascent at lr = {args.lr}, device {jax.devices()[0]}")
    start = time.perf_counter()
    result = mazejax.train.rlvr_exact(maze, steps=args.steps, lr=args.lr)
    H = np.asarray(result.hitting_time)  # blocks until the run is done
    print(f"wall time (compile + run): {time.perf_counter() - start:.1f} s")

    paper = PAPER if (args.W, args.K, args.L, args.lr) == (15, 15, 5, 0.01) else {}
    print(f"{'step':>5} {'H (exact)':>14} {'paper':>10} {'rel. diff':>10}")
    for step in sorted(set(paper) | {0, args.steps}):
        if step > args.steps:
            continue
        ref = paper.get(step)
        diff = f"{H[step] / ref - 1:+.2e}" if ref else ""
        print(f"{step:>5} {H[step]:>14.4f} {ref if ref else '':>10} {diff:>10}")
    spread = max(float(np.ptp(np.asarray(v), axis=1).max()) for v in result.types.values())
    print(f"largest spread of a type's probability across depths over the run: {spread:.1e}")
    final = {name: np.asarray(v)[-1] for name, v in result.types.items()}
    print("final a, b, c, d (min over depths):", ", ".join(f"{n} = {final[n].min():.6f}" for n in "abcd"))
    print("backtracker value 4WK + 2W - 2K - 1 =", 4 * args.W * args.K + 2 * args.W - 2 * args.K - 1)

    write_csv(args.out / "rlvr_exact.csv", result)
    plot(args.out / "rlvr_exact.png", result, f"RLVR, W={args.W}, K={args.K}, L={args.L}, lr={args.lr}")
    print("wrote", args.out / "rlvr_exact.csv", "and", args.out / "rlvr_exact.png")


if __name__ == "__main__":
    main()
