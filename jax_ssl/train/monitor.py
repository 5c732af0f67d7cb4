"""What a run reports while it trains: a progress line, JSON lines and TensorBoard events.

Only process 0 writes. `metrics.jsonl` in the workdir holds one JSON object
per logged step (every loss term, embedding std and effective rank, learning
rate, online-probe accuracy, images/s, kNN accuracy when evaluated);
`tensorboard/` holds the same scalars as event files (tensorboardX: no
TensorFlow needed). A run that resumes at step S first drops the records of
steps after S, which it is about to train again: the JSON lines are
rewritten without them, and TensorBoard is told to purge them
(`purge_step`), so every step appears once. With `log.wandb` set, the
same records also go to Weights & Biases (`wandb_writer`: offline or online,
one W&B run per workdir, resumed by every rerun).

Why not `clu.metric_writers`: importing that package imports its TensorFlow
summary writer (clu 0.0.12's `metric_writers/__init__.py`), even to reach
`MetricWriter` or `MultiWriter`, and the library does not depend on
TensorFlow. tensorboardX writes the same event files on its own, and the
JSON lines are one `json.dumps` per record.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import sys
import time
from collections.abc import Mapping

from jax_ssl.train import wandb_writer

METRICS_FILE = "metrics.jsonl"


def _format_duration(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  seconds = int(seconds)
  hours, rest = divmod(seconds, 3600)
  return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Monitor:
  """Writes scalars and draws progress; a no-op on processes other than 0."""

  def __init__(self, workdir: str | pathlib.Path, *, total_steps: int, images_per_step: int, enabled: bool,
               resume_step: int = 0, stream=None, wandb: str = "", run_config: Mapping | None = None):
    """Opens the workdir's metrics files (process 0), dropping the records after `resume_step`.

    Args:
      workdir: the run's directory.
      total_steps: the run's length, for the progress bar and the ETA.
      images_per_step: the global batch, for the throughput.
      enabled: whether this process writes (process 0).
      resume_step: the step the run starts from; earlier records of later steps are dropped.
      stream: where the progress goes; None for stdout.
      wandb: `log.wandb`: "offline" or "online" to also write to W&B (`wandb_writer.WandbWriter`); "" not to.
      run_config: the run's config as a nested dict, recorded with the W&B run.

    Raises:
      ValueError: `wandb` names a mode but the wandb package cannot be imported, or an unknown mode.
    """
    self.enabled = enabled
    self.total_steps = total_steps
    self.images_per_step = images_per_step
    self._stream = stream or sys.stdout
    self._tty = hasattr(self._stream, "isatty") and self._stream.isatty()
    self._last_time = None
    self._last_step = None
    self._jsonl = None
    self._tensorboard = None
    self._wandb = None
    if enabled:
      workdir = pathlib.Path(workdir)
      workdir.mkdir(parents=True, exist_ok=True)
      drop_records_after(workdir, resume_step)
      if wandb:  # first: a package that will not import stops the run before the metrics files open
        self._wandb = wandb_writer.WandbWriter(workdir, wandb, run_config)
      self._jsonl = open(workdir / METRICS_FILE, "a")
      from tensorboardX import SummaryWriter
      tensorboard = workdir / "tensorboard"
      # TensorBoard hides the earlier files' events from purge_step on (steps count from 1).
      self._tensorboard = SummaryWriter(str(tensorboard), purge_step=resume_step + 1 if tensorboard.exists() else None)

  def start(self, step: int) -> None:
    """Mark the step training (re)starts from, for throughput and ETA.

    Args:
      step: the step just completed; `throughput` counts images from here.
    """
    self._last_time, self._last_step = time.perf_counter(), step

  def throughput(self, step: int) -> float:
    """Images per second since the last call (or `start`).

    Each call also becomes the reference point of the next one.

    Args:
      step: the step just completed.

    Returns:
      `images_per_step` times the steps since the last call (or `start`), per second of wall time; 0 before
      `start` (the first step, whose time is mostly compilation, is not a throughput); NaN if no time passed.
    """
    if self._last_time is None:
      return 0.0
    now = time.perf_counter()
    elapsed = now - self._last_time
    rate = (step - self._last_step) * self.images_per_step / elapsed if elapsed > 0 else float("nan")
    self._last_time, self._last_step = now, step
    return rate

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    """Append one record to `metrics.jsonl` and the same scalars to TensorBoard and W&B, if on (process 0 only).

    Args:
      step: the step the scalars belong to.
      scalars: metric name -> value; each value is converted with `float`.
    """
    if not self.enabled:
      return
    record = {"step": step, **{key: float(value) for key, value in scalars.items()}}
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    for key, value in scalars.items():
      self._tensorboard.add_scalar(key, float(value), step)
    self._tensorboard.flush()
    if self._wandb is not None:
      self._wandb.write(step, scalars)

  def progress(self, step: int, loss: float, images_per_second: float) -> None:
    """Draw the progress line: a bar, the step, the loss, the throughput and the estimated time left.

    On a terminal the line is redrawn in place; otherwise each call prints a new line.

    Args:
      step: the step just completed.
      loss: the step's loss.
      images_per_second: the current throughput, from which the ETA is estimated.
    """
    if not self.enabled:
      return
    remaining = ((self.total_steps - step) * self.images_per_step / images_per_second if images_per_second > 0
                 else float("nan"))
    width = 24
    done = int(width * step / self.total_steps)
    line = (f"[{'#' * done}{'.' * (width - done)}] step {step}/{self.total_steps}  loss {loss:.4g}  "
            f"{images_per_second:,.0f} img/s  ETA {_format_duration(remaining)}")
    self._stream.write(("\r" + line) if self._tty else line + "\n")
    self._stream.flush()

  def message(self, text: str) -> None:
    """Print `text` on a line of its own (process 0 only), below any progress line.

    Args:
      text: the message, without a trailing newline.
    """
    if self.enabled:
      self._stream.write(("\n" if self._tty else "") + text + "\n")
      self._stream.flush()

  def close(self) -> None:
    if self.enabled:
      self._jsonl.close()
      self._tensorboard.close()
      if self._wandb is not None:
        self._wandb.close()
        self._wandb = None


def drop_records_after(workdir: str | pathlib.Path, step: int) -> int:
  """Rewrite `metrics.jsonl` without its records of steps after `step` (and a line cut short by a crash).

  The file is replaced atomically: a crash while rewriting leaves the old one.

  Args:
    workdir: the run's directory.
    step: the last step whose records are kept.

  Returns:
    How many lines were dropped (0 when the file does not exist).
  """
  path = pathlib.Path(workdir) / METRICS_FILE
  if not path.exists():
    return 0
  lines = path.read_text().splitlines()
  kept = []
  for line in lines:
    try:
      if json.loads(line)["step"] <= step:
        kept.append(line)
    except (ValueError, KeyError, TypeError):
      continue  # a record cut short when a run was killed mid-write
  if len(kept) < len(lines):
    partial = path.with_name(path.name + ".tmp")
    partial.write_text("".join(line + "\n" for line in kept))
    os.replace(partial, path)
  return len(lines) - len(kept)


def read_metrics(workdir: str | pathlib.Path) -> list[dict]:
  """The records of `metrics.jsonl` (a resumed run appends; the last record of a step wins).

  Args:
    workdir: the run's directory.

  Returns:
    One dict per logged step, sorted by step, merging the fields of every record of that step (later
    ones win); an empty list if the file does not exist.
  """
  path = pathlib.Path(workdir) / METRICS_FILE
  if not path.exists():
    return []
  by_step = {}
  for line in path.read_text().splitlines():
    if line.strip():
      record = json.loads(line)
      by_step.setdefault(record["step"], {}).update(record)
  return [by_step[step] for step in sorted(by_step)]
