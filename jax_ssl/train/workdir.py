"""What a run's workdir records about the run: its first config, the changes made since, its errors.

A workdir belongs to one run, and one process at a time: a run holds an
exclusive lock on `run.lock` (`WorkdirLock`) while it trains; the kernel
releases it when the process ends, however it ends, so a killed run leaves
no stale lock.

Its checkpoints only make sense under the config that wrote them, so a rerun
is checked against `config.json` (the first config, never overwritten)
before anything is restored; each checkpoint also carries the config that
wrote it, which stands in for a deleted `config.json`:

- fields that change the model, the data order or the objective (method,
  model, views, data, optimizer, batch size, seed, mesh, ...) must be equal;
  a difference is a `ConfigMismatchError` naming every changed field (the
  sections of methods the run does not use are not compared);
- fields that only say how long to train, how often to log, save or
  evaluate, where the data lies and how it is read, and the learning rate
  and gradient clipping (the remedy for a loss that went NaN)
  (`MUTABLE_FIELDS`) may change: each change is accepted and appended to
  `config_history.jsonl`.

`data.on_device=auto` is resolved once, by the memory of the devices the run
started on, and recorded in `data_feed.json`: the two feeds read the data in
different orders, so a run resumed on other hardware keeps its feed.

`error.log` keeps the full account of a failure whose one-line summary the
command prints.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import pathlib
import shutil
import socket
import sys
import traceback
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from jax_ssl import methods
from jax_ssl.train import config as config_lib

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
HISTORY_FILE = "config_history.jsonl"
FEED_FILE = "data_feed.json"
ERROR_LOG = "error.log"
LOCK_FILE = "run.lock"

# Exact field names, or section prefixes ending in ".", that a rerun may change.
MUTABLE_FIELDS = (
    "train.num_steps", "train.num_epochs",  # extend (or shorten) the run
    "train.log_every", "train.checkpoint_every", "train.keep_checkpoints", "train.eval_every",
    "train.peer_timeout_seconds",
    "data.data_dir", "data.worker_count",  # where the same records lie, how many processes decode them
    "optim.base_lr", "optim.grad_clip_norm",  # after a NaN: resume with a lower rate or with clipping
    "eval.",  # what is measured after training, not what is trained
    "debug.",  # diagnostics (a profiler trace)
    "log.",  # where the scalars are also written (wandb)
)


class ConfigMismatchError(ValueError):
  """The config differs from the one that started the run in its workdir in a field that may not change."""


class WorkdirError(ValueError):
  """The workdir cannot hold a run: it is a file, lies under one, or cannot be written."""


class WorkdirInUseError(RuntimeError):
  """Another run holds the workdir's lock."""


def check_writable(workdir: str | pathlib.Path) -> None:
  """Create `workdir` if needed and check that a run can write there, before anything is built.

  Args:
    workdir: the run's directory.

  Raises:
    WorkdirError: one line naming the problem (a file in the way, a read-only filesystem, no permission)
      and what to do.
  """
  workdir = pathlib.Path(workdir)
  if workdir.exists() and not workdir.is_dir():
    raise WorkdirError(f"--workdir {workdir} is a file, not a directory: give a directory (new or a run's).")
  blocking = next((parent for parent in workdir.absolute().parents if parent.exists() and not parent.is_dir()), None)
  if blocking is not None:
    raise WorkdirError(f"--workdir {workdir} cannot be created: {blocking} is a file; give a path under a directory.")
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / LOCK_FILE, "a"):
      pass
  except OSError as error:
    reason = os.strerror(error.errno) if error.errno else str(error)
    raise WorkdirError(f"--workdir {workdir} is not writable ({reason}): give a directory this user can write "
                       "to.") from None


class WorkdirLock:
  """An exclusive `flock` on `WORKDIR/run.lock`, with who holds it written inside.

  The kernel drops the lock when the holding process ends (exit, crash,
  SIGKILL), so it never goes stale; the file stays, and the next run takes
  the lock and writes itself in. `flock` locks belong to an open file, so a
  second run in the same process conflicts too.
  """

  def __init__(self, workdir: str | pathlib.Path):
    self.path = pathlib.Path(workdir) / LOCK_FILE
    self._file = None

  def acquire(self) -> None:
    """Take the lock or fail at once.

    Raises:
      WorkdirInUseError: another process (or another run in this one) holds it; the message names it.
      WorkdirError: the filesystem does not take locks.
      OSError: the lock file cannot be created.
    """
    self.path.parent.mkdir(parents=True, exist_ok=True)
    lock_file = open(self.path, "a+")
    try:
      fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
      lock_file.seek(0)
      holder = lock_file.read().strip()
      lock_file.close()
      if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
        raise WorkdirError(f"cannot lock {self.path} ({os.strerror(error.errno)}): its filesystem does not take "
                           "file locks; give a --workdir on one that does.") from None
      raise WorkdirInUseError(f"{self.path.parent} is in use by another run ({_describe_holder(holder)}); wait for "
                              "it to end, or use another --workdir.") from None
    lock_file.seek(0)
    lock_file.truncate()
    lock_file.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                                "command": " ".join(sys.orig_argv)}) + "\n")
    lock_file.flush()
    self._file = lock_file

  def release(self) -> None:
    """Drop the lock (closing the file releases it); the file stays."""
    if self._file is not None:
      self._file.close()
      self._file = None

  def __enter__(self) -> WorkdirLock:
    self.acquire()
    return self

  def __exit__(self, *exc_info) -> None:
    self.release()


@contextlib.contextmanager
def hold(workdir: str | pathlib.Path):
  """Hold `workdir`'s lock on process 0 for the block; every process fails alike if another run has it.

  Args:
    workdir: the run's directory.

  Yields:
    Nothing; the lock is held until the block ends.

  Raises:
    WorkdirInUseError: another run holds the lock (raised on every process of a multi-process run).
  """
  workdir = pathlib.Path(workdir)
  lock = WorkdirLock(workdir) if jax.process_index() == 0 else None
  refused = None
  if lock is not None:
    try:
      lock.acquire()
    except WorkdirInUseError as error:
      refused = error
  if jax.process_count() > 1:
    anyone_refused = bool(np.any(multihost_utils.process_allgather(np.array(refused is not None))))
    if anyone_refused and refused is None:
      if lock is not None:
        lock.release()
      refused = WorkdirInUseError(f"{workdir} is in use by another run (found by process 0); wait for it to "
                                  "end, or use another --workdir.")
  if refused is not None:
    raise refused
  try:
    yield
  finally:
    if lock is not None:
      lock.release()


def _describe_holder(text: str) -> str:
  try:
    holder = json.loads(text)
    return f"process {holder['pid']} on {holder['host']}, started {holder['started']}: {holder['command']}"
  except (ValueError, KeyError, TypeError):
    return "a process that has not yet written its name"


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
  if not isinstance(tree, dict):
    return {prefix.removesuffix("."): tree}
  flat = {}
  for key, value in tree.items():
    flat.update(_flat(value, f"{prefix}{key}."))
  return flat


def _as_json(config: ml_collections.ConfigDict) -> dict:
  return json.loads(config.to_json())


def _sections_in_use(flat: dict[str, Any]) -> dict[str, Any]:
  """A flat config without the `method.<section>` fields of the methods it does not run.

  Only the chosen method's section (and `t_reg` for a `+tregs` name) shapes the
  checkpoints; another method's hyperparameters, or a section added to the
  library after the run started, are not part of the run.
  """
  name = flat.get("method.name", "")
  in_use = {name.removesuffix(methods.ADD_ON)} | ({methods.ADD_ON_SECTION} if name.endswith(methods.ADD_ON) else set())
  return {field: value for field, value in flat.items()
          if not (field.startswith("method.") and field.count(".") >= 2 and field.split(".")[1] not in in_use)}


def _mutable(field: str) -> bool:
  return any(field == name or (name.endswith(".") and field.startswith(name)) for name in MUTABLE_FIELDS)


def config_changes(first_flat: dict, current_flat: dict) -> dict[str, tuple[Any, Any]]:
  """{field: (before, now)} of every field of two flat configs that differs; a missing one reads `<absent>`.

  Args:
    first_flat: the earlier config, as a dict from dotted field name to value.
    current_flat: the config to compare with it, in the same form.

  Returns:
    A dict, sorted by field name, from each differing field to `(value in first_flat, value in
    current_flat)`, with the string "<absent>" for a field one of them lacks.
  """
  changes = {}
  for field in sorted(first_flat.keys() | current_flat.keys()):
    before, after = first_flat.get(field, "<absent>"), current_flat.get(field, "<absent>")
    if before != after:
      changes[field] = (before, after)
  return changes


def _latest(first: dict, workdir: pathlib.Path) -> dict[str, Any]:
  """The flat config the last run in `workdir` used: the first one with the history's changes applied."""
  latest = _flat(first)
  history = workdir / HISTORY_FILE
  if history.exists():
    for line in history.read_text().splitlines():
      if line.strip():
        latest.update({field: change["to"] for field, change in json.loads(line)["changes"].items()})
  return latest


def check_config(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
                 checkpoint_config: dict | None = None,
                 has_checkpoints: bool = False) -> dict[str, tuple[Any, Any]]:
  """The accepted changes of `config` against the last run in `workdir` ({} for a new workdir).

  Fields outside `MUTABLE_FIELDS` are compared with the run's first config
  (they never change); the others with their values in the last run, so
  that the history records each change once. Without `config.json` (deleted),
  the config saved with the newest checkpoint stands in for both.

  Args:
    config: the config of this run.
    workdir: the run's directory; its `config.json` and `config_history.jsonl` are read if present.
    checkpoint_config: the config recorded in the workdir's newest checkpoint that has one (a JSON dict), used
      when `config.json` is missing; None if there is none.
    has_checkpoints: whether the workdir holds checkpoints (of any age).

  Returns:
    {field: (value in the last run, value now)} for every changed field, all in `MUTABLE_FIELDS`;
    an empty dict for a new run.

  Raises:
    ConfigMismatchError: a field outside `MUTABLE_FIELDS` differs (the
      message names each such field with both values and the workdir);
      `config.json` or its history cannot be read or parsed; or there are
      checkpoints but neither `config.json` nor a config recorded with them.
  """
  path = pathlib.Path(workdir) / CONFIG_FILE
  if path.exists():
    try:
      latest = _latest(config_lib.upgrade_saved_config(json.loads(path.read_text())), pathlib.Path(workdir))
    except (OSError, ValueError, KeyError, TypeError) as error:
      raise ConfigMismatchError(f"{path} or its {HISTORY_FILE} cannot be read ({error}); restore them or use "
                                "another --workdir.") from None
    reference = path
  elif checkpoint_config is not None:
    latest = _flat(config_lib.upgrade_saved_config(checkpoint_config))
    reference = "the config saved with its newest checkpoint"
  elif has_checkpoints:
    raise ConfigMismatchError(f"{workdir} holds checkpoints but no {CONFIG_FILE}, and none of them records the config "
                              f"that wrote it (saved before checkpoints carried it): restore {path}, or use another "
                              "--workdir.")
  else:
    return {}
  changes = config_changes(_sections_in_use(latest), _sections_in_use(_flat(_as_json(config))))
  fixed = {field: values for field, values in changes.items() if not _mutable(field)}
  if fixed:
    listed = ", ".join(f"{field} ({before!r} -> {after!r})" for field, (before, after) in fixed.items())
    raise ConfigMismatchError(
        f"the config differs from the run in {pathlib.Path(workdir)} in fields its checkpoints depend on: "
        f"{listed}; use another --workdir for a new run, or rerun with the first config ({reference}).")
  return changes


def record_config(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
                  changes: dict[str, tuple[Any, Any]], step: int, checkpoint_config: dict | None = None) -> None:
  """Write `config.json` for a new run; for a resumed one, append its accepted changes to the history.

  Args:
    config: the config of this run, written whole if `workdir` has no `config.json` yet.
    workdir: the run's directory, created if missing.
    changes: the accepted changes, as returned by `check_config`; nothing is appended when empty.
    step: the step the run resumed at, recorded with the changes.
    checkpoint_config: when `config.json` was deleted, the config the newest checkpoint recorded: it is
      written back as `config.json` (the changes of this run go to the history), instead of `config`.
  """
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  path = workdir / CONFIG_FILE
  if not path.exists():
    if checkpoint_config is None:
      path.write_text(config.to_json(indent=2) + "\n")
      return
    path.write_text(json.dumps(checkpoint_config, indent=2) + "\n")
  if changes:
    entry = {"time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
             "resumed_at_step": step,
             "changes": {field: {"from": before, "to": after} for field, (before, after) in changes.items()}}
    with open(workdir / HISTORY_FILE, "a") as history:
      history.write(json.dumps(entry) + "\n")


def recorded_on_device(workdir: str | pathlib.Path) -> bool | None:
  """The feed the run in `workdir` chose for `data.on_device=auto` (True: on the devices), or None.

  Args:
    workdir: the run's directory.

  Returns:
    The recorded choice, or None if `data_feed.json` does not exist (a new run).
  """
  path = pathlib.Path(workdir) / FEED_FILE
  if not path.exists():
    return None
  return bool(json.loads(path.read_text())["on_device"])


def record_on_device(workdir: str | pathlib.Path, on_device: bool) -> None:
  """Record the feed a new run chose, so that its reruns read the data in the same order.

  An existing record is left as it is.

  Args:
    workdir: the run's directory (must exist).
    on_device: whether the run keeps its split on the devices (True) or is fed from the host.
  """
  path = pathlib.Path(workdir) / FEED_FILE
  if not path.exists():
    path.write_text(json.dumps({"on_device": on_device}) + "\n")


def write_error_log(workdir: str | pathlib.Path, error: BaseException) -> pathlib.Path | None:
  """Append the traceback of `error` to `WORKDIR/error.log`; its path, or None if it cannot be written.

  Args:
    workdir: the run's directory.
    error: the exception whose formatted traceback is appended, after a timestamp line.

  Returns:
    The path of the log, or None if it could not be written (an `OSError`).
  """
  path = pathlib.Path(workdir) / ERROR_LOG
  stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
  try:
    with open(path, "a") as log:
      log.write(f"--- {stamp}\n{''.join(traceback.format_exception(error))}\n")
  except OSError:
    return None  # the disk may be the very thing that failed
  return path


def remove_incomplete_saves(checkpoint_dir: str | pathlib.Path) -> list[pathlib.Path]:
  """Delete the temporary directories of saves that never completed (Orbax's `*.orbax-checkpoint-tmp*`).

  They are not checkpoints (a save becomes one only when renamed into
  place), so no work is lost; after a failed save they only hold disk space.

  Args:
    checkpoint_dir: the run's checkpoint directory; nothing happens if it does not exist.

  Returns:
    The paths of the directories removed (errors while deleting are ignored).
  """
  removed = []
  for path in pathlib.Path(checkpoint_dir).glob("*.orbax-checkpoint-tmp*"):
    shutil.rmtree(path, ignore_errors=True)
    removed.append(path)
  return removed
