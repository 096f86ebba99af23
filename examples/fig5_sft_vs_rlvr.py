"""Paper's Fig. 5: SFT against RLVR as the maze deepens, and the backward-supervision ablation.

Left: exact expected hitting time H at W = 6 for L = 1..5 and K = 1..6 of
  * the SFT limit (a = c = 1, b and d at their pretrained values; mazejax.train.sft_limit),
  * exact-gradient RLVR after --rlvr-steps steps of sign ascent (all 30 mazes padded to one
    capacity and trained as one vmapped program),
  * the efficient backtracker, 4WK + 2W - 2K - 1.
Right: the ablation at W = K = 6, L = 5: mean exact H of the SFT limit with a random fraction p of
the 2K backward types supervised to continue backwards, over --draws draws per p.

Writes sft_vs_rlvr.csv, ablation.csv and fig5.png to --out and prints both tables (with the docs/model.md §3
rows L = 1, 2, 5 beside the SFT limits).

    python examples/fig5_sft_vs_rlvr.py --out out/fig5
"""

from __future__ import annotations

import argparse
import csv
import pathlib
import time

import jax
import numpy as np

import mazejax
import mazejax.train as train

jax.config.update("jax_enable_x64", True)  # exact analysis is float64 (README, "Precision")

#: docs/model.md §3: SFT limit at W = 6, by L, for K = 1..6.
SPEC_SFT = {
    1: [73, 315, 1277, 5119, 20481, 81923],
    2: [88, 427.5, 1948.25, 8784.625, 39541.3125, 177939.40625],
    5: [145, 1097.4, 7942.28, 57213.016, 411949.9152, 2966043.18944],
}


def depth_sweep(W: int, Ks, Ls, steps: int, lr: float) -> dict[str, np.ndarray]:
    """SFT limit, trained RLVR and backtracker H for every (L, K), float64 [len(Ls), len(Ks)]."""
    grid = [(L, K) for L in Ls for K in Ks]
    mazes = mazejax.stack([mazejax.Maze(W, K, L) for L, K in grid])
    init = mazejax.pretrained_logits(mazes)

    start = time.perf_counter()
    sft = jax.jit(jax.vmap(lambda maze: mazejax.exact.hitting_time(maze, train.sft_limit(maze))))(mazes)
    sft = np.asarray(sft)
    print(f"SFT limits of {len(grid)} mazes: {time.perf_counter() - start:.1f} s (compile + run)")

    start = time.perf_counter()
    rlvr_train = jax.vmap(train.make_rlvr_exact(train.RLVRConfig(steps=steps, record_every=steps)), in_axes=(None, None, 0, 0))
    hparams = train.RLVRHParams.create(lr=lr)
    rlvr = jax.jit(rlvr_train)(jax.random.key(0), hparams, mazes, init)
    rlvr = np.asarray(rlvr.hitting_time)[:, -1]
    print(f"RLVR, {steps} exact steps on {len(grid)} padded mazes as one program: "
          f"{time.perf_counter() - start:.1f} s (compile + run)")

    backtracker = np.array([4 * W * K + 2 * W - 2 * K - 1 for L, K in grid], float)
    shape = (len(Ls), len(Ks))
    return {"sft_limit": sft.reshape(shape), "rlvr": rlvr.reshape(shape), "backtracker": backtracker.reshape(shape)}


def print_depth_table(table, Ks, Ls) -> None:
    print("\nExact H at W = 6 (SFT limit | RLVR trained | backtracker 4WK+2W-2K-1)")
    print(f"{'L':>2} {'K':>2} {'SFT limit':>18} {'docs/model.md §3':>16} {'RLVR':>10} {'backtracker':>11}")
    for i, L in enumerate(Ls):
        for j, K in enumerate(Ks):
            spec = SPEC_SFT[L][j] if L in SPEC_SFT else ""
            spec_text = f"{spec:>16}"
            print(f"{L:>2} {K:>2} {table['sft_limit'][i, j]:>18.6f} {spec_text} "
                  f"{table['rlvr'][i, j]:>10.3f} {table['backtracker'][i, j]:>11.0f}")


def plot(path: pathlib.Path, table, Ks, Ls, ablation: train.AblationResult) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping", path)
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = plt.cm.plasma(np.linspace(0, 0.85, len(Ls)))
    for i, L in enumerate(Ls):
        left.semilogy(Ks, table["sft_limit"][i], "o-", color=colors[i], label=f"SFT limit, L={L}")
        left.semilogy(Ks, table["rlvr"][i], "x--", color=colors[i], lw=0.8)
    left.semilogy(Ks, table["backtracker"][0], "k:", label="backtracker 4WK+2W-2K-1 (RLVR: dashed)")
    left.set(xlabel="depth K", ylabel="exact expected hitting time H", title="W = 6")
    left.legend(fontsize=8)
    H = np.asarray(ablation.hitting_time)
    right.semilogy(ablation.fraction, np.asarray(ablation.mean_hitting_time), "o-", label="mean over draws")
    right.fill_between(ablation.fraction, H.min(axis=1), H.max(axis=1), alpha=0.25, label="min to max")
    right.set(xlabel="fraction p of backward types supervised", ylabel="H", title="W = K = 6, L = 5")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/fig5"))
    parser.add_argument("--rlvr-steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print("device", jax.devices()[0])

    W, Ks, Ls = 6, list(range(1, 7)), list(range(1, 6))
    table = depth_sweep(W, Ks, Ls, args.rlvr_steps, args.lr)
    print_depth_table(table, Ks, Ls)
    with (args.out / "sft_vs_rlvr.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["W", "L", "K", "sft_limit", "rlvr_after_steps", "backtracker", "rlvr_steps", "lr"])
        for i, L in enumerate(Ls):
            for j, K in enumerate(Ks):
                writer.writerow([W, L, K] + [repr(float(table[k][i, j])) for k in ("sft_limit", "rlvr", "backtracker")]
                                + [args.rlvr_steps, args.lr])

    start = time.perf_counter()
    ablation = train.backward_supervision_ablation(mazejax.Maze(6, 6, 5), jax.random.key(args.seed), draws=args.draws)
    H = np.asarray(ablation.hitting_time)
    print(f"\nAblation at W = K = 6, L = 5, {args.draws} draws per p: {time.perf_counter() - start:.1f} s (compile + run)")
    print(f"{'p':>4} {'types':>5} {'mean H':>14} {'median H':>14} {'min H':>12} {'max H':>14}")
    mean = np.asarray(ablation.mean_hitting_time)
    with (args.out / "ablation.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["p", "supervised_types", "mean_H", "median_H", "min_H", "max_H", "draws"])
        for p, row, m, chosen in zip(ablation.fraction, H, mean, np.asarray(ablation.supervised)):
            n = int(chosen[0].sum())  # every draw supervises the same number of types
            print(f"{p:>4.1f} {n:>5} {m:>14.2f} {np.median(row):>14.2f} {row.min():>12.2f} {row.max():>14.2f}")
            writer.writerow([p, n, repr(float(m)), repr(float(np.median(row))), repr(float(row.min())),
                             repr(float(row.max())), args.draws])

    plot(args.out / "fig5.png", table, Ks, Ls, ablation)
    print("wrote", *(args.out / name for name in ("sft_vs_rlvr.csv", "ablation.csv", "fig5.png")))


if __name__ == "__main__":
    main()
