"""The ``mazejax`` command line.

* ``mazejax`` (= ``mazejax reproduce``): measure every claim of the paper into a report folder.
* ``mazejax table``: exact expected hitting times of the base model, the SFT limit and the
  efficient backtracker over a (W, K, L) grid, with the SFT limit's growth per unit of depth
  beside the theory ``(L + 1)^2 / L``.
* ``mazejax sweep --config FILE --out DIR``: a grid of training runs (:mod:`mazejax.sweep`); writes
  ``DIR/runs.csv`` and, when it ends, the scaling tables and plots.
* ``mazejax report DIR``: (re)write the scaling tables and plots of a sweep folder.

The command line enables float64 (``jax_enable_x64``) at start-up: exact analysis needs it.
"""

from __future__ import annotations

import argparse
import sys
import time

from mazejax import reference, scaling

DEFAULT_W, DEFAULT_K, DEFAULT_L = (2, 6), (1, 2, 3, 4, 5, 6), (1, 2, 5)


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _table(args) -> int:
    start = time.perf_counter()
    rows = scaling.exact_table(args.W, args.K, args.L)
    elapsed = time.perf_counter() - start
    header = f"{'W':>3} {'K':>3} {'L':>3} {'states':>7} {'base':>14} {'SFT limit':>16} {'backtracker':>12} {'SFT/bt':>12} {'SFT growth':>11}"
    print("Exact expected hitting time H (mean over targets, from s0 -> f), float64 chain solver")
    print(header)
    print("-" * len(header))
    sft = {(row["W"], row["K"], row["L"]): row["sft_limit"] for row in rows}
    for row in sorted(rows, key=lambda r: (r["W"], r["L"], r["K"])):
        below = sft.get((row["W"], row["K"] - 1, row["L"]))
        growth = f"{row['sft_limit'] / below:.3f}" if below else ""
        print(
            f"{row['W']:>3} {row['K']:>3} {row['L']:>3} {row['states']:>7} {row['base']:>14.6g} "
            f"{row['sft_limit']:>16.10g} {row['backtracker']:>12.6g} {row['sft_over_backtracker']:>12.4g} {growth:>11}"
        )
    print()
    print("SFT-limit growth per unit of depth (H(K)/H(K-1) at the largest K) against theory (L+1)^2/L:")
    for (W, L), factors in sorted(scaling.growth_per_depth(rows, "sft_limit").items()):
        if factors:
            print(f"  W={W:<3} L={L:<3} measured {factors[-1]:.4f}   theory {float(reference.sft_growth_factor(L)):.4f}")
    worst = max(row["max_rel_error"] for row in rows)
    print(f"\nLargest relative deviation from docs/model.md §3 closed forms: {worst:.1e} "
          f"({len(rows)} mazes, {elapsed:.1f} s including compilation)")
    return 0 if worst <= 1e-9 else 1


def _scalar(text: str):
    """One --set value: bool (true/false), int, float, or string."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _value(text: str):
    """A --set value; comma-separated values give a list (one run per value)."""
    parts = [p.strip() for p in text.split(",")]
    return [_scalar(p) for p in parts] if len(parts) > 1 else _scalar(text)


def _sweep_config(args) -> dict:
    """The sweep configuration: the TOML file (if any) overridden by command-line flags."""
    from mazejax.sweep import load_config

    config = load_config(args.config) if args.config else {}
    for name in ("W", "K", "L"):
        if getattr(args, name) is not None:
            config[name] = getattr(args, name)
    if args.seeds is not None:
        config["seeds"] = args.seeds
    if args.methods is not None:
        config["methods"] = [m for m in args.methods.split(",") if m]
    for assignment in args.set or []:
        name, sep, value = assignment.partition("=")
        method, dot, param = name.partition(".")
        if not sep or not dot:
            raise ValueError(f"--set expects METHOD.PARAM=VALUE, got {assignment!r}")
        config.setdefault(method, {})[param] = _value(value)
    return config


def _sweep(args) -> int:
    from mazejax import sweep

    from pathlib import Path

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ValueError(f"--out {args.out} is a file, not a folder; name a folder for the sweep's results")
    spec = sweep.parse_spec(_sweep_config(args))
    if args.coordinator:
        import jax

        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    table = sweep.run_sweep(spec, args.out, progress=not args.quiet, chunk=args.chunk)
    print(f"wrote {table}")
    return 0


def _methods(args) -> int:
    from mazejax.sweep import methods
    from mazejax.sweep.store import format_value

    for name in args.names or list(methods.METHODS):
        method = methods.get(name)
        print(f"{name}: {method.doc}")
        for param_name, param in sorted(method.params.items()):
            kind = "static" if param.static else "leaf (may be a list in one program)"
            print(f"  {param_name} = {format_value(param.default)}  [{kind}] {param.doc}")
    return 0


def _report(args) -> int:
    from pathlib import Path

    from mazejax import report

    table = Path(args.folder) / "runs.csv"
    if not table.is_file():
        raise ValueError(f"{args.folder} holds no runs.csv (run `mazejax sweep --out {args.folder}` first)")
    report.write_tables(table, args.folder)
    print(f"wrote {Path(args.folder) / 'tables'} and {Path(args.folder) / 'plots'}")
    return 0


def _reproduce(args) -> int:
    from mazejax import reproduce

    reproduce.reproduce(args.out, full=args.full, only=args.only.split(",") if args.only else None)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mazejax", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command")
    table = commands.add_parser("table", help="exact H of base / SFT limit / backtracker over a grid (default)")
    for name, default in (("W", DEFAULT_W), ("K", DEFAULT_K), ("L", DEFAULT_L)):
        table.add_argument(f"--{name}", type=_int_list, default=list(default),
                           help=f"comma-separated values (default {','.join(map(str, default))})")
    table.set_defaults(run=_table)

    sweep = commands.add_parser("sweep", help="run a grid of SFT / RLVR runs; writes OUT/runs.csv (resumable), tables, plots")
    sweep.add_argument("--config", help="TOML sweep file (see mazejax.sweep); flags below override it")
    sweep.add_argument("--out", required=True, help="output folder (runs.csv, meta.json)")
    for name in ("W", "K", "L"):
        sweep.add_argument(f"--{name}", type=_int_list, help="comma-separated values")
    sweep.add_argument("--seeds", type=int, help="number of seeds per configuration")
    sweep.add_argument("--methods", help="comma-separated method names")
    sweep.add_argument("--set", action="append", metavar="METHOD.PARAM=VALUE[,VALUE...]",
                       help="a setting of a method; several comma-separated values run one sweep each")
    sweep.add_argument("--chunk", type=int, help="runs per compiled call (default: from memory_gb)")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    sweep.add_argument("--coordinator", help="jax.distributed coordinator address HOST:PORT (multi-process)")
    sweep.add_argument("--num-processes", type=int, help="number of processes (with --coordinator)")
    sweep.add_argument("--process-id", type=int, help="this process's index (with --coordinator)")
    sweep.set_defaults(run=_sweep)

    listing = commands.add_parser("methods", help="the sweep's methods and their settings, with defaults")
    listing.add_argument("names", nargs="*", help="method names (default: all)")
    listing.set_defaults(run=_methods)

    rep = commands.add_parser("report", help="write the scaling tables and plots of a sweep folder")
    rep.add_argument("folder", help="a sweep's --out folder")
    rep.set_defaults(run=_report)

    repro = commands.add_parser("reproduce", help="measure every claim of the paper; writes OUT/report.md (default)")
    repro.add_argument("--out", default="mazejax-report", help="report folder (default ./mazejax-report)")
    repro.add_argument("--full", action="store_true", help="the paper's sizes (a GPU is recommended)")
    repro.add_argument("--only", help="comma-separated experiment names (default: all)")
    repro.set_defaults(run=_reproduce)
    return parser


def main(argv=None) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)  # exact analysis is float64 (README, "Precision")
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv:
        argv = ["reproduce"]
    elif argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["table", *argv]
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ValueError as error:
        parser.exit(2, f"mazejax: error: {error}\n")


if __name__ == "__main__":
    sys.exit(main())
