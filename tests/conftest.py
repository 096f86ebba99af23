"""Test session set-up: float64 on, as the README tells every user to do first, and JAX's caches
cleared after each test module.

Every compiled XLA CPU program keeps its own memory mappings; the whole suite compiles enough of
them in one process to pass Linux's default ``vm.max_map_count`` (65530), and the next compile then
segfaults (seen in CI and here: a module like test_exact.py alone leaves ~14,000 mappings; clearing
returns to ~700). No persistent compilation cache either: a fresh CI machine starts with it empty."""

import gc

import jax
import pytest

jax.config.update("jax_enable_x64", True)


@pytest.fixture(scope="module", autouse=True)
def _release_compiled_programs():
    yield
    jax.clear_caches()
    gc.collect()
