"""Test setup: 8 fake CPU devices, so sharded code runs on a real mesh."""

import os
import pathlib
import tempfile

import jax

# The suite's programs are tiny and compiled once each, so XLA:CPU's LLVM optimization is most of their
# cost: without it a train step compiles ~1.6x faster (an initializer ~8x) and runs as correctly.
# Set before any backend starts; every subprocess a test starts inherits it (cli.environment adds to it).
os.environ["XLA_FLAGS"] = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
# Must run before any JAX backend starts; conftest is imported before test modules.
jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_platforms", "cpu")

# One persistent compilation cache per test session, shared by the xdist workers (they
# inherit the controller's environment) and by every subprocess the tests start: the
# smoke configs compile the same programs many times over.
COMPILATION_CACHE = os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="jax_ssl_tests_cache_"))
jax.config.update("jax_compilation_cache_dir", COMPILATION_CACHE)
# Every program, not only those over a second to compile: a checkpoint save compiles ~70 small
# slicing programs (Orbax's per-replica slices), ~3 s that each new process would pay again.
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)

import pytest  # noqa: E402

from jax_ssl.data import sources  # noqa: E402

# One data directory per test session, shared like the cache: `sources.prepare` locks it, so the
# first xdist worker prepares the bundled datasets and the other reads them.
DATA_DIR = os.environ.setdefault("JAX_SSL_TESTS_DATA_DIR", tempfile.mkdtemp(prefix="jax_ssl_tests_data_"))


@pytest.fixture(scope="session")
def bundled_dir():
  """The bundled datasets, prepared once per test session in a temporary directory."""
  directory = pathlib.Path(DATA_DIR)
  for name in ("digits", "shapes", "shapes_ood"):
    sources.prepare(name, directory)
  return directory
