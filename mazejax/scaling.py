"""Exact scaling tables: H of the base model, the SFT limit and the backtracker over (W, K, L).

All mazes of a table are padded to one capacity and solved as a single vmapped, jit-compiled
float64 program (one compile per table).
"""

from __future__ import annotations

import itertools
from typing import Sequence

import jax
import numpy as np

from mazejax import validate, exact, reference
from mazejax.maze import Maze, common_capacity, pad, stack
from mazejax.policy import backtracker_logits, pretrained_logits, sft_limit_logits

POLICIES = {"base": pretrained_logits, "sft_limit": sft_limit_logits, "backtracker": backtracker_logits}


def exact_table(W_values: Sequence[int], K_values: Sequence[int], L_values: Sequence[int]) -> list[dict]:
    """One row per (W, K, L): exact H of each policy in :data:`POLICIES` (float64, via the solver),
    the SFT/backtracker ratio and the largest relative deviation from docs/model.md §3 closed forms."""
    grids = {}
    for name, values in (("W", W_values), ("K", K_values), ("L", L_values)):
        if len(values) == 0:
            raise ValueError(f"{name} must list at least one integer >= 1")
        grids[name] = [validate.positive_int(f"{name}[{i}]", v) for i, v in enumerate(values)]
    sizes = list(itertools.product(grids["W"], grids["K"], grids["L"]))
    mazes = [Maze(W, K, L) for W, K, L in sizes]
    capacity = common_capacity(mazes)
    padded = [pad(maze, capacity) for maze in mazes]
    batch = stack(padded)
    validate.require_x64("mazejax.scaling.exact_table")
    solve = jax.jit(jax.vmap(exact.hitting_time))
    values = {
        name: np.asarray(solve(batch, np.stack([make(m, np.float64) for m in padded])))
        for name, make in POLICIES.items()
    }
    rows = []
    for i, (W, K, L) in enumerate(sizes):
        closed = {
            "base": reference.base_hitting_time(W, K, L),
            "sft_limit": reference.sft_limit_hitting_time(W, K, L),
            "backtracker": reference.backtracker_hitting_time(W, K, L),
        }
        row = {"W": W, "K": K, "L": L, "states": mazes[i].num_states}
        row.update({name: float(values[name][i]) for name in POLICIES})
        row["sft_over_backtracker"] = row["sft_limit"] / row["backtracker"]
        row["max_rel_error"] = max(abs(row[n] / float(closed[n]) - 1) for n in POLICIES)
        rows.append(row)
    return rows


def growth_per_depth(rows: list[dict], policy: str) -> dict[tuple[int, int], list[float]]:
    """H(K) / H(K - 1) for consecutive depths, per (W, L): how H grows per unit of depth."""
    by_wl: dict[tuple[int, int], dict[int, float]] = {}
    for row in rows:
        by_wl.setdefault((row["W"], row["L"]), {})[row["K"]] = row[policy]
    return {
        wl: [hs[k] / hs[k - 1] for k in sorted(hs) if k - 1 in hs]
        for wl, hs in by_wl.items()
    }
