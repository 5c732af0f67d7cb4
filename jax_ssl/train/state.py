"""The network of a run and its train state, as pure pytrees.

`Network` (backbone -> projector -> optional predictor) is an NNX module used
functionally: its graphdef is static, and the `TrainState` pytree holds the
arrays (parameters, BatchNorm statistics, optimizer state, the online probe,
the optional EMA target network, the PRNG key as raw uint32 data so Orbax can
save it). The state is created inside `jit` directly into its shardings:
replicated, or with FSDP each array split over the data axis along its
largest divisible dimension.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx
from jax.sharding import AxisType
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jax_ssl import models
from jax_ssl.methods import Method
from jax_ssl.train import heads

DATA_AXIS = "data"


def data_mesh(devices=None) -> Mesh:
  """A 1-D mesh over all devices, axis `data`, with automatic (compiler-inserted) collectives.

  Args:
    devices: the devices to span, in mesh order; None for `jax.devices()` (every device of every process).

  Returns:
    A `Mesh` with the single axis `DATA_AXIS` of size `len(devices)`.
  """
  devices = jax.devices() if devices is None else devices
  return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(AxisType.Auto,), devices=devices)


def backbone_kwargs(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The keyword arguments `models.build_backbone` takes for the configured backbone.

  Args:
    config: the run config; reads `model.backbone`, and `model.stem` and `model.width` (ResNets),
      `model.patch_size`, `views.size`, `model.drop_path` and `model.pool` (ViTs), or `model.width` (other backbones).

  Returns:
    A dict of keyword arguments for `models.build_backbone`, besides the name, `rngs` and `dtype`.
  """
  name = config.model.backbone
  if name.startswith("resnet"):
    return {"stem": config.model.stem, "width": config.model.width}
  if name.startswith("vit"):
    return {"patch_size": config.model.patch_size, "image_size": config.views.size,
            "drop_path_rate": config.model.drop_path, "pool": config.model.pool}
  return {"width": config.model.width}


class Network(nnx.Module):
  """Backbone, head and (BYOL) predictor: images -> (features, projections, predictions or None).

  The head is the one the method names (`train.heads.head_of`), which sets
  `projector` (an MLP, DINO's prototype head, MAE's decoder or I-JEPA's
  predictor) and, for CLIP, the text tower `text` and the learned
  `log_logit_scale`. `key` drives the backbone's stochastic layers (a ViT's
  stochastic depth) in training; without it, or for a backbone without them,
  the forward is deterministic.
  """

  def __init__(self, config: ml_collections.ConfigDict, method: Method, *, rngs: nnx.Rngs):
    dtype = jnp.dtype(config.model.dtype)
    self.backbone = models.build_backbone(config.model.backbone, rngs=rngs, dtype=dtype, **backbone_kwargs(config))
    heads.head_of(method).build(self, config, method, dtype=dtype, rngs=rngs)
    self.predictor = (models.byol_predictor(self.projector.out_features, config.model.predictor, rngs=rngs,
                                            dtype=dtype) if method.predictor else None)
    self.stochastic = getattr(self.backbone, "drop_path_rate", 0.0) > 0

  def __call__(self, images: jax.Array, key: jax.Array | None = None):
    """Run the backbone, projector and predictor on a batch.

    Args:
      images: normalised float images (N, H, W, C).
      key: PRNG key for stochastic depth; ignored when the backbone has none.

    Returns:
      `(features, projections, predictions)`: (N, F) backbone features, (N, D) projector outputs, and the
      predictor's outputs, or None without a predictor.
    """
    features = self.backbone(images, key) if self.stochastic and key is not None else self.backbone(images)
    projections = self.projector(features)
    predictions = None if self.predictor is None else self.predictor(projections)
    return features, projections, predictions


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training; a pytree saved whole by Orbax."""

  step: jax.Array
  params: nnx.State
  batch_stats: nnx.State
  opt_state: optax.OptState
  probe_params: nnx.State
  probe_opt_state: optax.OptState
  target_params: nnx.State | None
  target_batch_stats: nnx.State | None
  rng: jax.Array  # raw key data (uint32), wrapped with jax.random.wrap_key_data
  method_statistics: Any = None  # a method's running statistics (DINO's center); None for most


def evaluated_arrays(state: TrainState, method: Method) -> tuple[nnx.State, nnx.State]:
  """The parameters and BatchNorm statistics that probes and evaluations read: the target network's for a
  method evaluated on it (`Method.evaluate_target`, I-JEPA), else the online network's.

  Args:
    state: a training state.
    method: the run's method.

  Returns:
    `(params, batch_stats)`.
  """
  if method.evaluate_target:
    return state.target_params, state.target_batch_stats
  return state.params, state.batch_stats


@dataclasses.dataclass(frozen=True)
class Definitions:
  """The static halves of the NNX modules: combine with the state's arrays via `nnx.merge`."""

  network: nnx.GraphDef
  eval_network: nnx.GraphDef  # the same network with BatchNorm on its running statistics
  probe: nnx.GraphDef
  num_features: int


def build_modules(config, method: Method, num_classes: int):
  """The network and the online probe, freshly initialised from `config.seed`.

  Args:
    config: the run config; reads `seed` and the `model` (and, for ViTs, `views.size`) fields of `Network`.
    method: the objective; its `head` and `predictor` decide the network's heads.
    num_classes: the number of classes the online linear probe predicts.

  Returns:
    `(network, probe)`: the `Network` (seeded by `config.seed`) and an `nnx.Linear` probe on the
    backbone's features (seeded by `config.seed + 1`).
  """
  network = Network(config, method, rngs=nnx.Rngs(config.seed))
  probe = nnx.Linear(network.backbone.num_features, num_classes, rngs=nnx.Rngs(config.seed + 1))
  return network, probe


def definitions(config: ml_collections.ConfigDict, method: Method, num_classes: int) -> Definitions:
  """The graph definitions of a run's network (train and eval mode) and probe, without creating arrays.

  Args:
    config: the run config (as for `build_modules`).
    method: the objective (as for `build_modules`).
    num_classes: the number of classes of the online probe.

  Returns:
    `Definitions` with the train-mode and eval-mode network graphdefs, the probe's graphdef, and the
    backbone's feature count.
  """
  network, probe = nnx.eval_shape(lambda: build_modules(config, method, num_classes))
  train_graph = nnx.split(network, nnx.Param, ...)[0]
  network.eval()
  eval_graph = nnx.split(network, nnx.Param, ...)[0]
  return Definitions(train_graph, eval_graph, nnx.split(probe)[0], network.backbone.num_features)


def initial_state(config, method: Method, num_classes: int, optimizer, probe_optimizer) -> TrainState:
  """The state at step 0 (call under `jit`): a pure function of `config.seed`.

  Args:
    config: the run config (as for `build_modules`); `seed + 2` also seeds the state's PRNG key.
    method: the objective; with a `target` network, the target starts as a copy of the online one, and
      with `statistics`, the method's initial statistics are part of the state.
    num_classes: the number of classes of the online probe.
    optimizer: the network's optimizer, whose `init` gives `opt_state`.
    probe_optimizer: the online probe's optimizer, whose `init` gives `probe_opt_state`.

  Returns:
    A `TrainState` with `step` 0 (int32) and the initial parameters, statistics and optimizer states.
  """
  network, probe = build_modules(config, method, num_classes)
  _, params, batch_stats = nnx.split(network, nnx.Param, ...)
  _, probe_params = nnx.split(probe)
  target_params = jax.tree.map(jnp.copy, params) if method.target else None
  target_batch_stats = jax.tree.map(jnp.copy, batch_stats) if method.target else None
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      batch_stats=batch_stats,
      opt_state=optimizer.init(params),
      probe_params=probe_params,
      probe_opt_state=probe_optimizer.init(probe_params),
      target_params=target_params,
      target_batch_stats=target_batch_stats,
      rng=jax.random.key_data(jax.random.key(config.seed + 2)),
      method_statistics=method.initial_statistics() if method.statistics else None,
  )


def _fsdp_spec(shape: tuple[int, ...], num_devices: int) -> P:
  """Split the largest dimension that divides over the devices; replicate small or indivisible arrays."""
  candidates = [axis for axis, size in enumerate(shape) if size % num_devices == 0 and size >= num_devices]
  if not candidates or num_devices == 1:
    return P()
  axis = max(candidates, key=lambda a: shape[a])
  spec = [None] * len(shape)
  spec[axis] = DATA_AXIS
  return P(*spec)


def state_shardings(abstract_state: TrainState, mesh: Mesh, fsdp: bool) -> TrainState:
  """Shardings for every array of the state: replicated, or FSDP-split over the data axis.

  With FSDP, each array is split along its largest dimension that the device count divides; scalars and
  arrays with no such dimension stay replicated.

  Args:
    abstract_state: the state, or its `jax.ShapeDtypeStruct`s (only `ndim` and `shape` are read).
    mesh: the device mesh, with the `data` axis.
    fsdp: whether to shard the arrays (`mesh.fsdp`); False replicates every array.

  Returns:
    A pytree like `abstract_state` with a `NamedSharding` on `mesh` per leaf.
  """
  def sharding(leaf):
    if not fsdp or leaf.ndim == 0:
      return NamedSharding(mesh, P())
    return NamedSharding(mesh, _fsdp_spec(leaf.shape, mesh.shape[DATA_AXIS]))
  return jax.tree.map(sharding, abstract_state)


def initialize(init: Callable[[], TrainState], shardings: TrainState) -> TrainState:
  """`init()` computed on the devices, straight into `shardings`.

  On CPU the program is compiled without backend optimisation, which is much faster for a function run once.

  Args:
    init: a function of no arguments returning the state, e.g. a closure over `initial_state`.
    shardings: the state's shardings, as from `state_shardings` (all on one mesh).

  Returns:
    The state returned by `init`, its arrays laid out as `shardings` says.
  """
  # The initializers unroll into long chains of threefry integer ops, and XLA:CPU's LLVM spends ~10 s
  # optimizing a program that runs once, in microseconds. Unoptimized it compiles in ~1 s; the values
  # agree to the last bit or one ulp (where LLVM contracts the inverse-erf polynomial differently).
  platform = jax.tree.leaves(shardings)[0].mesh.devices.flat[0].platform
  options = {"xla_backend_optimization_level": 0} if platform == "cpu" else None
  return jax.jit(init, out_shardings=shardings, compiler_options=options)()


def create_state(config, method: Method, num_classes: int, optimizer, probe_optimizer, mesh: Mesh):
  """The initial state placed on `mesh`, and the shardings it lives in.

  Args:
    config: the run config (as for `initial_state`); `mesh.fsdp` decides the sharding.
    method: the objective.
    num_classes: the number of classes of the online probe.
    optimizer: the network's optimizer.
    probe_optimizer: the online probe's optimizer.
    mesh: the device mesh, with the `data` axis.

  Returns:
    `(state, shardings)`: the initial `TrainState` on the devices and a `TrainState` of its shardings.
  """
  init = lambda: initial_state(config, method, num_classes, optimizer, probe_optimizer)  # noqa: E731
  shardings = state_shardings(jax.eval_shape(init), mesh, config.mesh.fsdp)
  return initialize(init, shardings), shardings
