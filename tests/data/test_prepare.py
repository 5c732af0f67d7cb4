"""`python -m jax_ssl.data.prepare`, run as a user would."""

import os
import subprocess
import sys


def _prepare(*args):
  env = {**os.environ, "PYTHONPATH": os.getcwd()}
  return subprocess.run([sys.executable, "-m", "jax_ssl.data.prepare", *args], capture_output=True, text=True,
                        env=env, timeout=300)


def test_prepares_a_bundled_dataset(tmp_path):
  result = _prepare("digits", f"--data_dir={tmp_path}")
  assert result.returncode == 0, result.stderr
  assert "digits is ready in" in result.stdout
  assert (tmp_path / "jax_ssl_digits").is_dir()


def test_unknown_dataset_exits_2_with_the_known_names():
  result = _prepare("mnist")
  assert result.returncode == 2
  assert "unknown dataset 'mnist'" in result.stderr and "cifar100" in result.stderr


def test_caltech256_without_its_folder_says_how_to_prepare_it(tmp_path):
  result = _prepare("caltech256", f"--data_dir={tmp_path}", f"--manual_dir={tmp_path / 'missing'}")
  assert result.returncode == 1
  assert "could not prepare caltech256" in result.stderr and "256_ObjectCategories" in result.stderr
