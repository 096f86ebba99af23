"""The exact-RLVR sweep end to end against the best numpy implementations of the same method.

The workload: 1000 exact-RLVR runs, 600 sign-ascent steps each (lr 0.01, records every 10 steps),
over W in {2, 3, 4, 5, 6, 8, 10, 12, 14, 16}, K in 1..10, L in 1..10, from the pretrained model.
Every implementation computes the same trajectories (checked below on a sample of runs):

* ``mazejax sweep``: ``mazejax.sweep.run_sweep`` with method ``rlvr_symmetric`` (the
  branch-symmetric fast path, :mod:`mazejax.exact.symmetric`), end to end: spec, compile, run,
  ``runs.csv``; twice: with an empty persistent compilation cache (a cold start, compile
  included) and again into a new folder with the cache filled (what a rerun costs). The runs are
  sharded over ``--devices`` devices (CPU: virtual devices, default one per core, set here before
  JAX starts).
* ``numpy quotient loop``: what the public reproduction of the paper does: per run, per step, the
  branch-symmetric quotient chain (8K + 2 states) solved densely in float64 with the adjoint
  gradient (``bench/baselines.py``, one BLAS thread); timed on every run (or a sample with
  ``--sample``, then extrapolated, and said so).
* ``numpy quotient batched``: the same, vectorised over all runs of one K (a competent numpy user's
  faster version).
* ``numpy dense loop`` (naive): the full-graph dense solve per step, extrapolated from one step on
  ``--dense-sample`` configurations (its per-step cost does not depend on the policy).

Usage::

    python bench/sweep.py              # the full workload
    python bench/sweep.py --quick      # W in {2}: 100 runs
    python bench/sweep.py --gpu        # mazejax on the GPU (numpy stays on the CPU)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

W_VALUES = [2, 3, 4, 5, 6, 8, 10, 12, 14, 16]
STEPS, LR, RECORD = 600, 0.01, 10


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="W in {2} only (100 runs)")
    parser.add_argument("--gpu", action="store_true", help="run mazejax on the GPU (fails without one)")
    parser.add_argument("--sample", type=int, default=0, help="time the numpy loop on this many runs (0: all)")
    parser.add_argument("--dense-sample", type=int, default=5, help="configurations timed for the dense column")
    parser.add_argument("--devices", type=int, default=None, help="CPU devices to shard the runs over (default: cores)")
    args = parser.parse_args()
    if not args.gpu:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        count = args.devices or os.cpu_count() or 1
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={count}".strip()
    cache = Path(tempfile.mkdtemp(prefix="mazejax-bench-cache-"))
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(cache)  # a cold cache: compile time counts
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"  # cache every program, so the rerun is warm

    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    import baselines
    from common import machine_line

    from mazejax import sweep
    from mazejax.maze import Maze
    from mazejax.sweep import store

    if args.gpu and jax.default_backend() != "gpu":
        raise SystemExit("--gpu: no GPU backend")
    baselines.blas_threads(1)
    K_values = list(range(1, 11))
    W_values = W_VALUES[:1] if args.quick else W_VALUES
    config = {"W": W_values, "K": K_values, "L": K_values, "methods": ["rlvr_symmetric"],
              "rlvr_symmetric": {"steps": STEPS, "lr": LR, "record_every": RECORD}}
    print(machine_line())

    timings = []
    for _ in ("cold", "warm"):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            spec = sweep.parse_spec(config)
            table = sweep.run_sweep(spec, out, progress=False, tables=False)
            timings.append(time.perf_counter() - start)
            rows = {(r["W"], r["K"], r["L"]): r for r in store.read_runs(table)}
            meta = (Path(out) / "meta.json").read_text()
            timings.append(float(meta.split('"compile_s": ')[1].split(",")[0]))
    sweep_s, compile_s, warm_s, warm_compile_s = timings
    runs = sorted(rows)
    print(f"workload: {len(runs)} exact-RLVR runs x {STEPS} steps, W in {W_values}, K, L in 1..10")

    rng = np.random.default_rng(0)
    sample = runs if not args.sample else [runs[i] for i in rng.choice(len(runs), args.sample, replace=False)]
    start = time.perf_counter()
    finals = {size: baselines.numpy_symmetric_rlvr(*size, steps=STEPS, lr=LR)[-1] for size in sample}
    loop_s = (time.perf_counter() - start) * len(runs) / len(sample)

    start = time.perf_counter()
    batched = baselines.numpy_symmetric_rlvr_batch(runs, steps=STEPS, lr=LR)
    batch_s = time.perf_counter() - start

    per_step = []
    for i in rng.choice(len(runs), min(args.dense_sample, len(runs)), replace=False):
        maze = Maze(*runs[i])
        arrays = baselines.maze_arrays(maze)
        logits = np.where(maze.valid, 0.0, -np.inf)
        trainable = np.asarray(maze.trainable)[:, None] & np.asarray(maze.valid)
        t = time.perf_counter()
        baselines.numpy_dense_rlvr_step(arrays, logits, LR, trainable)
        per_step.append(time.perf_counter() - t)
    dense_s = float(np.mean(per_step)) * STEPS * len(runs)

    H_mazejax = np.array([rows[s]["hitting_time"] for s in sample])
    H_loop = np.array([finals[s] for s in sample])
    H_batch = np.array([batched[runs.index(s)][-1] for s in sample])
    agree = np.abs(H_mazejax / H_loop - 1)
    print(f"final H, mazejax vs numpy loop on {len(sample)} runs: median rel. difference {np.median(agree):.1e}, "
          f"max {agree.max():.1e} (runs above 1e-9: {int(np.sum(agree > 1e-9))}: sign ties at exactly-zero "
          f"gradients); batched vs loop max {np.abs(H_batch / H_loop - 1).max():.1e}")

    timed = "all runs timed" if len(sample) == len(runs) else f"{len(sample)} runs timed, extrapolated"
    print(f"\n{'implementation':<52} {'total s':>10} {'runs/s':>10} {'x mazejax':>10}")
    lines = [
        (f"mazejax sweep ({len(jax.devices())} dev, end to end, cold compile)", sweep_s),
        (f"mazejax sweep ({len(jax.devices())} dev, end to end, warm cache)", warm_s),
        (f"numpy quotient loop ({timed})", loop_s),
        ("numpy quotient batched per K (all runs)", batch_s),
        (f"numpy dense loop ({len(per_step)} configs x 1 step, extrapolated)", dense_s),
    ]
    for name, seconds in lines:
        print(f"{name:<52} {seconds:>10.3g} {len(runs) / seconds:>10.3g} {seconds / sweep_s:>9.1f}x")
    print(f"\nmazejax compile {compile_s:.2f} s of {sweep_s:.2f} s cold, {warm_compile_s:.2f} s of {warm_s:.2f} s "
          f"warm; dense s/step over the sample: "
          f"min {min(per_step):.3g}, max {max(per_step):.3g}")
    shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
