"""Test session set-up: float64 on, as the README tells every user to do first; one compilation cache
for the session's workers and the subprocesses they start (they compile the same programs); and
JAX's in-memory caches cleared after each test module; and, in the default run, LLVM's optimisation
level 0 for XLA's CPU programs (see :func:`pytest_configure`).

Every compiled XLA CPU program keeps its own memory mappings; the whole suite compiles enough of
them in one process to pass Linux's default ``vm.max_map_count`` (65530), and the next compile then
segfaults (seen in CI: test_exact.py alone leaves ~14,000 mappings; clearing returns to ~700)."""

import gc
import os
import tempfile

# Set before JAX starts; pytest-xdist's workers and every subprocess inherit it from the first process.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="mazejax-tests-xla-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.3")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)


def pytest_configure(config):
    """The default run (slow tests left out) compiles XLA's CPU programs at LLVM optimisation level 0.

    The suite is mostly compilation: ~58% of the worker time is XLA's backend compile (a
    ``jax.monitoring`` listener on a 2-core Intel Xeon). Level 0 cuts a compile by about 40% and
    slows a program's run by up to 4x, which the default run's small programs can afford (it took
    606 s instead of 789 s there, every test passing at both levels). The level changes LLVM's code
    generation, not XLA's HLO, which fixes what a program computes, but the machine code can round
    differently: exact values agree to rounding (H = 275 of the base model at W = K = 3, L = 2 comes
    out as 275.00000000000006), and sampled trajectories, whose draws compare rounded probabilities,
    can take other paths (the README tour's REINFORCE seeds end at other H). No default test depends
    on that: they assert exact values to a tolerance, Monte Carlo against exact answers, and
    identity between computations that share the level. (XLA's older elemental
    emitters, ``--xla_cpu_use_fusion_emitters=false``, would compile faster still, but there a run's
    bits depended on its batch size: a REINFORCE run's optimizer update came out different in one
    logit row in a batch of 4 runs and alone, so a sweep row changed with the chunk size. Not used.)
    A run that selects the slow tests (long walks, paper-size trainers) keeps XLA's default level,
    and so does an ``XLA_FLAGS`` that sets a level itself. JAX reads ``XLA_FLAGS`` when its CPU
    backend starts, after this hook; pytest-xdist's workers and the tests' subprocesses inherit it.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "not slow" in (config.option.markexpr or "") and "xla_backend_optimization_level" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_backend_optimization_level=0".strip()


@pytest.fixture
def cpu_devices_env():
    """``env(count)``: the environment of a subprocess with ``count`` virtual CPU devices, keeping the
    session's XLA flags (the optimisation level above) and its compilation cache."""

    def env(count: int) -> dict:
        flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={count}".strip()
        return {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}

    return env


@pytest.fixture(scope="module", autouse=True)
def _release_compiled_programs():
    yield
    jax.clear_caches()
    gc.collect()


#: Test files that take the longest, run first so the two workers finish together.
HEAVY_FIRST = ("test_sweep_methods.py",)


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.path.name not in HEAVY_FIRST)  # stable: otherwise collection order
