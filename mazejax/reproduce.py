"""``mazejax reproduce``: every claim of the paper, measured, in one report folder.

Each experiment returns a section of the report: the claim, the expected value with its source,
the number measured here, whether they agree, and its figure. Expected values say where they come
from: "paper" only for what the paper itself states, "reference" for exact values computed by
:mod:`mazejax.reference` and the exact solvers, "theory" for asymptotic rates. The default sizes run
on a laptop CPU in a few minutes; ``full=True`` uses the paper's sizes (a GPU is recommended).
Results land in ``OUT/report.md`` with CSV tables and PNG figures beside it, written as each
experiment finishes.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from mazejax import exact, reference, report, scaling, simulate, sweep
from mazejax.maze import Maze
from mazejax.policy import backtracker_logits, pretrained_logits, sft_limit_logits
from mazejax.sweep.store import write_csv
from mazejax.train import (
    DistillConfig,
    backward_supervision_ablation,
    distill,
    ppo,
    reinforce,
    rlvr_exact,
    rlvr_symmetric,
    sft,
    sft_exact,
)

#: docs/model.md §4.2: the reference exact RLVR trajectory at W = K = 15, L = 5, lr = 0.01.
RLVR_TRAJECTORY = {0: 50141, 50: 20239, 100: 8951, 150: 4177, 200: 2172, 300: 1077, 400: 923, 500: 902, 600: 899.44}


@dataclasses.dataclass
class Section:
    """One claim of the paper with the measurement that tests it."""

    title: str
    claim: str
    rows: list  # [(quantity, expected (with its source), measured, agrees: bool or None)]
    notes: str = ""
    figures: list = dataclasses.field(default_factory=list)  # PNG paths written by the experiment
    seconds: float = 0.0

    def markdown(self, folder: Path) -> str:
        lines = [f"## {self.title}", "", f"*Claim:* {self.claim}", "",
                 "| quantity | expected | measured here | agrees |", "|---|---|---|---|"]
        for quantity, expected, measured, agrees in self.rows:
            mark = "yes" if agrees else "**no**" if agrees is not None else "-"
            lines.append(f"| {quantity} | {expected} | {measured} | {mark} |")
        if self.notes:
            lines += ["", self.notes]
        for figure in self.figures:
            lines += ["", f"![{self.title}]({Path(figure).relative_to(folder).as_posix()})"]
        lines += ["", f"_{self.seconds:.1f} s_", ""]
        return "\n".join(lines)


def _draw(name: str, *args, **kwargs) -> list[Path]:
    """``[mazejax.figures.<name>(*args, **kwargs)]``, or ``[]`` without matplotlib (an optional extra)."""
    try:
        from mazejax import figures
    except ImportError:
        return []
    return [getattr(figures, name)(*args, **kwargs)]


def _close(measured: float, paper: float, rel: float) -> bool:
    return abs(measured / paper - 1) <= rel


def reference_values(full: bool, out: Path) -> Section:
    rows = []
    for W, K, L, paper in [(3, 3, 2, 275), (4, 3, 3, 455), (6, 6, 5, 3337.4), (15, 15, 5, 50141)]:
        maze = Maze(W, K, L)
        H = float(exact.hitting_time(maze, pretrained_logits(maze)))
        rows.append((f"base H, (W,K,L)=({W},{K},{L})", f"reference {paper:g}", f"{H:.10g}", _close(H, paper, 1e-9)))
    for W, K, L, paper in [(6, 6, 5, 143), (15, 15, 5, 899)]:
        maze = Maze(W, K, L)
        H = float(exact.hitting_time(maze, backtracker_logits(maze)))
        rows.append((f"backtracker H, ({W},{K},{L})", f"reference {paper:g} (paper: about 4WK = {4 * W * K})", f"{H:.10g}",
                     _close(H, paper, 1e-9)))
    return Section("Reference values (docs/model.md §3)", "closed forms for the base model and the efficient backtracker", rows)


def sft_limit_table(full: bool, out: Path) -> Section:
    rows_out = scaling.exact_table([6], list(range(1, 7)), [1, 2, 3, 4, 5])
    write_csv(out / "fig5_left_sft_limit.csv", rows_out)
    rows = []
    for row in rows_out:
        if row["K"] == 6:
            paper = float(reference.sft_limit_hitting_time(6, 6, row["L"]))
            rows.append((f"SFT-limit H, W=6, K=6, L={row['L']}", f"reference {paper:.10g}", f"{row['sft_limit']:.10g}",
                         _close(row["sft_limit"], paper, 1e-9)))
    for (W, L), factors in sorted(scaling.growth_per_depth(rows_out, "sft_limit").items()):
        theory = float(reference.sft_growth_factor(L))
        rows.append((f"growth per depth, W={W}, L={L} (K=5->6)", f"theory (L+1)^2/L = {theory:.4g}", f"{factors[-1]:.4g}",
                     _close(factors[-1], theory, 0.01)))
    maze = Maze(15, 15, 5)
    H = float(exact.hitting_time(maze, sft_limit_logits(maze)))
    rows.append(("SFT-limit H at W=K=15, L=5", "reference 4.3184482490980e14", f"{H:.13e}",
                 _close(H, 4.3184482490980e14, 1e-9)))
    return Section("Theorem 2 / Fig. 5 (left): the SFT limit is exponential in depth",
                   "H_SFT grows like W((L+1)^2/L)^K, exponential in K even for L = 1", rows,
                   notes="Full table: `fig5_left_sft_limit.csv`.",
                   figures=_draw("sft_limit_vs_depth", rows_out, out / "fig5_left_sft_limit.png"))


def sft_training(full: bool, out: Path) -> Section:
    W = K = 6
    L = 5
    maze = Maze(W, K, L)
    steps = 2000 if full else 500
    result = sft_exact(maze, steps=steps, lr=0.1, record_every=steps // 10, init_logits=pretrained_logits(maze, jnp.float64))
    types = {k: np.asarray(v[-1]) for k, v in result.types.items()}
    limit = float(reference.sft_limit_hitting_time(W, K, L))
    H = float(result.hitting_time[-1])
    rows = [
        ("min over depths of a, c after SFT", "paper: -> 1", f"{min(types['a'].min(), types['c'].min()):.6f}", None),
        ("max deviation of b, d from L/(L+1), 1/(L+1)", "paper: 0 (backward rows never move)",
         f"{max(np.abs(types['b'] - L / (L + 1)).max(), np.abs(types['d'] - 1 / (L + 1)).max()):.1e}",
         bool(max(np.abs(types['b'] - L / (L + 1)).max(), np.abs(types['d'] - 1 / (L + 1)).max()) <= 1e-12)),
        (f"H after {steps} exact SFT steps (Adam, lr 0.1), (6,6,5)", f"reference: -> SFT limit {limit:.10g}", f"{H:.10g}",
         _close(H, limit, 0.05)),
    ]
    steps_axis = np.asarray(result.step)
    return Section("Theorem 2: SFT on golden paths never learns to retreat",
                   "a, c -> 1 while b, d stay at their base values; H tends to the SFT limit", rows,
                   figures=_draw("type_probabilities", steps_axis, {k: np.asarray(v) for k, v in result.types.items()},
                                 out / "thm2_sft_types.png", f"Exact SFT on golden paths, W=K=6, L=5 ({steps} Adam steps)",
                                 L=L))


def rlvr_trajectory(full: bool, out: Path) -> Section:
    maze = Maze(15, 15, 5)
    result = rlvr_symmetric(maze, steps=600, lr=0.01)  # the full trainer's trajectory (tested), O(K) per step
    H = np.asarray(result.hitting_time)
    types = {k: np.asarray(v) for k, v in result.types.items()}  # [steps + 1, depths]
    write_csv(out / "fig3_rlvr_trajectory.csv", [{"step": s, "hitting_time": float(H[s]),
                                                  **{k: float(v[s].mean()) for k, v in types.items()}} for s in range(len(H))])
    rows = [(f"H at step {s}", f"reference {value:g}", f"{H[s]:.6g}", _close(H[s], value, 1e-3))
            for s, value in RLVR_TRAJECTORY.items()]
    final = {k: float(v[-1].min()) for k, v in types.items()}
    rows.append(("min over depths of a, b, c, d at step 600", "paper: -> 1", ", ".join(f"{final[k]:.4f}" for k in "abcd"),
                 all(v > 0.99 for v in final.values())))
    steps = np.asarray(result.step)
    figures = _draw("rlvr_trajectory", steps, H, RLVR_TRAJECTORY, out / "fig3_rlvr_trajectory.png",
                    "Fig. 3: exact-gradient RLVR (sign ascent, lr 0.01) on W=K=15, L=5", sizes=(15, 15, 5))
    figures += _draw("type_probabilities", steps, types, out / "fig4_type_probabilities.png",
                     "Fig. 4: type probabilities over exact RLVR, W=K=15, L=5", L=5)
    return Section("Theorem 3 / Figs. 3-4: exact RLVR learns to backtrack (W=K=15, L=5, sign ascent, lr 0.01)",
                   "H falls from 50141 to about 4WK = 900; a, b, c, d all tend to 1", rows,
                   notes="Trajectory: `fig3_rlvr_trajectory.csv`.", figures=figures)


def ablation(full: bool, out: Path) -> Section:
    maze = Maze(6, 6, 5)
    result = backward_supervision_ablation(maze, jax.random.key(0), draws=100)
    mean = np.asarray(result.mean_hitting_time)
    write_csv(out / "fig5_right_ablation.csv", [{"p": float(p), "mean_H": float(h)} for p, h in zip(result.fraction, mean)])
    rows = [
        ("H at p = 0", "paper: 2.97e6 (reference SFT limit 2966043.18944)", f"{mean[0]:.6g}", _close(mean[0], 2966043.18944, 1e-9)),
        ("H at p = 1", "paper: 143 (the backtracker)", f"{mean[-1]:.6g}", _close(mean[-1], 143, 1e-9)),
        ("mean H decreasing in p", "paper: yes", "yes" if np.all(np.diff(mean) <= 0) else "no", bool(np.all(np.diff(mean) <= 0))),
    ]
    curve = ", ".join(f"{p:.1f}: {h:.3g}" for p, h in zip(result.fraction, mean))
    return Section("Fig. 5 (right): supervising backward states", "H falls from the SFT value to 143 as the supervised "
                   "fraction p of backward state types grows (W=K=6, L=5, 100 draws)", rows, notes=f"Mean H by p: {curve}.",
                   figures=_draw("ablation", result.fraction, mean, np.asarray(result.hitting_time),
                                 out / "fig5_right_ablation.png", sizes=(6, 6, 5)))


def search_scaffold(full: bool, out: Path) -> Section:
    W, K = (6, 6) if full else (4, 4)
    num = 20000 if full else 4000
    rows, table = [], []
    for L in (1, 2, 5, 8):
        maze = Maze(W, K, L)
        for policy, make in (("sft_limit", sft_limit_logits), ("backtracker", backtracker_logits)):
            logits = make(maze)
            walks = simulate.search_walks(maze, logits, jax.random.key(L), num, 10**7, "aggregate")
            cost = np.asarray(walks.length, np.float64)
            mean, stderr = cost.mean(), cost.std(ddof=1) / np.sqrt(num)
            theory = float(reference.scaffold_cost(W, K, L, policy))
            plain = float(exact.hitting_time(maze, logits))
            table.append({"W": W, "K": K, "L": L, "policy": policy, "no_scaffold_exact": plain,
                          "scaffold_mean": mean, "scaffold_stderr": stderr, "scaffold_theory": theory})
            rows.append((f"{policy}, L={L}: scaffold cost (no scaffold: {plain:.4g})", f"reference {theory:.4g}",
                         f"{mean:.4g} +- {stderr:.2g}", bool(walks.success.all()) and abs(mean - theory) <= 4 * stderr))
    write_csv(out / "corollary1_search_scaffold.csv", table)
    return Section(f"Corollary 1: an inference-time search scaffold (W={W}, K={K}, aggregate semantics, {num} walks)",
                   "with the scaffold the SFT model costs about W*K*L, the RLVR model about W*K (independent of L)",
                   rows, notes="Reference: the closed forms of `mazejax.reference.scaffold_cost`; agreement "
                   "means within 4 standard errors. Table: `corollary1_search_scaffold.csv`.",
                   figures=_draw("scaffold", table, out / "corollary1_search_scaffold.png"))


def distillation(full: bool, out: Path) -> Section:
    maze = Maze(6, 6, 5)
    teacher = rlvr_exact(maze, steps=600, lr=0.01, record_every=600)
    H_teacher = float(teacher.hitting_time[-1])
    student = distill(maze, jax.random.key(0), teacher.logits)
    budget = DistillConfig()  # the control gets the student's budget
    control = sft(maze, jax.random.key(0), steps=budget.steps, batch_size=budget.num_traces)
    H_student, H_control = float(student.hitting_time[-1]), float(control.hitting_time[-1])
    limit = float(reference.sft_limit_hitting_time(6, 6, 5))
    rows = [("teacher (exact RLVR, 600 steps) H", "paper: about 4WK = 144", f"{H_teacher:.6g}", _close(H_teacher, 143, 0.05)),
            ("student distilled on teacher traces: H", "paper: about the teacher's (within 5%)", f"{H_student:.6g}",
             _close(H_student, H_teacher, 0.05)),
            ("control trained on golden paths only: H", f"reference SFT limit {limit:.6g}", f"{H_control:.6g}",
             _close(H_control, limit, 0.05))]
    return Section("Theorem 5: distilling RLVR traces teaches backtracking (W=K=6, L=5)",
                   "a student fine-tuned on the RLVR model's traces (retreats included) reaches the efficient "
                   "regime; golden paths alone do not", rows)


def sampled_rlvr(full: bool, out: Path) -> Section:
    seeds = 32 if full else 8
    keys = jax.random.split(jax.random.key(0), seeds)
    target = 1.15 * 35
    rows, table, curves = [], [], {}
    maze = Maze(3, 3, 2)
    for name, method in (("reinforce", reinforce), ("ppo", ppo)):
        result = jax.vmap(lambda k: method(maze, k))(keys)
        steps, curve = np.asarray(result.step[0]), np.asarray(result.hitting_time)
        curves[name] = dict(enumerate(curve))
        H = curve[:, -1]
        table += [{"method": name, "seed": i, "step": int(t), "hitting_time": float(h)}
                  for i in range(seeds) for t, h in zip(steps, curve[i])]
        rows.append((f"{name}, (3,3,2), {seeds} seeds: runs with H <= 1.15 x 35", "paper: most runs",
                     f"{int(np.sum(H <= target))}/{seeds} (median H {np.median(H):.4g})", bool(np.mean(H <= target) >= 0.9)))
    write_csv(out / "sampled_rlvr.csv", table)
    return Section("Sampled RLVR: REINFORCE and PPO with default settings",
                   "outcome reward with a length penalty, from sampled rollouts, also learns to backtrack "
                   "(horizon twice the current H, as the paper's PPO)", rows,
                   notes="Curves: the exact H of each seed's policy during training (`sampled_rlvr.csv`).",
                   figures=_draw("per_seed_curves", steps, curves, {"backtracker (tabular) = 35": 35.0},
                                 out / "sampled_rlvr.png", f"REINFORCE and PPO on W=K=3, L=2, {seeds} seeds each "
                                 "(exact H of the policy)", ylabel="exact H of the policy"))


def heterogeneous(full: bool, out: Path) -> Section:
    maze = Maze(branch_K=(6, 5, 4, 3, 3), L=5)
    base = float(exact.hitting_time(maze, pretrained_logits(maze)))
    sft = float(exact.hitting_time(maze, sft_limit_logits(maze)))
    bt = float(exact.hitting_time(maze, backtracker_logits(maze)))
    trained = rlvr_exact(maze, steps=600, lr=0.01, record_every=10)
    rl = float(trained.hitting_time[-1])
    rows = [("base H", "-", f"{base:.6g}", None), ("SFT-limit H", "-", f"{sft:.6g}", None),
            ("backtracker H", "-", f"{bt:.6g}", None),
            ("exact RLVR (600 steps) H", "paper: close to the backtracker", f"{rl:.6g}", _close(rl, bt, 0.05))]
    values = {"base": base, "SFT limit": sft, "backtracker": bt, "rlvr_exact": rl}
    return Section("Fig. 8: heterogeneous depths K = (6, 5, 4, 3, 3), L = 5",
                   "the gap persists with branches of different depths; RLVR still learns to backtrack", rows,
                   figures=_draw("heterogeneous", values, out / "fig8_heterogeneous.png", branch_K=(6, 5, 4, 3, 3), L=5,
                                 steps=np.asarray(trained.step), hitting_time=np.asarray(trained.hitting_time)))


def scaling_sweep(full: bool, out: Path) -> Section:
    config = {
        "W": [2, 4, 8] if full else [2, 4], "K": [1, 2, 3, 4, 5, 6] if full else [1, 2, 3, 4], "L": [2, 5],
        "seeds": 1, "methods": ["base", "sft_exact", "rlvr_symmetric"],
        "sft_exact": {"steps": 500, "record_every": 10}, "rlvr_symmetric": {"steps": 600, "record_every": 10},
    }
    spec = sweep.parse_spec(config)
    table = sweep.run_sweep(spec, out / "sweep", progress=False, tables=False)
    markdown = report.write_tables(table, out / "sweep")
    rows = []
    for row in report.growth_table(sweep.read_runs(table)):
        if row["method"] == "sft_exact":
            rows.append((f"SFT growth per depth, W={row['W']}, L={row['L']}", f"theory (L+1)^2/L = {row['theory']:.3g}",
                         f"{row['growth']:.3g} [{row['ci_low']:.3g}, {row['ci_high']:.3g}]",
                         row["ci_low"] <= row["theory"] * 1.05 and row["ci_high"] >= row["theory"] * 0.95))
    for row in report.slope_table(sweep.read_runs(table), ("rlvr_symmetric",), lambda W, K, L: W * K, "W*K", 4.0):
        rows.append(("RLVR slope of H against W*K", "paper: 4 (H about 4WK)", f"{row['slope']:.3g} +- {row['ci']:.2g}",
                     abs(row["slope"] - 4) <= max(row["ci"], 0.2)))
    return Section("Scaling sweep: SFT exponential in K, RLVR linear in W*K",
                   "H_SFT ~ W((L+1)^2/L)^K against H_RLVR ~ 4WK", rows,
                   notes="Tables: `sweep/tables/`, plots: `sweep/plots/`.\n\n" + markdown,
                   figures=sorted((out / "sweep" / "plots").glob("*.png")))


EXPERIMENTS: dict[str, Callable[[bool, Path], Section]] = {
    "reference": reference_values,
    "sft_limit": sft_limit_table,
    "sft_training": sft_training,
    "rlvr_exact": rlvr_trajectory,
    "ablation": ablation,
    "search": search_scaffold,
    "distillation": distillation,
    "sampled_rlvr": sampled_rlvr,
    "heterogeneous": heterogeneous,
    "scaling": scaling_sweep,
}


def reproduce(out, full: bool = False, only: list[str] | None = None, stream=sys.stdout) -> Path:
    """Run the experiments (all, or those named in ``only``) and write ``out/report.md``."""
    names = [n for n in EXPERIMENTS if n not in OPT_IN] if not only else only
    for name in names:
        if name not in EXPERIMENTS:
            raise ValueError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sections, start = [], time.perf_counter()
    header = (f"# mazejax reproduction report ({'paper sizes' if full else 'CPU-sized default'})\n\n"
              f"Devices: {', '.join(str(d) for d in jax.devices())}; jax {jax.__version__}.\n")
    for name in names:
        t = time.perf_counter()
        section = EXPERIMENTS[name](full, out)
        section.seconds = time.perf_counter() - t
        sections.append(section)
        agree = sum(1 for r in section.rows if r[3])
        checked = sum(1 for r in section.rows if r[3] is not None)
        stream.write(f"[{name}] {section.title}: {agree}/{checked} checks agree ({section.seconds:.1f} s)\n")
        stream.flush()
        (out / "report.md").write_text(header + "\n" + "\n".join(s.markdown(out) for s in sections))
    summary = {s.title: [list(map(str, r)) for r in s.rows] for s in sections}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    stream.write(f"wrote {out / 'report.md'} in {time.perf_counter() - start:.0f} s\n")
    return out / "report.md"


__all__ = ["EXPERIMENTS", "Section", "reproduce"]


def transformer(full: bool, out: Path) -> Section:
    """Fig. 7: a one-layer transformer over the walk (REINFORCE, SFT on golden paths and on DFS traces)."""
    from mazejax.train.neural import empirical_types, evaluate_seeds, reinforce_seeds, sft_seeds

    W, K, L = (6, 6, 5) if full else (3, 3, 2)
    maze = Maze(W, K, L)
    seeds, steps, num = (8, 1500, 2048) if full else (4, 200, 1024)
    options = {"horizon": 4096, "context": 128} if full else {}
    eval_horizon = 20000 if full else 2000
    backtracker, dfs = 4 * W * K + 2 * W - 2 * K - 1, W * (2 * K + 1)
    result, config = reinforce_seeds(maze, jax.random.key(0), seeds, steps=steps, **options)
    H, se, _, _ = evaluate_seeds(config, maze, result.params, jax.random.key(1), num, eval_horizon)
    curve, curve_se = np.asarray(result.mean_length), np.asarray(result.stderr)
    write_csv(out / "fig7_transformer_rlvr.csv", [{"seed": i, "step": t, "mean_length": float(curve[i, t]),
                                                   "stderr": float(curve_se[i, t])}
                                                  for i in range(seeds) for t in range(steps)])
    per_seed = ", ".join(f"{h:.1f} +- {1.96 * s:.1f}" for h, s in zip(H, se))
    rows = [(f"REINFORCE, {seeds} seeds x {steps} steps: seeds with Monte Carlo H <= 1.05 x {backtracker}",
             "paper: converges to about 4WK, slightly better than the bigram", f"{int(np.sum(H <= 1.05 * backtracker))}/"
             f"{seeds} (H per seed, 95%: {per_seed})", bool(np.mean(H <= 1.05 * backtracker) >= 0.75)),
            ("best seed's H against the DFS bound W(2K+1)", f"bound {dfs} (tabular backtracker {backtracker})",
             f"{H.min():.2f} +- {1.96 * se[np.argmin(H)]:.2f}", None)]
    for data, name in (("golden", "golden paths"), ("dfs", "DFS search traces")):
        trained, sft_config = sft_seeds(maze, jax.random.key(2), 1, data=data, steps=300, lr=1e-2)
        H_sft, se_sft, hit, walks = evaluate_seeds(sft_config, maze, trained.params, jax.random.key(3), num,
                                                   eval_horizon, record=512)
        types = empirical_types(maze, walks.states[0])
        rows.append((f"SFT on {name} (300 steps): H, hit rate; empirical b, d",
                     f"table: b, d stay {L / (L + 1):.3f}, {1 / (L + 1):.3f}" if data == "golden" else
                     f"bounds {dfs} (DFS) and {backtracker} (backtracker)",
                     f"H {H_sft[0]:.1f} +- {1.96 * se_sft[0]:.1f}, hit {hit[0]:.3f}; b {float(types['b']):.3f}, "
                     f"d {float(types['d']):.3f}", None))
    bounds = {"backtracker (tabular)": backtracker, "history-aware DFS bound W(2K+1)": dfs}
    curves = {i: {"mean": curve[i], "stderr": curve_se[i]} for i in range(seeds)}
    return Section(f"Fig. 7: a one-layer transformer over the walk, (W,K,L) = ({W},{K},{L})",
                   "a transformer initialised to the bigram base model and trained by policy gradient converges to "
                   "about 4WK, slightly better than the bigram", rows,
                   notes="H: Monte Carlo over fresh walks per seed (walks cut at the evaluation horizon count it). "
                   "Curves: each step's batch mean length (`fig7_transformer_rlvr.csv`).",
                   figures=_draw("per_seed_curves", np.arange(steps), curves, bounds, out / "fig7_transformer_rlvr.png",
                                 f"Transformer REINFORCE from the bigram base, (W,K,L)=({W},{K},{L})",
                                 ylabel="batch mean walk length (Monte Carlo H)"))


EXPERIMENTS["transformer"] = transformer
#: Experiments left out of the default run (over its CPU budget): run them with ``--only``.
OPT_IN = ("transformer",)
