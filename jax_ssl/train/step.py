"""The training step: one jitted SPMD program over the device mesh.

Per step, for a global batch of uint8 images sharded over the `data` axis:

  1. augment every view on device (`jax_ssl.data.views.multi_crop`);
  2. run the online network on each view separately (BatchNorm statistics per
     view, as in the reference VICReg code; they are global-batch statistics,
     i.e. synchronised, since the arrays are global); CLIP embeds each image's
     one view and, with its text tower, a caption drawn for the image's label;
  3. gather the (V, N, D) embeddings onto every device and evaluate the
     method's objective on the global batch (docs/distributed.md); random
     slices are split over the devices inside `shard_map`;
  4. train an online linear probe on stop-gradient backbone features;
  5. apply the optimizer, move an EMA target network (BYOL, DINO, I-JEPA) toward the
     online one, and update a method's running statistics (DINO's center).

Parameters are replicated (or FSDP-sharded); the compiler inserts the
collectives, so no gradient is averaged by hand.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx
from jax import lax
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jax_ssl import methods
from jax_ssl import ops
from jax_ssl.data import catalog
from jax_ssl.data import views as views_lib
from jax_ssl.train import heads
from jax_ssl.train import optim
from jax_ssl.train import state as state_lib
from jax_ssl.train.state import DATA_AXIS
from jax_ssl.train.state import Definitions
from jax_ssl.train.state import TrainState


def method_loss(method: methods.Method, embeddings: methods.AnyEmbeddings, key: jax.Array,
                mesh: Mesh) -> tuple[jax.Array, methods.base.Metrics]:
  """`method.loss` on the global batch; a sliced method's directions split over the mesh.

  The step draws the (D, K) directions from its key and hands device m the
  columns [m K / M, (m + 1) K / M) inside `shard_map`, beside the whole
  (replicated) batch of embeddings; the devices' losses and metrics are
  averaged with `pmean`: the mean over all K slices (a sliced method's loss is
  affine in its per-slice means), at 1/M of the projection and sort cost. The
  gradient needs no correction: `shard_map` sums the devices' contributions to
  the replicated embeddings, and each is already divided by M.

  Args:
    method: the objective; when its `total_slices` is positive, the directions are split over `mesh`.
    embeddings: the networks' outputs for every view of the global batch, replicated.
    key: the step's PRNG key for the loss (slice directions, random walks).
    mesh: the device mesh with the `data` axis the slices are split over.

  Returns:
    `(loss, metrics)`: the scalar loss and the method's named loss terms.
  """
  if not method.total_slices:
    return method.loss(embeddings, key)
  directions = method.slice_directions(key, embeddings.global_views.shape[-1])

  def per_device(embeddings, key, block):
    return jax.tree.map(lambda value: lax.pmean(value, DATA_AXIS), method.loss(embeddings, key, block))

  return jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(), P(None, DATA_AXIS)), out_specs=P())(
      embeddings, key, directions)


@dataclasses.dataclass(frozen=True)
class StepConfig:
  """The static pieces of a step (hashable where jit needs it)."""

  definitions: Definitions
  method: methods.Method
  view_specs: tuple[views_lib.ViewSpec, ...]
  num_global: int
  optimizer: optax.GradientTransformation
  probe_optimizer: optax.GradientTransformation
  schedule: optax.Schedule
  total_steps: int
  log_every: int
  mesh: Mesh
  captions: jax.Array | None = None  # CLIP: the dataset's caption tokens, drawn per image and step


def build_step_config(config: ml_collections.ConfigDict, method: methods.Method, mesh: Mesh,
                      steps_per_epoch: int, total_steps: int) -> StepConfig:
  """The static pieces of a run's step: views, schedule, optimizers and network definitions.

  Args:
    config: the run config.
    method: its method.
    mesh: the device mesh.
    steps_per_epoch: full batches per epoch (the schedule's warmup is in epochs).
    total_steps: the run's length.

  Returns:
    The `StepConfig` the trainer and the dry run compile.
  """
  spec = catalog.get_spec(config.data.name)
  schedule = optim.learning_rate_schedule(config, steps_per_epoch, total_steps)
  return StepConfig(
      definitions=state_lib.definitions(config, method, spec.num_classes["label"]), method=method,
      view_specs=views_lib.recipe_views(config.views, spec.mean, spec.std), num_global=config.views.num_global,
      optimizer=optim.make_optimizer(config, schedule), probe_optimizer=optax.adam(config.train.probe_lr),
      schedule=schedule, total_steps=total_steps, log_every=config.train.log_every, mesh=mesh,
      captions=spec.captions.tokens if heads.head_of(method).has_text else None)


def batch_shapes(config: ml_collections.ConfigDict, mesh: Mesh, image_size: int) -> dict:
  """A global batch's abstract arrays (`image`, `label`), sharded over the data axis as the step receives it.

  Args:
    config: the run config (`train.global_batch_size`).
    mesh: the device mesh.
    image_size: the side of the square uint8 images the feed yields.

  Returns:
    `jax.ShapeDtypeStruct`s of the batch.
  """
  batch, sharded = config.train.global_batch_size, NamedSharding(mesh, P(DATA_AXIS))
  return {"image": jax.ShapeDtypeStruct((batch, image_size, image_size, 3), jnp.uint8, sharding=sharded),
          "label": jax.ShapeDtypeStruct((batch,), jnp.int32, sharding=sharded)}


def _replicated(mesh: Mesh, x):
  return jax.tree.map(lambda a: lax.with_sharding_constraint(a, NamedSharding(mesh, P())), x)


def _non_param_state(module: nnx.Module) -> nnx.State:
  """What `nnx.split(module, nnx.Param, ...)` puts after the parameters (BatchNorm statistics)."""
  return nnx.split(module, nnx.Param, ...)[2]


def _non_finite_guard(metrics: dict) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in metrics.values()]))


def make_train_step(cfg: StepConfig) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
  """`(state, batch) -> (state, metrics)`; batch: `image` uint8 (N, H, W, C), `label` int32 (N,).

  Args:
    cfg: the static pieces of the step: network definitions, method, view specs, optimizers, schedule,
      step counts and mesh.

  Returns:
    An unjitted function of `(state, batch)` returning the state after one optimizer step and a dict of
    scalar metrics: `loss`, `loss/<term>`, `grad_norm`, `probe/loss`, `probe/accuracy`, `embedding/std`,
    `embedding/effective_rank` (0 on steps that are not logged), `lr`, and the boolean `finite`.
  """
  method = cfg.method
  head = heads.head_of(method)

  def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
    key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    augment_key, loss_key = jax.random.split(key)
    crops = views_lib.multi_crop(augment_key, batch["image"], cfg.view_specs)
    global_crops, local_crops = crops[:cfg.num_global], crops[cfg.num_global:]
    progress = state.step.astype(jnp.float32) / cfg.total_steps

    targets = target_batch_stats = target_features = None
    if method.target:
      target = nnx.merge(cfg.definitions.network, state.target_params, state.target_batch_stats, copy=True)
      target_features, targets = head.target_outputs(target, global_crops)
      target_batch_stats = _non_param_state(target)
    step_crops = heads.Crops(global_crops, local_crops, key, batch["label"], targets, state.method_statistics,
                             cfg.captions)

    def loss_fn(params, probe_params):
      # FSDP keeps the parameters split at rest and gathers them whole for the step (their gradients are
      # reduce-scattered back by the compiler); without this, XLA may instead split the layers' outputs
      # over the devices and compute parts of the batch on every device.
      params = _replicated(cfg.mesh, params)
      network = nnx.merge(cfg.definitions.network, params, state.batch_stats, copy=True)
      features, embeddings = head.embed(network, method, step_crops)
      if head.gathered:
        embeddings = _replicated(cfg.mesh, embeddings)  # every loss sees the global batch
      loss, terms = method_loss(method, embeddings, loss_key, cfg.mesh)
      # Online linear probe on the first global view's features, with no gradient into the backbone; a
      # method evaluated on its target network (I-JEPA) probes the target's features.
      if method.evaluate_target:
        features = target_features
      probe = nnx.merge(cfg.definitions.probe, probe_params)
      logits = probe(lax.stop_gradient(features[0]).astype(jnp.float32))
      probe_loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
      aux = {
          "terms": terms,
          "batch_stats": _non_param_state(network),
          "probe_loss": probe_loss,
          "probe_accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["label"]),
          "embeddings": embeddings,
      }
      return loss + probe_loss, (loss, aux)

    (_, (loss, aux)), (grads, probe_grads) = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(
        state.params, state.probe_params)
    updates, opt_state = cfg.optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    probe_updates, probe_opt_state = cfg.probe_optimizer.update(probe_grads, state.probe_opt_state,
                                                                 state.probe_params)
    probe_params = optax.apply_updates(state.probe_params, probe_updates)

    target_params = state.target_params
    if method.target:
      target_params = method.update_target(state.target_params, params, progress)
    method_statistics = state.method_statistics
    if method.statistics:
      method_statistics = method.update_statistics(state.method_statistics, aux["embeddings"])

    embedding = aux["embeddings"].global_views[0].astype(jnp.float32)
    # An SVD of the (N, D) batch: only on the steps that are logged.
    logged = ((state.step + 1) % cfg.log_every == 0) | (state.step + 1 == cfg.total_steps)
    effective_rank = lax.cond(logged, lambda z: ops.effective_rank(z - jnp.mean(z, axis=0)),
                              lambda z: jnp.float32(0.0), embedding)
    metrics = {
        "loss": loss,
        **{f"loss/{name}": value for name, value in aux["terms"].items()},
        "grad_norm": optax.tree.norm(grads),
        "probe/loss": aux["probe_loss"],
        "probe/accuracy": aux["probe_accuracy"],
        "embedding/std": jnp.mean(jnp.std(embedding, axis=0)),
        "embedding/effective_rank": effective_rank,
        "lr": cfg.schedule(state.step),
    }
    metrics["finite"] = _non_finite_guard({k: v for k, v in metrics.items() if k != "lr"})
    new_state = state.replace(
        step=state.step + 1, params=params, batch_stats=aux["batch_stats"], opt_state=opt_state,
        probe_params=probe_params, probe_opt_state=probe_opt_state, target_params=target_params,
        target_batch_stats=target_batch_stats if method.target else state.target_batch_stats,
        method_statistics=method_statistics)
    return new_state, metrics

  return train_step


Guard = dict  # {"step": int32, -1 while every step was finite; "metrics": that first bad step's metrics}


def initial_guard(metrics_shapes: dict) -> Guard:
  """No step has gone non-finite yet; `metrics_shapes` gives the layout of a step's metrics.

  Args:
    metrics_shapes: a pytree of `jax.ShapeDtypeStruct`s (or arrays) shaped like a step's metrics.

  Returns:
    `{"step": -1 (int32), "metrics": zeros shaped like metrics_shapes}`.
  """
  return {"step": jnp.full((), -1, jnp.int32),
          "metrics": jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), metrics_shapes)}


def guarded(train_step):
  """`(state, guard, batch) -> (state, guard, metrics)`: the step, recording on the device the first non-finite one.

  The loop reads the guard only when it syncs anyway (logging, checkpoints),
  so no step waits for the device to find out; the record keeps the step
  number and its metrics, whatever came after.

  Args:
    train_step: a `(state, batch) -> (state, metrics)` function whose metrics include a boolean `finite`.

  Returns:
    A function of `(state, guard, batch)` returning the new state, the updated guard (`step` is the
    incremented `state.step` of the first non-finite step, `metrics` its metrics), and the step's metrics.
  """

  def step(state: TrainState, guard: Guard, batch: dict):
    state, metrics = train_step(state, batch)
    first_bad = (guard["step"] < 0) & ~metrics["finite"]
    guard = {"step": jnp.where(first_bad, state.step, guard["step"]),
             "metrics": jax.tree.map(lambda old, new: jnp.where(first_bad, new, old), guard["metrics"], metrics)}
    return state, guard, metrics

  return step


def build_train_step(cfg: StepConfig, state_shardings: TrainState, state, batch: dict, device_data=None):
  """The run's one jitted step: the guarded step over the mesh, and its metrics' layout, from one trace.

  `eval_shape` of the jitted step gives the layout the non-finite guard needs
  before the first step, and the guarded step reuses that trace.

  Args:
    cfg: the static pieces of the step.
    state_shardings: a `TrainState` of shardings.
    state: the state, or its abstract arrays with their shardings.
    batch: a batch's abstract arrays (`batch_shapes`), sharded as the step receives them.
    device_data: the split held on the devices, or None when batches are fed from the host.

  Returns:
    `(step, metrics_shapes)`: `jit_train_step`'s function, and the metrics as `jax.ShapeDtypeStruct`s.
  """
  train_step = jax.jit(make_train_step(cfg))
  metrics_shapes = train_step.eval_shape(state, batch)[1]
  return jit_train_step(cfg, state_shardings, device_data, train_step), metrics_shapes


def jit_train_step(cfg: StepConfig, state_shardings: TrainState, device_data=None, train_step=None):
  """The guarded step jitted over the mesh, state and guard donated.

  The step is traced once: pass the jitted `train_step` whose `eval_shape` gave the metrics' layout
  (the loop's `initial_guard` needs it before the first step), and its cached trace is reused here.

  Host-fed: `(state, guard, batch)`, the batch sharded on `data`. With
  `device_data` (`jax_ssl.data.feed.DeviceData`): `(state, guard, inputs)`,
  `inputs = device_data.step_inputs(step)`: the replicated split and its
  epoch's order, from which the step gathers its own batch.

  Args:
    cfg: the static pieces of the step, including the mesh.
    state_shardings: a `TrainState` of shardings, used for the state both in and out.
    device_data: the split held on the devices, or None when batches are fed from the host.
    train_step: the unguarded step, `jax.jit(make_train_step(cfg))`; None: a new one.

  Returns:
    The jitted `(state, guard, batch_or_inputs) -> (state, guard, metrics)`; the guard and metrics are
    replicated, and the `state` and `guard` arguments are donated.
  """
  replicated = NamedSharding(cfg.mesh, P())
  step = guarded(train_step or jax.jit(make_train_step(cfg)))
  if device_data is None:
    data_sharding = NamedSharding(cfg.mesh, P(DATA_AXIS))
    fn = step
  else:
    data_sharding = replicated

    def fn(state, guard, inputs):
      return step(state, guard, device_data.gather_batch(inputs, state.step))

  return jax.jit(fn, in_shardings=(state_shardings, replicated, data_sharding),
                 out_shardings=(state_shardings, replicated, replicated), donate_argnums=(0, 1))
