"""Time per exact H + gradient: mazejax's chain solver against a dense numpy baseline.

The numpy baseline is what a user would otherwise write: for each target, one float64 LU solve
of ``(I - Q) h = 1`` and one of ``(I - Q)^T d = e_s0``, and the gradient by the occupancy formula
of docs/model.md §4.2. Both are also scored for accuracy at the SFT limit against docs/model.md §3 recurrence.

    python bench/exact.py            # (6,6,5) and (15,15,5)
    python bench/exact.py --quick    # fewer repeats
    python bench/exact.py --gpu      # mazejax on the GPU
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

if __name__ == "__main__" and "--gpu" not in sys.argv:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_enable_x64", True)  # exact analysis is float64 (README, "Precision")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line, spread, time_call  # noqa: E402

import mazejax as mj  # noqa: E402
from mazejax import exact, reference  # noqa: E402


def numpy_hitting_time_and_gradient(successors, valid, target_hit, logits):
    """Dense numpy reference: H (mean over targets) and dH/dlogits [S, D], float64."""
    S, D = valid.shape
    z = np.where(valid, logits, -np.inf)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    pi = z / z.sum(axis=1, keepdims=True)
    P = np.zeros((S, S))
    np.add.at(P, (np.repeat(np.arange(S), D), successors.ravel()), pi.ravel())
    H, grad = 0.0, np.zeros((S, D))
    for hit in target_hit:
        Q = np.where(hit[:, None], 0.0, P)
        A = np.eye(S) - Q
        h = np.linalg.solve(A, (~hit).astype(float))
        start = np.zeros(S)
        start[0] = 1.0
        d = np.linalg.solve(A.T, start) * ~hit
        h_next = h[successors]
        h_bar = np.sum(pi * h_next, axis=1, keepdims=True)
        H += h[0]
        grad += d[:, None] * pi * (h_next - h_bar)
    n = len(target_hit)
    return H / n, np.where(valid, grad / n, 0.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--gpu", action="store_true", help="time mazejax on the GPU (numpy stays on the CPU)")
    args = parser.parse_args()
    if args.gpu and jax.default_backend() != "gpu":
        raise SystemExit("--gpu: no GPU backend")
    repeats, numpy_repeats = (5, 1) if args.quick else (30, 3)
    print(machine_line())
    print(f"{'W,K,L':>10} {'states':>6} | {'compile s':>9} {'mazejax ms [min-max]':>24} | "
          f"{'numpy ms [min-max]':>26} | {'speed-up':>8} | {'SFT rel.err mazejax':>19} {'numpy':>9}")
    for W, K, L in [(6, 6, 5), (15, 15, 5)]:
        maze = mj.Maze(W, K, L)
        value_and_grad = jax.jit(jax.value_and_grad(exact.hitting_time, argnums=1))
        base = mj.pretrained_logits(maze, jnp.float64)
        compile_s, times = time_call(value_and_grad, maze, base, repeats=repeats)
        sft = mj.typed_logits(maze, 1.0, L / (L + 1), 1.0, 1 / (L + 1), dtype=jnp.float64)
        H_sft = float(value_and_grad(maze, sft)[0])
        arrays = (np.asarray(maze.successors), np.asarray(maze.valid), np.asarray(maze.target_hit))
        _, np_times = time_call(numpy_hitting_time_and_gradient, *arrays, np.asarray(base), repeats=numpy_repeats)
        np_H_sft = numpy_hitting_time_and_gradient(*arrays, np.asarray(sft))[0]
        truth = float(reference.sft_limit_hitting_time(W, K, L))
        print(
            f"{W:>4},{K},{L} {maze.num_states:>6} | {compile_s:>9.2f} {spread(times):>24} | "
            f"{spread(np_times):>26} | {np.median(np_times) / np.median(times):>7.0f}x | "
            f"{abs(H_sft / truth - 1):>19.1e} {abs(np_H_sft / truth - 1):>9.1e}"
        )


if __name__ == "__main__":
    main()
