"""Every figure of the paper, and the project's scaling plots, drawn from plain data.

Each public function takes plain data (dicts, lists, numpy arrays, the rows of ``runs.csv`` as
:func:`mazejax.sweep.store.read_runs` returns them) and a path, writes one PNG and returns the path.
Nothing here calls JAX, and nothing touches pyplot's global state: figures are built with
:class:`matplotlib.figure.Figure` and the Agg canvas, so the module is safe to use from scripts,
notebooks and worker processes alike.

Conventions shared by every figure, so a reader can move between them:

* colour = method, from one fixed :data:`PALETTE` (SFT family red/orange, RLVR family blues,
  greens and purples, the limits of training -- "SFT limit", "backtracker" -- a dark shade of
  their family's colour, the untrained base model grey);
* marker = maze size (W, L); measurements are solid lines with markers;
* closed-form theory is dashed and labelled ``theory: ...``; values computed by the project's
  exact solvers to check against are labelled ``reference``, never ``paper``;
* integer axes (K, W*K, L, steps) get integer ticks (:func:`integer_ticks`); log axes wherever the
  paper uses them (H against K for SFT, H over RLVR steps);
* legends sit outside the data, grouped by what colour, marker and line style mean.

Figures:

==============================  ==============================================================
:func:`scaling`                 H against depth K per method and (W, L), sweep rows
:func:`rlvr_vs_wk`              RLVR H against W*K beside 4WK, sweep rows
:func:`search_costs`            search scaffold cost against W*K*L and W*K, sweep rows
:func:`rlvr_trajectory`         paper's Fig. 3: H over exact RLVR steps
:func:`type_probabilities`      paper's Fig. 4: a, b, c, d per depth over steps
:func:`sft_limit_vs_depth`      paper's Fig. 5 left: SFT limit against K (log), beside RLVR
:func:`ablation`                paper's Fig. 5 right: mean H against supervised fraction p
:func:`scaffold`                Corollary 1: cost with and without the scaffold against L
:func:`heterogeneous`           paper's Fig. 8: heterogeneous depths
:func:`per_seed_curves`         sampled-RL training curves per seed with 95% intervals
:func:`heatmap`                 a value over a grid of two settings, numbers in the cells
==============================  ==============================================================
"""

from __future__ import annotations

import math
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Mapping

import matplotlib
import numpy as np
from matplotlib import colors as mcolors
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator

from mazejax import reference

DPI = 150

#: One colour per method, the same in every figure.
PALETTE: dict[str, str] = {
    "base": "#7f7f7f",            # grey: the untrained, uniform model
    "sft_exact": "#d62728",       # red
    "sft": "#ff7f0e",             # orange
    "SFT limit": "#7a0019",       # maroon: where SFT ends up
    "rlvr_exact": "#1f77b4",      # blue
    "rlvr_symmetric": "#17becf",  # cyan
    "reinforce": "#2ca02c",       # green
    "ppo": "#9467bd",             # purple
    "distill": "#bcbd22",         # olive
    "transformer": "#005f56",     # dark teal
    "backtracker": "#08306b",     # navy: where RLVR ends up
    "search_sft": "#e377c2",      # pink
    "search_rlvr": "#8c564b",     # brown
    "rlvr_truncated": "#6baed6",  # light blue: exact RLVR with a truncated horizon
    "neural_reinforce": "#00a087",  # teal: sequence policies (the transformer's family)
    "neural_ppo": "#3c5488",        # slate
    "neural_sft": "#dc0000",        # scarlet
}

#: What each method is, for legends.
DESCRIPTION: dict[str, str] = {
    "base": "base (pretrained, uniform)",
    "sft_exact": "sft_exact (SFT, exact loss)",
    "sft": "sft (SFT, sampled paths)",
    "SFT limit": "SFT limit (a=c=1, b, d untrained)",
    "rlvr_exact": "rlvr_exact (RLVR, exact gradient)",
    "rlvr_symmetric": "rlvr_symmetric (exact RLVR, tied types)",
    "reinforce": "reinforce (sampled RLVR)",
    "ppo": "ppo (sampled RLVR)",
    "distill": "distill (SFT on RLVR traces)",
    "transformer": "transformer (policy gradient)",
    "backtracker": "backtracker (a=b=c=d=1)",
    "search_sft": "search_sft (scaffold on SFT limit)",
    "search_rlvr": "search_rlvr (scaffold on backtracker)",
    "rlvr_truncated": "rlvr_truncated (exact RLVR, horizon T)",
    "neural_reinforce": "neural_reinforce (REINFORCE, sequence policy)",
    "neural_ppo": "neural_ppo (PPO, sequence policy)",
    "neural_sft": "neural_sft (SFT by teacher forcing, sequence policy)",
}

SFT_METHODS = ("sft_exact", "sft")
RLVR_METHODS = ("rlvr_exact", "rlvr_symmetric", "reinforce", "ppo", "distill", "transformer", "neural_reinforce",
                "neural_ppo")
SEARCH_METHODS = ("search_sft", "search_rlvr")

#: Other spellings of the palette's names (table columns, report labels).
ALIASES = {"sft_limit": "SFT limit", "sft limit": "SFT limit", "rlvr": "rlvr_exact", "RLVR": "rlvr_exact",
           "SFT": "sft_exact", "pretrained": "base", "base model": "base", "efficient backtracker": "backtracker"}

#: Marker of the i-th maze size (W, L).
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")

DASHED = (0, (5, 3))

_EXTRA = ("#f0a30a", "#4b0082", "#00bfff", "#a0522d", "#ff69b4", "#556b2f")


# ----------------------------------------------------------------------------------------------
# Shared helpers


def method_of(label: str) -> str:
    """The method behind a label: ``"reinforce[lr=0.1]"`` -> ``"reinforce"``; aliases resolved."""
    name = str(label).split("[")[0].strip()
    return ALIASES.get(name, name)


def color(label: str) -> str:
    """The palette colour of a method or of a labelled variant of it (unknown names: a stable extra
    colour)."""
    name = method_of(label)
    if name in PALETTE:
        return PALETTE[name]
    return _EXTRA[sum(map(ord, name)) % len(_EXTRA)]


def describe(label: str) -> str:
    """Legend text of a method label: its description, with the variant's settings appended."""
    name = method_of(label)
    text = DESCRIPTION.get(name, name)
    if "[" in str(label):
        text += " " + str(label)[str(label).index("["):]
    return text


def _shade(hex_color: str, amount: float) -> str:
    """Lighter (amount > 0) or darker (< 0) version of a colour, ``|amount| <= 1``."""
    rgb = np.array(mcolors.to_rgb(hex_color))
    rgb = rgb + (1 - rgb) * amount if amount > 0 else rgb * (1 + amount)
    return mcolors.to_hex(np.clip(rgb, 0, 1))


def label_colors(labels) -> dict[str, str]:
    """Colour of each label: the method's colour; variants of one method (different settings) get
    shades of it, darkest to lightest in sorted order."""
    by_method = defaultdict(list)
    for label in sorted(set(labels)):
        by_method[method_of(label)].append(label)
    out = {}
    for name, mine in by_method.items():
        amounts = np.linspace(-0.4, 0.45, len(mine)) if len(mine) > 1 else [0.0]
        for label, amount in zip(mine, amounts):
            out[label] = _shade(color(name), float(amount))
    return out


def _method_order(label: str) -> tuple:
    order = list(PALETTE)
    name = method_of(label)
    return (order.index(name) if name in order else len(order), str(label))


def integer_ticks(values, max_ticks: int = 12) -> list[int]:
    """Integer tick positions for an integer axis holding ``values``.

    The data's own values when there are at most ``max_ticks`` of them and none crowds its
    neighbour; otherwise multiples of a 1-2-5 step covering the range.
    """
    finite = [float(v) for v in values if v is not None and np.isfinite(v)]
    ints = sorted({int(round(v)) for v in finite})
    if not ints:
        return []
    lo, hi = ints[0], ints[-1]
    span = max(hi - lo, 1)
    gaps = np.diff(ints)
    if len(ints) <= max_ticks and (len(ints) < 2 or gaps.min() >= span / 30):
        return ints
    step = 1
    for magnitude in (10**e for e in range(0, 12)):
        for factor in (1, 2, 5):
            step = factor * magnitude
            if span / step + 1 <= max_ticks:
                break
        else:
            continue
        break
    ticks = list(range(math.ceil(lo / step) * step, hi + 1, step))
    if ticks[0] - lo > step / 2:
        ticks.insert(0, lo)
    return ticks


def _set_integer_axis(axis, values, max_ticks: int = 12) -> None:
    """Fixed integer ticks on an x or y axis, no minor ticks, plain integer labels."""
    ticks = integer_ticks(values, max_ticks)
    if not ticks:
        axis.set_major_locator(MaxNLocator(integer=True))
        return
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_minor_locator(NullLocator())
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{int(round(v))}"))


def _figure(width: float = 8.0, height: float = 5.0, **kwargs) -> Figure:
    return Figure(figsize=(width, height), layout="constrained", **kwargs)


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def _header(text: str):
    """An invisible legend handle whose label is a section heading (made bold by :func:`_legend`)."""
    return Rectangle((0, 0), 0, 0, visible=False, label=text)


def _legend(target, sections, **kwargs):
    """One legend of titled sections ``[(title, [handles])]``; empty sections are skipped.

    ``target`` is an Axes (legend placed to the right, outside the data) or a Figure
    (``loc="outside right upper"``)."""
    handles, headings = [], set()
    for title, items in sections:
        if not items:
            continue
        if title:
            handles.append(_header(title))
            headings.add(title)
        handles.extend(items)
    if not handles:
        return None
    options = dict(fontsize=8, frameon=False, handlelength=2.4, borderaxespad=0.0)
    if isinstance(target, Figure):
        options["loc"] = "outside right upper"
    else:
        options.update(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    options.update(kwargs)
    legend = target.legend(handles=handles, labels=[h.get_label() for h in handles], **options)
    for text in legend.get_texts():
        if text.get_text() in headings:
            text.set_fontweight("bold")
    return legend


def legend_entries(fig: Figure) -> list[str]:
    """Labels of the visible legend entries of a figure (section headings excluded)."""
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    labels = []
    for legend in legends:
        for handle, text in zip(legend.legend_handles, legend.get_texts()):
            if handle is not None and handle.get_visible():
                labels.append(text.get_text())
    return labels


def _line(label, color, marker=None, linestyle="-", **kw):
    return Line2D([], [], color=color, marker=marker, linestyle=linestyle, label=label, **kw)


def _sizes(rows) -> list[tuple[int, int]]:
    return sorted({(int(r["W"]), int(r["L"])) for r in rows})


def _set_text(values) -> str:
    values = sorted(set(values))
    return str(values[0]) if len(values) == 1 else "{" + ", ".join(map(str, values)) + "}"


def _group_range(rows, value: str, keys=("method", "W", "L", "K")) -> dict:
    """(keys) -> (mean, min, max, count) over seeds of the finite values of ``value``."""
    groups = defaultdict(list)
    for row in rows:
        v = float(row.get(value, float("nan")))
        if np.isfinite(v):
            groups[tuple(row[k] for k in keys)].append(v)
    return {k: (float(np.mean(v)), float(np.min(v)), float(np.max(v)), len(v)) for k, v in groups.items()}


def _wl_marker(sizes) -> dict:
    return {wl: MARKERS[i % len(MARKERS)] for i, wl in enumerate(sizes)}


def _wl_handles(markers) -> list:
    return [_line(f"W={W}, L={L}", "black", marker, "none", markerfacecolor="white", markersize=6)
            for (W, L), marker in markers.items()]


def _as_array(values) -> np.ndarray:
    return np.asarray(values, dtype=float)


def _number(value: float) -> str:
    """A value for a label: ``143``, ``2,966,043``, ``4.318e14``, ``0.25``."""
    value = float(value)
    if not np.isfinite(value):
        return "–"
    if abs(value) >= 1e7:
        mantissa, exponent = f"{value:.3e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _tick(value: float, _=None) -> str:
    if value >= 1:
        return f"{value:,.0f}" if value < 1e6 else f"{value:.0e}".replace("e+0", "e").replace("e+", "e")
    return f"{value:g}"


def _log_axis(axis, limits) -> None:
    """Plain numbers (1, 2, 5 per decade) on a log axis spanning at most about two decades; the
    default powers of ten otherwise."""
    lo, hi = (float(v) for v in limits)
    if lo > 0 and hi / lo <= 10**2.2:
        subs = (1.0, 2.0, 3.0, 5.0, 7.0) if hi / lo <= 10 else (1.0, 2.0, 5.0)
        axis.set_major_locator(LogLocator(subs=subs))
        axis.set_major_formatter(FuncFormatter(_tick))
        axis.set_minor_formatter(NullFormatter())


def _title(fig: Figure, text: str, size: float = 10.5) -> None:
    """A figure title above everything (legends included), each line wrapped to the figure width."""
    width = int(fig.get_figwidth() * 10.5)
    lines = [textwrap.fill(line, width) for line in str(text).split("\n")]
    fig.suptitle("\n".join(lines), fontsize=size)


# ----------------------------------------------------------------------------------------------
# Sweep figures (rows of runs.csv)


def _dodge(sizes, width: float = 0.12) -> dict:
    """Small horizontal offsets per maze size so points at the same integer x stay visible."""
    n = len(sizes)
    return {wl: (i - (n - 1) / 2) * (width / max(n - 1, 1)) if n > 1 else 0.0 for i, wl in enumerate(sizes)}


def _measured(ax, x, mean, low, high, colour, marker):
    """Measured points: markers joined by a thin line, min-max bars where several seeds exist."""
    x, mean = np.asarray(x, float), np.asarray(mean, float)
    ax.plot(x, mean, color=colour, linewidth=0.9, alpha=0.6, zorder=2)
    ok = np.isfinite(low) & np.isfinite(high) & (high > low)
    if np.any(ok):
        ax.errorbar(x[ok], mean[ok], yerr=[mean[ok] - low[ok], high[ok] - mean[ok]], fmt="none", ecolor=colour,
                    elinewidth=1.0, capsize=2.5, zorder=4)
    ax.plot(x, mean, linestyle="none", marker=marker, markersize=6, color=colour, markeredgecolor="white",
            markeredgewidth=0.7, zorder=5)


def _theory(ax, x, y, colour):
    """A closed form: dashed, above the measured line and below the measured markers."""
    ax.plot(x, y, color=colour, linestyle=DASHED, linewidth=1.4, alpha=0.9, zorder=3)


def _range_note(stats) -> str:
    counts = sorted({v[3] for v in stats.values()})
    if not counts or counts == [1]:
        return "one seed per point"
    return f"mean over {_set_text(counts)} seeds, bars: min-max over seeds"


def _scaling(rows) -> Figure:
    rows = [r for r in rows if method_of(r["method"]) not in SEARCH_METHODS]
    stats = _group_range(rows, "hitting_time")
    labels = sorted({k[0] for k in stats}, key=_method_order)
    colors_ = label_colors(labels)
    sizes = _sizes(rows)
    markers = _wl_marker(sizes)
    dodge = _dodge(sizes)
    fig = _figure(9.5, 5.6)
    ax = fig.add_subplot()
    families = {method_of(m) for m in labels}
    theories = [("base", "theory: base H0 = (2W-1)(1+K+K/L)(1+K(L+1))", reference.base_hitting_time)]
    if families & set(SFT_METHODS):
        theories.append(("SFT limit", "theory: SFT limit, ~W((L+1)²/L)^K", reference.sft_limit_hitting_time))
    if families & set(RLVR_METHODS):
        theories.append(("backtracker", "theory: backtracker 4WK+2W-2K-1", reference.backtracker_hitting_time))
    all_k = sorted({int(r["K"]) for r in rows})
    for W, L in sizes:
        ks = sorted({int(r["K"]) for r in rows if (r["W"], r["L"]) == (W, L)})
        grid = np.arange(ks[0], ks[-1] + 1)
        for name, _, closed in theories:
            _theory(ax, grid + dodge[(W, L)], [float(closed(W, int(K), L)) for K in grid], PALETTE[name])
    for label in labels:
        for W, L in sizes:
            points = sorted((k[3], v) for k, v in stats.items() if k[:3] == (label, W, L) and v[0] > 0)
            if not points:
                continue
            x = np.array([p[0] for p in points]) + dodge[(W, L)]
            mean, low, high = (np.array([p[1][i] for p in points]) for i in range(3))
            _measured(ax, x, mean, low, high, colors_[label], markers[(W, L)])
    ax.set_yscale("log")
    _log_axis(ax.yaxis, ax.get_ylim())
    ax.set_xlabel("depth K (diamonds per branch)")
    ax.set_ylabel("expected hitting time H (log scale)")
    _set_integer_axis(ax.xaxis, all_k)
    ax.grid(True, which="major", alpha=0.3)
    _title(fig, "Expected hitting time H against depth K: SFT grows exponentially, RLVR linearly\n"
           f"mazes W = {_set_text(W for W, _ in sizes)}, K = {_set_text(all_k)}, L = {_set_text(L for _, L in sizes)}; "
           f"{_range_note(stats)}")
    _legend(ax, [
        ("colour: method (measured)", [Patch(color=colors_[m], label=describe(m)) for m in labels]),
        ("marker: maze size", _wl_handles(markers)),
        ("dashed: closed form", [_line(text, PALETTE[name], None, DASHED, linewidth=1.4) for name, text, _ in theories]),
    ])
    return fig


def scaling(rows, path) -> Path:
    """H against depth K per method (colour) and maze size (W, L) (marker), log y, integer K ticks,
    mean over seeds with 95% intervals; dashed closed forms: base H0, the SFT limit (if an SFT
    method is present) and the backtracker 4WK+2W-2K-1 (if an RLVR method is present).

    ``rows``: dicts with ``method, W, K, L, hitting_time`` (runs.csv rows; search-scaffold rows are
    left to :func:`search_costs`)."""
    return _save(_scaling(rows), path)


def _rlvr_vs_wk(rows) -> Figure:
    rows = [r for r in rows if method_of(r["method"]) in RLVR_METHODS]
    stats = _group_range(rows, "hitting_time")
    labels = sorted({k[0] for k in stats}, key=_method_order)
    colors_ = label_colors(labels)
    sizes = _sizes(rows)
    markers = _wl_marker(sizes)
    fig = _figure(9.0, 5.2)
    ax = fig.add_subplot()
    cells = sorted({(int(r["W"]), int(r["K"])) for r in rows})
    xs = [W * K for W, K in cells]
    top = max(xs) if xs else 1
    ax.plot([0, top * 1.05], [0, 4 * top * 1.05], color=PALETTE["backtracker"], linestyle=DASHED, linewidth=1.4,
            zorder=1)
    ax.plot(xs, [float(reference.backtracker_hitting_time(W, K, 1)) for W, K in cells], linestyle="none",
            marker="_", markersize=16, markeredgewidth=2.2, color=PALETTE["backtracker"], alpha=0.8, zorder=2)
    # methods and maze sizes side by side, so points with the same W*K and H (L does not matter to
    # the backtracker) stay visible
    shift = {m: (i - (len(labels) - 1) / 2) * top * 0.006 for i, m in enumerate(labels)}
    dodge = _dodge(sizes, top * 0.03)
    for label in labels:
        for W, L in sizes:
            points = sorted((W * k[3], v) for k, v in stats.items() if k[:3] == (label, W, L))
            if not points:
                continue
            x = np.array([p[0] for p in points], float) + shift[label] + dodge[(W, L)]
            mean, low, high = (np.array([p[1][i] for p in points]) for i in range(3))
            _measured(ax, x, mean, low, high, colors_[label], markers[(W, L)])
    ax.set_xlim(0, top * 1.05)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("W·K (branches × depth)")
    ax.set_ylabel("expected hitting time H")
    _set_integer_axis(ax.xaxis, [0] + xs)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    _title(fig, "RLVR: H grows linearly in W·K, about 4 moves per diamond\n"
           f"mazes W = {_set_text(W for W, _ in cells)}, K = {_set_text(K for _, K in cells)}, "
           f"L = {_set_text(L for _, L in sizes)}; {_range_note(stats)}")
    _legend(ax, [
        ("colour: method (measured)", [Patch(color=colors_[m], label=describe(m)) for m in labels]),
        ("marker: maze size", _wl_handles(markers)),
        ("closed form", [_line("theory: 4WK (the paper's rounding)", PALETTE["backtracker"], None, DASHED),
                         _line("theory: 4WK+2W-2K-1 (exact backtracker)", PALETTE["backtracker"], "_", "none",
                               markersize=12, markeredgewidth=2)]),
    ])
    return fig


def rlvr_vs_wk(rows, path) -> Path:
    """H of the RLVR methods against W*K (linear axes, integer ticks) beside the theory line 4WK
    (dashed) and the exact backtracker 4WK+2W-2K-1 at each (W, K) (bars)."""
    return _save(_rlvr_vs_wk(rows), path)


def _search_costs(rows) -> Figure:
    rows = [r for r in rows if method_of(r["method"]) in SEARCH_METHODS]
    present = [m for m in SEARCH_METHODS if any(method_of(r["method"]) == m for r in rows)]
    fig = _figure(4.6 * max(len(present), 1) + 3.4, 4.8)
    axes = fig.subplots(1, max(len(present), 1), squeeze=False)[0]
    sizes = _sizes(rows)
    markers = _wl_marker(sizes)
    labels = sorted({r["method"] for r in rows}, key=_method_order)
    colors_ = label_colors(labels)
    policy = {"search_sft": "sft_limit", "search_rlvr": "backtracker"}
    axis = {"search_sft": ("W·K·L", lambda W, K, L: W * K * L), "search_rlvr": ("W·K", lambda W, K, L: W * K)}
    theory_drawn = False
    for ax, name in zip(axes, present):
        text, size = axis[name]
        xs = []
        for label in sorted({r["method"] for r in rows if method_of(r["method"]) == name}, key=_method_order):
            mine = [r for r in rows if r["method"] == label]
            aggregate = all((r.get("mode") or "aggregate") == "aggregate" for r in mine)
            for W, L in sizes:
                by_k = defaultdict(list)
                for r in mine:
                    if (r["W"], r["L"]) == (W, L) and np.isfinite(float(r["mc_mean"])):
                        by_k[int(r["K"])].append((float(r["mc_mean"]), float(r.get("mc_stderr", float("nan")))))
                if not by_k:
                    continue
                ks = sorted(by_k)
                x = np.array([size(W, K, L) for K in ks], float)
                mean = np.array([np.mean([m for m, _ in by_k[K]]) for K in ks])
                # 95% interval of the mean over all walks of all seeds at this size
                half = np.array([1.96 * math.sqrt(np.nansum([e * e for _, e in by_k[K]])) / len(by_k[K]) for K in ks])
                xs += list(x)
                if aggregate:
                    _theory(ax, x, [float(reference.scaffold_cost(W, K, L, policy[name])) for K in ks], "black")
                    theory_drawn = True
                _measured(ax, x, mean, mean - half, mean + half, colors_[label], markers[(W, L)])
        _set_integer_axis(ax.xaxis, [0] + xs)
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.set_xlabel(text)
        ax.set_ylabel("proposals per walk (rejected ones included)")
        ax.grid(True, alpha=0.3)
        ax.set_title(f"{DESCRIPTION[name]}: cost against {text}", fontsize=9.5)
    if not present:
        axes[0].text(0.5, 0.5, "no search-scaffold runs in this sweep", ha="center", va="center",
                     transform=axes[0].transAxes)
        axes[0].set_axis_off()
    _title(fig, "Inference-time search scaffold (no edge-state revisited): cost grows like W·K·L on the SFT "
           "limit, like W·K on the backtracker (RLVR's limit)\n"
           f"mazes W = {_set_text(W for W, _ in sizes)}, L = {_set_text(L for _, L in sizes)}; "
           "bars: 95% interval of the mean over walks")
    _legend(axes[-1], [
        ("colour: method", [Patch(color=colors_[m], label=describe(m)) for m in labels]),
        ("marker: maze size", _wl_handles(markers)),
        ("dashed", [_line("theory: Cor. 1 closed form\n(aggregate semantics)", "black", None, DASHED)]
         if theory_drawn else []),
    ])
    return fig


def search_costs(rows, path) -> Path:
    """Search-scaffold cost (mean proposals, 95% interval) of ``search_sft`` against W*K*L and of
    ``search_rlvr`` against W*K, one panel each, with the closed form of Corollary 1 dashed (for
    the aggregate semantics). ``rows``: runs.csv rows with ``mc_mean`` and ``mc_stderr``."""
    return _save(_search_costs(rows), path)


# ----------------------------------------------------------------------------------------------
# Paper figures


def _maze_text(sizes) -> str:
    if sizes is None:
        return ""
    W, K, L = sizes
    return f"W={W}, K={K}, L={L}"


def _step_axis(axis) -> None:
    axis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 2.5, 5, 10]))


def _rlvr_trajectory(steps, hitting_time, reference_points=None, title=None, sizes=None,
                     reference_label="reference values") -> Figure:
    steps, H = _as_array(steps), _as_array(hitting_time)
    fig = _figure(9.0, 4.8)
    ax = fig.add_subplot()
    ax.plot(steps, H, color=PALETTE["rlvr_exact"], linewidth=1.8, zorder=3)
    handles = [_line("rlvr_exact: exact H of the policy", PALETTE["rlvr_exact"], linewidth=1.8)]
    if reference_points:
        ref_steps = sorted(reference_points)
        ax.plot(ref_steps, [reference_points[s] for s in ref_steps], linestyle="none", marker="o", markersize=7,
                markerfacecolor="none", markeredgecolor="black", markeredgewidth=1.2, zorder=4)
        for s in ref_steps:
            ax.annotate(_number(reference_points[s]), (s, reference_points[s]), xytext=(5, 5),
                        textcoords="offset points", fontsize=7)
        handles.append(_line(reference_label, "black", "o", "none", markerfacecolor="none"))
    if sizes is not None:
        W, K, L = sizes
        for name, text, value in (("base", "base H0", reference.base_hitting_time(W, K, L)),
                                  ("backtracker", "backtracker 4WK+2W-2K-1",
                                   reference.backtracker_hitting_time(W, K, L))):
            ax.axhline(float(value), color=PALETTE[name], linestyle=DASHED, linewidth=1.3, zorder=1)
            handles.append(_line(f"theory: {text} = {_number(value)}", PALETTE[name], None, DASHED))
    ax.set_yscale("log")
    _log_axis(ax.yaxis, ax.get_ylim())
    ax.set_xlabel("RLVR step (sign-gradient ascent on the exact objective)")
    ax.set_ylabel("expected hitting time H (log scale)")
    _step_axis(ax.xaxis)
    ax.grid(True, which="both", alpha=0.25)
    _title(fig, title or "Exact RLVR from the pretrained model: H falls to the backtracker's value"
           + (f"\n{_maze_text(sizes)}" if sizes else ""))
    _legend(ax, [("", handles)])
    return fig


def rlvr_trajectory(steps, hitting_time, reference_points, path, title=None, *, sizes=None,
                    reference_label="reference values") -> Path:
    """Paper's Fig. 3: exact H over RLVR steps (log y), ``reference_points`` ``{step: H}`` as open
    circles with their numbers (e.g. SPEC §4.2's trajectory at W=K=15, L=5, labelled
    ``reference_label``), and -- with ``sizes=(W, K, L)`` -- the base H0 and the backtracker dashed."""
    return _save(_rlvr_trajectory(steps, hitting_time, reference_points, title, sizes, reference_label), path)


TYPE_MEANING = {
    "a": "a_j: having crossed diamond j forward,\nP(continue forward along the connector)",
    "b": "b_j: back at diamond j's right node from the right,\nP(cross back over the diamond)",
    "c": "c_j: at diamond j's left node from the left,\nP(cross forward over the diamond)",
    "d": "d_j: having crossed diamond j backward,\nP(continue backward along the connector)",
}


def _type_probabilities(steps, types, title=None, L=None) -> Figure:
    steps = _as_array(steps)
    arrays = {k: _as_array(types[k]) for k in "abcd"}
    depths = max(v.shape[1] if v.ndim == 2 else 1 for v in arrays.values())
    cmap = mcolors.LinearSegmentedColormap.from_list(
        "depth", matplotlib.colormaps["viridis"](np.linspace(0.0, 0.85, 256)))
    bounds = np.arange(0.5, depths + 1.5)
    norm = mcolors.BoundaryNorm(bounds, cmap.N)
    fig = _figure(10.5, 7.2)
    axes = fig.subplots(2, 2, sharex=True, sharey=True)
    spread = max(float(np.ptp(v, axis=1).max()) if v.ndim == 2 and v.shape[1] > 1 else 0.0
                 for v in arrays.values())
    for ax, name in zip(axes.flat, "abcd"):
        values = arrays[name]
        if values.ndim == 1:
            ax.plot(steps, values, color=PALETTE["rlvr_exact"], linewidth=1.6)
        else:
            for j in range(values.shape[1]):
                ax.plot(steps, values[:, j], color=cmap(norm(j + 1)), linewidth=1.3)
        ax.axhline(1.0, color=PALETTE["backtracker"], linestyle=DASHED, linewidth=1.1)
        if L is not None:
            base = 1 / (L + 1) if name in "ad" else L / (L + 1)
            ax.axhline(base, color=PALETTE["base"], linestyle=DASHED, linewidth=1.1)
        ax.set_title(TYPE_MEANING[name], fontsize=9)
        ax.set_ylim(-0.02, 1.04)
        ax.grid(True, alpha=0.25)
        _step_axis(ax.xaxis)
    for ax in axes[1]:
        ax.set_xlabel("RLVR step")
    for ax in axes[:, 0]:
        ax.set_ylabel("probability of the desired move")
    if depths > 1:
        bar = fig.colorbar(ScalarMappable(norm, cmap), ax=axes, shrink=0.6, pad=0.02)
        bar.set_label("depth j of the diamond (1 = next to the fork)")
        bar.set_ticks(integer_ticks(range(1, depths + 1), 8))
        bar.ax.minorticks_off()
    note = ""
    if depths > 1 and spread < 1e-3:
        how = "exactly" if spread == 0 else f"to within {spread:.0e}"
        note = f"\n(all {depths} depths move together: their lines coincide {how})"
    elif depths == 1:
        note = "\n(mean over depths)"
    _title(fig, (title or "Probability of each state type's desired move over RLVR training") + note, 11)
    theory = [_line("theory: backtracker, every type = 1", PALETTE["backtracker"], None, DASHED)]
    if L is not None:
        theory.append(_line(f"theory: base model, 1/(L+1) for a, d and L/(L+1) for b, c (L={L})", PALETTE["base"],
                            None, DASHED))
    fig.legend(handles=theory, loc="outside lower center", ncols=2, fontsize=8.5, frameon=False)
    return fig


def type_probabilities(steps, types, path, title=None, *, L=None) -> Path:
    """Paper's Fig. 4: a 2x2 grid, one panel per type (a, b, c, d), one line per depth coloured by
    a sequential colormap with a depth colorbar; dashed: 1 (the backtracker) and, given ``L``, the
    base model's value. ``types``: ``{"a": [steps, depths] or [steps], ...}``. When all depths
    coincide (as under exact RLVR at W=K=15, L=5) the title says so."""
    return _save(_type_probabilities(steps, types, title, L), path)


def _sft_limit_vs_depth(table, rlvr=None, title=None) -> Figure:
    table = list(table)
    sizes = _sizes(table)
    markers = _wl_marker(sizes)
    dodge = _dodge(sizes)
    fig = _figure(9.5, 5.4)
    ax = fig.add_subplot()
    columns = [(c, n) for c, n in (("base", "base"), ("sft_limit", "SFT limit"), ("backtracker", "backtracker"))
               if table and c in table[0]]
    rlvr = list(rlvr or [])
    for W, L in sizes:
        mine = sorted((r for r in table if (r["W"], r["L"]) == (W, L)), key=lambda r: r["K"])
        ks = np.array([int(r["K"]) for r in mine])
        x = ks + dodge[(W, L)]
        if any(c == "sft_limit" for c, _ in columns) and len(mine) > 1:
            growth = float(reference.sft_growth_factor(L))
            last = float(mine[-1]["sft_limit"])
            _theory(ax, x, last * growth ** (ks - ks[-1]), "black")
            ax.annotate(f"×{growth:.3g}/depth", (x[-1], last), xytext=(7, 0), textcoords="offset points",
                        fontsize=7.5, va="center")
        for column, name in columns:
            values = np.array([float(r[column]) for r in mine])
            _measured(ax, x, values, values, values, PALETTE[name], markers[(W, L)])
        mine_rl = sorted((r for r in rlvr if (r["W"], r["L"]) == (W, L)), key=lambda r: r["K"])
        if mine_rl:
            values = np.array([float(r["hitting_time"]) for r in mine_rl])
            _measured(ax, np.array([r["K"] for r in mine_rl]) + dodge[(W, L)], values, values, values,
                      PALETTE["rlvr_exact"], markers[(W, L)])
    ax.set_yscale("log")
    _log_axis(ax.yaxis, ax.get_ylim())
    ks = sorted({int(r["K"]) for r in table})
    _set_integer_axis(ax.xaxis, ks)
    ax.set_xlim(ks[0] - 0.3, ks[-1] + 0.9)
    ax.set_xlabel("depth K (diamonds per branch)")
    ax.set_ylabel("expected hitting time H (log scale, exact)")
    ax.grid(True, which="major", alpha=0.3)
    _title(fig, title or "The SFT limit grows exponentially in depth, the backtracker (RLVR's limit) linearly\n"
           f"W = {_set_text(W for W, _ in sizes)}, L = {_set_text(L for _, L in sizes)}; exact values")
    quantity = [Patch(color=PALETTE[name], label=describe(name)) for _, name in columns]
    if rlvr:
        quantity.append(Patch(color=PALETTE["rlvr_exact"], label="rlvr_exact (RLVR, trained)"))
    _legend(ax, [
        ("colour: policy", quantity),
        ("marker: maze size", _wl_handles(markers)),
        ("dashed", [_line("theory: growth ×(L+1)²/L per depth,\nanchored at the largest K", "black", None,
                          DASHED)]),
    ])
    return fig


def sft_limit_vs_depth(table, path, *, rlvr=None, title=None) -> Path:
    """Paper's Fig. 5 left: exact H of the SFT limit, the base model and the backtracker against
    depth K (log y, integer ticks), colour by policy, marker by (W, L), with the theory growth
    ``(L+1)^2/L`` per depth dashed (anchored at the largest K). ``table``: rows with
    ``W, K, L, sft_limit, base, backtracker`` (:func:`mazejax.scaling.exact_table`); ``rlvr``:
    optional rows ``W, K, L, hitting_time`` of trained RLVR, drawn in its colour."""
    return _save(_sft_limit_vs_depth(table, rlvr, title), path)


def _ablation(fractions, mean, per_draw=None, title=None, sizes=None) -> Figure:
    p, mean = _as_array(fractions), _as_array(mean)
    fig = _figure(9.5, 4.9)
    ax = fig.add_subplot()
    handles = []
    colour = PALETTE["sft_exact"]
    if per_draw is not None:
        draws = _as_array(per_draw)
        if draws.ndim == 1:
            draws = draws[:, None]
        low, high = np.quantile(draws, 0.1, axis=1), np.quantile(draws, 0.9, axis=1)
        ax.fill_between(p, low, high, color=colour, alpha=0.13, linewidth=0, zorder=1)
        rng = np.random.default_rng(0)
        width = (np.min(np.diff(p)) if p.size > 1 else 0.1) * 0.3
        jitter = rng.uniform(-width / 2, width / 2, size=draws.shape)
        ax.scatter((p[:, None] + jitter).ravel(), draws.ravel(), s=5, color=colour, alpha=0.3, linewidths=0,
                   zorder=2)
        handles += [_line(f"H of one random draw ({draws.shape[1]} per p)", colour, ".", "none", alpha=0.6),
                    Patch(color=colour, alpha=0.15, label="10%-90% range of the draws")]
    ax.plot(p, mean, color=colour, marker="o", markersize=5, linewidth=1.8, zorder=3)
    handles.insert(0, _line("mean H over the draws", colour, "o"))
    if sizes is not None:
        W, K, L = sizes
        for name, text, value in (("SFT limit", "SFT limit (nothing supervised)",
                                   reference.sft_limit_hitting_time(W, K, L)),
                                  ("backtracker", "backtracker (all supervised)",
                                   reference.backtracker_hitting_time(W, K, L))):
            ax.axhline(float(value), color=PALETTE[name], linestyle=DASHED, linewidth=1.2, zorder=1)
            handles.append(_line(f"theory: {text} = {_number(value)}", PALETTE[name], None, DASHED))
    ax.set_yscale("log")
    _log_axis(ax.yaxis, ax.get_ylim())
    ax.set_xlabel("fraction p of the 2K backward state types supervised to continue backwards")
    ax.set_ylabel("expected hitting time H (log scale, exact)")
    ax.set_xticks(p if p.size <= 11 else np.linspace(p.min(), p.max(), 6))
    ax.grid(True, which="major", alpha=0.3)
    _title(fig, title or "SFT with a fraction p of the backward state types also supervised: H falls from the "
           "SFT limit (p=0) to the backtracker (p=1)" + (f"\n{_maze_text(sizes)}" if sizes else ""))
    _legend(ax, [("", handles)])
    return fig


def ablation(fractions, mean, per_draw, path, *, sizes=None, title=None) -> Path:
    """Paper's Fig. 5 right: mean H (log y) against the supervised fraction p, each draw as a faint
    dot and the 10-90% band of the draws; with ``sizes=(W, K, L)`` the SFT limit and the
    backtracker dashed. ``per_draw``: [P, draws] or None."""
    return _save(_ablation(fractions, mean, per_draw, title, sizes), path)


def _scaffold(table, title=None) -> Figure:
    table = list(table)
    names = {"sft_limit": "SFT limit", "backtracker": "backtracker"}
    fig = _figure(9.0, 5.0)
    ax = fig.add_subplot()
    sizes = sorted({(int(r["W"]), int(r["K"])) for r in table})
    for policy, name in names.items():
        mine = sorted((r for r in table if r["policy"] == policy), key=lambda r: r["L"])
        if not mine:
            continue
        Ls = np.array([int(r["L"]) for r in mine], float)
        colour = PALETTE[name]
        ax.plot(Ls, [float(r["no_scaffold_exact"]) for r in mine], color=colour, marker="s", markersize=5,
                linewidth=1.4, linestyle=":", zorder=3)
        if "scaffold_theory" in mine[0]:
            _theory(ax, Ls, [float(r["scaffold_theory"]) for r in mine], "black")
        mean = np.array([float(r["scaffold_mean"]) for r in mine])
        half = 1.96 * np.nan_to_num(np.array([float(r.get("scaffold_stderr", float("nan"))) for r in mine]))
        _measured(ax, Ls, mean, mean - half, mean + half, colour, "o")
    ax.set_yscale("log")
    _log_axis(ax.yaxis, ax.get_ylim())
    _set_integer_axis(ax.xaxis, [r["L"] for r in table])
    ax.set_xlabel("L (parallel edges per diamond)")
    ax.set_ylabel("expected cost: moves, or proposals under the scaffold (log)")
    ax.grid(True, which="major", alpha=0.3)
    sizes_text = "; ".join(f"W={W}, K={K}" for W, K in sizes)
    _title(fig, title or "Search scaffold (no edge-state revisited, rejected proposals counted): the SFT limit's "
           f"cost becomes linear in L, the backtracker's stays flat\n{sizes_text}")
    _legend(ax, [
        ("colour: policy", [Patch(color=PALETTE[n], label=describe(n)) for n in names.values()]),
        ("marker / line", [_line("without scaffold (exact H)", "black", "s", ":"),
                           _line("with scaffold (mean proposals,\nbars: 95% interval)", "black", "o", "-",
                                 linewidth=0.9)]),
        ("dashed", [_line("theory: Cor. 1 closed form", "black", None, DASHED)]),
    ])
    return fig


def scaffold(table, path, *, title=None) -> Path:
    """Corollary 1: cost of the SFT limit and of the backtracker with (circles, 95% intervals) and
    without (squares, dotted) the search scaffold against L (log y, integer ticks), the closed form
    dashed. ``table``: rows with ``W, K, L, policy ("sft_limit"/"backtracker"), no_scaffold_exact,
    scaffold_mean, scaffold_stderr, scaffold_theory`` (reproduce's corollary1_search_scaffold.csv)."""
    return _save(_scaffold(table, title), path)


SHORT = {"base": "base\n(pretrained)", "SFT limit": "SFT limit", "backtracker": "backtracker\n(a=b=c=d=1)",
         "rlvr_exact": "RLVR\n(rlvr_exact)", "sft_exact": "SFT\n(sft_exact)", "transformer": "transformer"}


def _heterogeneous(values, branch_K=None, L=None, steps=None, hitting_time=None, title=None) -> Figure:
    items = [(str(k), float(v)) for k, v in values.items()]
    has_curve = steps is not None and hitting_time is not None
    fig = _figure(11.0 if has_curve else 6.5, 4.8)
    axes = fig.subplots(1, 2 if has_curve else 1, squeeze=False, width_ratios=[1, 1.2] if has_curve else None)[0]
    ax = axes[0]
    names = [k for k, _ in items]
    heights = [v for _, v in items]
    bars = ax.bar(range(len(items)), heights, color=[color(k) for k in names], width=0.65)
    for bar, value in zip(bars, heights):
        ax.annotate(_number(value), (bar.get_x() + bar.get_width() / 2, value), xytext=(0, 3),
                    textcoords="offset points", ha="center", fontsize=8)
    ax.set_xticks(range(len(items)), [SHORT.get(method_of(k), k) for k in names], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylim(min(heights) / 3, max(heights) * 4)
    ax.set_ylabel("expected hitting time H (log scale, exact)")
    ax.grid(True, axis="y", which="major", alpha=0.3)
    ax.set_title("H of each policy", fontsize=10)
    if has_curve:
        ax2 = axes[1]
        ax2.plot(_as_array(steps), _as_array(hitting_time), color=PALETTE["rlvr_exact"], linewidth=1.8)
        handles = [_line("RLVR (rlvr_exact): H over training", PALETTE["rlvr_exact"], linewidth=1.8)]
        for key in ("base", "backtracker"):
            match = [v for k, v in items if method_of(k) == key]
            if match:
                ax2.axhline(match[0], color=PALETTE[key], linestyle=DASHED, linewidth=1.2)
                handles.append(_line(f"{key} = {_number(match[0])}", PALETTE[key], None, DASHED))
        ax2.set_yscale("log")
        _log_axis(ax2.yaxis, ax2.get_ylim())
        ax2.set_xlabel("RLVR step (sign-gradient ascent)")
        ax2.set_ylabel("expected hitting time H (log scale)")
        _step_axis(ax2.xaxis)
        ax2.grid(True, which="major", alpha=0.25)
        ax2.set_title("exact RLVR from the pretrained model", fontsize=10)
        ax2.legend(handles=handles, fontsize=8, loc="center right", frameon=True, framealpha=0.9)
    maze = ""
    if branch_K is not None:
        maze = f"\nW={len(tuple(branch_K))} branches of depths K = {tuple(branch_K)}" + (f", L = {L}" if L is not None else "")
    _title(fig, (title or "Heterogeneous maze: the SFT/RLVR gap persists when branches differ in depth") + maze, 11)
    return fig


def heterogeneous(values, path, *, branch_K=None, L=None, steps=None, hitting_time=None, title=None) -> Path:
    """Paper's Fig. 8: bars of H (log y, values written on top) for each policy of a heterogeneous
    maze, e.g. ``{"base": ..., "SFT limit": ..., "backtracker": ..., "rlvr_exact": ...}``, coloured by
    the palette; with ``steps`` and ``hitting_time`` a second panel shows H over RLVR training
    beside the base and backtracker values dashed."""
    return _save(_heterogeneous(values, branch_K, L, steps, hitting_time, title), path)


def _curves(entry):
    """(mean, stderr or None) from an array, a (mean, stderr) pair or a dict with those keys."""
    if isinstance(entry, Mapping):
        return _as_array(entry["mean"]), (None if entry.get("stderr") is None else _as_array(entry["stderr"]))
    if isinstance(entry, tuple) and len(entry) == 2:
        return _as_array(entry[0]), _as_array(entry[1])
    return _as_array(entry), None


BOUND_STYLES = (DASHED, (0, (1.5, 2)), (0, (6, 2, 1.5, 2)), (0, (10, 3)))


def _per_seed_curves(steps, curves_by_seed, bounds=None, title=None, log=True, ylabel=None) -> Figure:
    first = next(iter(curves_by_seed.values())) if curves_by_seed else None
    nested = isinstance(first, Mapping) and not ({"mean"} <= set(first))
    groups = curves_by_seed if nested else {"": curves_by_seed}
    fig = _figure(9.5, 5.0)
    ax = fig.add_subplot()
    handles = []
    colors_ = label_colors([g or "reinforce" for g in groups])
    any_band = False
    for group, seeds in groups.items():
        colour = colors_[group or "reinforce"]
        x_group = _as_array(steps[group] if isinstance(steps, Mapping) else steps)
        for seed, entry in seeds.items():
            mean, stderr = _curves(entry)
            x = x_group[: mean.size]
            ax.plot(x, mean, color=colour, linewidth=1.0, alpha=0.9, zorder=3)
            if stderr is not None:
                low = mean - 1.96 * stderr
                if log:
                    low = np.maximum(low, mean * 0.05)
                ax.fill_between(x, low, mean + 1.96 * stderr, color=colour, alpha=0.15, linewidth=0, zorder=2)
                any_band = True
        name = describe(group) if group else "training curve"
        count = f"{len(seeds)} seeds, one line each" if len(seeds) != 1 else "1 seed"
        handles.append(_line(f"{name}: {count}", colour))
    if any_band:
        handles.append(Patch(color="black", alpha=0.15, label="band: 95% interval of each\nseed's estimate"))
    for i, (label, value) in enumerate((bounds or {}).items()):
        key = method_of(str(label).split(":")[0].split("(")[0].strip())
        colour = PALETTE.get(key, "black")
        style = BOUND_STYLES[i % len(BOUND_STYLES)]
        ax.axhline(float(value), color=colour, linestyle=style, linewidth=1.3, zorder=1)
        handles.append(_line(f"{label} = {_number(value)}", colour, None, style, linewidth=1.3))
    if log:
        ax.set_yscale("log")
        _log_axis(ax.yaxis, ax.get_ylim())
    _step_axis(ax.xaxis)
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel or ("expected hitting time H" + (" (log scale)" if log else "")))
    ax.grid(True, which="major", alpha=0.3)
    _title(fig, title or "Sampled RL: training curves per seed")
    _legend(ax, [("", handles)])
    return fig


def per_seed_curves(steps, curves_by_seed, bounds, path, title=None, *, log=True, ylabel=None) -> Path:
    """Training curves, one thin line per seed, each with its 95% band (``mean ± 1.96 stderr``),
    and horizontal ``bounds`` ``{label: value}`` labelled with their values (e.g.
    ``{"backtracker (tabular)": 35, "history-aware DFS bound": 21}``; a label starting with a
    palette name takes its colour, others are black; each bound has its own dash pattern).

    ``curves_by_seed``: ``{seed: values}`` or ``{method: {seed: values}}`` (colour by method), where
    values is an array of means, a ``(mean, stderr)`` pair or ``{"mean": ..., "stderr": ...}``;
    ``steps``: the x values, or ``{method: x values}`` when the methods record at different steps."""
    return _save(_per_seed_curves(steps, curves_by_seed, bounds, title, log, ylabel), path)


def _format_cell(value: float) -> str:
    if not np.isfinite(value):
        return "–"
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-2):
        mantissa, exponent = f"{value:.2e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{value:.3g}"


def _heatmap(x_values, y_values, z, xlabel, ylabel, title, log=True, colorbar_label=None) -> Figure:
    z = _as_array(z)
    ny, nx = z.shape
    fig = _figure(max(6.0, 0.95 * nx + 3.2), max(4.0, 0.55 * ny + 2.4))
    ax = fig.add_subplot()
    finite = z[np.isfinite(z)]
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#dddddd")
    if log and finite.size and finite.min() > 0:
        norm = mcolors.LogNorm(vmin=finite.min(), vmax=max(finite.max(), finite.min() * 1.0001))
    else:
        norm = mcolors.Normalize(vmin=finite.min() if finite.size else 0, vmax=finite.max() if finite.size else 1)
    image = ax.imshow(np.ma.masked_invalid(z), cmap=cmap, norm=norm, aspect="auto", origin="lower")
    for i in range(ny):
        for j in range(nx):
            value = z[i, j]
            r, g, b, _ = cmap(norm(value)) if np.isfinite(value) else (1, 1, 1, 1)
            light = 0.299 * r + 0.587 * g + 0.114 * b > 0.5
            ax.text(j, i, _format_cell(value), ha="center", va="center", fontsize=8,
                    color="black" if light else "white")
    ax.set_xticks(range(nx), [f"{v:g}" if isinstance(v, (int, float, np.number)) else str(v) for v in x_values])
    ax.set_yticks(range(ny), [f"{v:g}" if isinstance(v, (int, float, np.number)) else str(v) for v in y_values])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _title(fig, title)
    bar = fig.colorbar(image, ax=ax, pad=0.02)
    logscale = isinstance(norm, mcolors.LogNorm)
    if logscale:
        _log_axis(bar.ax.yaxis, (norm.vmin, norm.vmax))
    bar.set_label(colorbar_label or ("value (log colour scale)" if logscale else "value"))
    return fig


def heatmap(x_values, y_values, z, path, xlabel, ylabel, title, log=True, *, colorbar_label=None) -> Path:
    """A value over a grid of two settings (e.g. final H over lr x beta): ``z[i, j]`` at
    ``(x_values[j], y_values[i])``, log colour scale by default (linear if any value is <= 0), the
    numbers written in the cells and missing values (NaN) grey with a dash."""
    return _save(_heatmap(x_values, y_values, z, xlabel, ylabel, title, log, colorbar_label), path)


__all__ = [
    "DESCRIPTION", "PALETTE", "ablation", "dip", "fork_matrices", "fork_training", "color", "describe", "heatmap", "heterogeneous", "integer_ticks",
    "label_colors", "legend_entries", "method_of", "per_seed_curves", "rlvr_trajectory", "rlvr_vs_wk", "scaffold",
    "scaling", "search_costs", "sft_limit_vs_depth", "type_probabilities",
]


# ----------------------------------------------------------------------------------------------
# Beyond the paper (issue 12, items 1, 3, 5): a trainable fork row, the early dip


def _fork_training(runs, bounds, title=None) -> Figure:
    sizes = sorted({tuple(r["sizes"]) for r in runs})
    markers = _wl_marker(sorted({(W, L) for W, _, L in sizes}))
    fig = _figure(4.2 * len(sizes) + 3.0, 4.4)
    axes = fig.subplots(1, len(sizes), squeeze=False)[0]
    method_handles, bound_handles = {}, {}
    colours = label_colors([r["label"] for r in runs])  # variants of one method: shades of its colour
    for ax, size in zip(axes, sizes):
        W, K, L = size
        for run in (r for r in runs if tuple(r["sizes"]) == size):
            steps, H = _as_array(run["steps"]), np.atleast_2d(_as_array(run["H"]))
            colour, marker = colours[run["label"]], markers[(W, L)]
            every = max(1, len(steps) // 8)
            for curve in H:
                ax.plot(steps, curve, color=colour, lw=1.3, alpha=0.85 if len(H) > 1 else 1.0,
                        marker=marker, markevery=every, markersize=4, markerfacecolor="white")
            method_handles[run["label"]] = _line(describe(run["label"]), colour)
        for (name, value), style in zip(bounds.get(size, {}).items(), BOUND_STYLES):
            ax.axhline(value, color="black", lw=1.0, linestyle=style)
            ax.annotate(f"{value:.4g}", (1.0, value), xycoords=("axes fraction", "data"), xytext=(2, 0),
                        textcoords="offset points", fontsize=7, va="center")
            bound_handles[name] = _line(name, "black", None, style)
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel("exact H of the policy")
        ax.set_title(f"W={W}, K={K}, L={L}", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    _legend(fig, [("method (colour)", list(method_handles.values())), ("maze (marker)", _wl_handles(markers)),
                  ("reference, backtracker inside the branches (dashed)", list(bound_handles.values()))])
    _title(fig, title or "RLVR with a trainable fork row: exact H during training")
    return fig


def fork_training(runs, bounds, path, title=None) -> Path:
    """H over training with a trainable fork row, one panel per maze size.

    ``runs``: list of dicts ``label`` (a method label, e.g. ``"rlvr_exact[train_fork]"``), ``sizes``
    (W, K, L), ``steps`` [R], ``H`` [R] or [seeds, R]; ``bounds``: ``{(W, K, L): {name: value}}``,
    drawn as dashed horizontal reference lines (frozen fork, symmetric fork, depth-first order)."""
    return _save(_fork_training(runs, bounds, title), path)


def _fork_matrices(matrices, title=None) -> Figure:
    labels = list(matrices)
    cols = min(3, len(labels))
    rows = math.ceil(len(labels) / cols)
    fig = _figure(4.0 * cols + 1.2, 3.6 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    cmap = matplotlib.colormaps["Blues"]
    norm = mcolors.Normalize(0.0, 1.0)
    for ax, label in zip(axes, labels):
        M = _as_array(matrices[label])
        W = M.shape[1]
        ax.imshow(M, cmap=cmap, norm=norm, aspect="auto")
        if W <= 6:
            for i in range(M.shape[0]):
                for j in range(W):
                    ax.text(j, i, f"{M[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if M[i, j] > 0.6 else "black")
        for i in range(W):  # the re-entry cells
            ax.add_patch(Rectangle((i - 0.5, i + 0.5), 1, 1, fill=False, edgecolor="#d62728", lw=0.8))
        branches = integer_ticks(range(1, W + 1), 8)
        ax.set_xticks([t - 1 for t in branches], [str(t) for t in branches])
        ax.set_yticks([0] + branches, ["start"] + [f"back from {t}" for t in branches])
        ax.set_xlabel("branch entered")
        ax.set_title(label, fontsize=8.5)
    for ax in axes[len(labels):]:
        ax.set_visible(False)
    fig.colorbar(ScalarMappable(norm, cmap), ax=list(axes[: len(labels)]), label="probability", shrink=0.8)
    _title(fig, title or "Fork rows after training: probability of entering each branch (red box: re-entering "
           "the branch just left)")
    return fig


def fork_matrices(matrices, path, title=None) -> Path:
    """The trained fork rows of each run: ``matrices`` maps a run's label to its [W + 1, W]
    :func:`mazejax.fork.fork_matrix` (row 0 the start state, row i the walk back from branch i)."""
    return _save(_fork_matrices(matrices, title), path)


def _dip(runs, window=None, title=None) -> Figure:
    labels = list(runs)
    fig = _figure(4.3 * len(labels) + 1.5, 9.0)
    axes = fig.subplots(4, len(labels), squeeze=False)
    sign_cmap = mcolors.ListedColormap(["#d62728", "#f2f2f2", "#2c7fb8"])
    sign_norm = mcolors.BoundaryNorm([-1.5, -0.5, 0.5, 1.5], 3)
    for col, label in enumerate(labels):
        run = runs[label]
        steps = _as_array(run["steps"])
        stop = len(steps) if window is None else int(np.searchsorted(steps, window, side="right"))
        K = _as_array(run["b"]).shape[1]
        depth_cmap = matplotlib.colormaps["viridis"]
        for row, key in enumerate("bd"):
            ax = axes[row, col]
            values = _as_array(run[key])[:stop]
            for j in range(K):
                ax.plot(steps[:stop], values[:, j] - values[0, j], color=depth_cmap(j / max(K - 1, 1)), lw=1.0)
            ax.axhline(0.0, color="black", lw=0.8, linestyle=DASHED)
            ax.set_ylabel(f"{key}_j(step) - {key}_j(0)")
            ax.set_title(f"{label}: {key} per depth (colour: depth 1 -> {K})", fontsize=8.5)
            _step_axis(ax.xaxis)
        for row, key in ((2, "sign_b"), (3, "sign_d")):
            ax = axes[row, col]
            sign = _as_array(run[key])[:stop].T
            ax.imshow(sign, cmap=sign_cmap, norm=sign_norm, aspect="auto", origin="lower", interpolation="nearest",
                      extent=(steps[0] - 0.5, steps[stop - 1] + 0.5, 0.5, K + 0.5))
            ax.set_ylabel("depth j")
            ax.set_xlabel("training step")
            _set_integer_axis(ax.yaxis, range(1, K + 1), 8)
            ax.set_title(f"sign of dJ/d{key[-1]}_j (red: negative, the dip)", fontsize=8.5)
    bar = fig.colorbar(ScalarMappable(mcolors.Normalize(1, max(K, 2)), matplotlib.colormaps["viridis"]),
                       ax=list(axes[:2].ravel()), label="depth j", shrink=0.8)
    _set_integer_axis(bar.ax.yaxis, range(1, K + 1), 8)
    _legend(fig, [("gradient sign", [Patch(color="#d62728", label="dJ/dp < 0: p pushed down"),
                                     Patch(color="#2c7fb8", label="dJ/dp > 0"),
                                     Patch(color="#f2f2f2", label="0")])])
    _title(fig, title or "Fig. 4's early dip: backward types b, d per depth and the sign of their gradient")
    return fig


def dip(runs, path, window=None, title=None) -> Path:
    """The early dip of b and d (paper's Fig. 4) and when it occurs, one column per run.

    ``runs`` maps a label (e.g. ``"W=3, K=15, L=5"``) to a dict with ``steps`` [R], ``b``, ``d``
    [R, K] (per-depth type probabilities) and ``sign_b``, ``sign_d`` [R, K] (the sign of
    ``dJ/db_j``, ``dJ/dd_j``). Rows: the change of b and of d since step 0 per depth (colour =
    depth), then the sign rasters (steps x depth). ``window``: show steps up to this one."""
    return _save(_dip(runs, window, title), path)


# Beyond the paper (issue 12, items 2 and 4): SFT on search traces, trees

PALETTE.update({"sft_search_exact": "#e6550d", "sft_search": "#fdae6b", "dfs": "#636363"})
DESCRIPTION.update({"sft_search_exact": "sft_search_exact (SFT on search traces + golden, exact)",
                    "sft_search": "sft_search (SFT on search traces + golden, sampled)",
                    "dfs": "history-aware DFS (no re-entry)"})

KIND_STYLES = {"dfs": "-", "backtracker": (0, (4, 1.5)), "sgd": (0, (1, 1.2))}


def _fraction_colors(fractions) -> dict:
    """p = 0 in the SFT red, p > 0 from light to dark orange-brown (more search data: darker)."""
    positive = sorted(p for p in set(fractions) if p > 0)
    shades = np.linspace(0.35, -0.45, max(len(positive), 1))
    out = {p: _shade(PALETTE["sft_search_exact"], float(a)) for p, a in zip(positive, shades)}
    out.update({p: PALETTE["sft_exact"] for p in set(fractions) if p == 0})
    return out


def _search_traces(curves, scaling_rows, references, title=None) -> Figure:
    fig = _figure(13.5, 5.4)
    left, right = fig.subplots(1, 2)
    fractions = sorted({float(c["p"]) for c in curves} | {float(r["p"]) for r in scaling_rows})
    colours = _fraction_colors(fractions)
    for c in curves:
        step = _as_array(c["step"])
        left.plot(np.maximum(step, 0.5), _as_array(c["hitting_time"]), color=colours[float(c["p"])],
                  linestyle=KIND_STYLES.get(c["kind"], "-"), linewidth=1.5)
    for i, (label, value) in enumerate(references.items()):
        key = method_of(label.split(":")[0].split("(")[0].strip())
        left.axhline(value, color=PALETTE.get(key, "black"), linestyle=BOUND_STYLES[i % len(BOUND_STYLES)], linewidth=1.1)
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("exact SFT step (log scale; step 0 drawn at 0.5)")
    left.set_ylabel("expected hitting time H (log scale, exact)")
    left.grid(True, which="major", alpha=0.3)
    left.set_title("H during SFT on the mixture, W=K=6, L=5\n(Adam: the curves of every p > 0 coincide)", fontsize=10)
    ks = sorted({int(r["K"]) for r in scaling_rows})
    for p in sorted({float(r["p"]) for r in scaling_rows}):
        mine = sorted((r for r in scaling_rows if float(r["p"]) == p), key=lambda r: r["K"])
        right.plot([r["K"] for r in mine], [r["hitting_time"] for r in mine], color=colours[p], marker="o", markersize=4)
    theory = sorted(scaling_rows, key=lambda r: r["K"])
    seen = {}
    for r in theory:
        seen[int(r["K"])] = r
    for column, name, style in (("sft_limit", "SFT limit", DASHED), ("backtracker", "backtracker", (0, (1.5, 2)))):
        right.plot(list(seen), [seen[k][column] for k in seen], color=PALETTE[name], linestyle=style, linewidth=1.2)
    right.set_yscale("log")
    _set_integer_axis(right.xaxis, ks)
    right.set_xlabel("depth K (diamonds per branch)")
    right.set_ylabel("H after training (log scale, exact)")
    right.grid(True, which="major", alpha=0.3)
    sizes = scaling_rows[0] if scaling_rows else {}
    right.set_title(f"depth scaling, W={sizes.get('W')}, L={sizes.get('L')}, {sizes.get('steps')} Adam steps", fontsize=10)
    kinds = sorted({c["kind"] for c in curves})
    _legend(fig, [
        ("colour: fraction p of search traces", [_line(f"p = {p:g}" + (" (golden paths only)" if p == 0 else ""),
                                                       colours[p]) for p in fractions]),
        ("line style (left): traces, optimizer", [_line({"sgd": "dfs, plain SGD (lr 100)"}.get(k, f"{k}, Adam (lr 0.1)"),
                                                        "black", None, KIND_STYLES.get(k, "-")) for k in kinds]),
        ("reference (dashed)", [_line(f"{label} = {_number(v)}", PALETTE.get(method_of(label.split(':')[0].split('(')[0].strip()),
                                                                                "black"), None,
                                      BOUND_STYLES[i % len(BOUND_STYLES)]) for i, (label, v) in enumerate(references.items())]
         + [_line("SFT limit (golden only), exact", PALETTE["SFT limit"], None, DASHED),
            _line("backtracker 4WK+2W-2K-1", PALETTE["backtracker"], None, (0, (1.5, 2)))]),
    ])
    _title(fig, title or "SFT on a mixture of search traces and golden paths: any p > 0 reaches the backtracker")
    return fig


def search_traces(curves, scaling_rows, references, path, *, title=None) -> Path:
    """Issue 12 item 2: left, exact H over SFT steps (log-log) for each fraction ``p`` of search traces
    (colour) and kind of trace (line style), with ``references`` ``{label: H}`` as horizontal lines;
    right, H after training against depth K for each ``p`` beside the SFT limit and the backtracker
    (dashed). ``curves``: dicts ``p, kind, step, hitting_time``; ``scaling_rows``: dicts
    ``W, L, K, p, steps, hitting_time, sft_limit, backtracker``."""
    return _save(_search_traces(curves, scaling_rows, references, title), path)


TREE_MARKERS = {"binary": "o", "ternary": "s", "random": "^"}


def _trees(rows, title=None) -> Figure:
    fig = _figure(10.0, 5.6)
    ax = fig.add_subplot()
    families = sorted({r["family"] for r in rows}, key=lambda f: list(TREE_MARKERS).index(f) if f in TREE_MARKERS else 9)
    methods = [("base", "base"), ("sft_limit", "SFT limit"), ("sft_exact", "sft_exact"), ("rlvr_exact", "rlvr_exact")]
    for family in families:
        mine = sorted((r for r in rows if r["family"] == family), key=lambda r: r["depth"])
        marker = TREE_MARKERS.get(family, "D")
        groups = defaultdict(list)
        for r in mine:
            groups[int(r["depth"])].append(r)
        depths = sorted(groups)
        for column, name in methods:
            means = [np.exp(np.mean(np.log([float(r[column]) for r in groups[d]]))) for d in depths]
            lows = [min(float(r[column]) for r in groups[d]) for d in depths]
            highs = [max(float(r[column]) for r in groups[d]) for d in depths]
            _measured(ax, np.array(depths, float), np.array(means), np.array(lows), np.array(highs), PALETTE[name], marker)
        if family in ("binary", "ternary") and "dfs" in mine[0]:
            ax.plot(depths, [float(groups[d][0]["dfs"]) for d in depths], color=PALETTE["dfs"], linestyle=DASHED,
                    marker=marker, markerfacecolor="none", linewidth=1.1)
    ax.set_yscale("log")
    _set_integer_axis(ax.xaxis, [r["depth"] for r in rows])
    ax.set_xlabel("tree depth (levels below the root; targets at the leaves)")
    ax.set_ylabel("expected hitting time H (log scale, exact)")
    ax.grid(True, which="major", alpha=0.3)
    _legend(ax, [
        ("colour: policy", [Patch(color=PALETTE["base"], label="base (pretrained, uniform)"),
                            Patch(color=PALETTE["SFT limit"], label="SFT limit (golden rows fitted)"),
                            Patch(color=PALETTE["sft_exact"], label="sft_exact (trained, exact loss)"),
                            Patch(color=PALETTE["rlvr_exact"], label="rlvr_exact (sign ascent, exact gradient)")]),
        ("marker: tree family", [_line(f, "black", TREE_MARKERS.get(f, "D"), "none", markerfacecolor="white")
                                 for f in families]),
        ("dashed", [_line("theory: history-aware DFS\nb(b^d - 1)/(b - 1), complete trees", PALETTE["dfs"], None, DASHED)]),
        ("", [_line("random trees: geometric mean,\nbar = min..max over seeds", "black", None, "-")]),
    ])
    _title(fig, title or "Trees: H of base, SFT and RLVR against depth (exact, tree solver)")
    return fig


def trees(rows, path, *, title=None) -> Path:
    """Issue 12 item 4: exact H against tree depth (log y, integer ticks), colour by policy (base, SFT
    limit, trained SFT, trained RLVR), marker by tree family, the history-aware DFS dashed for complete
    trees. ``rows``: dicts ``family, depth, base, sft_limit, sft_exact, rlvr_exact`` (and ``dfs``)."""
    return _save(_trees(rows, title), path)


__all__ += ["search_traces", "trees"]
