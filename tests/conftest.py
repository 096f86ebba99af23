"""Test session set-up: float64 on, as the README tells every user to do first.

No persistent compilation cache: jax 0.10's cache writer crashed the CI run (segfault in
``compilation_cache.put_executable_and_time``), and a fresh CI machine starts with an empty cache anyway."""

import jax

jax.config.update("jax_enable_x64", True)
