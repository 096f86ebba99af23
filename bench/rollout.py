"""Walk throughput: full-length Monte Carlo with the mazejax stepper against numpy, in the same run.

Moves per second (moves actually taken, summed over all walks) when every walk runs to its target
(horizon 10**7: what Monte Carlo estimates of H and trainers need), for the base policy at
(6,6,5) and (15,15,5), the SFT limit at (3,3,2) (a very heavy tail) and the search scaffold (both
semantics, SFT limit at (6,6,5); proposals per second). Columns:

* ``full 1 dev`` / ``full N dev``: ``mazejax.simulate.sample_walks`` / ``search_walks`` on one
  device, and with the walks split over ``--devices`` devices (``devices=``; on the CPU virtual
  devices, one per core by default, set here before JAX starts; identical results);
* ``peak``: the same stepper at horizon 512 with the same batch (almost every walk still running:
  the stepper's own peak rate) on N devices; ``full/peak`` is the full-length N-device rate over it;
* ``numpy``: the fastest numpy walker we could write (``bench/baselines.py``: Walker alias tables,
  float32 uniforms, finished walks compacted away every 16 moves; the scaffold's numpy version
  draws proposals until one is allowed), on ``--numpy-walks`` walks when fewer than the batch
  (its rate per move does not depend on the batch at these sizes);
* ``eff``: useful steps (moves; scaffold: accepted moves and restarts) over the lane-steps the
  pool spent (``PoolStats``).

JAX timings exclude compilation (reported separately), follow a warm-up call, stop after
``block_until_ready`` and are repeated (median, min-max spread).

    python bench/rollout.py              # CPU table
    python bench/rollout.py --quick      # smaller batches, fewer repeats
    python bench/rollout.py --gpu        # the JAX stepper on the GPU (numpy stays on the CPU)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

CASES = [  # (name, (W, K, L), policy, search mode or None, walks)
    ("base", (6, 6, 5), "base", None, 65536),
    ("base", (15, 15, 5), "base", None, 65536),
    ("SFT limit", (3, 3, 2), "sft", None, 65536),
    ("scaffold aggregate, SFT limit", (6, 6, 5), "sft", "aggregate", 65536),
    ("scaffold mask, SFT limit", (6, 6, 5), "sft", "mask", 65536),
]
FULL = 10**7
PEAK = 512


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batches / 8 and fewer repeats")
    parser.add_argument("--gpu", action="store_true", help="run the JAX stepper on a GPU (fails if none)")
    parser.add_argument("--devices", type=int, default=None, help="CPU devices (default one per core)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (default 3, quick 2)")
    parser.add_argument("--numpy-walks", type=int, default=16384, help="walks timed with numpy (default 16384)")
    return parser.parse_args()


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None and not ARGS.gpu:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    count = ARGS.devices or os.cpu_count() or 1
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={count}".strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_enable_x64", True)

import baselines  # noqa: E402
from common import machine_line  # noqa: E402

import mazejax  # noqa: E402


def timed(fn, repeats):
    """(median, min, max) seconds of ``repeats`` calls and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), min(times), max(times), result


def jax_rate(maze, logits, num, horizon, mode, devices, repeats):
    """(median, slowest, fastest) moves/s, compile seconds and pool efficiency of the stepper."""

    def call(key):
        if mode is None:
            walks, stats = mazejax.sample_walks(maze, logits, key, num, horizon, devices=devices, stats=True)
            steps = walks.length
        else:
            walks, stats = mazejax.search_walks(maze, logits, key, num, horizon, mode, devices=devices, stats=True)
            steps = np.asarray(walks.moves, np.int64) + np.asarray(walks.restarts)  # a lane-step is a move or a restart
        return int(np.asarray(walks.length, np.int64).sum()), int(np.asarray(steps, np.int64).sum()) / float(stats.lane_steps)

    start = time.perf_counter()
    call(jax.random.key(0))
    first = time.perf_counter() - start
    steady, _, _, _ = timed(lambda: call(jax.random.key(1)), 1)
    keys = iter(range(2, 2 + repeats))
    med, lo, hi, (moves, efficiency) = timed(lambda: call(jax.random.key(next(keys))), repeats)
    return moves / med, moves / hi, moves / lo, max(first - steady, 0.0), efficiency


def numpy_rate(maze, logits, num, mode, repeats):
    arrays = (maze.successors, maze.valid, maze.target_hit, maze.target_mask)
    logits = np.asarray(logits, np.float64)
    seeds = iter(range(repeats))

    def call():
        rng = np.random.default_rng(next(seeds))
        if mode is None:
            length, _ = baselines.numpy_walks(*arrays, logits, num, FULL, rng)
        else:
            length = baselines.numpy_search_walks(maze.successors, maze.valid, maze.head, maze.target_hit,
                                                  maze.target_mask, logits, num, FULL, rng, mode)[0]
        return int(length.sum())

    med, lo, hi, moves = timed(call, repeats)
    return moves / med, moves / hi, moves / lo


def spread(rate, slow, fast) -> str:
    return f"{rate / 1e6:7.1f} [{slow / 1e6:.0f}-{fast / 1e6:.0f}]"


def main():
    args = ARGS
    repeats = args.repeats or (2 if args.quick else 3)
    if args.gpu and jax.default_backend() != "gpu":
        raise SystemExit("--gpu: no GPU backend")
    devices = jax.local_devices()
    baselines.blas_threads(1)
    print(machine_line())
    print(f"million moves/s (scaffold: proposals/s), median [min-max] of {repeats}; N dev = {len(devices)} devices")
    header = (f"{'case':<30} {'maze':>8} {'walks':>6} | {'full 1 dev':>16} {'full N dev':>16} {'peak (h512)':>16} "
              f"{'compile s':>9} {'eff':>5} | {'numpy':>16} | {'full/peak':>9} {'x numpy 1/N':>12}")
    print(header)
    print("-" * len(header))
    for name, size, policy, mode, num in CASES:
        num = num // 8 if args.quick else num
        maze = mazejax.Maze(*size)
        logits = mazejax.pretrained_logits(maze) if policy == "base" else mazejax.sft_limit_logits(maze)
        one = jax_rate(maze, logits, num, FULL, mode, None, repeats)
        split = jax_rate(maze, logits, num, FULL, mode, devices, repeats)
        peak = jax_rate(maze, logits, num, PEAK, mode, devices, repeats)
        numpy_walks = min(num, args.numpy_walks)
        base = numpy_rate(maze, logits, numpy_walks, mode, 1 if args.quick else 2)
        label = "x".join(map(str, size))
        print(f"{name:<30} {label:>8} {num:>6} | {spread(*one[:3]):>16} {spread(*split[:3]):>16} {spread(*peak[:3]):>16} "
              f"{split[3]:>9.2f} {split[4]:>5.2f} | {spread(*base):>16} | {split[0] / peak[0]:>9.2f} "
              f"{one[0] / base[0]:>5.1f}/{split[0] / base[0]:<5.1f}")
        sys.stdout.flush()
    print(f"\nnumpy timed on min(walks, {args.numpy_walks}) walks; eff: useful moves / lane-steps of the N-device "
          "full-length pool.")


if __name__ == "__main__":
    main()
