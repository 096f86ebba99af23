"""Runs/s of the sweep driver against a numpy loop and a Python loop over the jitted single run.

The workload (issue "Sweep driver"): 1000 exact-RLVR runs, 600 sign-ascent steps each, over
W in {2, 3, 4, 5, 6, 8, 10, 12, 14, 16}, K in 1..10, L in 1..10.

* sweep: ``mazejax.sweep.run_sweep`` end to end (compilation included), writing runs.csv.
* Python loop: the same per-run program the sweep vmaps (``jax.jit`` once, one run per call),
  called in a Python loop over a random sample of the runs; total extrapolated to all runs.
* numpy loop: exact RLVR with dense float64 solves (one LU solve per target for H and one for
  the visits, the occupancy-times-advantage gradient, sign ascent) — what a user would write
  without mazejax. Its per-step cost does not depend on the policy, so one step is timed on a
  random sample of configurations and the total extrapolated to 600 steps and all runs.

    python bench/sweep.py            # full workload
    python bench/sweep.py --quick    # 100 runs, smaller samples
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line  # noqa: E402
from exact import numpy_hitting_time_and_gradient  # noqa: E402

from mazejax import methods, sweep  # noqa: E402
from mazejax.maze import Maze, pad  # noqa: E402
from mazejax.policy import pretrained_logits  # noqa: E402

W_VALUES = [2, 3, 4, 5, 6, 8, 10, 12, 14, 16]
STEPS = 600


def numpy_rlvr_step(arrays, logits, lr, trainable):
    """One exact-RLVR sign-ascent step with dense numpy solves; returns the new logits."""
    _, grad = numpy_hitting_time_and_gradient(*arrays, logits)
    return np.where(trainable, logits - lr * np.sign(grad), logits)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 runs and smaller samples")
    parser.add_argument("--numpy-sample", type=int, default=None, help="configurations timed for numpy")
    parser.add_argument("--loop-sample", type=int, default=None, help="runs timed for the Python loop")
    args = parser.parse_args()
    K_values = list(range(1, 11))
    W_values = W_VALUES[:1] if args.quick else W_VALUES
    spec = sweep.parse_spec({"W": W_values, "K": K_values, "L": K_values, "methods": ["rlvr_exact"],
                             "rlvr_exact": {"steps": STEPS, "lr": 0.01}})
    runs = spec.runs()
    numpy_sample = args.numpy_sample or (4 if args.quick else 20)
    loop_sample = args.loop_sample or (20 if args.quick else 100)
    rng = np.random.default_rng(0)
    print(machine_line())
    print(f"workload: {len(runs)} exact-RLVR runs x {STEPS} steps, W in {W_values}, K, L in 1..10")

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        sweep.run_sweep(spec, out, progress=False)
        sweep_s = time.perf_counter() - start
        meta = (Path(out) / "meta.json").read_text()
    compile_s = float(meta.split('"compile_s": ')[1].split(",")[0])

    capacity = sweep._capacity(spec)
    static, leaves = spec.hparams["rlvr_exact"]
    program = jax.jit(sweep._program(methods.get("rlvr_exact"), static, capacity))
    sample = [runs[i] for i in rng.choice(len(runs), size=min(loop_sample, len(runs)), replace=False)]

    def one(run):
        maze = pad(Maze(*run[1:4]), capacity)
        key = sweep.run_key(spec.key, *run)
        hp = {k: jnp.float32(v) for k, v in leaves.items()}
        with jax.enable_x64(True):
            return jax.block_until_ready(program(key, hp, maze, pretrained_logits(maze)))

    start = time.perf_counter()
    one(sample[0])
    loop_compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for run in sample:
        one(run)
    loop_s = (time.perf_counter() - start) / len(sample) * len(runs) + loop_compile_s

    configs = [runs[i] for i in rng.choice(len(runs), size=min(numpy_sample, len(runs)), replace=False)]
    per_step = []
    for _, W, K, L, _ in configs:
        maze = Maze(W, K, L)
        arrays = (np.asarray(maze.successors), np.asarray(maze.valid), np.asarray(maze.target_hit))
        logits = np.where(maze.valid, 0.0, -np.inf)
        trainable = np.asarray(maze.trainable)[:, None] & np.asarray(maze.valid)
        t = time.perf_counter()
        numpy_rlvr_step(arrays, logits, 0.01, trainable)
        per_step.append(time.perf_counter() - t)
    numpy_s = float(np.mean(per_step)) * STEPS * len(runs)

    print(f"\n{'implementation':<44} {'total s':>10} {'runs/s':>10} {'sweep speed-up':>15}")
    print(f"{'mazejax sweep (measured, compile included)':<44} {sweep_s:>10.1f} {len(runs) / sweep_s:>10.3g} {'1x':>15}")
    print(f"{'Python loop over jitted run (' + str(len(sample)) + ' timed)':<44} {loop_s:>10.1f} "
          f"{len(runs) / loop_s:>10.3g} {loop_s / sweep_s:>14.1f}x")
    print(f"{'numpy dense loop (' + str(len(configs)) + ' configs x 1 step timed)':<44} {numpy_s:>10.3g} "
          f"{len(runs) / numpy_s:>10.3g} {numpy_s / sweep_s:>14.0f}x")
    print(f"\nsweep compile {compile_s:.1f} s; Python-loop compile {loop_compile_s:.1f} s; numpy s/step over the "
          f"sample: min {min(per_step):.3g}, median {np.median(per_step):.3g}, max {max(per_step):.3g}")


if __name__ == "__main__":
    main()
