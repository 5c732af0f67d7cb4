"""The training loop: data in, sharded steps, checkpoints, monitoring, final evaluation.

A run is a pure function of its config and the workdir's checkpoints: it
resumes from the newest readable checkpoint, and since every batch is a
function of (seed, step), the data position is the restored step: a
preempted, killed or crashed job rerun with the same command continues exactly
where its last checkpoint left it. The loop never waits for the device on a
step that neither logs nor saves; a non-finite step is recorded on the device
and checked before any state can be saved, and the state itself is checked
by every save, so a NaN never reaches a checkpoint; SIGTERM or a first Ctrl-C
saves and stops cleanly. A run holds its workdir's lock from start to end:
a second run on the same workdir is refused before it builds anything.
"""

from __future__ import annotations

import json
import logging
import math
import pathlib

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jax_ssl import methods
from jax_ssl.data import catalog
from jax_ssl.data import feed
from jax_ssl.data import sources
from jax_ssl.train import checkpoint
from jax_ssl.train import config as config_lib
from jax_ssl.train import eval_sample as eval_sample_lib
from jax_ssl.train import evaluation
from jax_ssl.train import monitor as monitor_lib
from jax_ssl.train import report
from jax_ssl.train import signals
from jax_ssl.train import state as state_lib
from jax_ssl.train import step as step_lib
from jax_ssl.train import workdir as workdir_lib

log = logging.getLogger(__name__)

CONFIG_FILE = workdir_lib.CONFIG_FILE
CHECKPOINT_DIR = workdir_lib.CHECKPOINT_DIR
PROFILE_DIR = "profile"
data_mesh = state_lib.data_mesh


class NonFiniteError(RuntimeError):
  """A step produced a NaN or inf (a loss term, the gradient norm, or the state); the run stopped unsaved."""


class TrainingStoppedError(RuntimeError):
  """A run that a caller needs trained to its last step stopped early (preempted or interrupted)."""


def require_completed(summary: dict) -> dict:
  """`summary` (what `train` returns) when the run reached its last step; raises otherwise.

  `train` returns after a SIGTERM or a first Ctrl-C with its checkpoint saved,
  which is right for a run started from the command line. A caller that goes
  on to evaluate the run, or to train the next one, must not take that
  checkpoint for the finished model.

  Args:
    summary: the dict `train` returned.

  Returns:
    `summary` itself, when its status is "completed".

  Raises:
    TrainingStoppedError: the status is not "completed"; the message names the step and how to resume.
  """
  if summary["status"] != "completed":
    raise TrainingStoppedError(
        f"training in {summary['workdir']} was {summary['status']} at step {summary['step']} of "
        f"{summary['total_steps']}; its checkpoint is kept: rerun the same command to resume.")
  return summary


def open_training_source(config: ml_collections.ConfigDict, split: str = "train") -> sources.Source:
  """The split the run reads; variable-size images are decoded straight to the largest view's side.

  Args:
    config: the run config; reads `data.name`, `data.data_dir`, `data.classes`, `views.size` and
      `views.local_size`.
    split: the dataset split to open, "train" or "test".

  Returns:
    A random-access `Source`, restricted to the classes of `data.classes` when it is set.

  Raises:
    ValueError: if the dataset or split is unknown, or `data.classes` does not parse or
      names classes the dataset lacks.
    DatasetNotFoundError: if the dataset is not prepared in its data directory.
  """
  spec = catalog.get_spec(config.data.name)
  image_size = max(config.views.size, config.views.local_size) if spec.variable_size else None
  source = sources.open_source(config.data.name, split, config.data.data_dir or None, image_size=image_size)
  classes = catalog.parse_classes(config.data.classes)
  return source if classes is None else source.with_classes(classes)


def check_training_source(config: ml_collections.ConfigDict, source: sources.Source) -> None:
  """Raise `ValueError` (one line) if `source` cannot feed the run: no class labels, or fewer images than a batch.

  Args:
    config: the run config; reads `data.name`, `data.classes` and `train.global_batch_size`.
    source: the training split, as `open_training_source` opened it.

  Raises:
    ValueError: the dataset has no class labels (the online probe and the report need them), or holds fewer
      images (of the chosen classes) than one global batch.
  """
  spec = catalog.get_spec(config.data.name)
  if "label" not in spec.num_classes:
    raise ValueError(f"data.name {spec.name!r} has no class labels (only {', '.join(spec.num_classes)}): the run's "
                     "online probe and report need them; pretrain on a labelled dataset.")
  batch = config.train.global_batch_size
  if len(source) < batch:
    chosen = f" of classes {config.data.classes}" if config.data.classes else ""
    raise ValueError(f"train.global_batch_size = {batch} is larger than the {len(source)} training images{chosen} "
                     f"of {spec.name}: use a batch of at most {len(source)}.")


def schedule_lengths(config: ml_collections.ConfigDict, num_records: int) -> tuple[int, int]:
  """(steps per epoch, total steps).

  Args:
    config: the run config; reads `train.global_batch_size`, `train.num_steps` and `train.num_epochs`.
    num_records: the number of records in the training split.

  Returns:
    `(steps_per_epoch, total_steps)`: full batches per epoch (at least 1), and `train.num_steps` if it is
    positive, otherwise `train.num_epochs` epochs rounded up to a whole step.
  """
  steps_per_epoch = max(1, num_records // config.train.global_batch_size)
  total = config.train.num_steps or int(math.ceil(config.train.num_epochs * steps_per_epoch))
  return steps_per_epoch, total


def describe_length(config: ml_collections.ConfigDict, steps_per_epoch: int, total_steps: int) -> str:
  """Where the run's length comes from, for its first line: `train.num_steps`, or epochs when it is 0.

  Args:
    config: the run config; reads `train.num_steps` and `train.num_epochs`.
    steps_per_epoch: as from `schedule_lengths`.
    total_steps: as from `schedule_lengths`.

  Returns:
    A phrase such as "45 epochs of 11 steps: train.num_epochs, since train.num_steps = 0".
  """
  if config.train.num_steps:
    return f"train.num_steps = {total_steps}"
  return (f"{config.train.num_epochs:g} epochs of {steps_per_epoch} steps: train.num_epochs, since "
          "train.num_steps = 0")


def _image_bytes(source: sources.Source) -> int:
  return len(source) * source.image_size * source.image_size * 3


def _agreed_on_device(setting: str, split_bytes: int, variable_size: bool, mesh: Mesh) -> bool:
  """`feed.choose_on_device` for one of this process's devices, agreed by all processes.

  Only a process's own devices report their memory; with several processes
  the split goes on the devices only if it fits on every process's (the two
  feeds read different orders, so all must take the same one).
  """
  local = next(d for d in mesh.devices.flat if d.process_index == jax.process_index())
  fits = feed.choose_on_device(setting, split_bytes, variable_size, local)
  if jax.process_count() == 1 or setting != "auto":
    return fits
  return bool(np.all(multihost_utils.process_allgather(np.array(fits))))


class Run:
  """Everything built from a config: data feed, model definitions, step function, state, checkpoints.

  The host tracks the step as a Python int (`step`): reading it from the
  device state would make every step wait for the one before.
  """

  def __init__(self, config: ml_collections.ConfigDict, workdir: str | pathlib.Path, mesh: Mesh | None = None):
    self.config = config
    self.workdir = pathlib.Path(workdir)
    self.mesh = mesh or data_mesh()
    self.spec = catalog.get_spec(config.data.name)
    self.method = methods.from_config(config.method)
    self.source = open_training_source(config)
    check_training_source(config, self.source)
    self.steps_per_epoch, self.total_steps = schedule_lengths(config, len(self.source))
    self.step_config = step_lib.build_step_config(config, self.method, self.mesh, self.steps_per_epoch,
                                                  self.total_steps)
    self.state, self.shardings = state_lib.create_state(config, self.method, self.spec.num_classes["label"],
                                                        self.step_config.optimizer,
                                                        self.step_config.probe_optimizer, self.mesh)
    recorded = workdir_lib.recorded_on_device(self.workdir) if config.data.on_device == "auto" else None
    # A resumed run keeps the feed it started with: the two read the data in different orders.
    self.on_device = recorded if recorded is not None else _agreed_on_device(
        config.data.on_device, _image_bytes(self.source), self.spec.variable_size, self.mesh)
    self.device_data, self._host_feed = feed.feed_for(
        self.on_device, self.source, mesh=self.mesh, global_batch_size=config.train.global_batch_size,
        seed=config.seed, worker_count=(config.data.worker_count if config.data.worker_count >= 0
                                        else feed.default_worker_count(self.spec.variable_size)))
    self.train_step, metrics_shapes = step_lib.build_train_step(
        self.step_config, self.shardings, self.state, step_lib.batch_shapes(config, self.mesh, self.source.image_size),
        self.device_data)
    self.guard = jax.device_put(step_lib.initial_guard(metrics_shapes), NamedSharding(self.mesh, P()))
    self.checkpointer = checkpoint.Checkpointer(self.workdir / CHECKPOINT_DIR,
                                                save_every=config.train.checkpoint_every,
                                                keep=config.train.keep_checkpoints,
                                                config=json.loads(config.to_json()))
    self.checkpointer.prepare(self.state)
    self.embedder = evaluation.Embedder(self.step_config.definitions.eval_network, config.views.size, self.spec.mean,
                                        self.spec.std, self.mesh)
    self.step = 0
    self.feed = None

  def restore(self) -> bool:
    """Resume from the newest readable checkpoint, if any; returns whether one was found."""
    restored = self.checkpointer.restore_latest(checkpoint.abstract_like(self.state, self.shardings))
    if restored is not None:
      self.state = restored
    self.step = int(self.state.step)
    return restored is not None

  def start_feed(self) -> None:
    """Start reading batches from the current step (the host feed's thread; nothing for device data)."""
    if self._host_feed is not None and self.feed is None:
      self.feed = self._host_feed(self.step)

  def next_batch(self) -> dict:
    """The next host-fed batch, on the devices (host feed only)."""
    self.start_feed()
    return self.feed.next()

  def step_once(self) -> dict:
    """Dispatch one training step; returns its metrics, still on the device."""
    data = self.device_data.step_inputs(self.step) if self.on_device else self.next_batch()
    self.state, self.guard, metrics = self.train_step(self.state, self.guard, data)
    self.step += 1
    return metrics

  def first_non_finite(self, guard: dict | None = None) -> tuple[int, dict] | None:
    """(step, metrics) of the first non-finite step so far, or None; reads the device guard unless given.

    Args:
      guard: a guard already fetched to the host (`{"step": ..., "metrics": ...}`); None to fetch
        `self.guard` from the device, which waits for the dispatched steps.

    Returns:
      `(step, metrics)` of the first step whose metrics were not all finite, or None if every step was.
    """
    guard = jax.device_get(self.guard if guard is None else guard)
    return None if int(guard["step"]) < 0 else (int(guard["step"]), guard["metrics"])

  def stop_feed(self) -> None:
    if self.feed is not None:
      self.feed.close()
      self.feed = None


def _bad_terms(metrics: dict) -> str:
  bad = [f"{name}={value}" for name, value in metrics.items()
         if name != "finite" and not math.isfinite(float(value))]
  return ", ".join(bad) or "unknown"


def train(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, mesh: Mesh | None = None, *,
          stop_signals: signals.StopSignals | None = None) -> dict:
  """Train (or resume) the run of `config` in `workdir`; returns a summary dict.

  The host dispatches steps without waiting for them: metrics stay on the
  device and are fetched on logging steps only, the next batches are already
  on the devices (or the whole split is), and a non-finite value is recorded
  on the device and checked at every logging step and before every save; each
  save also checks the state itself, so no non-finite state is ever saved. The
  loop runs under `jax.transfer_guard("disallow")`: an implicit transfer
  between host and device fails outside its logging, checkpoint and
  evaluation points (on CPU, where device buffers are host memory, only
  host-to-device transfers are seen).

  The run holds the workdir's lock (`workdir.WorkdirLock`, process 0) from
  before its config is compared until it returns. With `stop_signals` (the
  command line installs them), SIGTERM (a scheduler's preemption) and a first
  Ctrl-C save a checkpoint and return, with status "preempted" or
  "interrupted" instead of "completed". `debug.profile_steps` = "a:b" writes a
  profiler trace of steps a to b to `WORKDIR/profile`.

  Args:
    config: a validated run config (see `config.validate`); every section is read.
    workdir: the run's directory: config, history, metrics, checkpoints and report go there.
    mesh: the device mesh with a `data` axis; None for `data_mesh()` over all devices.
    stop_signals: the signal handlers the loop polls (`signals.StopSignals`); None: no stop but the end.

  Returns:
    A summary dict: `status` ("completed", "preempted" or "interrupted"), `step`, `total_steps` and
    `workdir`; after a completed run with `eval.report`, also `evaluation` (the probe accuracies) and,
    on process 0, `report` (the path of the report).

  Raises:
    WorkdirInUseError: another run holds the workdir (raised on every process, before anything is built).
    ConfigMismatchError: `workdir` holds a run whose config differs in a
      field its checkpoints depend on (see `workdir.MUTABLE_FIELDS`); raised
      before anything is built or restored.
    NonFiniteError: a loss term, the gradient norm or an embedding
      statistic became NaN or inf (the first such step and its terms are
      named; the run stops within `train.log_every` steps of it), or a state
      about to be saved holds one.
  """
  workdir = pathlib.Path(workdir)
  stop_signals = stop_signals or signals.NoStopSignals()
  with workdir_lib.hold(workdir):
    # Before anything is built or restored: the checkpoints belong to the workdir's first config (or, if
    # config.json was deleted, to the one each checkpoint recorded).
    checkpoint_config = None if (workdir / CONFIG_FILE).exists() else checkpoint.saved_config(workdir / CHECKPOINT_DIR)
    changes = workdir_lib.check_config(config, workdir, checkpoint_config,
                                       has_checkpoints=checkpoint.has_checkpoints(workdir / CHECKPOINT_DIR))
    return _train(config, workdir, mesh, changes, checkpoint_config, stop_signals)


def _stopped_message(problem: str, checkpoints: checkpoint.Checkpointer) -> str:
  """What a non-finite step or state says: the problem, and what the user can resume from."""
  remedy = "a lower --config.optim.base_lr or a --config.optim.grad_clip_norm"
  if checkpoints.last_step is None:
    return (f"{problem}; no checkpoint was saved: rerun with {remedy}, or change other settings in a new "
            "--workdir.")
  return (f"{problem}; the last checkpoint, step {checkpoints.last_step}, is in {checkpoints.directory}: rerun with "
          f"{remedy} to resume from it.")


def _train(config: ml_collections.ConfigDict, workdir: pathlib.Path, mesh: Mesh | None,
           changes: dict, checkpoint_config: dict | None, stop_signals) -> dict:
  # ---- Build: the run, its state (restored if a checkpoint exists), the records of the workdir. ----
  is_main = jax.process_index() == 0
  run = Run(config, workdir, mesh)
  resumed = run.restore()
  if is_main:
    workdir_lib.record_config(config, workdir, changes, run.step, checkpoint_config)
    workdir_lib.record_on_device(workdir, run.on_device)
  monitor = monitor_lib.Monitor(workdir, total_steps=run.total_steps, images_per_step=config.train.global_batch_size,
                                enabled=is_main, resume_step=run.step, wandb=config.log.wandb,
                                run_config=json.loads(config.to_json()))
  _announce(run, monitor, resumed, changes, checkpoint_config)
  eval_sample = (eval_sample_lib.EvalSample(run, open_training_source(config, "test"))
                 if config.train.eval_every or config.eval.report else None)
  profile = _Profile(config_lib.profile_steps(config.debug.profile_steps), workdir / PROFILE_DIR)

  def check_finite(guard=None):
    bad = run.first_non_finite(guard)
    if bad is not None:
      first = " (the first step)" if bad[0] == 1 else ""
      raise NonFiniteError(_stopped_message(f"non-finite values at step {bad[0]}{first}: {_bad_terms(bad[1])}",
                                            run.checkpointer))

  def save(step):
    check_finite()
    try:
      with jax.transfer_guard("allow"):
        run.checkpointer.save(step, run.state, force=True)
    except checkpoint.NonFiniteStateError as error:
      raise NonFiniteError(_stopped_message(str(error), run.checkpointer)) from None

  # ---- Train: dispatch steps; the host waits for the device only at the marked sync points. ----
  status = "completed"
  first_step = run.step
  try:
    run.start_feed()
    with jax.transfer_guard("disallow"):
      while run.step < run.total_steps:
        profile.before(run.step + 1)
        with jax.profiler.StepTraceAnnotation("train", step_num=run.step + 1):
          metrics = run.step_once()
        step = run.step
        final = step == run.total_steps
        logging = step % config.train.log_every == 0 or final
        if logging:  # sync point: the step's metrics and the non-finite guard come to the host
          with jax.transfer_guard("allow"):
            scalars = _log_scalars(run, monitor, metrics, check_finite)
            if config.train.eval_every and step % config.train.eval_every == 0:
              scalars.update(eval_sample.knn(run.state))
          monitor.write(step, scalars)
          monitor.progress(step, float(scalars["loss"]), scalars["images_per_second"])
        due = run.checkpointer.due(step) or final
        if due:  # sync point: the state is checked and saved
          save(step)
        with jax.transfer_guard("allow" if logging or due else "disallow"):
          stopping = stop_signals.agreed(can_sync=logging or due)
        if stopping and not due:
          save(step)
        if step == first_step + 1:
          # Throughput and ETA count from the end of the first step, its logging and its save: its call compiled
          # and its first execution warms up the runtime, neither of which recurs. One wait, on this step only.
          jax.block_until_ready(metrics)
          monitor.start(step)
        profile.after(step, metrics)
        if stopping:
          run.checkpointer.wait()
          status = "interrupted" if stop_signals.received == "SIGINT" else "preempted"
          monitor.message(f"{stop_signals.received or 'a stop signal on another process'}: saved a checkpoint at "
                          f"step {step} in {run.checkpointer.directory}; rerun the same command to resume.")
          break
  finally:
    profile.stop()
    run.stop_feed()
    try:
      run.checkpointer.wait()
    finally:
      run.checkpointer.close()

  # ---- Evaluate: the trained encoder beside its controls, and the report. ----
  summary = {"status": status, "step": run.step, "total_steps": run.total_steps, "workdir": str(workdir)}
  if status == "completed" and config.eval.report and eval_sample is not None:
    results = eval_sample.final()
    summary["evaluation"] = results
    if is_main:
      path = report.write_report(workdir, config, results, monitor_lib.read_metrics(workdir))
      summary["report"] = str(path)
      monitor.message(f"report: {path}")
  monitor.close()
  return summary


def _announce(run: Run, monitor: monitor_lib.Monitor, resumed: bool, changes: dict,
              checkpoint_config: dict | None) -> None:
  """The run's first lines: what it trains, from where, and the config changes it accepted."""
  config = run.config
  if checkpoint_config is not None:
    monitor.message(f"{CONFIG_FILE} was missing: written back from the config saved with the checkpoints")
  monitor.message(f"{'resuming at' if resumed else 'starting'} step {run.step} of {run.total_steps} "
                  f"({describe_length(config, run.steps_per_epoch, run.total_steps)}): "
                  f"{config.method.name} on {config.data.name} ({'on the devices' if run.on_device else 'host-fed'}), "
                  f"{config.model.backbone}, global batch {config.train.global_batch_size} over "
                  f"{run.mesh.devices.size} devices")
  if changes:
    monitor.message("config changes accepted (recorded in " + workdir_lib.HISTORY_FILE + "): " + ", ".join(
        f"{field} {before!r} -> {after!r}" for field, (before, after) in changes.items()))


def _log_scalars(run: Run, monitor: monitor_lib.Monitor, metrics: dict, check_finite) -> dict:
  """A logging step's scalars on the host, after the non-finite guard is checked."""
  fetched = jax.device_get({"metrics": metrics, "guard": run.guard})
  check_finite(fetched["guard"])
  scalars = {k: v for k, v in fetched["metrics"].items() if k != "finite"}
  scalars["images_per_second"] = monitor.throughput(run.step)
  scalars["epoch"] = run.step / run.steps_per_epoch
  return scalars


class _Profile:
  """A profiler trace of the steps `first` to `last` (`debug.profile_steps`), written under `directory`."""

  def __init__(self, steps: tuple[int, int] | None, directory: pathlib.Path):
    self.steps, self.directory, self.tracing = steps, directory, False

  def before(self, step: int) -> None:
    if self.steps is not None and step == self.steps[0] and not self.tracing:
      self.directory.mkdir(parents=True, exist_ok=True)
      jax.profiler.start_trace(str(self.directory))
      self.tracing = True

  def after(self, step: int, metrics) -> None:
    if self.tracing and step >= self.steps[1]:
      jax.block_until_ready(metrics)  # the trace holds the last profiled step's device work
      self.stop()

  def stop(self) -> None:
    if self.tracing:
      jax.profiler.stop_trace()
      self.tracing = False
