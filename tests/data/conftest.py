"""Bundled datasets are prepared once per test session, in a temporary directory."""

import pytest

from jax_ssl.data import sources


@pytest.fixture(scope="session")
def bundled_dir(tmp_path_factory):
  directory = tmp_path_factory.mktemp("jax_ssl_data")
  for name in ("digits", "shapes"):
    sources.prepare(name, directory)
  return directory
