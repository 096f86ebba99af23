"""The sweep driver: many runs over a (W, K, L) grid as a few compiled programs, resumably.

A sweep is a grid (lists of W, K, L, a number or list of seeds), a list of methods
(:mod:`mazejax.methods`) and a table of hyperparameters per method, given as a TOML file::

    W = [2, 4, 8]
    K = [1, 2, 3, 4]
    L = [2, 5]
    seeds = 2
    methods = ["base", "sft_exact", "rlvr_exact"]
    [rlvr_exact]
    steps = 600
    lr = 0.01

Optional top-level keys: ``key`` (base PRNG seed, default 0) and ``memory_gb`` (memory budget
per compiled chunk, default 2).

Execution. Runs are grouped by method (its static hyperparameters fix the program); the mazes of
a group are padded to one capacity (computed from the whole grid, so a resumed sweep compiles the
same program) and the group is compiled once (the persistent compilation cache is on). Runs go
through in chunks sized to the memory budget, the run axis sharded over all local devices with
``jax.jit`` and a ``NamedSharding``. Each run's key is ``fold_in(fold_in(key(base), id), seed)``
with ``id`` a stable hash of (method, W, K, L), so results do not depend on grouping, chunking
or devices. Several processes (``jax.distributed``) each run their share (run ``i`` goes to
process ``i % count``) and write ``DIR/runs.part<p>.csv``; process 0 merges them into
``DIR/runs.csv`` when all are done (``DIR`` must be on a filesystem every process sees).

Output. ``DIR/runs.csv`` gets one row per finished run, appended and fsync'ed as each chunk
finishes; a rerun skips finished runs, and a torn last line (SIGKILL mid-write) is dropped on
restart, so no run is lost twice, duplicated or corrupted. ``DIR/meta.json`` records versions,
devices, XLA flags and per-group compile and wall times.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import platform
import sys
import time
import tomllib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mazejax import _checks, methods
from mazejax.maze import Maze, common_capacity, pad, stack
from mazejax.policy import pretrained_logits
from mazejax.train.common import exact_hitting_time, exact_types

COLUMNS = (
    "W", "K", "L", "method", "seed", "hitting_time", "mc_mean", "mc_stderr", "success_rate",
    "steps_to_5pct", "a", "b", "c", "d",
)
_GRID_KEYS = {"W", "K", "L", "seeds", "methods", "key", "memory_gb"}


@dataclasses.dataclass(frozen=True)
class Spec:
    """A validated sweep specification."""

    W: tuple[int, ...]
    K: tuple[int, ...]
    L: tuple[int, ...]
    seeds: tuple[int, ...]
    methods: tuple[str, ...]
    hparams: dict  # method -> (static dict, leaves dict)
    key: int = 0
    memory_gb: float = 2.0

    def runs(self) -> list[tuple]:
        """Every run identity ``(method, W, K, L, seed)`` in a fixed order."""
        return [
            (m, W, K, L, s)
            for m in self.methods for W in self.W for K in self.K for L in self.L for s in self.seeds
        ]


def _int_list(name: str, value) -> tuple[int, ...]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or len(value) == 0:
        raise ValueError(f"{name} must be a non-empty list of integers >= 1, got {value!r}")
    return tuple(_checks.positive_int(f"{name}[{i}]", v) for i, v in enumerate(value))


def parse_spec(config: dict) -> Spec:
    """Validate a sweep configuration (the parsed TOML) into a :class:`Spec`.

    Raises ValueError naming the offending key: unknown keys or methods, empty lists,
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
        seeds = tuple(range(_checks.positive_int("seeds", seeds)))
    else:
        if not seeds:
            raise ValueError("seeds must be a count >= 1 or a non-empty list of integers >= 0")
        seeds = tuple(_checks.positive_int(f"seeds[{i}]", s, minimum=0) for i, s in enumerate(seeds))
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
    hparams = {name: methods.get(name).resolve(config.get(name, {})) for name in names}
    key = _checks.positive_int("key", config.get("key", 0), minimum=0)
    memory_gb = config.get("memory_gb", 2.0)
    _checks.positive_float("memory_gb", memory_gb)
    spec = Spec(W, K, L, seeds, tuple(names), hparams, key, float(memory_gb))
    capacity = _capacity(spec)
    for name in names:
        methods.get(name).build(hparams[name][0], capacity)  # static checks (cheap: nothing is traced)
        need = _run_bytes(capacity, name, hparams[name][0]) / 2**30
        if need > spec.memory_gb:
            raise ValueError(
                f"memory_gb = {spec.memory_gb} is too small for one {name} run on the padded grid "
                f"(needs about {need:.2f} GB); raise memory_gb or shrink W, K, L"
            )
    return spec


def load_spec(path) -> Spec:
    """Read and validate a TOML sweep file."""
    try:
        with open(path, "rb") as f:
            config = tomllib.load(f)
    except OSError as error:
        raise ValueError(f"cannot read --config {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"--config {path} is not valid TOML: {error}") from None
    return parse_spec(config)


def _capacity(spec: Spec):
    return common_capacity([Maze(W, K, L) for W in spec.W for K in spec.K for L in spec.L])


def _run_bytes(capacity, method: str, static: dict) -> float:
    """Rough peak memory of one run inside a vmapped chunk (bytes); a planning estimate."""
    S, D = capacity.states, capacity.out_degree
    chain = 2 * capacity.branches * (capacity.levels + 1) * (2 * capacity.group) ** 2
    per_eval = 8 * (6 * S * D + 40 * chain)  # exact H + gradient (reverse mode through the levels)
    rollouts = 16 * static.get("rollouts", 0) * 4
    return per_eval + rollouts + 8 * S * D * 4


def run_key(base: int, method: str, W: int, K: int, L: int, seed: int) -> jax.Array:
    """The PRNG key of one run, derived from its identity only."""
    digest = hashlib.blake2b(f"{method}/{W}/{K}/{L}".encode(), digest_size=4).digest()
    ident = int.from_bytes(digest, "little") & 0x7FFFFFFF
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(base), ident), seed)


# ----------------------------------------------------------------------------------------
# The compiled per-run program


def _program(method: methods.Method, static: dict, capacity):
    """``run(key, leaves, maze, init) -> dict of float64 scalars`` (one CSV row's numbers)."""
    train = method.build(static, capacity)

    def run(key, leaves, maze, init_logits):
        train_key, _ = jax.random.split(key)
        out = train(train_key, leaves, maze, init_logits)
        final = exact_hitting_time(maze, out.logits)
        reached = jnp.abs(out.hitting_time - final) <= 0.05 * final
        first = jnp.argmax(reached)
        row = {
            "hitting_time": final,
            "steps_to_5pct": jnp.where(jnp.any(reached), out.step[first], -1).astype(jnp.float64),
            **methods.summarise_types(maze, exact_types(maze, out.logits)),
        }
        if out.mc is not None:
            length, success = out.mc
            length = length.astype(jnp.float64)
            n = length.shape[0]
            row["mc_mean"] = jnp.mean(length)
            row["mc_stderr"] = jnp.std(length) / jnp.sqrt(n - 1.0)
            row["success_rate"] = jnp.mean(success.astype(jnp.float64))
        return row

    return run


# ----------------------------------------------------------------------------------------
# Resumable CSV


def _read_rows(path: Path) -> list[dict]:
    """Complete rows of a runs CSV; a torn last line (no newline) is cut off the file."""
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
        with open(path, "r+b") as f:
            f.truncate(len(data))
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    return [r for r in rows if None not in r.values() and len(r) == len(COLUMNS)]


def _identity(row: dict) -> tuple:
    return (row["method"], int(row["W"]), int(row["K"]), int(row["L"]), int(row["seed"]))


def _append_rows(path: Path, rows: list[dict]) -> None:
    """Append complete rows with one write, then fsync (a header first if the file is new)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    if not path.exists() or path.stat().st_size == 0:
        writer.writeheader()
    writer.writerows(rows)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, buffer.getvalue().encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _format(value) -> str:
    value = float(value)
    return "" if math.isnan(value) else repr(value)


# ----------------------------------------------------------------------------------------
# Driver


class _Progress:
    """A one-line progress report on stderr: runs done, runs/s, ETA."""

    def __init__(self, total: int, label: str, stream=sys.stderr):
        self.total, self.label, self.stream = total, label, stream
        self.done, self.start = 0, time.perf_counter()

    def update(self, n: int) -> None:
        self.done += n
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else float("inf")
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        end = "\n" if self.done >= self.total else ""
        self.stream.write(f"\r[{self.label}] {self.done}/{self.total} runs, {rate:.3g} runs/s, ETA {eta:.0f} s{end}")
        self.stream.flush()


def run_sweep(spec: Spec, out: str | os.PathLike, *, progress: bool = True, chunk: int | None = None) -> Path:
    """Run every unfinished run of ``spec``; write ``out/runs.csv`` and ``out/meta.json``.

    ``chunk`` overrides the number of runs per compiled call (default: from ``spec.memory_gb``).
    Returns the path of ``runs.csv``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(Path.home() / ".cache" / "mazejax" / "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    process, count = jax.process_index(), jax.process_count()
    table = out / "runs.csv"
    part = table if count == 1 else out / f"runs.part{process}.csv"
    done = {_identity(r) for p in [table, *out.glob("runs.part*.csv")] for r in _read_rows(p)}
    capacity = _capacity(spec)
    devices = jax.local_devices()
    mesh = Mesh(np.array(devices), ("runs",))
    sharding = NamedSharding(mesh, PartitionSpec("runs"))
    meta = {
        "versions": _versions(),
        "devices": [str(d) for d in devices],
        "process": process,
        "process_count": count,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "capacity": dataclasses.asdict(capacity),
        "spec": {**dataclasses.asdict(spec), "hparams": {m: {**s, **l} for m, (s, l) in spec.hparams.items()}},
        "groups": [],
    }
    mazes = {}
    for method_name in spec.methods:
        static, leaves = spec.hparams[method_name]
        mine = [r for i, r in enumerate(spec.runs()) if i % count == process and r[0] == method_name]
        todo = [r for r in mine if r not in done]
        group = {"method": method_name, "static": static, "runs": len(todo), "compile_s": 0.0, "wall_s": 0.0}
        meta["groups"].append(group)
        if not todo:
            continue
        size = chunk or max(1, int(spec.memory_gb * 2**30 // _run_bytes(capacity, method_name, static)))
        size = min(size, len(todo))
        size = -(-size // len(devices)) * len(devices)
        method = methods.get(method_name)
        program = jax.jit(jax.vmap(_program(method, static, capacity)), in_shardings=sharding, out_shardings=sharding)
        bar = _Progress(len(todo), method_name) if progress else None
        start = time.perf_counter()
        compiled = None
        for begin in range(0, len(todo), size):
            runs = todo[begin : begin + size]
            batch = runs + [runs[-1]] * (size - len(runs))
            for r in batch:
                if r[1:4] not in mazes:
                    mazes[r[1:4]] = pad(Maze(*r[1:4]), capacity)
            padded = [mazes[r[1:4]] for r in batch]
            maze_batch = stack(padded)
            args = (
                jnp.stack([run_key(spec.key, *r) for r in batch]),
                {k: np.full(size, v, method.params[k].dtype) for k, v in leaves.items()},
                maze_batch,
                np.stack([np.asarray(pretrained_logits(m)) for m in padded]),
            )
            args = jax.device_put(args, sharding)
            if compiled is None:
                t = time.perf_counter()
                with jax.enable_x64(True):
                    compiled = program.lower(*args).compile()
                group["compile_s"] = time.perf_counter() - t
            with jax.enable_x64(True):
                values = jax.device_get(compiled(*args))
            rows = []
            for i, (m, W, K, L, seed) in enumerate(runs):
                row = {"W": W, "K": K, "L": L, "method": m, "seed": seed}
                for column in COLUMNS[5:]:
                    row[column] = _format(values[column][i]) if column in values else ""
                rows.append(row)
            _append_rows(part, rows)
            if bar:
                bar.update(len(runs))
        group["wall_s"] = time.perf_counter() - start
    meta_path = out / ("meta.json" if count == 1 else f"meta.part{process}.json")
    meta_path.write_text(json.dumps(meta, indent=2, default=str))
    if count > 1:
        _merge(out, spec, count, process)
    return table


def _merge(out: Path, spec: Spec, count: int, process: int, timeout: float = 3600.0) -> None:
    """Process 0 waits for every process's done-marker, then merges the parts into runs.csv."""
    (out / f"done.part{process}").write_text("done\n")
    if process != 0:
        return
    deadline = time.time() + timeout
    while not all((out / f"done.part{p}").exists() for p in range(count)):
        if time.time() > deadline:
            raise TimeoutError(f"processes did not finish within {timeout} s")
        time.sleep(0.2)
    table = out / "runs.csv"
    rows = {_identity(r): r for p in [table, *sorted(out.glob("runs.part*.csv"))] for r in _read_rows(p)}
    order = {ident: i for i, ident in enumerate(spec.runs())}
    merged = sorted(rows.values(), key=lambda r: order.get(_identity(r), len(order)))
    tmp = out / "runs.csv.tmp"
    tmp.unlink(missing_ok=True)
    _append_rows(tmp, merged)
    os.replace(tmp, table)
    for p in range(count):
        (out / f"runs.part{p}.csv").unlink(missing_ok=True)
        (out / f"done.part{p}").unlink(missing_ok=True)
    metas = [json.loads(f.read_text()) for f in sorted(out.glob("meta.part*.json"))]
    (out / "meta.json").write_text(json.dumps({"processes": metas}, indent=2, default=str))


def _versions() -> dict:
    import jaxlib

    from mazejax import __version__

    return {
        "mazejax": __version__,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def read_runs(path) -> list[dict]:
    """Rows of a ``runs.csv`` with numbers parsed (empty cells become NaN)."""
    rows = []
    for row in _read_rows(Path(path)):
        parsed = {"method": row["method"]}
        for column in COLUMNS:
            if column != "method":
                parsed[column] = float(row[column]) if row[column] != "" else float("nan")
        for column in ("W", "K", "L", "seed"):
            parsed[column] = int(parsed[column])
        rows.append(parsed)
    return rows


__all__ = ["COLUMNS", "Spec", "load_spec", "parse_spec", "read_runs", "run_key", "run_sweep"]
