"""Checkpoints of a run: the train state, saved by Orbax (the data position is its step).

Saves are asynchronous (arrays are copied to the host before `save` returns,
so the next step may reuse their buffers), every `checkpoint_every` steps and
whenever forced (end of training, preemption); the newest `keep` are kept.
Restoring takes the newest checkpoint that reads back: a corrupt one (a
truncated file, a lost directory) is skipped with a warning, so a crash
during or after a save never loses the work of the checkpoints before it.
"""

from __future__ import annotations

import logging
import pathlib

import jax
import orbax.checkpoint as ocp

from jax_ssl.train.state import TrainState

log = logging.getLogger(__name__)


class Checkpointer:
  """Orbax `CheckpointManager` over `directory` with one item, `state`."""

  def __init__(self, directory: str | pathlib.Path, *, save_every: int, keep: int):
    options = ocp.CheckpointManagerOptions(save_interval_steps=save_every, max_to_keep=keep,
                                           enable_async_checkpointing=True, create=True)
    self.directory = pathlib.Path(directory).absolute()
    self.save_every = save_every
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state",))

  def due(self, step: int) -> bool:
    """Whether `step` is a regular save step (a multiple of `save_every`), with no device work.

    Decided here rather than by Orbax's `should_save`, which also saves the
    first step it is asked about: the run's save steps must not depend on
    where it resumed.
    """
    return step > 0 and step % self.save_every == 0

  def save(self, step: int, state: TrainState, *, force: bool = False) -> bool:
    """Save if `step` is due (or `force`); returns whether a save started.

    A step already on disk is kept as it is (a rerun that fell back past an
    unreadable newest checkpoint retrains to its step): Orbax refuses to
    overwrite it.
    """
    if step in self._manager.all_steps():
      return False
    return self._manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state)), force=force)

  def restore_latest(self, abstract_state: TrainState) -> TrainState | None:
    """The newest readable checkpoint's state, or None if there is none.

    `abstract_state`: `jax.ShapeDtypeStruct`s with shardings, the layout to restore into.
    """
    for step in sorted(self._manager.all_steps(), reverse=True):
      try:
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state)))
      except Exception as error:  # noqa: BLE001 - any unreadable checkpoint is skipped, whatever broke it
        log.warning("checkpoint at step %d in %s is unreadable (%s: %s); trying an earlier one", step,
                    self.directory, type(error).__name__, str(error).splitlines()[0] if str(error) else "")
        continue
      log.info("resuming from the checkpoint at step %d in %s", step, self.directory)
      return restored.state
    return None

  def restore_state(self, step: int | None, abstract_state: TrainState) -> tuple[int, TrainState]:
    """The state saved at `step` (default: the newest readable), without the data iterator."""
    steps = sorted(self._manager.all_steps(), reverse=True) if step is None else [step]
    if not steps:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    errors = []
    for candidate in steps:
      try:
        restored = self._manager.restore(candidate, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state)))
        return candidate, restored.state
      except Exception as error:  # noqa: BLE001
        errors.append(f"step {candidate}: {type(error).__name__}")
    raise FileNotFoundError(f"no readable checkpoint in {self.directory} ({'; '.join(errors)})")

  def wait(self) -> None:
    """Block until pending asynchronous saves are on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


def abstract_like(state: TrainState, shardings: TrainState) -> TrainState:
  """Shape/dtype/sharding stand-ins for `state`, the restore target."""
  return jax.tree.map(lambda leaf, sharding: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding),
                      state, shardings)
