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

import dataclasses
import functools
import json
import logging
import math
import pathlib
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.sharding import AxisType
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jax_ssl import methods
from jax_ssl.data import catalog
from jax_ssl.data import feed
from jax_ssl.data import sources
from jax_ssl.data import views
from jax_ssl.eval import probes
from jax_ssl.eval import zero_shot
from jax_ssl.train import checkpoint
from jax_ssl.train import evaluation
from jax_ssl.train import monitor as monitor_lib
from jax_ssl.train import optim
from jax_ssl.train import report
from jax_ssl.train import signals
from jax_ssl.train import state as state_lib
from jax_ssl.train import step as step_lib
from jax_ssl.train import workdir as workdir_lib

log = logging.getLogger(__name__)

CONFIG_FILE = workdir_lib.CONFIG_FILE
CHECKPOINT_DIR = "checkpoints"


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


def data_mesh(devices=None) -> Mesh:
  """A 1-D mesh over all devices, axis `data`, with automatic (compiler-inserted) collectives.

  Args:
    devices: the devices to span, in mesh order; None for `jax.devices()` (every device of every process).

  Returns:
    A `Mesh` with the single axis `state.DATA_AXIS` of size `len(devices)`.
  """
  devices = jax.devices() if devices is None else devices
  return jax.make_mesh((len(devices),), (state_lib.DATA_AXIS,), axis_types=(AxisType.Auto,), devices=devices)


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
    self.view_specs = views.recipe_views(config.views, self.spec.mean, self.spec.std)
    self.schedule = optim.learning_rate_schedule(config, self.steps_per_epoch, self.total_steps)
    self.optimizer = optim.make_optimizer(config, self.schedule)
    self.probe_optimizer = optax.adam(config.train.probe_lr)
    num_classes = self.spec.num_classes["label"]
    self.definitions = state_lib.definitions(config, self.method, num_classes)
    self.state, self.shardings = state_lib.create_state(config, self.method, num_classes, self.optimizer,
                                                        self.probe_optimizer, self.mesh)
    recorded = workdir_lib.recorded_on_device(self.workdir) if config.data.on_device == "auto" else None
    # A resumed run keeps the feed it started with: the two read the data in different orders.
    self.on_device = recorded if recorded is not None else _agreed_on_device(
        config.data.on_device, _image_bytes(self.source), self.spec.variable_size, self.mesh)
    self.device_data, self._host_feed = feed.feed_for(
        self.on_device, self.source, mesh=self.mesh, global_batch_size=config.train.global_batch_size,
        seed=config.seed, worker_count=(config.data.worker_count if config.data.worker_count >= 0
                                        else feed.default_worker_count(self.spec.variable_size)))
    self.step_config = step_lib.StepConfig(
        definitions=self.definitions, method=self.method, view_specs=self.view_specs,
        num_global=config.views.num_global, optimizer=self.optimizer,
        probe_optimizer=self.probe_optimizer, schedule=self.schedule, total_steps=self.total_steps,
        log_every=config.train.log_every, mesh=self.mesh, nan_at_step=config.debug.nan_at_step,
        captions=self.spec.captions if self.method.head == "clip" else None)
    train_step, metrics_shapes = step_lib.trace_train_step(self.step_config, self.state, self._batch_shapes())
    self.train_step = step_lib.jit_train_step(self.step_config, self.shardings, self.device_data, train_step)
    self.guard = jax.device_put(step_lib.initial_guard(metrics_shapes), NamedSharding(self.mesh, P()))
    self.checkpointer = checkpoint.Checkpointer(self.workdir / CHECKPOINT_DIR,
                                                save_every=config.train.checkpoint_every,
                                                keep=config.train.keep_checkpoints,
                                                config=json.loads(config.to_json()))
    self.checkpointer.prepare(self.state)
    self.embedder = evaluation.Embedder(self.definitions.eval_network, config.views.size, self.spec.mean,
                                        self.spec.std, self.mesh)
    self.step = 0
    self.feed = None

  def _batch_shapes(self) -> dict:
    batch = self.config.train.global_batch_size
    side = self.source.image_size
    return {"image": jax.ShapeDtypeStruct((batch, side, side, 3), jnp.uint8),
            "label": jax.ShapeDtypeStruct((batch,), jnp.int32)}

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
    data = self.device_data.arrays if self.on_device else self.next_batch()
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
          on_second_interrupt: Callable[[], None] | None = None) -> dict:
  """Train (or resume) the run of `config` in `workdir`; returns a summary dict.

  The host dispatches steps without waiting for them: metrics stay on the
  device and are fetched on logging steps only, the next batches are already
  on the devices (or the whole split is), and a non-finite value is recorded
  on the device and checked at every logging step and before every save; each
  save also checks the state itself, so no non-finite state is ever saved.

  The run holds the workdir's lock (`workdir.WorkdirLock`, process 0) from
  before its config is compared until it returns. SIGTERM (a scheduler's
  preemption) and a first Ctrl-C save a checkpoint and return, with status
  "preempted" or "interrupted" instead of "completed"; a second Ctrl-C calls
  `on_second_interrupt`, or raises KeyboardInterrupt at once.

  Args:
    config: a validated run config (see `config.validate`); every section is read.
    workdir: the run's directory: config, history, metrics, checkpoints and report go there.
    mesh: the device mesh with a `data` axis; None for `data_mesh()` over all devices.
    on_second_interrupt: called by a second Ctrl-C (the command line exits there); None raises
      KeyboardInterrupt.

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
  checkpoints = workdir / CHECKPOINT_DIR
  with workdir_lib.hold(workdir):
    # Before anything is built or restored: the checkpoints belong to the workdir's first config (or, if
    # config.json was deleted, to the one each checkpoint recorded).
    checkpoint_config = None if (workdir / CONFIG_FILE).exists() else checkpoint.saved_config(checkpoints)
    changes = workdir_lib.check_config(config, workdir, checkpoint_config,
                                       has_checkpoints=checkpoint.has_checkpoints(checkpoints))
    # From here a first Ctrl-C (or SIGTERM), even while compiling, ends in a checkpoint.
    stop_signals = signals.StopSignals(on_second_interrupt)
    try:
      return _train(config, workdir, mesh, changes, checkpoint_config, stop_signals)
    finally:
      stop_signals.restore()


def _stopped_message(problem: str, checkpoints: checkpoint.Checkpointer) -> str:
  """What a non-finite step or state says: the problem, and what the user can resume from."""
  remedy = "a lower --config.optim.base_lr or a --config.optim.grad_clip_norm"
  if checkpoints.last_step is None:
    return (f"{problem}; no checkpoint was saved: rerun with {remedy}, or change other settings in a new "
            "--workdir.")
  return (f"{problem}; the last checkpoint, step {checkpoints.last_step}, is in {checkpoints.directory}: rerun with "
          f"{remedy} to resume from it.")


def _train(config: ml_collections.ConfigDict, workdir: pathlib.Path, mesh: Mesh | None,
           changes: dict, checkpoint_config: dict | None, stop_signals: signals.StopSignals) -> dict:
  is_main = jax.process_index() == 0
  run = Run(config, workdir, mesh)
  resumed = run.restore()
  if is_main:
    workdir_lib.record_config(config, workdir, changes, run.step, checkpoint_config)
    workdir_lib.record_on_device(workdir, run.on_device)
  monitor = monitor_lib.Monitor(workdir, total_steps=run.total_steps, images_per_step=config.train.global_batch_size,
                                enabled=is_main, resume_step=run.step)
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
  status = "completed"

  def check_finite(guard=None):
    bad = run.first_non_finite(guard)
    if bad is not None:
      first = " (the first step)" if bad[0] == 1 else ""
      raise NonFiniteError(_stopped_message(f"non-finite values at step {bad[0]}{first}: {_bad_terms(bad[1])}",
                                            run.checkpointer))

  def save(step):
    try:
      run.checkpointer.save(step, run.state, force=True)
    except checkpoint.NonFiniteStateError as error:
      raise NonFiniteError(_stopped_message(str(error), run.checkpointer)) from None

  first_step = run.step
  try:
    eval_data = _EvalData(run) if config.train.eval_every or config.eval.report else None
    run.start_feed()
    while run.step < run.total_steps:
      metrics = run.step_once()
      step = run.step
      final = step == run.total_steps
      logging = step % config.train.log_every == 0 or final
      if logging:
        fetched = jax.device_get({"metrics": metrics, "guard": run.guard})
        check_finite(fetched["guard"])
        scalars = {k: v for k, v in fetched["metrics"].items() if k != "finite"}
        scalars["images_per_second"] = monitor.throughput(step)
        scalars["epoch"] = step / run.steps_per_epoch
        if config.train.eval_every and step % config.train.eval_every == 0:
          scalars["knn_accuracy"] = eval_data.knn(run.state)
        monitor.write(step, scalars)
        monitor.progress(step, float(scalars["loss"]), scalars["images_per_second"])
      due = run.checkpointer.due(step) or final
      stopping = stop_signals.agreed(can_sync=logging or due)
      if due or stopping:
        if not logging:
          check_finite()
        save(step)
      if step == first_step + 1:
        # Throughput and ETA count from the end of the first step, its logging and its save: its call compiled
        # and its first execution warms up the runtime, neither of which recurs. One wait, on this step only.
        jax.block_until_ready(metrics)
        monitor.start(step)
      if step == config.debug.pause_after_step:
        run.checkpointer.wait()
        monitor.message(f"paused after step {step} (debug.pause_after_step)")
        while not stop_signals.agreed(can_sync=True):
          time.sleep(0.05)
        stopping = True
        if not due:
          save(step)
      if stopping:
        run.checkpointer.wait()
        status = "interrupted" if stop_signals.received == "SIGINT" else "preempted"
        monitor.message(f"{stop_signals.received or 'a stop signal on another process'}: saved a checkpoint at "
                        f"step {step} in {run.checkpointer.directory}; rerun the same command to resume.")
        break
  finally:
    run.stop_feed()
    try:
      run.checkpointer.wait()
    finally:
      run.checkpointer.close()
  summary = {"status": status, "step": run.step, "total_steps": run.total_steps, "workdir": str(workdir)}
  if status == "completed" and config.eval.report and eval_data is not None:
    results = eval_data.final()
    summary["evaluation"] = results
    if is_main:
      path = report.write_report(workdir, config, results, monitor_lib.read_metrics(workdir))
      summary["report"] = str(path)
      monitor.message(f"report: {path}")
  monitor.close()
  return summary


def _flat_pixels(images: np.ndarray) -> np.ndarray:
  """The input-pixel control: each image as one float32 row of its pixel values."""
  return np.asarray(images, np.float32).reshape(len(images), -1)


class _EvalData:
  """The labelled images the kNN monitor and the final probes embed (a fixed sample per run)."""

  def __init__(self, run: Run):
    self.run = run
    config = run.config
    self.train = evaluation.sample_split(run.source, config.eval.max_train_examples, seed=config.seed)
    self.test = evaluation.sample_split(open_training_source(config, "test"), config.eval.max_train_examples,
                                        seed=config.seed + 1)

  def accuracies(self, params, batch_stats, probe_epochs: int | None = None) -> dict:
    """{"knn": {level: accuracy}, "linear": {level: accuracy} (if probe_epochs)} for an encoder's arrays."""
    embed = self.run.embedder
    return self._probes(embed(params, batch_stats, self.train["image"]), embed(params, batch_stats, self.test["image"]),
                        probe_epochs)

  def knn(self, state: state_lib.TrainState) -> float:
    """kNN accuracy on the finest labels: the monitor during training."""
    return float(self.accuracies(*state_lib.evaluated_arrays(state, self.run.method))["knn"]["label"])

  def final(self) -> dict:
    """kNN and linear probes per level: the trained encoder and its two controls.

    The controls are the same architecture at initialisation and the input
    pixels themselves (each image flattened): pretraining is worth what the
    trained encoder adds over the better of the two.
    """
    run, config = self.run, self.run.config
    initial = state_lib.initialize(lambda: state_lib.initial_state(
        config, run.method, run.spec.num_classes["label"], run.optimizer, run.probe_optimizer), run.shardings)
    epochs = config.eval.probe_epochs
    results = {"trained": self.accuracies(*state_lib.evaluated_arrays(run.state, run.method), epochs),
               "initial": self.accuracies(*state_lib.evaluated_arrays(initial, run.method), epochs),
               "pixels": self._probes(_flat_pixels(self.train["image"]), _flat_pixels(self.test["image"]), epochs)}
    if run.method.head == "clip":  # the pixels have no text side
      for name, state in (("trained", run.state), ("initial", initial)):
        results[name]["zero_shot"] = self.zero_shot(*state_lib.evaluated_arrays(state, run.method))
    return results

  @functools.cached_property
  def _joint_embedder(self) -> evaluation.Embedder:
    """The images' embeddings in CLIP's joint space: the projector's outputs."""
    return dataclasses.replace(self.run.embedder, output="projector")

  def zero_shot(self, params, batch_stats) -> dict:
    """CLIP's zero-shot accuracy per level on the test sample: the prompts are every caption of every class."""
    run = self.run
    captions, levels = run.spec.captions, run.spec.label_levels
    prompts = evaluation.embed_captions(run.definitions.eval_network, params, batch_stats, captions.tokens)
    images = self._joint_embedder(params, batch_stats, self.test["image"])
    parents = zero_shot.parents_from_labels({level: self.train[level] for level in levels}, captions.num_classes)
    return zero_shot.zero_shot_accuracies(images, prompts, {level: self.test[level] for level in levels}, parents,
                                          run.spec.num_classes)

  def _probes(self, train_features, test_features, probe_epochs: int | None) -> dict:
    run, config = self.run, self.run.config
    levels = run.spec.label_levels
    return probes.probe_accuracies(
        train_features, {level: self.train[level] for level in levels},
        test_features, {level: self.test[level] for level in levels},
        knn_k=config.eval.knn_k, knn_temperature=config.eval.knn_temperature, probe_epochs=probe_epochs,
        seed=config.seed)
