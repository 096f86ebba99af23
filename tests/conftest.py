"""Test session set-up: float64 on, as the README tells every user to do first."""

import jax

jax.config.update("jax_enable_x64", True)
