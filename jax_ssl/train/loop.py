"""The training loop: data in, sharded steps, checkpoints, monitoring, final evaluation.

A run is a pure function of its config and the workdir's checkpoints: it
resumes from the newest readable checkpoint (state and data iterator), so a
preempted, killed or crashed job rerun with the same command continues exactly
where its last checkpoint left it. A step's metrics are checked before its
state can be saved, so a NaN never reaches a checkpoint; SIGTERM saves and
stops cleanly.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import pathlib
import signal
import time

import jax
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
from jax_ssl.data import pipeline
from jax_ssl.data import sources
from jax_ssl.data import views
from jax_ssl.train import checkpoint
from jax_ssl.train import config as config_lib
from jax_ssl.train import evaluation
from jax_ssl.train import monitor as monitor_lib
from jax_ssl.train import optim
from jax_ssl.train import report
from jax_ssl.train import state as state_lib
from jax_ssl.train import step as step_lib

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"


class NonFiniteLossError(RuntimeError):
  """A step produced a NaN or inf loss term; the run stopped before saving it."""


def data_mesh(devices=None) -> Mesh:
  """A 1-D mesh over all devices, axis `data`, with automatic (compiler-inserted) collectives."""
  devices = jax.devices() if devices is None else devices
  return jax.make_mesh((len(devices),), (state_lib.DATA_AXIS,), axis_types=(AxisType.Auto,), devices=devices)


def view_specs(config: ml_collections.ConfigDict, spec: catalog.DatasetSpec) -> tuple[views.ViewSpec, ...]:
  """The augmentation recipe of `config.views`, normalised with the dataset's statistics."""
  v = config.views
  stats = dict(mean=spec.mean, std=spec.std)
  if v.recipe == "multicrop":
    specs = views.multicrop_views(v.size, v.local_size, v.num_global, v.num_local, tuple(v.global_scale),
                                  tuple(v.local_scale), **stats)
  else:
    recipe = {"vicreg": views.vicreg_views, "byol": views.byol_views, "simclr": views.simclr_views}[v.recipe]
    specs = recipe(v.size, small_images=v.small_images, **stats)
  overrides = dict(v.overrides)
  return tuple(dataclasses.replace(spec, **overrides) for spec in specs)


def open_training_source(config: ml_collections.ConfigDict, split: str = "train") -> sources.Source:
  source = sources.open_source(config.data.name, split, config.data.data_dir or None)
  classes = config_lib.parse_classes(config.data.classes)
  return source if classes is None else source.with_classes(classes)


def schedule_lengths(config: ml_collections.ConfigDict, num_records: int) -> tuple[int, int]:
  """(steps per epoch, total steps)."""
  steps_per_epoch = max(1, num_records // config.train.global_batch_size)
  total = config.train.num_steps or int(math.ceil(config.train.num_epochs * steps_per_epoch))
  return steps_per_epoch, total


class _Preemption:
  """Turns SIGTERM into a flag the loop polls (and all processes agree on)."""

  def __init__(self):
    self.requested = False
    self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True

  def agreed(self) -> bool:
    if jax.process_count() == 1:
      return self.requested
    return bool(np.any(multihost_utils.process_allgather(np.array(self.requested))))

  def restore(self):
    signal.signal(signal.SIGTERM, self._previous)


class Run:
  """Everything built from a config: data, model definitions, step function, state, checkpoints."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str | pathlib.Path, mesh: Mesh | None = None):
    self.config = config
    self.workdir = pathlib.Path(workdir)
    self.mesh = mesh or data_mesh()
    self.spec = catalog.get_spec(config.data.name)
    self.method = methods.get_method(config.method.name)
    self.source = open_training_source(config)
    self.steps_per_epoch, self.total_steps = schedule_lengths(config, len(self.source))
    self.view_specs = view_specs(config, self.spec)
    self.schedule = optim.learning_rate_schedule(config, self.steps_per_epoch, self.total_steps)
    self.optimizer = optim.make_optimizer(config, self.schedule)
    self.probe_optimizer = optax.adam(config.train.probe_lr)
    num_classes = self.spec.num_classes["label"]
    self.definitions = state_lib.definitions(config, self.method, num_classes)
    self.state, self.shardings = state_lib.create_state(config, self.method, num_classes, self.optimizer,
                                                        self.probe_optimizer, self.mesh)
    step_config = step_lib.StepConfig(
        definitions=self.definitions, method=self.method, view_specs=self.view_specs,
        num_global=config.views.num_global, hparams=dict(config.method), optimizer=self.optimizer,
        probe_optimizer=self.probe_optimizer, schedule=self.schedule, total_steps=self.total_steps,
        log_every=config.train.log_every, mesh=self.mesh)
    self.train_step = step_lib.jit_train_step(step_config, self.shardings)
    self.dataset = pipeline.train_dataset(self.source, global_batch_size=config.train.global_batch_size,
                                          seed=config.seed, worker_count=config.data.worker_count)
    self.iterator = iter(self.dataset)
    self.checkpointer = checkpoint.Checkpointer(self.workdir / CHECKPOINT_DIR,
                                                save_every=config.train.checkpoint_every,
                                                keep=config.train.keep_checkpoints)
    self.embedder = evaluation.Embedder(self.definitions.eval_network, config.views.size, self.spec.mean,
                                        self.spec.std, self.mesh)
    self._batch_sharding = NamedSharding(self.mesh, P(state_lib.DATA_AXIS))

  def restore(self) -> bool:
    """Resume from the newest readable checkpoint, if any; returns whether one was found."""
    restored = self.checkpointer.restore_latest(checkpoint.abstract_like(self.state, self.shardings),
                                                self.iterator)
    if restored is None:
      return False
    self.state = restored
    return True

  def next_batch(self) -> dict:
    local = next(self.iterator)
    return {key: jax.make_array_from_process_local_data(self._batch_sharding, local[key])
            for key in ("image", "label")}

  @property
  def step(self) -> int:
    return int(self.state.step)


def _bad_terms(metrics: dict) -> str:
  bad = [f"{name}={value}" for name, value in metrics.items()
         if name != "finite" and not math.isfinite(float(value))]
  return ", ".join(bad) or "unknown"


def write_config(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> None:
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / CONFIG_FILE).write_text(config.to_json(indent=2) + "\n")


def train(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, mesh: Mesh | None = None) -> dict:
  """Train (or resume) the run of `config` in `workdir`; returns a summary dict.

  Raises:
    NonFiniteLossError: a loss term, the gradient norm or an embedding
      statistic became NaN or inf; the step and the terms are named.
  """
  workdir = pathlib.Path(workdir)
  is_main = jax.process_index() == 0
  run = Run(config, workdir, mesh)
  resumed = run.restore()
  if is_main:
    write_config(config, workdir)
  monitor = monitor_lib.Monitor(workdir, total_steps=run.total_steps, images_per_step=config.train.global_batch_size,
                                enabled=is_main)
  monitor.message(f"{'resuming at' if resumed else 'starting'} step {run.step} of {run.total_steps}: "
                  f"{config.method.name} on {config.data.name}, {config.model.backbone}, "
                  f"global batch {config.train.global_batch_size} over {run.mesh.devices.size} devices")
  eval_data = _EvalData(run) if config.train.eval_every or config.eval.report else None
  preemption = _Preemption()
  status = "completed"
  monitor.start(run.step)
  try:
    while run.step < run.total_steps:
      run.state, metrics = run.train_step(run.state, run.next_batch())
      step = run.step
      metrics = jax.device_get(metrics)
      if not metrics["finite"]:
        raise NonFiniteLossError(f"non-finite values at step {step}: {_bad_terms(metrics)}; the last good "
                                 f"checkpoint is in {run.checkpointer.directory}.")
      if step % config.train.log_every == 0 or step == run.total_steps:
        scalars = {k: v for k, v in metrics.items() if k != "finite"}
        scalars["images_per_second"] = monitor.throughput(step)
        scalars["epoch"] = step / run.steps_per_epoch
        if config.train.eval_every and step % config.train.eval_every == 0:
          scalars["knn_accuracy"] = eval_data.knn(run.state)
        monitor.write(step, scalars)
        monitor.progress(step, float(metrics["loss"]), scalars["images_per_second"])
      run.checkpointer.save(step, run.state, run.iterator, force=step == run.total_steps)
      if step == config.debug.pause_after_step:
        run.checkpointer.wait()
        monitor.message(f"paused after step {step} (debug.pause_after_step)")
        while not preemption.agreed():
          time.sleep(0.05)
      if preemption.agreed():
        run.checkpointer.save(step, run.state, run.iterator, force=True)
        status = "preempted"
        monitor.message(f"SIGTERM: saved a checkpoint at step {step}; rerun the same command to resume.")
        break
  finally:
    preemption.restore()
    run.checkpointer.wait()
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
    return float(self.accuracies(state.params, state.batch_stats)["knn"]["label"])

  def final(self) -> dict:
    """kNN and linear probes per level: the trained encoder and its two controls.

    The controls are the same architecture at initialisation and the input
    pixels themselves (each image flattened): pretraining is worth what the
    trained encoder adds over the better of the two.
    """
    run, config = self.run, self.run.config
    initial = jax.jit(lambda: state_lib.initial_state(config, run.method, run.spec.num_classes["label"],
                                                      run.optimizer, run.probe_optimizer),
                      out_shardings=run.shardings)()
    epochs = config.eval.probe_epochs
    return {"trained": self.accuracies(run.state.params, run.state.batch_stats, epochs),
            "initial": self.accuracies(initial.params, initial.batch_stats, epochs),
            "pixels": self._probes(_flat_pixels(self.train["image"]), _flat_pixels(self.test["image"]), epochs)}

  def _probes(self, train_features, test_features, probe_epochs: int | None) -> dict:
    run, config = self.run, self.run.config
    levels = run.spec.label_levels
    return evaluation.probe_accuracies(
        train_features, {level: self.train[level] for level in levels},
        test_features, {level: self.test[level] for level in levels},
        knn_k=config.eval.knn_k, knn_temperature=config.eval.knn_temperature, probe_epochs=probe_epochs,
        seed=config.seed)
