"""Walk throughput of the transformer policy against the tabular stepper, in the same run (CPU).

Moves per second (moves actually taken, summed over all walks) of the base model at (3,3,2) and
(6,6,5), walked to the target (horizon 10**6): ``mazejax.simulate.sample_walks`` (the tabular
stepper: alias tables on a pool of lanes), the tabular policy through the sequence-policy sampler
(``sample_sequences`` with ``TabularPolicy``: the cost of the generic loop alone) and the
transformer at init (``sample_sequences`` with the default ``TransformerPolicy``: key-value ring
cache, context 32, width 32, 1 layer). Timings follow a warm-up call, stop after
``block_until_ready``, are repeated (median, min-max spread); compilation is reported separately.

    python bench/transformer.py            # walks: 4096 tabular, 512 transformer
    python bench/transformer.py --quick
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

import mazejax
from mazejax.simulate.sequence import sample_sequences
from mazejax.transformer import TabularPolicy, init_transformer, transformer_policy

HORIZON = 10**6


def timed(fn, repeats: int):
    start = time.perf_counter()
    out = jax.block_until_ready(fn(0))
    compile_s = time.perf_counter() - start
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(fn(r + 1))
        times.append(time.perf_counter() - start)
    return out, compile_s, np.array(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer walks and repeats")
    args = parser.parse_args()
    repeats = 2 if args.quick else 3
    print(f"device: {jax.devices()[0]}; jax {jax.__version__}")
    print("| maze | policy | walks | moves/s (median) | spread | compile s | vs stepper |")
    print("|---|---|---|---|---|---|---|")
    for W, K, L in ((3, 3, 2), (6, 6, 5)):
        maze = mazejax.Maze(W, K, L)
        logits = mazejax.pretrained_logits(maze)
        neural = transformer_policy(maze)
        params = init_transformer(neural, jax.random.key(0), maze)
        n_tab, n_seq = (4096, 512) if not args.quick else (1024, 128)
        cases = [
            ("tabular stepper", n_tab, jax.jit(lambda k: mazejax.sample_walks(maze, logits, jax.random.key(k), n_tab,
                                                                              HORIZON).length)),
            ("tabular, sequence sampler", n_seq, jax.jit(lambda k: sample_sequences(
                TabularPolicy(), logits, maze, jax.random.key(k), n_seq, HORIZON).length)),
            ("transformer (KV cache)", n_seq, jax.jit(lambda k: sample_sequences(
                neural, params, maze, jax.random.key(k), n_seq, HORIZON).length)),
        ]
        stepper_rate = None
        for name, num, fn in cases:
            length, compile_s, times = timed(fn, repeats)
            moves = float(np.sum(np.asarray(length, np.float64)))
            rates = moves / times
            rate = float(np.median(rates))
            stepper_rate = stepper_rate or rate
            print(f"| ({W},{K},{L}) | {name} | {num} | {rate:.3g} | {rates.min():.3g}-{rates.max():.3g} | "
                  f"{compile_s:.1f} | {rate / stepper_rate:.2g}x |")


if __name__ == "__main__":
    main()
