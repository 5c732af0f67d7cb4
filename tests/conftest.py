"""Test setup: 8 fake CPU devices, so sharded code runs on a real mesh."""

import jax

# Must run before any JAX backend starts; conftest is imported before test modules.
jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_platforms", "cpu")

import pytest  # noqa: E402

from jax_ssl.data import sources  # noqa: E402


@pytest.fixture(scope="session")
def bundled_dir(tmp_path_factory):
  """The bundled datasets, prepared once per test session in a temporary directory."""
  directory = tmp_path_factory.mktemp("jax_ssl_data")
  for name in ("digits", "shapes"):
    sources.prepare(name, directory)
  return directory
