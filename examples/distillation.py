"""Paper's Theorem 5 (docs/model.md §4.4): distilling the RLVR model's search traces teaches backtracking.

Trains the teacher by exact RLVR (sign ascent, lr 0.01, 600 steps: the converged model), then
fine-tunes the pretrained model by cross-entropy on

* the teacher's sampled traces, every move included (failed branches, dead ends, retreats):
  :func:`mazejax.train.distill.distill`;
* golden paths only, the control (SFT, :func:`mazejax.train.sft.sft`) with the same optimizer,
  batch size and number of steps.

Records the exact H of both students along training. Writes distillation.csv (one row per
record) and distillation.png, and prints teacher H, student H, control H and the SFT limit.

    python examples/distillation.py --out out/distillation          # W, K, L = 6, 6, 5
"""

from __future__ import annotations

import argparse
import csv
import pathlib
import time

import jax
import numpy as np

import mazejax
from mazejax.train.distill import distill
from mazejax.train.rlvr import rlvr_exact
from mazejax.train.sft import sft, sft_limit

jax.config.update("jax_enable_x64", True)  # exact analysis is float64 (README, "Precision")


def write_csv(path: pathlib.Path, step, student, control, teacher: float, limit: float) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "student_hitting_time", "control_hitting_time", "teacher_hitting_time", "sft_limit"])
        for row in zip(step, student, control):
            writer.writerow([int(row[0]), repr(float(row[1])), repr(float(row[2])), repr(teacher), repr(limit)])


def plot(path: pathlib.Path, step, student, control, teacher: float, limit: float, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping", path)
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.semilogy(step, student, label="student: teacher's traces (all moves)")
    ax.semilogy(step, control, label="control: golden paths only (SFT)")
    ax.axhline(teacher, color="C0", ls="--", lw=1, label=f"teacher (exact RLVR) {teacher:.1f}")
    ax.axhline(limit, color="C1", ls="--", lw=1, label=f"SFT limit {limit:.4g}")
    ax.set(xlabel="fine-tuning step", ylabel="exact expected hitting time H", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/distillation"))
    parser.add_argument("--W", type=int, default=6)
    parser.add_argument("--K", type=int, default=6)
    parser.add_argument("--L", type=int, default=5)
    parser.add_argument("--teacher-steps", type=int, default=600)
    parser.add_argument("--steps", type=int, default=600, help="fine-tuning steps of student and control")
    parser.add_argument("--batch", type=int, default=32, help="traces (golden paths) per step")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    maze = mazejax.Maze(args.W, args.K, args.L)
    key = jax.random.key(args.seed)
    record_every = next(r for r in range(max(1, args.steps // 100), 0, -1) if args.steps % r == 0)  # ~100 records
    print(f"{maze}, device {jax.devices()[0]}")
    start = time.perf_counter()
    teacher = rlvr_exact(maze, steps=args.teacher_steps, lr=0.01, record_every=args.teacher_steps)
    H_teacher = float(teacher.hitting_time[-1])
    student = distill(maze, key, teacher.logits, steps=args.steps, num_traces=args.batch, record_every=record_every)
    control = sft(maze, key, steps=args.steps, batch_size=args.batch, record_every=record_every)
    step, H_student, H_control = (np.asarray(x) for x in (student.step, student.hitting_time, control.hitting_time))
    print(f"wall time (compile + run, teacher included): {time.perf_counter() - start:.1f} s")

    limit = float(mazejax.exact.hitting_time(maze, sft_limit(maze)))
    base = float(H_student[0])
    backtracker = 4 * args.W * args.K + 2 * args.W - 2 * args.K - 1
    print(f"base model H          {base:14.2f}")
    print(f"teacher H (RLVR)      {H_teacher:14.2f}   backtracker {backtracker}")
    print(f"student H (traces)    {H_student[-1]:14.2f}   {H_student[-1] / H_teacher - 1:+.2%} vs teacher")
    print(f"control H (golden)    {H_control[-1]:14.2f}   {H_control[-1] / limit - 1:+.2%} vs SFT limit")
    print(f"SFT limit H           {limit:14.2f}")

    write_csv(args.out / "distillation.csv", step, H_student, H_control, H_teacher, limit)
    plot(args.out / "distillation.png", step, H_student, H_control, H_teacher, limit,
         f"distillation, W={args.W}, K={args.K}, L={args.L}, {args.batch} traces/step")
    print("wrote", args.out / "distillation.csv", "and", args.out / "distillation.png")


if __name__ == "__main__":
    main()
