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


def smoke_args(workdir, data_dir, *overrides: str, config: str = "configs/vicreg.py:smoke") -> list[str]:
  return [sys.executable, "-m", "jax_ssl.main", "--config", config, "--workdir", str(workdir),
          f"--config.data.data_dir={data_dir}", "--config.eval.report=False", *overrides]


def paused_args(workdir, data_dir, pause_after_step: int, *overrides: str) -> list[str]:
  """`smoke_args`, run through the test-side launcher that pauses after `pause_after_step` (paused_main.py)."""
  args = smoke_args(workdir, data_dir, *overrides)
  return [args[0], "-m", "tests.train.paused_main", f"--pause_after_step={pause_after_step}", *args[3:]]


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
  return _numpy_tree((pathlib.Path(workdir) / "checkpoints" / str(step) / "state").absolute())


def _numpy_tree(path: pathlib.Path) -> dict:
  """An Orbax pytree item read back as numpy arrays, by Orbax alone (none of jax_ssl's checks)."""
  import jax
  checkpointer = ocp.PyTreeCheckpointer()
  metadata = checkpointer.metadata(path).item_metadata.tree
  as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), metadata)
  return checkpointer.restore(path, restore_args=as_numpy)


def flat(tree) -> dict[str, np.ndarray]:
  import jax
  return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def _raw_values(step_dir: pathlib.Path) -> list[np.ndarray] | None:
  """The state's arrays of a step directory as Orbax alone reads them, or None if Orbax fails to."""
  import jax
  try:
    return jax.tree.leaves(_numpy_tree(step_dir.absolute() / "state"))
  except Exception:  # noqa: BLE001 - any failure to decode
    return None


def flip_a_byte_silently(step_dir: pathlib.Path) -> None:
  """Flip one byte of the largest array file such that Orbax still reads the checkpoint, with other values.

  The arrays are zstd-compressed; most flipped bytes change the decoded values without any error (the
  frames carry no checksum), some make decoding fail. The first byte from the middle that does the former is
  kept, so the test exercises jax_ssl's own checksums.
  """
  original = _raw_values(step_dir)
  data_files = [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
  path = max(data_files, key=lambda p: p.stat().st_size)
  data = path.read_bytes()
  for at in range(len(data) // 2, len(data)):
    changed = bytearray(data)
    changed[at] ^= 0xFF
    path.write_bytes(bytes(changed))
    values = _raw_values(step_dir)
    if values is not None and any(not np.array_equal(a, b) for a, b in zip(values, original)):
      return
  raise AssertionError(f"no byte of {path} changes its values silently")
