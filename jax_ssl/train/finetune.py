"""Fine-tuning a pretrained encoder: its backbone and one linear head per label level, trained on labels.

The recipe follows the backbone (`finetune_recipe`): DeiT's with BEiT's
layer-wise learning-rate decay for ViTs, as DINO and MAE fine-tune; SGD with
Nesterov momentum for ResNets and the small CNN, BatchNorm training its
statistics.

Each step draws one random resized crop of every image (with a horizontal
flip unless the pretraining run had flips off), normalised with the
dataset's statistics; the loss is the mean over label levels of the
label-smoothed cross-entropy of each level's head. Evaluation is top-1
accuracy per level on the whole test split, the images resized to the
training size and BatchNorm on its running statistics, as the trainer's
probes see them.

A fine-tuning run lives in its own directory (`finetune` makes one per
initialisation under `WORKDIR/finetune/<dataset>/`) and is resumable as
pretraining is: one process holds the directory's lock, checkpoints are
checked for NaN and inf before they are written and verified when read, and
a rerun of the same command continues from the newest good checkpoint with
the same batches and random draws as an uninterrupted run.

References:
  Caron et al., "Emerging Properties in Self-Supervised Vision Transformers"
  (DINO), 2021 (https://arxiv.org/abs/2104.14294), whose fine-tuning
  follows DeiT's recipe.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jax_ssl import models
from jax_ssl.data import catalog
from jax_ssl.data import feed
from jax_ssl.data import sources
from jax_ssl.data import views as views_lib
from jax_ssl.eval import transfer
from jax_ssl.train import checkpoint
from jax_ssl.train import config as config_lib
from jax_ssl.train import encoder as encoder_lib
from jax_ssl.train import evaluation
from jax_ssl.train import finetune_recipe as recipe
from jax_ssl.train import loop
from jax_ssl.train import monitor as monitor_lib
from jax_ssl.train import signals
from jax_ssl.train import state as state_lib
from jax_ssl.train import workdir as workdir_lib

INITS = ("pretrained", "untrained")
RESULT_FILE = "result.json"


class Classifier(nnx.Module):
  """A backbone and one linear head per label level: images -> {level: logits}."""

  def __init__(self, pretraining: ml_collections.ConfigDict, num_classes: dict[str, int], drop_path: float, *,
               rngs: nnx.Rngs):
    """Builds the pretraining run's backbone (with `drop_path` for a ViT) and zero-initialised heads.

    Args:
      pretraining: the pretraining run's config (`model`, `views.size`).
      num_classes: label level -> number of classes.
      drop_path: a ViT's stochastic depth rate at its last block.
      rngs: the initialisers' keys.
    """
    backbone_config = ml_collections.ConfigDict(pretraining.to_dict())
    if backbone_config.model.backbone.startswith("vit"):
      backbone_config.model.drop_path = drop_path
    self.backbone = models.build_backbone(backbone_config.model.backbone, rngs=rngs,
                                          dtype=jnp.dtype(pretraining.model.dtype),
                                          **state_lib.backbone_kwargs(backbone_config))
    # Zero heads start from uniform predictions, so the first steps do not push arbitrary gradients into the
    # pretrained backbone (MAE initialises its fine-tuning head at std 2e-5 for the same reason).
    self.heads = nnx.Dict({level: nnx.Linear(self.backbone.num_features, count, kernel_init=nnx.initializers.zeros,
                                             rngs=rngs) for level, count in num_classes.items()})
    self.stochastic = getattr(self.backbone, "drop_path_rate", 0.0) > 0

  def __call__(self, images: jax.Array, key: jax.Array | None = None) -> dict[str, jax.Array]:
    features = self.backbone(images, key) if self.stochastic and key is not None else self.backbone(images)
    return {level: head(features).astype(jnp.float32) for level, head in self.heads.items()}


@flax.struct.dataclass
class FinetuneState:
  """What changes while fine-tuning; saved whole by Orbax."""

  step: jax.Array
  params: nnx.State
  batch_stats: nnx.State
  opt_state: optax.OptState


@dataclasses.dataclass(frozen=True)
class Setup:
  """The static pieces of one fine-tuning run."""

  config: ml_collections.ConfigDict
  pretraining: ml_collections.ConfigDict
  spec: catalog.DatasetSpec
  levels: tuple[str, ...]
  view: views_lib.ViewSpec
  steps_per_epoch: int
  total_steps: int
  graph: nnx.GraphDef
  eval_graph: nnx.GraphDef
  optimizer: optax.GradientTransformation
  schedule: optax.Schedule
  mesh: Any

  @functools.cached_property
  def embedder(self) -> evaluation.Embedder:
    """The eval-mode backbone as an `Embedder`, compiled once for every test set scored."""
    return evaluation.Embedder(self.eval_graph, self.view.size, self.spec.mean, self.spec.std, self.mesh)


def _flip_prob(config: ml_collections.ConfigDict, pretraining: ml_collections.ConfigDict) -> float:
  if config.views.flip_prob >= 0:
    return float(config.views.flip_prob)
  overrides = pretraining.views.get("overrides", {})
  return float(overrides.get("flip_prob", 0.5))  # the view recipes flip half the images unless told otherwise


def _depth(backbone: nnx.Module) -> int | None:
  blocks = getattr(backbone, "blocks", None)
  return None if blocks is None or not backbone.__class__.__name__.startswith("Vision") else len(blocks)


def setup(config: ml_collections.ConfigDict, pretraining: ml_collections.ConfigDict, num_records: int,
          mesh) -> Setup:
  """Everything static about a run: the schedule's length, the augmentation, the networks' graphs, the optimizer.

  Args:
    config: the fine-tuning config (`data.name` set).
    pretraining: the pretraining run's config.
    num_records: images in the fine-tuning train split.
    mesh: the device mesh.

  Returns:
    The run's `Setup`.

  Raises:
    ConfigError: the train split holds fewer images than one batch.
  """
  spec = catalog.get_spec(config.data.name)
  levels = spec.label_levels
  batch = config.train.global_batch_size
  if num_records < batch:
    raise config_lib.ConfigError(f"{config.data.name}'s train split has {num_records} images, fewer than one batch "
                                 f"of {batch}: lower train.global_batch_size.")
  steps_per_epoch = num_records // batch
  total_steps = config.train.num_steps or max(1, round(config.train.num_epochs * steps_per_epoch))
  view = views_lib.ViewSpec(size=pretraining.views.size, crop_scale=tuple(config.views.crop_scale),
                            flip_prob=_flip_prob(config, pretraining), jitter_prob=0.0, grayscale_prob=0.0,
                            mean=spec.mean, std=spec.std)
  classifier = nnx.eval_shape(lambda: Classifier(pretraining, {level: spec.num_classes[level] for level in levels},
                                                 config.model.drop_path, rngs=nnx.Rngs(config.seed)))
  graph = nnx.split(classifier, nnx.Param, ...)[0]
  depth = _depth(classifier.backbone)
  classifier.eval()
  eval_graph = nnx.split(classifier, nnx.Param, ...)[0]
  peak = config.optim.base_lr * batch / recipe.LR_REFERENCE_BATCH
  warmup = min(int(round(config.optim.warmup_epochs * steps_per_epoch)), total_steps - 1)
  schedule = optax.warmup_cosine_decay_schedule(0.0, peak, warmup, max(total_steps, warmup + 1), 0.0)
  return Setup(config, pretraining, spec, levels, view, steps_per_epoch, total_steps, graph, eval_graph,
               recipe.make_optimizer(config, schedule, depth), schedule, mesh)


def initial_state(run: Setup, backbone_params: dict, backbone_stats: dict) -> FinetuneState:
  """Step 0: the given backbone arrays, zero heads, fresh optimizer state (call under `jit`).

  Args:
    run: the run's setup.
    backbone_params: the backbone's parameters as a pure dict (`Encoder.arrays()[0]["backbone"]`).
    backbone_stats: the backbone's BatchNorm statistics as a pure dict (empty for a ViT).

  Returns:
    The initial `FinetuneState`.
  """
  spec = run.spec
  classifier = Classifier(run.pretraining, {level: spec.num_classes[level] for level in run.levels},
                          run.config.model.drop_path, rngs=nnx.Rngs(run.config.seed))
  _, params, batch_stats = nnx.split(classifier, nnx.Param, ...)
  pure_params = nnx.to_pure_dict(params)
  pure_params["backbone"] = backbone_params
  nnx.replace_by_pure_dict(params, pure_params)
  if backbone_stats:
    pure_stats = nnx.to_pure_dict(batch_stats)
    pure_stats["backbone"] = backbone_stats
    nnx.replace_by_pure_dict(batch_stats, pure_stats)
  return FinetuneState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                       opt_state=run.optimizer.init(params))


def make_train_step(run: Setup):
  """`(state, batch) -> (state, metrics)`: one optimizer step on a batch of `image` and one label per level.

  The step's random draws (crops, flips, stochastic depth) are a function of
  the seed and the step alone, so a resumed run repeats an uninterrupted one.

  Args:
    run: the run's setup.

  Returns:
    The step function; metrics are the loss, each level's training top-1 (on the augmented batch) and the
    learning rate, all float32 scalars, and `finite` (bool).
  """
  smoothing = run.config.train.label_smoothing

  def train_step(state: FinetuneState, batch: dict):
    key = jax.random.fold_in(jax.random.key(run.config.seed + 1), state.step)
    view_key, drop_key = jax.random.split(key)
    images = views_lib.augment_batch(view_key, batch["image"], run.view)

    def loss_fn(params):
      classifier = nnx.merge(run.graph, params, state.batch_stats, copy=True)
      logits = classifier(images, drop_key)
      losses = [recipe.smoothed_cross_entropy(logits[level], batch[level], smoothing) for level in run.levels]
      return sum(losses) / len(losses), (logits, nnx.split(classifier, nnx.Param, ...)[2])

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = run.optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss, "learning_rate": run.schedule(state.step)}
    for level in run.levels:
      metrics[f"train_top1/{level}"] = jnp.mean(jnp.argmax(logits[level], -1) == batch[level]).astype(jnp.float32)
    metrics["finite"] = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(grads))
    return FinetuneState(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state), metrics

  return train_step


def predict(run: Setup, state: FinetuneState, images: np.ndarray) -> dict[str, np.ndarray]:
  """Each level's predicted class for `images` (eval mode: whole images resized, BatchNorm's running statistics).

  Args:
    run: the run's setup.
    state: the fine-tuning state.
    images: (N, H, W, 3) uint8 images.

  Returns:
    level -> (N,) int predictions: the argmax of the level's head on the backbone's features.
  """
  features = run.embedder(state.params, state.batch_stats, images).astype(np.float64)
  heads = jax.device_get(nnx.to_pure_dict(state.params))["heads"]
  return {level: np.argmax(features @ np.asarray(heads[level]["kernel"], np.float64)
                           + np.asarray(heads[level]["bias"], np.float64), -1) for level in run.levels}


def evaluate_on(run: Setup, state: FinetuneState, name: str, data_dir: str | None) -> dict:
  """Top-1 per level on the whole test split of `name` (the fine-tuning dataset or one of its shifted sets).

  Args:
    run: the run's setup.
    state: the fine-tuning state.
    name: a dataset with the fine-tuning dataset's classes.
    data_dir: where it is prepared; None for its default location.

  Returns:
    `{"num_test", "top1": {level: accuracy}}`, plus for a set with groups `"groups"`: the finest level's
    top-1 per group (`transfer.group_accuracies`).
  """
  test = sources.load_numpy(name, "test", data_dir)
  predictions = predict(run, state, test["image"])
  scores = {"num_test": int(len(test["image"])),
            "top1": {level: float(np.mean(predictions[level] == test[level])) for level in run.levels}}
  spec, finest = catalog.get_spec(name), run.levels[0]
  if spec.group_keys:
    scores["groups"] = transfer.group_accuracies(spec, test, predictions[finest], test[finest])
  return scores


def backbone_arrays(workdir: pathlib.Path, init: str, step: int | None) -> tuple[int, dict, dict]:
  """The backbone a run starts from: the pretrained one in `workdir` (at `step`), or the untrained control.

  Args:
    workdir: the pretraining run's directory.
    init: "pretrained" or "untrained" (the same network at its initialisation, from the run's seed).
    step: the pretraining checkpoint; None for the newest readable one.

  Returns:
    `(pretraining step, backbone params, backbone BatchNorm statistics)` as pure dicts of numpy arrays.
  """
  encoder = (encoder_lib.load_encoder(workdir, step) if init == "pretrained"
             else encoder_lib.initial_encoder(encoder_lib.run_config(workdir)))
  params, batch_stats = encoder.arrays()
  return encoder.step, params["backbone"], batch_stats.get("backbone", {})


class FinetuneConfigMismatchError(ValueError):
  """A fine-tuning directory holds a run of another config."""


def _check_recorded(config: ml_collections.ConfigDict, run_dir: pathlib.Path, source: dict) -> None:
  """Refuse to resume a run whose recorded config or starting point differs from this one."""
  path = run_dir / loop.CONFIG_FILE
  if not path.exists():
    return
  recorded = config_lib.flatten(ml_collections.ConfigDict(json.loads(path.read_text())))
  current = config_lib.flatten(ml_collections.ConfigDict({"finetune": json.loads(config.to_json()), "source": source}))
  fields = sorted(field for field in set(recorded) | set(current) if recorded.get(field) != current.get(field))
  if fields:
    raise FinetuneConfigMismatchError(
        f"{run_dir} holds a fine-tuning run of another config (fields {', '.join(fields[:6])}"
        f"{', ...' if len(fields) > 6 else ''}); rerun with its config ({path}), or pass another --out.")


def finetune(config: ml_collections.ConfigDict, pretrained_workdir: str | pathlib.Path,
             run_dir: str | pathlib.Path, *, init: str = "pretrained", step: int | None = None,
             on_second_interrupt=None, progress_stream=None) -> dict:
  """Fine-tune the encoder of `pretrained_workdir` (or its untrained control) in `run_dir`; resumes if stopped.

  Args:
    config: the fine-tuning config (`default_config`, with `data.name` set).
    pretrained_workdir: the pretraining run's directory.
    run_dir: this run's directory (checkpoints, metrics.jsonl, config.json, result.json).
    init: "pretrained" or "untrained".
    step: the pretraining checkpoint; None for the newest readable one.
    on_second_interrupt: what a second Ctrl-C calls (see `signals.StopSignals`).
    progress_stream: where the progress lines go; None for stdout.

  Returns:
    `{"status": "completed" | "interrupted", "step", "total_steps", "init", "pretrained_step", "train_top1"
    (the last logged step's), "run_dir", "stopped_by" (the signal's name, or None)}`, and for a completed run
    "num_test" and "top1" ({level: accuracy}) on the test split and "shifted" ({name: scores}) on its
    out-of-distribution sets (`catalog.shifted_sets`), as `evaluate_on` gives them. A completed run's dict
    is also `run_dir/result.json`, and a rerun of a completed run returns it without training.

  Raises:
    FinetuneConfigMismatchError: `run_dir` holds a run of another config or starting point.
    WorkdirInUseError: another process holds `run_dir`.
    loop.NonFiniteError: a step's loss or gradients were NaN or inf (nothing after the last checkpoint kept).
    ConfigError: a config field out of range.
  """
  if init not in INITS:
    raise ValueError(f"init must be one of {', '.join(INITS)}; got {init!r}.")
  pretrained_workdir, run_dir = pathlib.Path(pretrained_workdir), pathlib.Path(run_dir)
  pretraining = encoder_lib.run_config(pretrained_workdir)
  recipe.check_config(config, pretraining.model.backbone, jax.device_count())
  result_path = run_dir / RESULT_FILE
  workdir_lib.check_writable(run_dir)
  with workdir_lib.hold(run_dir):
    pretrained_step, backbone_params, backbone_stats = backbone_arrays(pretrained_workdir, init, step)
    source_record = {"workdir": str(pretrained_workdir.absolute()), "init": init, "step": pretrained_step}
    _check_recorded(config, run_dir, source_record)
    if result_path.exists():
      return json.loads(result_path.read_text())
    train_source = sources.open_source(config.data.name, "train", config.data.data_dir or None)
    mesh = loop.data_mesh()
    run = setup(config, pretraining, len(train_source), mesh)
    if jax.process_index() == 0:
      run_dir.mkdir(parents=True, exist_ok=True)
      (run_dir / loop.CONFIG_FILE).write_text(json.dumps(
          {"finetune": json.loads(config.to_json()), "source": source_record}, indent=2) + "\n")
    return _train(run, run_dir, train_source, backbone_params, backbone_stats, init, pretrained_step,
                  on_second_interrupt, progress_stream)


def _train(run: Setup, run_dir: pathlib.Path, train_source, backbone_params, backbone_stats, init: str,
           pretrained_step: int, on_second_interrupt, progress_stream) -> dict:
  config, mesh = run.config, run.mesh
  replicated = NamedSharding(mesh, P())
  init_fn = lambda: initial_state(run, backbone_params, backbone_stats)  # noqa: E731
  shardings = jax.tree.map(lambda _: replicated, jax.eval_shape(init_fn))
  checkpoints = checkpoint.Checkpointer(run_dir / loop.CHECKPOINT_DIR, save_every=config.train.checkpoint_every,
                                        keep=config.train.keep_checkpoints, config=json.loads(config.to_json()))
  stop = signals.StopSignals(on_second_interrupt)
  monitor = None
  try:
    abstract = checkpoint.abstract_like(jax.eval_shape(init_fn), shardings)
    state = checkpoints.restore_latest(abstract)
    if state is None:
      state = state_lib.initialize(init_fn, shardings)
    start = int(state.step)
    keys = ("image", *run.levels)
    image_bytes = len(train_source) * run.spec.image_size ** 2 * 3
    on_device = feed.choose_on_device(config.data.on_device, image_bytes, run.spec.variable_size,
                                      mesh.devices.flat[0])
    device_data, host_feed = feed.feed_for(on_device, train_source, mesh=mesh,
                                           global_batch_size=config.train.global_batch_size, seed=config.seed,
                                           worker_count=0, keys=keys)
    step_fn = make_train_step(run)
    if device_data is None:
      data_sharding = NamedSharding(mesh, P(state_lib.DATA_AXIS))
      jitted = jax.jit(step_fn, in_shardings=(shardings, data_sharding), out_shardings=(shardings, replicated),
                       donate_argnums=0)
      batches = host_feed(start)
      next_input = batches.next
    else:
      jitted = jax.jit(lambda state, inputs: step_fn(state, device_data.gather_batch(inputs, state.step)),
                       in_shardings=(shardings, replicated), out_shardings=(shardings, replicated), donate_argnums=0)
      batches = None
      next_input = lambda: device_data.step_inputs(step)  # noqa: E731  (the loop's current step)
    monitor = monitor_lib.Monitor(run_dir, total_steps=run.total_steps, images_per_step=config.train.global_batch_size,
                                  enabled=jax.process_index() == 0, resume_step=start, stream=progress_stream)
    monitor.message(f"fine-tuning the {init} {run.pretraining.model.backbone} on {config.data.name} "
                    f"({config.recipe} recipe) from step {start} of {run.total_steps}; run directory {run_dir}")
    monitor.start(start)
    step, train_top1, status = start, {}, "completed"
    while step < run.total_steps:
      state, metrics = jitted(state, next_input())
      step += 1
      logging = step % config.train.log_every == 0 or step == run.total_steps
      # A save waits for the step anyway: its metrics are checked first, so a diverged step is named as such.
      if logging or checkpoints.due(step):
        values = jax.device_get(metrics)
        if not values["finite"]:
          raise loop.NonFiniteError(f"fine-tuning step {step} gave a non-finite loss or gradient "
                                    f"(loss {float(values['loss'])}); lower optim.base_lr, or rerun to resume from "
                                    f"the last checkpoint in {checkpoints.directory}.")
      if logging:
        scalars = {key: float(value) for key, value in values.items() if key != "finite"}
        train_top1 = {level: scalars[f"train_top1/{level}"] for level in run.levels}
        monitor.write(step, scalars)
        monitor.progress(step, scalars["loss"], monitor.throughput(step))
      checkpoints.save(step, state)
      if step < run.total_steps and stop.agreed(can_sync=logging):
        status = "interrupted"
        break
    if checkpoints.last_step != step:  # the last step, or where a signal stopped the run
      checkpoints.save(step, state, force=True)
    checkpoints.wait()
    if batches is not None:
      batches.close()
  finally:
    stop.restore()
    checkpoints.close()
    if monitor is not None:
      monitor.close()
  summary = {"status": status, "step": step, "total_steps": run.total_steps, "init": init,
             "pretrained_step": pretrained_step, "train_top1": train_top1, "run_dir": str(run_dir),
             "stopped_by": stop.received}
  if status == "completed":
    summary.update(evaluate_on(run, state, config.data.name, config.data.data_dir or None))
    # A dataset's shifted sets are prepared beside it (the bundled ones prepare themselves there).
    summary["shifted"] = {name: evaluate_on(run, state, name, config.data.data_dir or None)
                          for name in catalog.shifted_sets(config.data.name)}
    if jax.process_index() == 0:
      (run_dir / RESULT_FILE).write_text(json.dumps(summary, indent=2) + "\n")
  return summary
