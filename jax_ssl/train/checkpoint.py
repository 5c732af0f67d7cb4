"""Checkpoints of a run: the train state, saved by Orbax (the data position is its step).

Saves do not stall the devices: `save` copies the state on the devices (one
jitted copy, dispatched like a step, so the next step may donate the
original's buffers) and returns; a background thread hands the copy to Orbax,
which moves it to the host and writes it. Saves happen every
`checkpoint_every` steps and whenever forced (end of training, preemption);
the newest `keep` are kept. A save that fails is raised by the next `save` or
`wait`.
Restoring takes the newest checkpoint that reads back: a corrupt one (a
truncated file, a lost directory) is skipped with one warning line and, when
training resumes, moved aside to `checkpoints/unreadable/<step>` (kept, not
deleted, and out of the way of the run's own saves), so a crash during or
after a save never loses the work of the checkpoints before it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import logging
import pathlib

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from jax_ssl.train.state import TrainState

log = logging.getLogger(__name__)

UNREADABLE_DIR = "unreadable"


@contextlib.contextmanager
def orbax_quiet():
  """Keep Orbax's own logging (hundreds of lines for one unreadable checkpoint) out of the user's way.

  Orbax logs through absl, whose Python logger is "absl"; jax_ssl reports
  each unreadable step itself, in one line.
  """
  absl_logger = logging.getLogger("absl")
  previous = absl_logger.level
  absl_logger.setLevel(logging.CRITICAL)
  try:
    yield
  finally:
    absl_logger.setLevel(previous)


def _reason(error: BaseException) -> str:
  first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
  return f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__


@jax.jit
def _device_copy(tree):
  """A copy of every array of `tree` in new device buffers, with the same shardings."""
  return jax.tree.map(jnp.copy, tree)


class Checkpointer:
  """Orbax `CheckpointManager` over `directory` with one item, `state`, saved from a background thread.

  Orbax's own save blocks the caller until every array is on the host, and
  its Python work over a few hundred leaves takes longer than a small model's
  step (0.15-0.25 s on the 2-core CPU), all while the devices sit idle after
  the sync that checked the state was finite. Here the caller only dispatches
  a device copy; that blocking part runs on one worker thread, beside the
  next steps. The price is one extra copy of the train state on the devices
  until Orbax has moved it to the host.

  With several processes the saves stay on the caller's thread: Orbax's
  barriers between processes are device collectives, and issued from a
  second thread they could interleave with the step's collectives in a
  different order on different processes.
  """

  def __init__(self, directory: str | pathlib.Path, *, save_every: int, keep: int, background: bool | None = None):
    """Opens (or creates) `directory`.

    Args:
      directory: where the step directories go.
      save_every: the regular save interval in steps (see `due`).
      keep: how many of the newest checkpoints to keep.
      background: save from a worker thread; None for "when this is the only process".
    """
    options = ocp.CheckpointManagerOptions(save_interval_steps=save_every, max_to_keep=keep,
                                           enable_async_checkpointing=True, create=True)
    self.directory = pathlib.Path(directory).absolute()
    self.save_every = save_every
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state",))
    background = jax.process_count() == 1 if background is None else background
    # One worker: the manager sees one save at a time, in step order, and never two threads at once.
    self._worker = (concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="jax_ssl_checkpoint")
                    if background else None)
    self._pending: concurrent.futures.Future | None = None
    self._copy = _device_copy

  def prepare(self, state: TrainState) -> None:
    """Compile the saves' device copy for `state`'s layout now, so that the first save does not compile.

    Args:
      state: a train state (concrete, or `jax.ShapeDtypeStruct`s with shardings) of the layout later saved.
    """
    if self._worker is not None:
      self._copy = _device_copy.lower(state).compile()

  def due(self, step: int) -> bool:
    """Whether `step` is a regular save step (a multiple of `save_every`), with no device work.

    Decided here rather than by Orbax's `should_save`, which also saves the
    first step it is asked about: the run's save steps must not depend on
    where it resumed.

    Args:
      step: the training step just completed.

    Returns:
      True if `step` is positive and a multiple of `save_every`.
    """
    return step > 0 and step % self.save_every == 0

  def save(self, step: int, state: TrainState, *, force: bool = False) -> bool:
    """Save if `step` is due (or `force`); returns whether a save started.

    A step is never on disk already: a rerun resumes after its newest readable
    checkpoint, and unreadable newer ones were moved aside by `restore_latest`.

    Args:
      step: the training step the state belongs to; it names the checkpoint directory.
      state: the train state to save (sharded `jax.Array`s).
      force: save even when `step` is not a multiple of `save_every`.

    Returns:
      Whether a save was started; it completes in the background (see `wait`). With the worker thread,
      a due or forced save always starts.

    Raises:
      Exception: whatever made the previous save fail (a full disk, say), re-raised here.
    """
    if self._worker is None:
      return self._orbax_save(step, state, force)
    if not (force or self.due(step)):
      return False
    self._raise_failed_save()
    copy = self._copy(state)
    self._pending = self._worker.submit(self._orbax_save, step, copy, force)
    return True

  def _orbax_save(self, step: int, state: TrainState, force: bool) -> bool:
    return self._manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state)), force=force)

  def _raise_failed_save(self) -> None:
    """Re-raise the error of a finished save, if it failed; a save still running is left running."""
    if self._pending is not None and self._pending.done():
      pending, self._pending = self._pending, None
      pending.result()

  def _restore(self, step: int, abstract_state: TrainState) -> TrainState:
    with orbax_quiet():
      try:
        return self._restore_tree(step, abstract_state)
      except ValueError:
        if abstract_state.method_statistics is not None:
          raise
        # Saved before TrainState had `method_statistics`: the same tree without that field.
        legacy = {field.name: getattr(abstract_state, field.name) for field in dataclasses.fields(TrainState)
                  if field.name != "method_statistics"}
        return TrainState(**self._restore_tree(step, legacy), method_statistics=None)

  def _restore_tree(self, step: int, target):
    return self._manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target))).state

  def restore_latest(self, abstract_state: TrainState) -> TrainState | None:
    """The newest readable checkpoint's state, or None if there is none; moves unreadable newer ones aside.

    Each unreadable step is named in one warning line with the reason, and
    moved to `unreadable/<step>` so that the run can save that step again.

    Args:
      abstract_state: `jax.ShapeDtypeStruct`s with shardings, the layout to restore into.

    Returns:
      The restored train state, or None if no checkpoint could be read.
    """
    self.wait()
    unreadable = []
    restored = None
    for step in sorted(self._manager.all_steps(), reverse=True):
      try:
        restored = self._restore(step, abstract_state)
      except Exception as error:  # noqa: BLE001 - any unreadable checkpoint is skipped, whatever broke it
        log.warning("checkpoint at step %d in %s is unreadable (%s); moved to %s/%d, trying an earlier one",
                    step, self.directory, _reason(error), UNREADABLE_DIR, step)
        unreadable.append(step)
        continue
      log.info("resuming from the checkpoint at step %d in %s", step, self.directory)
      break
    if unreadable:
      self._move_aside(unreadable)
    return restored

  def _move_aside(self, steps: list[int]) -> None:
    """Move the directories of `steps` to `unreadable/` (process 0; every process waits for it)."""
    if jax.process_index() == 0:
      aside = self.directory / UNREADABLE_DIR
      aside.mkdir(exist_ok=True)
      for step in steps:
        target = aside / str(step)
        suffix = 1
        while target.exists():  # the same step found unreadable before: keep both
          target, suffix = aside / f"{step}.{suffix}", suffix + 1
        (self.directory / str(step)).rename(target)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices("jax_ssl: unreadable checkpoints moved aside")
    self._manager.reload()

  def restore_state(self, step: int | None, abstract_state: TrainState) -> tuple[int, TrainState]:
    """The state saved at `step` (default: the newest readable), without the data iterator.

    Read only: an unreadable newest checkpoint is skipped with one warning
    line naming the step and why, not moved.

    Args:
      step: the step to restore, or None for the newest readable checkpoint. An explicit step is not
        replaced by an earlier one if it cannot be read.
      abstract_state: `jax.ShapeDtypeStruct`s with shardings, the layout to restore into.

    Returns:
      `(step, state)`: the step actually restored and its train state.

    Raises:
      FileNotFoundError: if there is no checkpoint, or none of the candidates reads back (the message
        has one line per step with its reason).
    """
    self.wait()
    steps = sorted(self._manager.all_steps(), reverse=True) if step is None else [step]
    if not steps:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    errors = []
    for candidate in steps:
      try:
        return candidate, self._restore(candidate, abstract_state)
      except Exception as error:  # noqa: BLE001
        errors.append(f"step {candidate}: {_reason(error)}")
        if step is None:
          log.warning("checkpoint at step %d in %s is unreadable (%s); skipped", candidate, self.directory,
                      _reason(error))
    raise FileNotFoundError(f"no readable checkpoint in {self.directory}:\n" + "\n".join(errors))

  def wait(self) -> None:
    """Block until pending saves are on disk; re-raises the error of a save that failed."""
    if self._pending is not None:
      pending, self._pending = self._pending, None
      pending.result()
    self._manager.wait_until_finished()

  def close(self) -> None:
    """Finish pending saves and release the manager (a failed save's error is left to `wait`)."""
    if self._worker is not None:
      self._worker.shutdown(wait=True)
    self._manager.close()


def abstract_like(state: TrainState, shardings: TrainState) -> TrainState:
  """Shape/dtype/sharding stand-ins for `state`, the restore target.

  Args:
    state: a train state, concrete or abstract (only each leaf's `shape` and `dtype` are read).
    shardings: a pytree of the same structure as `state` holding one `jax.sharding.Sharding` per leaf.

  Returns:
    A `TrainState` of `jax.ShapeDtypeStruct`s carrying each leaf's shape, dtype and sharding.
  """
  return jax.tree.map(lambda leaf, sharding: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding),
                      state, shardings)
