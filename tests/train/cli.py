"""Running `python -m jax_ssl.main` as a user would, for the end-to-end tests."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import orbax.checkpoint as ocp

REPO = pathlib.Path(__file__).resolve().parents[2]


def environment(devices: int = 1, **extra: str) -> dict[str, str]:
  env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu",
         "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}", **extra}
  return env


def smoke_args(workdir, data_dir, *overrides: str, config: str = "configs/default.py:smoke") -> list[str]:
  return [sys.executable, "-m", "jax_ssl.main", "--config", config, "--workdir", str(workdir),
          f"--config.data.data_dir={data_dir}", "--config.eval.report=False", *overrides]


def run(args: list[str], devices: int = 1, timeout: float = 300, **env) -> subprocess.CompletedProcess:
  return subprocess.run(args, capture_output=True, text=True, cwd=REPO, env=environment(devices, **env),
                        timeout=timeout)


def start(args: list[str], devices: int = 1, **env) -> subprocess.Popen:
  return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                          env=environment(devices, **env))


def wait_for_line(process: subprocess.Popen, text: str, timeout: float = 300) -> list[str]:
  """Read the process's output until a line contains `text`; fail on exit or timeout."""
  deadline = time.monotonic() + timeout
  lines = []
  while time.monotonic() < deadline:
    line = process.stdout.readline()
    if not line:
      raise AssertionError(f"process ended before printing {text!r}:\n{''.join(lines)[-3000:]}")
    lines.append(line)
    if text in line:
      return lines
  raise AssertionError(f"no {text!r} within {timeout} s:\n{''.join(lines)[-3000:]}")


def saved_state(workdir, step: int) -> dict:
  """The train state saved at `step`, as a nested dict of numpy arrays (whatever devices saved it)."""
  import jax
  path = (pathlib.Path(workdir) / "checkpoints" / str(step) / "state").absolute()
  checkpointer = ocp.PyTreeCheckpointer()
  metadata = checkpointer.metadata(path).item_metadata.tree
  as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), metadata)
  return checkpointer.restore(path, restore_args=as_numpy)


def flat(tree) -> dict[str, np.ndarray]:
  import jax
  return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}
