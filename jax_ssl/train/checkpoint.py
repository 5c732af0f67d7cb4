"""Checkpoints of a run: the train state, saved by Orbax (the data position is its step).

Each checkpoint holds two items: `state`, the train state, and `meta`, a JSON
record of the step, the run's config and a fingerprint of every array of the
state (`jax_ssl.train.integrity`). Before anything is written, one jitted pass
over the state checks that every float is finite: a state with a NaN or inf
is never saved (`NonFiniteStateError`).

Saves do not stall the devices longer than that check: `save` copies the
state on the devices (one jitted program with the check, so the next step may
donate the original's buffers) and returns; a background thread hands the
copy to Orbax, which moves it to the host and writes it. Saves happen every
`checkpoint_every` steps and whenever forced (end of training, preemption);
the newest `keep` are kept. A save that fails is raised by the next `save` or
`wait`.

Restoring takes the newest checkpoint that reads back and passes the same
check on what was read: the fingerprints recomputed on the restored arrays
equal the saved ones (a flipped byte that Orbax's format does not notice) and
every float is finite. A checkpoint that fails (a truncated file, a lost
directory, changed bytes) is skipped with one warning line and, when training
resumes, moved aside to `checkpoints/unreadable/<step>` (kept, not deleted,
and out of the way of the run's own saves), so a crash during or after a save
never loses the work of the checkpoints before it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import logging
import pathlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jax_ssl.train import integrity
from jax_ssl.train.state import TrainState

log = logging.getLogger(__name__)

UNREADABLE_DIR = "unreadable"
STATE_ITEM = "state"
META_ITEM = "meta"
META_FORMAT = 1


class NonFiniteStateError(RuntimeError):
  """The state to be saved holds a NaN or inf; nothing was written."""


class CorruptCheckpointError(ValueError):
  """A checkpoint read back, but its arrays are not those that were saved, or hold a NaN or inf."""


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


def _replicated_like(tree):
  """A sharding that replicates a small output over the devices `tree`'s first leaf lives on."""
  sharding = jax.tree.leaves(tree)[0].sharding
  return NamedSharding(sharding.mesh, P()) if isinstance(sharding, NamedSharding) else sharding


def _jit_report(tree, *, with_copy: bool):
  """`integrity_report` of `tree`, jitted for its layout: with a device copy of `tree` (the saves) or without.

  The report comes back replicated, so that every process can read it.
  """
  replicated = _replicated_like(tree)
  if with_copy:
    shardings = jax.tree.map(lambda leaf: leaf.sharding, tree)
    return jax.jit(lambda t: (jax.tree.map(jnp.copy, t), integrity.integrity_report(t)),
                   out_shardings=(shardings, replicated)).lower(tree).compile()
  return jax.jit(integrity.integrity_report, out_shardings=replicated).lower(tree).compile()


def _legacy_layouts(abstract_state: TrainState) -> list[tuple[Any, Callable[[Any], TrainState]]]:
  """Restore targets for checkpoints written by earlier versions, each with the map back to today's state.

  Before TrainState had `method_statistics`, the field was absent; before
  clipping was applied without a state of its own (`optim.make_optimizer`), a
  run with `optim.grad_clip_norm > 0` saved its optimizer state as
  `(EmptyState(), state)`, optax.chain's layout.
  """
  def without_statistics(state):
    return {field.name: getattr(state, field.name) for field in dataclasses.fields(TrainState)
            if field.name != "method_statistics"}

  def chained(state):
    return state.replace(opt_state=(optax.EmptyState(), state.opt_state))

  def unchain(restored: TrainState) -> TrainState:
    return restored.replace(opt_state=restored.opt_state[1])

  if not isinstance(abstract_state, TrainState):
    return []
  layouts = [(chained(abstract_state), unchain)]
  if abstract_state.method_statistics is None:
    layouts += [(without_statistics(abstract_state), lambda tree: TrainState(**tree, method_statistics=None)),
                (without_statistics(chained(abstract_state)),
                 lambda tree: unchain(TrainState(**tree, method_statistics=None)))]
  return layouts


class Checkpointer:
  """Orbax `CheckpointManager` over `directory` with the items `state` and `meta`, saved from a background thread.

  Orbax's own save blocks the caller until every array is on the host, and
  its Python work over a few hundred leaves takes longer than a small model's
  step (0.15-0.25 s on the 2-core CPU), all while the devices sit idle after
  the sync that checked the state was finite. Here the caller only dispatches
  a device copy beside the state's check and reads the check's few numbers;
  Orbax's blocking part runs on one worker thread, beside the next steps. The
  price is one extra copy of the train state on the devices until Orbax has
  moved it to the host.

  With several processes the saves stay on the caller's thread: Orbax's
  barriers between processes are device collectives, and issued from a
  second thread they could interleave with the step's collectives in a
  different order on different processes.
  """

  def __init__(self, directory: str | pathlib.Path, *, save_every: int, keep: int, config: dict | None = None,
               background: bool | None = None):
    """Opens (or creates) `directory`.

    Args:
      directory: where the step directories go.
      save_every: the regular save interval in steps (see `due`).
      keep: how many of the newest checkpoints to keep.
      config: the run's config as a JSON dict, written into every checkpoint's `meta` (None for a reader).
      background: save from a worker thread; None for "when this is the only process".
    """
    options = ocp.CheckpointManagerOptions(save_interval_steps=save_every, max_to_keep=keep,
                                           enable_async_checkpointing=True, create=True)
    self.directory = pathlib.Path(directory).absolute()
    self.save_every = save_every
    self.config = config
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=(STATE_ITEM, META_ITEM))
    background = jax.process_count() == 1 if background is None else background
    # One worker: the manager sees one save at a time, in step order, and never two threads at once.
    self._worker = (concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="jax_ssl_checkpoint")
                    if background else None)
    self._pending: concurrent.futures.Future | None = None
    self._snapshot = None  # the saves' check (and copy), compiled by `prepare`
    self._verify = None  # the restores' check, compiled on the first restore
    self.last_step: int | None = None  # the newest step saved (or being saved) or restored by this object

  def prepare(self, state: TrainState) -> None:
    """Compile the saves' check (and device copy) for `state`'s layout now, so that the first save does not.

    Args:
      state: a train state (concrete, or `jax.ShapeDtypeStruct`s with shardings) of the layout later saved.
    """
    self._snapshot = _jit_report(state, with_copy=self._worker is not None)

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
    """Check `state` and save it if `step` is due (or `force`); returns whether a save started.

    The check waits for `state` to be computed: every float must be finite,
    and each array's fingerprint is written beside it. A step is never on
    disk already: a rerun resumes after its newest readable checkpoint, and
    unreadable newer ones were moved aside by `restore_latest`.

    Args:
      step: the training step the state belongs to; it names the checkpoint directory.
      state: the train state to save (sharded `jax.Array`s).
      force: save even when `step` is not a multiple of `save_every`.

    Returns:
      Whether a save was started; with the worker thread it completes in the background (see `wait`).

    Raises:
      NonFiniteStateError: an array of `state` holds a NaN or inf; nothing is written (the message says how
        many arrays, by field).
      Exception: whatever made the previous save fail (a full disk, say), re-raised here.
    """
    if not (force or self.due(step)):
      return False
    # At most one save in flight: each holds a device copy of the state, and a failed one must be raised, not
    # overwritten. Saves due more often than they complete make the loop wait here.
    self._finish_pending()
    if self._snapshot is None:
      self.prepare(state)
    if self._worker is None:
      copy, report = state, self._snapshot(state)
    else:
      copy, report = self._snapshot(state)
    checked = integrity.Report.fetch(state, report)
    if checked.non_finite:
      raise NonFiniteStateError(f"the state after step {step} holds NaN or inf in {checked.describe_non_finite()}; "
                                "it was not saved")
    meta = {"format": META_FORMAT, "step": step, "fingerprints": checked.as_json(), "config": self.config}
    self.last_step = step
    if self._worker is None:
      self._orbax_save(step, copy, meta)
    else:
      self._pending = self._worker.submit(self._orbax_save, step, copy, meta)
    return True

  def _orbax_save(self, step: int, state: TrainState, meta: dict) -> bool:
    return self._manager.save(step, args=ocp.args.Composite(
        **{STATE_ITEM: ocp.args.StandardSave(state), META_ITEM: ocp.args.JsonSave(meta)}), force=True)

  def _finish_pending(self) -> None:
    """Wait for the save in flight, if any; re-raise its error once if it failed."""
    if self._pending is not None:
      pending, self._pending = self._pending, None
      pending.result()

  def _restore(self, step: int, abstract_state: TrainState) -> TrainState:
    """The state saved at `step`, verified against its `meta` (see the module docstring)."""
    with orbax_quiet():
      state = self._restore_state(step, abstract_state)
      meta = self.read_meta(step)
    if self._verify is None:
      self._verify = _jit_report(state, with_copy=False)
    report = integrity.Report.fetch(state, self._verify(state))
    if meta is not None:
      differing = report.differing(meta["fingerprints"])
      if differing:
        raise CorruptCheckpointError(f"{len(differing)} of its arrays differ from the checksums saved with them "
                                     f"({', '.join(differing[:3])}{', ...' if len(differing) > 3 else ''})")
    if report.non_finite:
      raise CorruptCheckpointError(f"it holds NaN or inf in {report.describe_non_finite()}")
    return state

  def _restore_state(self, step: int, abstract_state: TrainState) -> TrainState:
    try:
      return self._restore_tree(step, abstract_state)
    except ValueError as error:
      for target, to_state in _legacy_layouts(abstract_state):
        try:
          return to_state(self._restore_tree(step, target))
        except ValueError:
          continue
      raise error

  def _restore_tree(self, step: int, target):
    return self._manager.restore(step, args=ocp.args.Composite(**{STATE_ITEM: ocp.args.StandardRestore(target)}))[
        STATE_ITEM]

  def read_meta(self, step: int) -> dict | None:
    """The `meta` record saved with `step` (`format`, `step`, `fingerprints`, `config`); None for a checkpoint
    written before records existed.

    Args:
      step: a step directory of this checkpointer.

    Returns:
      The record as a dict, or None if the checkpoint's own metadata lists no `meta` item.

    Raises:
      Exception: the record is listed but cannot be read (a lost or damaged file), or the step's metadata
        cannot be read.
    """
    if META_ITEM not in (self._manager.metadata(step).item_handlers or {}):
      return None
    meta = self._manager.restore(step, args=ocp.args.Composite(**{META_ITEM: ocp.args.JsonRestore()}))[META_ITEM]
    if not isinstance(meta, dict) or not isinstance(meta.get("fingerprints"), dict):
      raise CorruptCheckpointError(f"its {META_ITEM} record has no fingerprints")
    return meta

  def saved_config(self) -> dict | None:
    """The config recorded in the newest checkpoint that has a readable one; None if no checkpoint has one.

    Returns:
      The run config (a JSON dict) that wrote that checkpoint.
    """
    for step in sorted(self._manager.all_steps(), reverse=True):
      try:
        with orbax_quiet():
          meta = self.read_meta(step)
      except Exception:  # noqa: BLE001 - an unreadable record: an earlier checkpoint may have one
        continue
      if meta is not None and isinstance(meta.get("config"), dict):
        return meta["config"]
    return None

  def restore_latest(self, abstract_state: TrainState) -> TrainState | None:
    """The newest checkpoint's state that reads back and verifies, or None; moves the newer ones aside.

    Each rejected step is named in one warning line with the reason, and
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
      self.last_step = step
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
    self._finish_pending()
    self._manager.wait_until_finished()

  def close(self) -> None:
    """Finish pending saves and release the manager (a failed save's error is left to `wait`)."""
    if self._worker is not None:
      self._worker.shutdown(wait=True)
    self._manager.close()


def has_checkpoints(directory: str | pathlib.Path) -> bool:
  """Whether `directory` holds step directories (readable or not; `unreadable/` does not count).

  Args:
    directory: a run's checkpoint directory (it may not exist).

  Returns:
    True if a directory named by a step number is in it.
  """
  directory = pathlib.Path(directory)
  return directory.is_dir() and any(path.name.isdigit() for path in directory.iterdir())


def saved_config(directory: str | pathlib.Path) -> dict | None:
  """The config recorded in the newest checkpoint of `directory` that has one (see `Checkpointer.saved_config`).

  Args:
    directory: a run's checkpoint directory (it may not exist).

  Returns:
    The config as a JSON dict, or None if no checkpoint records one.
  """
  if not has_checkpoints(directory):
    return None
  reader = Checkpointer(directory, save_every=1, keep=1 << 30, background=False)
  try:
    return reader.saved_config()
  finally:
    reader.close()


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
