"""Helpers shared by the paper-reproduction scripts in experiments/.

Each script runs from the repository root as `python -m experiments.<name>`
and writes `<output_dir>/results/<name>.json` and
`<output_dir>/figures/<name>.png`; `output_dir` defaults to this folder, so a
plain `python -m experiments.<name>` refreshes the committed results. Every
JSON carries the command that reproduces it (`command`, without the flags that
only say where files go), the command line as typed (`invoked_as`), the git
commit of the code that wrote it (`commit`, and `commit_dirty` when tracked
files differed from it) and a description of the machine.
"""

from __future__ import annotations

import datetime
import io
import json
import math
import os
import pathlib
import platform
import shlex
import subprocess
import sys
import time
from typing import Any

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

EXPERIMENTS_DIR = pathlib.Path(__file__).resolve().parent
REPO_ROOT = EXPERIMENTS_DIR.parent


def add_output_flags(parser) -> None:
  """The flags every script shares: `--small` and `--output_dir`."""
  parser.add_argument("--small", action="store_true", help="tiny sizes (seconds), for tests and quick checks")
  parser.add_argument("--output_dir", type=pathlib.Path, default=EXPERIMENTS_DIR,
                      help="writes results/<name>.json and figures/<name>.png under this folder "
                      "(default: experiments/)")


# Flags that say where a script keeps its files, or which share of a grid this
# process trains and whether it only gathers finished runs: none changes a number,
# so the command that reproduces a result leaves them out (value: takes an argument).
# A benchmark's `--output` stays: it names which committed file the command rewrites.
BOOKKEEPING_FLAGS = {"--workdir": True, "--data_dir": True, "--output_dir": True, "--worker": True,
                     "--num_workers": True, "--collect_only": False, "--keep_published": False,
                     "--from_results": False}


def _program(script: str) -> list[str]:
  """How to run `script` from the repository root: `-m experiments.<name>` for a module of the repository.

  Under `python -m`, `sys.argv[0]` is the module's file; a script path given the
  old way names the same module. A file outside the repository keeps its path.
  """
  path = pathlib.Path(script).resolve()
  try:
    relative = path.relative_to(REPO_ROOT)
  except ValueError:
    return [str(path)]
  if relative.suffix != ".py":
    return [str(relative)]
  return ["-m", ".".join(relative.with_suffix("").parts)]


def command_line(argv: list[str] | None = None) -> str:
  """The command as typed from the repository root (`python -m experiments.<name> ...`)."""
  argv = sys.argv if argv is None else argv
  return " ".join(["python", *_program(argv[0]), *(shlex.quote(arg) for arg in argv[1:])])


def reproducing_command(argv: list[str] | None = None) -> str:
  """`command_line()` without `BOOKKEEPING_FLAGS`: what a reader runs to get the same numbers.

  A grid gathered by `--collect_only` from runs that several workers trained
  into a scratch `--workdir` is reproduced by the plain command with the same
  scale, seeds and selection.
  """
  argv = sys.argv if argv is None else argv
  kept, skip_value = [argv[0]], False
  for arg in argv[1:]:
    if skip_value:
      skip_value = False
      continue
    name = arg.split("=", 1)[0]
    if name in BOOKKEEPING_FLAGS:
      skip_value = BOOKKEEPING_FLAGS[name] and "=" not in arg
      continue
    kept.append(arg)
  return command_line(kept)


def git_commit() -> dict[str, Any]:
  """`{"commit": HEAD's hash, "commit_dirty": whether tracked files differ from it}`; both None outside git."""
  def git(*args) -> str:
    return subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True,
                          check=True).stdout.strip()
  try:
    commit = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
  except (OSError, subprocess.CalledProcessError):
    return {"commit": None, "commit_dirty": None}
  return {"commit": commit, "commit_dirty": dirty}


def sag_vicreg_reading(config=None) -> dict[str, str] | None:
  """SAG-VICReg's reading (`graph`, `scale_over`, `regularize`) that a run trains with; None for another method.

  `config` is a training config (its `method.sag_vicreg` section is read when
  `method.name` is SAG-VICReg); without one, the loss's defaults
  (`jax_ssl.losses.sag_vicreg`), what a direct call of `sag_vicreg_loss` uses.
  """
  if config is None:
    from jax_ssl.losses import sag_vicreg
    return {"graph": sag_vicreg.DEFAULT_GRAPH, "scale_over": sag_vicreg.DEFAULT_SCALE_OVER,
            "regularize": sag_vicreg.DEFAULT_REGULARIZE}
  if config.method.name != "sag_vicreg":
    return None
  section = config.method.sag_vicreg
  return {key: section[key] for key in ("graph", "scale_over", "regularize")}


def mean_std(values) -> dict[str, Any]:
  """{mean, std, n} of `values`; std is the sample std (ddof = 1; 0 for one value), as every script reports it."""
  values = np.asarray(values, float)
  return {"mean": float(values.mean()), "std": sample_std(values), "n": int(len(values))}


def sample_std(values) -> float:
  """The sample standard deviation (ddof = 1) of `values`, 0 for a single value: the spread every script reports."""
  values = np.asarray(values, float)
  return float(values.std(ddof=1)) if values.size > 1 else 0.0


def _cores() -> int:
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _cpu_model() -> str:
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
  device = jax.devices()[0]
  return {
      "platform": device.platform,
      "device_kind": device.device_kind,
      "num_devices": len(jax.devices()),
      "cpu_model": _cpu_model(),
      "cpu_cores": _cores(),
      "python": platform.python_version(),
      "jax_version": jax.__version__,
      "numpy_version": np.__version__,
      "os": platform.platform(),
  }


def _jsonable(value):
  """numpy scalars and arrays -> Python floats / lists, recursively; NaN and inf -> None.

  JSON has no NaN: a score that is undefined for a run (e.g. a correlation over a
  collapsed embedding, which has no variance) is written as null, not refused.
  """
  if isinstance(value, dict):
    return {str(k): _jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_jsonable(v) for v in value]
  if isinstance(value, (np.ndarray, jax.Array)):
    return _jsonable(np.asarray(value).tolist())
  if isinstance(value, np.bool_):
    return bool(value)
  if isinstance(value, np.integer):
    return int(value)
  if isinstance(value, (float, np.floating)):
    return float(value) if math.isfinite(value) else None
  return value


def save_png(fig, path: pathlib.Path, dpi: int = 100) -> None:
  """Saves at `dpi`, then re-encodes with a 256-colour palette (about 2-3x smaller, same look)."""
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=dpi)
  plt.close(fig)
  buffer.seek(0)
  with Image.open(buffer) as image:
    image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def write_results(name: str, output_dir: pathlib.Path, result: dict[str, Any], fig, *, small: bool,
                  started: float) -> tuple[pathlib.Path, pathlib.Path]:
  """Writes the JSON (with command, commit, machine, date, run time) and the PNG; returns their paths."""
  output_dir = pathlib.Path(output_dir)
  json_path = output_dir / "results" / f"{name}.json"
  png_path = output_dir / "figures" / f"{name}.png"
  json_path.parent.mkdir(parents=True, exist_ok=True)
  png_path.parent.mkdir(parents=True, exist_ok=True)
  save_png(fig, png_path)
  header = {
      "experiment": name,
      "command": reproducing_command(),
      "invoked_as": command_line(),
      **git_commit(),
      "small": small,
      "date": datetime.datetime.now().isoformat(timespec="seconds"),
      "run_time_s": time.perf_counter() - started,
      "machine": machine_info(),
      "figure": f"figures/{name}.png",
  }
  json_path.write_text(json.dumps(_jsonable({**header, **result}), indent=2, allow_nan=False) + "\n")
  print(f"wrote {json_path}\nwrote {png_path}")
  return json_path, png_path


def loglog_slope(x, y) -> float | None:
  """Least-squares slope of log(y) against log(x) (np.polyfit, degree 1) over the points with y > 0.

  None when fewer than two such points remain.
  """
  x, y = np.asarray(x, float), np.asarray(y, float)
  keep = (x > 0) & (y > 0) & np.isfinite(y)
  if keep.sum() < 2:
    return None
  return float(np.polyfit(np.log(x[keep]), np.log(y[keep]), 1)[0])
