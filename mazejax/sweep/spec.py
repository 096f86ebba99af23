"""A sweep's specification: the grid, the methods and their settings, validated, and the runs.

A sweep is a grid (lists of W, K, L, a number or list of seeds), a list of methods
(:mod:`mazejax.sweep.methods`) and a table of settings per method, given as a TOML file::

    W = [2, 4, 8]
    K = [1, 2, 3, 4]
    L = [2, 5]
    seeds = 2
    methods = ["base", "sft_exact", "rlvr_symmetric", "reinforce"]
    [rlvr_symmetric]
    steps = 600
    lr = 0.01
    [reinforce]
    lr = [0.05, 0.1, 0.2]      # a list: one run per value (cartesian product with the grid)

Optional top-level keys: ``key`` (base PRNG seed, default 0) and ``memory_gb`` (memory budget
per compiled chunk, default 2). Any setting may be a list: lists of hyperparameters (leaves) run
inside one compiled program per method; lists of static settings give one program per value.

A run's identity (:class:`Run`) is its method, W, K, L, seed, :data:`mazejax.RESULTS_VERSION`
and every setting of its method, defaults included (derived defaults, such as PPO's buffer
length, resolved first): everything that can change its result.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import tomllib

import numpy as np

from mazejax import RESULTS_VERSION, validate
from mazejax.maze import Capacity
from mazejax.sweep import methods

_GRID_KEYS = {"W", "K", "L", "seeds", "methods", "key", "memory_gb"}


@dataclasses.dataclass(frozen=True, order=True)
class Run:
    """The identity of one run: everything that determines its result."""

    method: str
    W: int
    K: int
    L: int
    seed: int
    settings: tuple  # ((name, value), ...) sorted by name: every setting of the method
    version: str = RESULTS_VERSION

    @property
    def size(self) -> tuple[int, int, int]:
        return (self.W, self.K, self.L)

    def static(self) -> tuple:
        """The static settings (what fixes the compiled program), as sorted (name, value) pairs."""
        params = methods.get(self.method).params
        return tuple((n, v) for n, v in self.settings if params[n].static)

    def leaves(self) -> dict:
        """The leaf settings (hyperparameters vmapped inside one program)."""
        params = methods.get(self.method).params
        return {n: v for n, v in self.settings if not params[n].static}


@dataclasses.dataclass(frozen=True)
class Spec:
    """A validated sweep specification. ``settings[method][name]`` is a tuple of values."""

    W: tuple[int, ...]
    K: tuple[int, ...]
    L: tuple[int, ...]
    seeds: tuple[int, ...]
    methods: tuple[str, ...]
    settings: dict
    key: int = 0
    memory_gb: float = 2.0
    capacity: Capacity | None = None  # every maze of the grid is padded to it (set by parse_spec)

    def runs(self) -> list[Run]:
        """Every run, in a fixed order (method, settings, W, K, L, seed)."""
        capacity = self.capacity
        out = []
        for name in self.methods:
            method = methods.get(name)
            table = self.settings[name]
            names = sorted(table)
            for values in itertools.product(*(table[n] for n in names)):
                chosen = dict(zip(names, values))
                static = method.resolve({n: v for n, v in chosen.items() if method.params[n].static}, capacity)
                settings = tuple(sorted({**chosen, **static}.items()))
                for W, K, L, seed in itertools.product(self.W, self.K, self.L, self.seeds):
                    out.append(Run(name, W, K, L, seed, settings))
        return out


def _int_list(name: str, value) -> tuple[int, ...]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or len(value) == 0:
        raise ValueError(f"{name} must be a non-empty list of integers >= 1, got {value!r}")
    values = tuple(validate.positive_int(f"{name}[{i}]", v) for i, v in enumerate(value))
    if len(set(values)) != len(values):
        raise ValueError(f"{name} must not repeat values, got {list(values)}")
    return values


def _setting_values(method: methods.Method, name: str, value) -> tuple:
    """The validated values of one setting (a list gives several)."""
    param = method.params[name]
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ValueError(f"{method.name}.{name} must be a value or a non-empty list of values, got []")
    out = []
    for i, v in enumerate(values):
        label = f"{method.name}.{name}" + (f"[{i}]" if isinstance(value, list) else "")
        if param.rule.kind == "float" and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if param.rule.kind == "int_or_none" and isinstance(v, str) and v.lower() == "none":
            v = None
        out.append(param.rule(label, v))
    if len(set(map(repr, out))) != len(out):
        raise ValueError(f"{method.name}.{name} must not repeat values, got {value!r}")
    return tuple(out)


def parse_spec(config: dict) -> Spec:
    """Validate a sweep configuration (the parsed TOML) into a :class:`Spec`.

    Raises ValueError naming the offending key: unknown keys, methods or settings, empty lists,
    out-of-range values, a grid whose padded program exceeds ``memory_gb``.
    """
    if not isinstance(config, dict):
        raise ValueError("a sweep configuration must be a table of keys")
    tables = {k for k, v in config.items() if isinstance(v, dict)}
    unknown = sorted(set(config) - _GRID_KEYS - tables)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}; allowed: {', '.join(sorted(_GRID_KEYS))} and one table per method")
    for name in ("W", "K", "L", "methods"):
        if name not in config:
            raise ValueError(f"missing key {name!r}")
    W, K, L = (_int_list(n, config[n]) for n in ("W", "K", "L"))
    seeds = config.get("seeds", 1)
    if isinstance(seeds, bool) or not isinstance(seeds, (int, list)):
        raise ValueError(f"seeds must be a count >= 1 or a list of integers >= 0, got {seeds!r}")
    if isinstance(seeds, int):
        seeds = tuple(range(validate.positive_int("seeds", seeds)))
    else:
        if not seeds:
            raise ValueError("seeds must be a count >= 1 or a non-empty list of integers >= 0")
        seeds = tuple(validate.positive_int(f"seeds[{i}]", s, minimum=0) for i, s in enumerate(seeds))
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct, got {list(seeds)}")
    names = config["methods"]
    if isinstance(names, str) or not isinstance(names, list) or not names:
        raise ValueError(f"methods must be a non-empty list of method names, got {names!r}")
    for name in names:
        methods.get(name)
    if len(set(names)) != len(names):
        raise ValueError(f"methods must be distinct, got {names}")
    for table in tables:
        if table not in names:
            raise ValueError(f"table [{table}] names no method of this sweep (methods = {names})")
    settings = {}
    for name in names:
        method = methods.get(name)
        overrides = config.get(name, {})
        unknown = sorted(set(overrides) - set(method.params))
        if unknown:
            raise ValueError(f"[{name}] has no setting {unknown[0]!r}; allowed: {', '.join(sorted(method.params))}")
        settings[name] = {p: _setting_values(method, p, overrides.get(p, param.default))
                          for p, param in method.params.items()}
    key = validate.positive_int("key", config.get("key", 0), minimum=0)
    memory_gb = config.get("memory_gb", 2.0)
    validate.positive_float("memory_gb", memory_gb)
    capacity = functools.reduce(Capacity.union, (Capacity.paper(w, k, l) for w in W for k in K for l in L))
    spec = Spec(W, K, L, seeds, tuple(names), settings, key, float(memory_gb), capacity)
    for name, static in sorted({(r.method, r.static()) for r in spec.runs()}, key=repr):
        method = methods.get(name)
        method.build(dict(static), capacity)  # static checks (cheap: nothing is traced)
        need = method.memory(dict(static), capacity) / 2**30
        if need > spec.memory_gb:
            raise ValueError(
                f"memory_gb = {spec.memory_gb} is too small for one {name} run on the padded grid "
                f"(needs about {need:.2f} GB); raise memory_gb or shrink W, K, L"
            )
    return spec


def load_config(path) -> dict:
    """Read a TOML sweep file (errors name the file)."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as error:
        raise ValueError(f"cannot read --config {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"--config {path} is not valid TOML: {error}") from None


def load_spec(path) -> Spec:
    """Read and validate a TOML sweep file."""
    return parse_spec(load_config(path))


__all__ = ["Run", "Spec", "load_config", "load_spec", "parse_spec"]
