"""The sweep driver: many runs over a (W, K, L) grid as a few compiled programs, resumably.

Execution. Runs (:mod:`mazejax.sweep.spec`) are grouped by method and static settings: each group
is one program, compiled once (the persistent compilation cache is on) and vmapped over its runs,
whose mazes are padded to the grid's capacity and whose hyperparameters are array leaves. Runs go
through in chunks sized to the memory budget, the run axis sharded over all local devices with
``jax.jit`` and a ``NamedSharding``. Each run's key is ``fold_in(fold_in(key(base), id), seed)``
with ``id`` a stable hash of (method, W, K, L): common random numbers across hyperparameter
values, and nothing that depends on grouping, chunking or devices. Several processes
(``jax.distributed``) each run their share (run ``i`` goes to process ``i % count``) and write
``DIR/runs.part<p>.csv``; after a barrier (``multihost_utils.sync_global_devices``) process 0
merges them into ``DIR/runs.csv`` (``DIR`` must be on a filesystem every process sees).

Output. ``DIR/runs.csv`` (:mod:`mazejax.sweep.store`), ``DIR/meta.json`` (versions, devices, XLA
flags, per-group compile and wall times) and, when the sweep ends, the scaling tables and plots
(:func:`mazejax.report.write_tables`) under ``DIR/tables`` and ``DIR/plots``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from mazejax import validate
from mazejax.maze import Maze, pad, stack
from mazejax.ordered import ordered_mean
from mazejax.policy import pretrained_logits
from mazejax.sweep import methods
from mazejax.sweep.spec import Run, Spec
from mazejax.sweep.store import Store, run_row


def _ident(method: str, W: int, K: int, L: int) -> int:
    digest = hashlib.blake2b(f"{method}/{W}/{K}/{L}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


def run_key(base: int, method: str, W: int, K: int, L: int, seed: int) -> jax.Array:
    """The PRNG key of one run, ``fold_in(fold_in(key(base), id), seed)`` with ``id`` a stable hash
    of (method, W, K, L): derived from its identity only (the same for every setting)."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(base), _ident(method, W, K, L)), seed)


def key_words(runs: list[Run]) -> np.ndarray:
    """uint32 [n, 2]: the (id, seed) words that :func:`run_key` folds into the base key, per run
    (the compiled program derives each run's key from them)."""
    return np.array([(_ident(r.method, *r.size), r.seed) for r in runs], np.uint32)


def _key(base: int, words: jax.Array) -> jax.Array:
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(base), words[0]), words[1])


def program(method: methods.Method, static: dict, capacity, base: int = 0):
    """``run(key_words, leaves, maze, init) -> dict of float64 scalars`` (one CSV row's numbers);
    the run's key is :func:`run_key` of its :func:`key_words` and the base seed ``base``."""
    train = method.build(static, capacity)

    def run(words, leaves, maze, init_logits):
        out = train(_key(base, words), leaves, maze, init_logits)
        final = out.hitting_time[-1]
        reached = jnp.abs(out.hitting_time - final) <= 0.05 * final
        first = jnp.argmax(reached)
        row = {
            "hitting_time": final,
            "steps_to_5pct": jnp.where(jnp.any(reached), out.step[first], -1).astype(jnp.float64),
            **out.types,
        }
        if out.mc is not None:
            length, success = out.mc
            length = length.astype(jnp.float64)
            n = length.shape[0]
            row["mc_mean"] = mean = ordered_mean(length)
            row["mc_stderr"] = jnp.sqrt(ordered_mean((length - mean) ** 2)) / jnp.sqrt(n - 1.0)
            row["success_rate"] = ordered_mean(success.astype(jnp.float64))
        return row

    return run


def _groups(runs: list[Run]) -> dict:
    groups = {}
    for run in runs:
        groups.setdefault((run.method, run.static()), []).append(run)
    return groups


def run_sweep(spec: Spec, out, *, progress: bool = True, chunk: int | None = None, tables: bool = True,
              devices=None) -> Path:
    """Run every unfinished run of ``spec``; write ``out/runs.csv``, ``out/meta.json`` and (with
    ``tables``) the scaling tables and plots. ``chunk`` overrides the number of runs per compiled
    call (default: from ``spec.memory_gb``); ``devices`` the local devices the runs are sharded
    over (default: all). Returns the path of ``runs.csv``."""
    validate.require_x64("mazejax.sweep")
    if chunk is not None:
        chunk = validate.positive_int("chunk", chunk)
    if devices is not None and (not len(devices) or not all(d in jax.local_devices() for d in devices)):
        raise ValueError(f"devices must be a non-empty list of local devices, got {devices!r}")
    process, count = jax.process_index(), jax.process_count()
    store = Store(out, process, count)
    capacity = spec.capacity
    devices = list(devices or jax.local_devices())
    sharding = NamedSharding(Mesh(np.array(devices), ("runs",)), PartitionSpec("runs"))
    meta = {
        "versions": _versions(),
        "devices": [str(d) for d in devices],
        "process": process,
        "process_count": count,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "capacity": dataclasses.asdict(capacity),
        "groups": [],
    }
    runs = spec.runs()
    mine = [r for i, r in enumerate(runs) if i % count == process]
    mazes = {}
    for (name, static), group_runs in _groups(mine).items():
        todo = [r for r in group_runs if not store.finished(r)]
        group = {"method": name, "static": dict(static), "runs": len(todo), "chunks": 0, "compile_s": 0.0, "wall_s": 0.0}
        meta["groups"].append(group)
        if not todo:
            continue
        method = methods.get(name)
        size = chunk or max(1, int(spec.memory_gb * 2**30 // method.memory(dict(static), capacity)))
        size = min(size, len(todo))
        size = -(-size // len(devices)) * len(devices)
        compiled_program = jax.jit(jax.vmap(program(method, dict(static), capacity, spec.key)),
                                   in_shardings=sharding, out_shardings=sharding)
        bar = tqdm(total=len(todo), desc=name, unit="run", disable=None if progress else True)
        start = time.perf_counter()
        compiled = None
        for begin in range(0, len(todo), size):
            batch_runs = todo[begin : begin + size]
            batch = batch_runs + [batch_runs[-1]] * (size - len(batch_runs))
            leaves = {n: np.array([r.leaves()[n] for r in batch], np.int32 if method.params[n].dtype == "int32"
                                  else np.float32) for n in batch[0].leaves()}
            keys = key_words(batch)
            if method.maze_free:
                args = (keys, leaves, np.array([r.size for r in batch], np.int32), None)
            else:
                for r in batch:
                    if r.size not in mazes:
                        mazes[r.size] = pad(Maze(*r.size), capacity)
                padded = [mazes[r.size] for r in batch]
                args = (keys, leaves, stack(padded), np.stack([np.asarray(pretrained_logits(m)) for m in padded]))
            args = jax.device_put(args, sharding)
            if compiled is None:
                t = time.perf_counter()
                compiled = compiled_program.lower(*args).compile()
                group["compile_s"] = time.perf_counter() - t
            values = jax.device_get(compiled(*args))
            group["chunks"] += 1
            store.append([run_row(r, {c: v[i] for c, v in values.items()}) for i, r in enumerate(batch_runs)])
            bar.update(len(batch_runs))
        bar.close()
        group["wall_s"] = time.perf_counter() - start
    meta_path = store.folder / ("meta.json" if count == 1 else f"meta.part{process}.json")
    meta_path.write_text(json.dumps(meta, indent=2, default=str))
    if count > 1:
        multihost_utils.sync_global_devices("mazejax sweep: every part written")
        if process == 0:
            store.merge(runs)
            metas = [json.loads(f.read_text()) for f in sorted(store.folder.glob("meta.part*.json"))]
            (store.folder / "meta.json").write_text(json.dumps({"processes": metas}, indent=2, default=str))
        multihost_utils.sync_global_devices("mazejax sweep: merged")
    if tables and process == 0:
        from mazejax import report

        report.write_tables(store.table, store.folder)
    return store.table


def _versions() -> dict:
    import jaxlib

    from mazejax import RESULTS_VERSION, __version__

    return {
        "mazejax": __version__,
        "results": RESULTS_VERSION,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


__all__ = ["program", "run_key", "run_sweep"]
