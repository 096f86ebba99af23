"""Sampled RLVR at scale: many REINFORCE runs and PPO seeds as one vmapped program, end to end.

Workloads (default settings of each trainer, the paper's horizon rule unless said):

* REINFORCE, W=K=3, L=2, ``--runs`` (default 1024) runs vmapped over keys;
* PPO, W=K=6, L=5, ``--seeds`` (default 8) seeds vmapped over keys.

For each it prints compile and run time (after ``block_until_ready``), the converged fraction
(exact H of the final policy within 15% (REINFORCE) / 25% (PPO) of the backtracker), the moves the
trainer sampled (``result.extra["moves"]`` for REINFORCE: both passes of every step) and the
*training efficiency*: moves sampled per second of training over the stepper's peak rate in the same
process (plain walks at horizon 512 of the base policy, the same maze, as many walks as the
training samples per step times the runs; the best of 9 calls, the median printed beside it). Beside
it, REINFORCE's *batch peak*: the same walks as the training's batch (``--runs`` runs of 128 walks,
vmapped, each run with its own move table, split over the devices like the training), base policy,
horizon 512; the efficiency against it leaves out what the batch shape costs (per-run tables, a lane
per walk) and keeps what the training adds (short walks, counting, the exact H, the optimizer). The
breakdown times the pieces of one step alone, on the same batch: the exact H behind the horizon
rule, the walks, and the rest (gradient, optimizer).
Each breakdown is at the base policy and at the tabular backtracker (the start and the end of
training; REINFORCE's walks at the exact rule's horizon, twice the exact H). The REINFORCE workload
is run twice: with the exact-H horizon rule (the paper's) and with the horizon estimated from the
previous batch's walks (``horizon_rule="estimate"``).

    python bench/trainers.py
    python bench/trainers.py --quick      # 128 runs, 2 PPO seeds, fewer steps
    python bench/trainers.py --devices 1  # one XLA CPU device (default: one per core, the runs split over them)
    python bench/trainers.py --gpu

With several devices, the training runs and the peak's walks are split over them (``shard_map`` over
the runs; identical results: the sum of the final H is printed); the breakdown runs on one device.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument("--runs", type=int, default=1024, help="REINFORCE runs")
    parser.add_argument("--seeds", type=int, default=8, help="PPO seeds")
    parser.add_argument("--devices", type=int, default=None,
                        help="devices to split the runs over (default: one per CPU core; 1 with --gpu)")
    args = parser.parse_args()
    count = args.devices or (1 if args.gpu else os.cpu_count() or 1)
    if not args.gpu:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={count}".strip()
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from jax import lax
    from jax.sharding import NamedSharding, PartitionSpec

    jax.config.update("jax_enable_x64", True)
    from common import machine_line

    import mazejax as mj
    from mazejax.train import PPOConfig, PPOHParams, ReinforceConfig, ReinforceHParams, make_ppo, make_reinforce
    from mazejax.train.ppo import default_horizon
    from mazejax.train.reinforce import reinforce_gradient

    ppo_module = importlib.import_module("mazejax.train.ppo")  # mazejax.train.ppo is also the name of the function

    if args.gpu and jax.default_backend() != "gpu":
        raise SystemExit("--gpu: no GPU backend")
    runs = 128 if args.quick else args.runs
    seeds = 2 if args.quick else args.seeds
    devices = jax.local_devices()[:count]
    if len(devices) < count or runs % count or seeds % count:
        raise SystemExit(f"--devices {count}: need that many devices ({len(jax.local_devices())} here) dividing "
                         f"--runs {runs} and --seeds {seeds}")
    mesh = jax.make_mesh((count,), ("runs",), devices=devices)
    print(machine_line())
    print(f"training runs and peak walks split over {count} device(s); breakdowns on one")

    def timed(fn, *a, reps=5):
        """Median seconds of ``reps`` calls after a warm-up (single calls here vary up to 2x)."""
        jax.block_until_ready(fn(*a))
        seconds = []
        for _ in range(reps):
            start = time.perf_counter()
            jax.block_until_ready(fn(*a))
            seconds.append(time.perf_counter() - start)
        return float(np.median(seconds))

    def peak_rate(maze, walks, reps=9):
        """The stepper's own moves/s: base policy, horizon 512, ``walks`` walks: the best and the median
        of ``reps`` timed calls (on a 2-core CPU single calls range over 2x, as XLA's threads compete)."""
        base = mj.pretrained_logits(maze)
        run = lambda key: mj.sample_walks(maze, base, key, walks, 512, devices=devices).length  # noqa: E731
        return rates(run, jax.random.key(1), reps=reps)

    def rates(run, *args, reps):
        """The best and the median moves/s of ``reps`` timed calls of ``run`` (which returns walk lengths)."""
        moves = int(np.asarray(run(*args), np.int64).sum())
        per_call = [moves / timed(run, *args, reps=1) for _ in range(reps)]
        return max(per_call), float(np.median(per_call))

    def batch_peak_rate(maze, keys, reps=9):
        """:func:`peak_rate` on the training's batch: ``len(keys)`` runs of 128 walks, vmapped (a move table per
        run), split over the devices like the training runs."""
        base = jnp.broadcast_to(mj.pretrained_logits(maze), (len(keys),) + maze.successors.shape)
        split = PartitionSpec("runs")
        walks = jax.vmap(lambda logits, key: mj.sample_walks(maze, logits, key, 128, 512).length)
        run = jax.jit(jax.shard_map(walks, mesh=mesh, in_specs=(split, split), out_specs=split, check_vma=False))
        return rates(run, *jax.device_put((base, keys), NamedSharding(mesh, split)), reps=reps)

    def train_run(train, keys, hparams, maze):
        init = mj.pretrained_logits(maze)
        batched = jax.vmap(train, in_axes=(0, None, None, None))
        replicated, split = PartitionSpec(), PartitionSpec("runs")
        fn = jax.jit(jax.shard_map(batched, mesh=mesh, in_specs=(split, replicated, replicated, replicated),
                                   out_specs=split, check_vma=False))
        keys = jax.device_put(keys, NamedSharding(mesh, split))
        hparams, maze, init = jax.device_put((hparams, maze, init), NamedSharding(mesh, replicated))
        start = time.perf_counter()
        compiled = fn.lower(keys, hparams, maze, init).compile()
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        result = jax.block_until_ready(compiled(keys, hparams, maze, init))
        return result, compile_s, time.perf_counter() - start

    # ---------------------------------------------------------------------------------------
    maze = mj.Maze(3, 3, 2)
    keys = jax.random.split(jax.random.key(0), runs)
    steps = 100 if args.quick else ReinforceConfig().steps
    print(f"\nREINFORCE, (3,3,2), {runs} runs x {steps} steps, {ReinforceConfig().num_rollouts} walks per step")
    H_of = jax.jit(jax.vmap(lambda l: mj.exact.hitting_time(maze, l)))
    grad_of = jax.jit(jax.vmap(lambda l, k, h: reinforce_gradient(maze, l, k, 128, h, 0.01)[0], in_axes=(0, 0, None)))
    # the first pass as reinforce_gradient runs it: the counting kernel with zero weights (not the plain walk's kernel)
    walks_of = jax.jit(jax.vmap(lambda l, k, h: mj.sample_walks(maze, l, k, 128, h, counts=True,
                                                                weights=jnp.zeros(128)).length, in_axes=(0, 0, None)))
    peak, median = peak_rate(maze, runs * 128)  # first: on a quiet process
    print(f"stepper peak (horizon 512, {runs * 128} walks): {peak / 1e6:.0f} M moves/s (best of 9 calls; "
          f"median {median / 1e6:.0f})")
    batch_peak, batch_median = batch_peak_rate(maze, keys)
    print(f"batch peak (horizon 512, {runs} runs x 128 walks, a move table per run): {batch_peak / 1e6:.0f} M moves/s "
          f"(best of 9 calls; median {batch_median / 1e6:.0f})")
    for name, policy in (("base policy", mj.pretrained_logits(maze)), ("backtracker", mj.backtracker_logits(maze))):
        logits = jnp.broadcast_to(policy, (runs,) + policy.shape)
        horizon = jnp.int32(np.ceil(2 * float(mj.exact.hitting_time(maze, policy))))  # the exact rule's
        t_H, t_grad, t_walk = timed(H_of, logits), timed(grad_of, logits, keys, horizon), timed(walks_of, logits, keys, horizon)
        moves = float(np.asarray(walks_of(logits, keys, horizon), np.int64).sum())
        print(f"one step at the {name} (horizon {int(horizon)}), all runs: exact H {t_H * 1e3:.0f} ms, walks for the "
              f"advantages {t_walk * 1e3:.0f} ms ({moves / t_walk / 1e6:.0f} M moves/s), weighted-count walks and "
              f"gradient {(t_grad - t_walk) * 1e3:.0f} ms")
    for rule in ("exact", "estimate"):
        config = ReinforceConfig(steps=steps, horizon_rule=rule)
        result, compile_s, run_s = train_run(make_reinforce(config), keys, ReinforceHParams.create(), maze)
        H = np.asarray(result.hitting_time)[:, -1]
        moves = float(np.asarray(result.extra["moves"])[:, -1].sum())
        print(f"  horizon rule {rule:<8}: compile {compile_s:5.1f} s, run {run_s:6.1f} s, end to end "
              f"{compile_s + run_s:6.1f} s; H <= 1.15 x 35 in {np.mean(H <= 1.15 * 35):.3f} of runs (median "
              f"{np.median(H):.2f}, sum {H.sum():.6f}); moves sampled {moves:.3g}, {moves / run_s / 1e6:.0f} M/s = {moves / run_s / peak:.2f} "
              f"of the peak ({moves / run_s / batch_peak:.2f} of the batch peak)")

    # ---------------------------------------------------------------------------------------
    maze = mj.Maze(6, 6, 5)
    keys = jax.random.split(jax.random.key(0), seeds)
    horizon = default_horizon(maze, mj.pretrained_logits(maze), 2.0)
    config = PPOConfig(steps=50 if args.quick else PPOConfig().steps, horizon=horizon)
    print(f"\nPPO, (6,6,5), {seeds} seeds x {config.steps} iterations, {config.num_rollouts} walks per iteration, "
          f"buffer {horizon} moves")
    n = config.num_rollouts
    for name, policy in (("base policy", mj.pretrained_logits(maze)), ("backtracker", mj.backtracker_logits(maze))):
        logits = jnp.broadcast_to(policy, (seeds,) + policy.shape)
        scaled = int(np.ceil(2 * float(mj.exact.hitting_time(maze, policy))))
        collect = jax.jit(jax.vmap(lambda l, k: ppo_module.collect(maze, l, k, n, scaled, horizon)))
        rollouts = collect(logits, keys)
        critic = jnp.zeros((seeds, maze.capacity.targets, maze.capacity.states), jnp.float32)
        passes = jax.jit(jax.vmap(lambda r, c: ppo_module._train_pass(maze, r, c, 0.01, 0.95)))
        _, positive, negative = passes(rollouts, critic)
        size = n // config.minibatches

        def updates(l, pos, neg, key):
            old, tx = mj.log_probabilities(maze, l), optax.adam(0.03)

            def update(carry, walks):
                l, state = carry
                grad = ppo_module.clipped_surrogate_gradient(maze, l, old, *ppo_module.minibatch_counts(pos, neg, walks),
                                                             0.2, size)
                step, state = tx.update(-grad, state)
                return (l + step, state), None

            orders = jax.vmap(lambda k: jax.random.permutation(k, n).reshape(-1, size))(jax.random.split(key, config.epochs))
            return lax.scan(update, (l, tx.init(l)), orders.reshape(-1, size))[0][0]

        t_H = timed(jax.jit(jax.vmap(lambda l: mj.exact.hitting_time(maze, l))), logits)
        t_walks, t_pass = timed(collect, logits, keys), timed(passes, rollouts, critic)
        t_update = timed(jax.jit(jax.vmap(updates)), logits, positive, negative, keys)
        print(f"one iteration at the {name} (horizon {scaled}), all seeds: exact H {t_H * 1e3:.0f} ms, recorded walks "
              f"{t_walks * 1e3:.0f} ms, passes (GAE, critic, signed counts) {t_pass * 1e3:.0f} ms, "
              f"{config.epochs * config.minibatches} minibatch updates {t_update * 1e3:.0f} ms")
    result, compile_s, run_s = train_run(make_ppo(config), keys, PPOHParams.create(), maze)
    H = np.asarray(result.hitting_time)[:, -1]
    print(f"  compile {compile_s:.1f} s, run {run_s:.1f} s, end to end {compile_s + run_s:.1f} s; H <= 1.25 x 143 in "
          f"{np.mean(H <= 1.25 * 143):.3f} of seeds (median {np.median(H):.1f}, sum {H.sum():.6f})")


if __name__ == "__main__":
    main()
