"""Rollout throughput: the mazejax stepper against numpy and pure Python, in the same run.

Edge-steps per second (moves actually taken, summed over the batch) of the base policy on paper
mazes, each walk with a uniformly drawn target, stopped at the target or after ``--horizon``
moves. Baselines, all simulating the same walk:

* ``numpy-alias``: a vectorised numpy walk with Walker alias tables (int32 states, one float32
  uniform per move, three lookups at one index, finished walks compacted away): the fastest numpy
  version we could write (about 10% faster than the same code in float64/int64).
* ``numpy-cdf``: the vectorised inverse-CDF walk most users would write first
  (``(u[:, None] >= cdf[state]).sum(1)``), same compaction.
* ``python``: a per-walk pure-Python loop over alias tables (measured on the smallest batch only;
  its rate does not depend on the batch size).

The JAX stepper is timed twice in the same process: on one device (``jax 1 dev``; XLA's CPU
backend splits every step over the cores with its intra-op threads) and with the walks split over
``--devices`` devices (``jax N dev``, ``sample_walks(..., devices=...)``; identical results). On
the CPU the devices are virtual (``--xla_force_host_platform_device_count``, set here before JAX
starts, default one per core): each runs its share of the walks without synchronising the cores
at every move. The ratio columns give both, ``1 dev / N dev``.

JAX timings exclude compilation (reported separately, first call minus a steady call), follow a
warm-up call, stop after ``block_until_ready`` and are repeated (median, with min-max spread).

Usage::

    python bench/rollout.py              # CPU table
    python bench/rollout.py --quick      # small batches, fewer repeats
    python bench/rollout.py --devices 1  # one CPU device only
    python bench/rollout.py --gpu        # the JAX stepper on the GPU(s) (numpy/python stay on the CPU)
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time

import numpy as np


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small batches and fewer repeats")
    parser.add_argument("--gpu", action="store_true", help="run the JAX stepper on a GPU (fails if none)")
    parser.add_argument(
        "--devices", type=int, default=None,
        help="devices to split the walks over (CPU: virtual devices, default one per core; GPU: default all)",
    )
    parser.add_argument("--horizon", type=int, default=512, help="moves per walk (default 512)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (default 5, quick 2)")
    parser.add_argument(
        "--mazes", default=None, help="semicolon-separated W,K,L triples (default 3,3,2;6,6,5;15,15,5)"
    )
    parser.add_argument("--batches", default=None, help="comma-separated batch sizes")
    parser.add_argument(
        "--numpy-limit", type=int, default=1 << 20, help="largest batch timed with numpy-alias (default 2**20)"
    )
    parser.add_argument(
        "--cdf-limit", type=int, default=1 << 16, help="largest batch timed with numpy-cdf (default 2**16)"
    )
    return parser.parse_args()


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None and not ARGS.gpu:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    count = ARGS.devices or os.cpu_count() or 1
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={count}".strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import mazejax  # noqa: E402
from mazejax import simulate  # noqa: E402


# ----------------------------------------------------------------------------------------
# Baselines (numpy float64 tables, built once per maze on the host)


def host_tables(maze, logits):
    """Numpy tables of the walk: probabilities, successors, alias tables, target of each state."""
    p = np.asarray(mazejax.probabilities(maze, logits), np.float64)
    succ = np.asarray(maze.successors, np.int64)
    S, D = p.shape
    keep = np.ones((S, D))
    alias = np.tile(np.arange(D), (S, 1))
    for row in range(S):  # Vose's alias method
        mass = p[row] * D
        small = [j for j in range(D) if mass[j] < 1.0]
        large = [j for j in range(D) if mass[j] >= 1.0]
        while small and large:
            poor, rich = small.pop(), large.pop()
            keep[row, poor], alias[row, poor] = mass[poor], rich
            mass[rich] -= 1.0 - mass[poor]
            (small if mass[rich] < 1.0 else large).append(rich)
    hits = np.asarray(maze.target_hit)
    target_of = np.where(hits.any(0), hits.argmax(0), -1)
    return {
        "p": p,
        "succ": succ,
        "keep": keep.ravel(),
        "keep_next": succ.ravel(),
        "alias_next": succ[np.arange(S)[:, None], alias].ravel(),
        "keep32": keep.ravel().astype(np.float32),
        "keep_next32": succ.ravel().astype(np.int32),
        "alias_next32": succ[np.arange(S)[:, None], alias].ravel().astype(np.int32),
        "cdf": np.cumsum(p, axis=1)[:, :-1],
        "target_of": target_of,
        "target_of32": target_of.astype(np.int32),
        "targets": hits.shape[0],
        "degree": D,
    }


def numpy_walks(tables, num, horizon, seed, method):
    """Vectorised numpy walk (32-bit state and uniforms); returns the total number of moves taken."""
    rng = np.random.default_rng(seed)
    D = tables["degree"]
    keep, keep_next, alias_next = tables["keep32"], tables["keep_next32"], tables["alias_next32"]
    cdf, succ, target_of = tables["cdf"], tables["succ"], tables["target_of32"]
    state = np.zeros(num, np.int32)
    goal = rng.integers(0, tables["targets"], num).astype(np.int32)
    total = 0
    for _ in range(horizon):
        total += state.size
        if method == "alias":
            x = rng.random(state.size, dtype=np.float32) * np.float32(D)
            slot = x.astype(np.int32)
            flat = state * D + slot
            state = np.where(x - slot < keep.take(flat), keep_next.take(flat), alias_next.take(flat))
        else:
            u = rng.random(state.size)
            slot = (u[:, None] >= cdf[state]).sum(1)
            state = succ[state, slot]
        hit = target_of.take(state) == goal
        if hit.any():
            state, goal = state[~hit], goal[~hit]
            if not state.size:
                break
    return total


def python_walks(tables, num, horizon, seed):
    """Pure-Python loop, one walk at a time; returns the total number of moves taken."""
    rand = random.Random(seed)
    D = tables["degree"]
    keep, keep_next, alias_next = (tables[k].tolist() for k in ("keep", "keep_next", "alias_next"))
    target_of = tables["target_of"].tolist()
    total = 0
    for _ in range(num):
        goal = rand.randrange(tables["targets"])
        state = 0
        for step in range(1, horizon + 1):
            x = rand.random() * D
            slot = int(x)
            flat = state * D + slot
            state = keep_next[flat] if x - slot < keep[flat] else alias_next[flat]
            if target_of[state] == goal:
                break
        total += step
    return total


# ----------------------------------------------------------------------------------------
# Timing


def timed(fn, repeats):
    """(median, min, max) seconds of ``repeats`` calls of ``fn`` and the last result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), min(times), max(times), result


def bench_jax(maze, logits, num, horizon, repeats, devices=None):
    """JAX rate (median, min, max steps/s) and compile seconds, the walks split over ``devices``."""
    run = jax.jit(
        lambda maze, logits, key: jnp.sum(simulate.sample_walks(maze, logits, key, num, horizon, devices=devices).length)
    )
    logits = jnp.asarray(logits)
    start = time.perf_counter()
    run(maze, logits, jax.random.key(0)).block_until_ready()
    first = time.perf_counter() - start
    steady, _, _, _ = timed(lambda: run(maze, logits, jax.random.key(1)).block_until_ready(), 1)
    keys = iter(range(2, 2 + repeats))
    med, lo, hi, steps = timed(lambda: int(run(maze, logits, jax.random.key(next(keys))).block_until_ready()), repeats)
    return steps / med, steps / hi, steps / lo, max(first - steady, 0.0)


def bench_numpy(tables, num, horizon, repeats, method):
    seeds = iter(range(repeats))
    med, lo, hi, steps = timed(lambda: numpy_walks(tables, num, horizon, next(seeds), method), repeats)
    return steps / med, steps / hi, steps / lo


def machine_line():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}, {len(jax.devices())} device(s)); "
        f"host: {cpu}, {os.cpu_count()} cores; python {platform.python_version()}, "
        f"jax {jax.__version__}, numpy {np.__version__}"
    )


def fmt_rate(rate, lo, hi):
    return f"{rate / 1e6:8.1f} [{lo / 1e6:.0f}-{hi / 1e6:.0f}]"


def main(args):
    if args.gpu and jax.default_backend() != "gpu":
        sys.exit(f"--gpu: no GPU available (JAX backend is {jax.default_backend()})")
    devices = jax.local_devices()[: args.devices or None]
    if args.devices and len(devices) < args.devices:
        sys.exit(f"--devices {args.devices}: only {len(devices)} device(s) available")
    repeats = args.repeats or (2 if args.quick else 5)
    mazes = args.mazes or ("3,3,2;15,15,5" if args.quick else "3,3,2;6,6,5;15,15,5")
    mazes = [tuple(int(v) for v in triple.split(",")) for triple in mazes.split(";")]
    batches = args.batches or ("1024,8192" if args.quick else "1024,8192,65536,1048576")
    batches = [int(b) for b in batches.split(",")]
    horizon = args.horizon
    print(machine_line())
    print(f"base policy, horizon {horizon} moves, uniformly drawn targets; rates in million edge-steps/s, "
          f"median [min-max] of {repeats} runs; 'N dev' = walks split over {len(devices)} device(s)")
    header = (f"{'maze':>10} {'batch':>8} | {'jax 1 dev':>18} {'jax N dev':>18} {'compile s':>9} | {'numpy-alias':>18} "
              f"{'numpy-cdf':>18} {'python':>8} | {'x alias':>11} {'x cdf':>11} {'x python':>9}")
    print(header)
    print("-" * len(header))
    for W, K, L in mazes:
        maze = mazejax.Maze(W, K, L)
        logits = mazejax.pretrained_logits(maze)
        tables = host_tables(maze, logits)
        py_rate = None
        for num in batches:
            one = bench_jax(maze, logits, num, horizon, repeats)
            split = bench_jax(maze, logits, num, horizon, repeats, devices) if num % len(devices) == 0 else one
            rate, lo, hi, compile_s = split
            row = f"{f'{W},{K},{L}':>10} {num:>8} | {fmt_rate(*one[:3]):>18} {fmt_rate(rate, lo, hi):>18} {compile_s:9.2f} |"
            alias = bench_numpy(tables, num, horizon, repeats, "alias") if num <= args.numpy_limit else None
            cdf = bench_numpy(tables, num, horizon, max(1, repeats // 2), "cdf") if num <= args.cdf_limit else None
            if py_rate is None:
                py_num = min(num, 1024)
                start = time.perf_counter()
                py_steps = python_walks(tables, py_num, horizon, 0)
                py_rate = py_steps / (time.perf_counter() - start)
            row += f" {fmt_rate(*alias) if alias else '-':>18} {fmt_rate(*cdf) if cdf else '-':>18} {py_rate / 1e6:8.2f} |"
            for base, width, digits in ((alias, 11, 1), (cdf, 11, 1), ((py_rate,), 9, 0)):
                ratio = f"{one[0] / base[0]:.{digits}f}/{rate / base[0]:.{digits}f}" if base else "-"
                row += f" {ratio:>{width}}"
            print(row, flush=True)


if __name__ == "__main__":
    main(ARGS)
