"""Test session set-up: float64 on, as the README tells every user to do first; one compilation cache
for the session's workers and the subprocesses they start (they compile the same programs); and
JAX's in-memory caches cleared after each test module.

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


@pytest.fixture(scope="module", autouse=True)
def _release_compiled_programs():
    yield
    jax.clear_caches()
    gc.collect()


#: Test files that take the longest, run first so the two workers finish together.
HEAVY_FIRST = ("test_sweep_methods.py",)


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.path.name not in HEAVY_FIRST)  # stable: otherwise collection order
