"""Test setup: 8 fake CPU devices, so sharded code runs on a real mesh."""

import jax

# Must run before any JAX backend starts; conftest is imported before test modules.
jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_platforms", "cpu")
