"""The optional Weights & Biases writer: the scalars of metrics.jsonl, at the same steps, and the run's config.

`--config.log.wandb=offline` writes the run under `WORKDIR/wandb/` with no
network (upload it later with `wandb sync WORKDIR/wandb/offline-run-*`);
`online` streams it to the W&B server (after `wandb login`). Only process 0
writes. The run's W&B id is drawn on its first start and kept in
`WORKDIR/wandb_run_id.txt`: a rerun of the same command (a resumed run)
continues the same W&B run (`resume="allow"`). The project is `jax_ssl`
unless `WANDB_PROJECT` says otherwise; `WANDB_ENTITY` and wandb's other
environment variables apply as usual.

W&B's own step must only grow, and a run resumed from an older checkpoint
trains (and logs) some steps again; so every record carries the training step
as the field `step`, declared the x-axis of every chart (`define_metric`),
and W&B's internal step is left to count records.

`wandb` is an optional dependency (`pip install wandb`): it is imported only
when the config asks for it, and a config that asks for it where it is not
installed is refused at validation, in one line.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import secrets
from collections.abc import Mapping
from typing import Any

MODES = ("", "offline", "online")
RUN_ID_FILE = "wandb_run_id.txt"
DEFAULT_PROJECT = "jax_ssl"


def check_config(log_config: Any) -> None:
  """Raise `ValueError` (one line naming `log.wandb`) for an unknown mode, or a mode without the package.

  Args:
    log_config: the config's `log` section; reads `wandb`.

  Raises:
    ValueError: `log.wandb` is not "", "offline" or "online", or names a mode while `wandb` is not installed
      (the message says `pip install wandb`).
  """
  mode = log_config.wandb
  if mode not in MODES:
    raise ValueError(f"log.wandb must be 'offline', 'online' or '' (off), got {mode!r}.")
  if mode and importlib.util.find_spec("wandb") is None:
    raise ValueError(f"log.wandb={mode!r} needs the wandb package, which is not installed: pip install wandb "
                     "(or leave log.wandb empty).")


def run_id(workdir: str | pathlib.Path) -> str:
  """The workdir's W&B run id: the one saved by its first start, or a new one, saved now.

  Args:
    workdir: the run's directory (it must exist).

  Returns:
    The id, 16 lowercase hex digits when drawn here (W&B ids may not hold `/ \\ # ? % :`).
  """
  path = pathlib.Path(workdir) / RUN_ID_FILE
  if path.exists() and path.read_text().strip():
    return path.read_text().strip()
  new_id = secrets.token_hex(8)
  partial = path.with_name(path.name + ".tmp")
  partial.write_text(new_id + "\n")
  os.replace(partial, path)
  return new_id


class WandbWriter:
  """One W&B run per workdir, resumed by every rerun; `write` logs a record, `close` finishes the run."""

  def __init__(self, workdir: str | pathlib.Path, mode: str, config: Mapping[str, Any] | None = None):
    """Start (or resume) the workdir's W&B run.

    Args:
      workdir: the run's directory (it must exist); W&B writes under `workdir/wandb/`.
      mode: "offline" (no network) or "online".
      config: the run's config as a nested dict, recorded as the W&B run's config; None records none.

    Raises:
      ValueError: `mode` is not "offline" or "online", or `wandb` cannot be imported (one line: pip install wandb).
    """
    if mode not in MODES[1:]:
      raise ValueError(f"log.wandb must be 'offline' or 'online' to write to W&B, got {mode!r}.")
    try:
      import wandb
    except ImportError as error:
      raise ValueError(f"log.wandb={mode!r} needs the wandb package, which cannot be imported ({error}): "
                       "pip install wandb (or leave log.wandb empty).") from None
    workdir = pathlib.Path(workdir).absolute()
    self.id = run_id(workdir)
    # console="off": the progress line stays the trainer's own (W&B would wrap stdout).
    self.run = wandb.init(
        project=os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT, dir=str(workdir), id=self.id, resume="allow",
        mode=mode, name=workdir.name, config=dict(config) if config is not None else None, allow_val_change=True,
        settings=wandb.Settings(console="off", silent=True))
    self.run.define_metric("step")
    self.run.define_metric("*", step_metric="step")

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    """Log one record: `scalars` and the training step, `step`, as its x-axis.

    Args:
      step: the training step the scalars belong to.
      scalars: metric name -> value; each value is converted with `float`.
    """
    self.run.log({"step": step, **{key: float(value) for key, value in scalars.items()}})

  def close(self, exit_code: int = 0) -> None:
    """Finish the W&B run (flushes it and stops W&B's service process).

    Args:
      exit_code: recorded by W&B; nonzero marks the run failed.
    """
    self.run.finish(exit_code=exit_code)
