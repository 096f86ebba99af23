"""Sweeps: thousands of runs over (W, K, L) grids, seeds and hyperparameters, resumably.

* :mod:`mazejax.sweep.spec` -- the specification (TOML or flags), validated before anything
  compiles, and the runs with their identities;
* :mod:`mazejax.sweep.methods` -- the methods (trainers and baselines) a sweep can run;
* :mod:`mazejax.sweep.store` -- ``runs.csv``: a row per finished run, keyed by its whole identity;
* :mod:`mazejax.sweep.driver` -- grouping, padding, compiling, chunking, sharding, processes.
"""

from mazejax.sweep.driver import program, run_key, run_sweep
from mazejax.sweep.methods import METHODS
from mazejax.sweep.spec import Run, Spec, load_config, load_spec, parse_spec
from mazejax.sweep.store import COLUMNS, read_runs

__all__ = ["COLUMNS", "METHODS", "Run", "Spec", "load_config", "load_spec", "parse_spec", "program", "read_runs",
           "run_key", "run_sweep"]
