"""Timing helpers shared by the benchmarks: device line, warm-up/compile split, repeated timing."""

from __future__ import annotations

import os
import platform
import time

import jax
import numpy as np


def machine_line() -> str:
    """One line naming the JAX backend, its devices and the host CPU."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    devices = ", ".join(str(d) for d in jax.devices())
    return (
        f"jax {jax.__version__} backend={jax.default_backend()} devices=[{devices}] | "
        f"host: {cpu}, {os.cpu_count()} cores"
    )


def time_call(fn, *args, repeats: int = 20) -> tuple[float, np.ndarray]:
    """Compile time (first call) and per-call times of ``fn(*args)``, in seconds.

    Every call is followed by ``jax.block_until_ready``; numpy results pass through unchanged.
    """
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return first, np.array(times)


def spread(times: np.ndarray, scale: float = 1e3) -> str:
    """``median [min-max]`` of ``times * scale``."""
    t = np.asarray(times) * scale
    return f"{np.median(t):.3g} [{t.min():.3g}-{t.max():.3g}]"
