"""Embedding images with a trained backbone, sampling the records the trainer's probes see, and the spectral monitors.

Evaluation views are the whole image, resized (bilinear, antialiased) to the
training view size and normalised with the dataset statistics; the backbone
runs in eval mode (BatchNorm on its running statistics). Batches are sharded
over the mesh; every process passes the same full array and gets all features
back, so this works unchanged on several hosts.

Beside the kNN accuracy, the monitor reads two label-free spectra of the same
encoder (`SpectrumMonitor`): RankMe of the kNN sample's features, and LiDAR of
several augmented views (the run's own global-view augmentation) of its first
images.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jax_ssl import ops
from jax_ssl.data import augment
from jax_ssl.data import sources
from jax_ssl.data import views
from jax_ssl.eval import inputs
from jax_ssl.train.state import DATA_AXIS


def preprocess(images: jax.Array, size: int, mean, std) -> jax.Array:
  """uint8 or [0, 1] float (N, H, W, C) -> normalised float32 (N, size, size, C).

  Args:
    images: (N, H, W, C) uint8 in [0, 255] or float in [0, 1]; resized (bilinear, antialiased) unless
      already `size` x `size`.
    size: the output side in pixels.
    mean: per-channel means (C entries, or 1 shared) of the [0, 1] images, subtracted.
    std: per-channel standard deviations (C entries, or 1 shared), divided by.

  Returns:
    float32 array of shape (N, size, size, C).

  Raises:
    ValueError: if `images` has another dtype, or `mean`/`std` match neither 1 nor C channels.
  """
  images = augment.to_float(images)
  if images.shape[1:3] != (size, size):
    images = jax.image.resize(images, (images.shape[0], size, size, images.shape[3]), "linear", antialias=True)
  return augment.normalize(images, mean, std)


# What an embedder returns: the backbone's features, or the projector's outputs (the embeddings the loss sees).
# "feature_map": the backbone's last spatial features (ResNet, SmallCNN) or patch tokens (ViT), for dense probes.
OUTPUTS = ("backbone", "projector", "feature_map")


@dataclasses.dataclass(frozen=True)
class Embedder:
  """Backbone features (or projector outputs) of image arrays, for one architecture and eval preprocessing."""

  eval_network: nnx.GraphDef
  size: int
  mean: tuple[float, ...]
  std: tuple[float, ...]
  mesh: Mesh
  chunk: int = 512
  output: str = "backbone"

  def __post_init__(self):
    if self.output not in OUTPUTS:
      raise ValueError(f"output must be one of {', '.join(OUTPUTS)}; got {self.output!r}.")

  @functools.cached_property
  def _features(self):
    replicated = NamedSharding(self.mesh, P())

    @functools.partial(jax.jit, out_shardings=replicated)
    def features(params, batch_stats, images):
      network = nnx.merge(self.eval_network, params, batch_stats)
      images = preprocess(images, self.size, self.mean, self.std)
      if self.output == "feature_map":
        return network.backbone.feature_map(images).astype(jnp.float32)
      features = network.backbone(images)
      if self.output == "projector":
        features = network.projector(features)
      return features.astype(jnp.float32)

    return features

  def __call__(self, params, batch_stats, images: np.ndarray) -> np.ndarray:
    """(N, H, W, C) images -> (N, F) float32 numpy features (F: backbone features or projector width).

    With `output="feature_map"`, (N, h, w, F): the backbone's spatial features.

    Args:
      params: the network's `nnx.Param` state, as split from `eval_network`.
      batch_stats: the network's BatchNorm statistics, as split from `eval_network`.
      images: (N, H, W, C) uint8 or [0, 1] float images, the same full array on every process.

    Returns:
      float32 numpy array (N, F) (or (N, h, w, F)), replicated on every process; (0, 0) if `images` is empty.
    """
    images = np.asarray(images)
    num_devices = self.mesh.devices.size
    chunk = max(num_devices, self.chunk // num_devices * num_devices)
    sharding = NamedSharding(self.mesh, P(DATA_AXIS))
    outputs = []
    for start in range(0, len(images), chunk):
      block = images[start:start + chunk]
      padded = np.concatenate([block, np.repeat(block[-1:], (-len(block)) % num_devices, axis=0)])
      global_block = jax.make_array_from_callback(padded.shape, sharding, lambda index, a=padded: a[index])
      outputs.append(np.asarray(self._features(params, batch_stats, global_block))[:len(block)])
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)


@functools.partial(jax.jit, static_argnums=0)
def _text_embeddings(eval_network: nnx.GraphDef, params, batch_stats, tokens: jax.Array) -> jax.Array:
  network = nnx.merge(eval_network, params, batch_stats)
  return network.text(tokens).astype(jnp.float32)


def embed_captions(eval_network: nnx.GraphDef, params, batch_stats, tokens: np.ndarray) -> np.ndarray:
  """CLIP's text tower on tokenized captions: (..., L) int tokens -> (..., D) float32 numpy embeddings.

  Args:
    eval_network: the graph of a network with a text tower (`Network` of a CLIP method), eval mode.
    params: the network's `nnx.Param` state.
    batch_stats: the network's other state.
    tokens: (..., L) int token ids (`data.captions.Captions.tokens`, a few hundred captions at most).

  Returns:
    float32 numpy array (..., D), D the joint embedding width.
  """
  tokens = np.asarray(tokens, np.int32)
  flat = _text_embeddings(eval_network, params, batch_stats, jnp.asarray(tokens.reshape(-1, tokens.shape[-1])))
  return np.asarray(flat).reshape(*tokens.shape[:-1], -1)


def sample_split(source: sources.Source, max_examples: int, seed: int) -> dict[str, np.ndarray]:
  """At most `max_examples` records of `source` (all of them, in order, if it is small enough).

  Args:
    source: a random-access record source (non-empty) whose records are dicts of arrays.
    max_examples: the most records to take.
    seed: picks which records are taken when `source` is larger; the same seed gives the same records.

  Returns:
    A dict from each record key to the stacked values, in the order of the records in `source`.
  """
  records = [source[int(i)] for i in inputs.subsample(len(source), max_examples, seed)]
  return {key: np.stack([record[key] for record in records]) for key in records[0]}


def lidar_view_specs(global_specs, num_views: int) -> tuple[views.ViewSpec, ...]:
  """The specs of LiDAR's views of each image: the run's global views, in turn, `num_views` of them.

  Args:
    global_specs: the run's global view specs (`views.recipe_views(...)[:num_global]`), at least one.
    num_views: how many views of each image.

  Returns:
    A tuple of `num_views` specs: view v has `global_specs[v % len(global_specs)]`.
  """
  return tuple(global_specs[v % len(global_specs)] for v in range(num_views))


@jax.jit
def _spectra(features: jax.Array, view_features: jax.Array) -> tuple[jax.Array, jax.Array]:
  return ops.effective_rank(features - jnp.mean(features, axis=0)), ops.lidar(view_features)


@dataclasses.dataclass(frozen=True)
class SpectrumMonitor:
  """RankMe and LiDAR of an encoder, on the kNN monitor's sample (the backbone's features, as `Embedder` gives them).

  RankMe (`ops.effective_rank`) is read on the centred features of every image of the sample;
  LiDAR (`ops.lidar`) on `len(view_specs)` augmented views of each of its first images, every image
  its own class. The views are the same at every evaluation (their keys come from `seed` alone), so
  the two curves move with the encoder only.
  """

  eval_network: nnx.GraphDef
  view_specs: tuple[views.ViewSpec, ...]  # one per view of each image (`lidar_view_specs`); one side for all
  mesh: Mesh
  seed: int = 0
  chunk: int = 512  # views per call (rounded to whole images, a multiple of the devices)

  @functools.cached_property
  def _view_features(self):
    replicated = NamedSharding(self.mesh, P())

    @functools.partial(jax.jit, out_shardings=replicated)
    def features(params, batch_stats, key, images):
      network = nnx.merge(self.eval_network, params, batch_stats)
      crops = jnp.concatenate(views.multi_crop(key, images, self.view_specs))  # view-major: (V * B, S, S, C)
      outputs = network.backbone(crops).astype(jnp.float32)
      return outputs.reshape(len(self.view_specs), images.shape[0], -1).transpose(1, 0, 2)

    return features

  def view_features(self, params, batch_stats, images: np.ndarray) -> np.ndarray:
    """(n, H, W, C) images -> (n, V, F) float32 numpy backbone features of V augmented views of each.

    Args:
      params: the network's `nnx.Param` state, as split from `eval_network`.
      batch_stats: the network's BatchNorm statistics, as split from `eval_network`.
      images: (n, H, W, C) uint8 or [0, 1] float images, n >= 1, the same full array on every process.

    Returns:
      float32 numpy array (n, V, F), replicated on every process; the same views for the same `images`.
    """
    images = np.asarray(images)
    num_devices = self.mesh.devices.size
    per_call = max(num_devices, self.chunk // len(self.view_specs) // num_devices * num_devices)
    per_call = min(per_call, -(-len(images) // num_devices) * num_devices)  # a small sample: one padded call
    sharding = NamedSharding(self.mesh, P(DATA_AXIS))
    key = jax.random.key(self.seed)
    outputs = []
    for start in range(0, len(images), per_call):
      block = images[start:start + per_call]
      padded = np.concatenate([block, np.repeat(block[-1:], per_call - len(block), axis=0)])
      global_block = jax.make_array_from_callback(padded.shape, sharding, lambda index, a=padded: a[index])
      chunk_key = jax.random.fold_in(key, start)
      outputs.append(np.asarray(self._view_features(params, batch_stats, chunk_key, global_block))[:len(block)])
    return np.concatenate(outputs)

  def __call__(self, params, batch_stats, features: np.ndarray, images: np.ndarray) -> dict[str, float]:
    """{"knn/rankme": RankMe of `features`, "knn/lidar": LiDAR of the views of `images`}.

    Args:
      params: the network's `nnx.Param` state, as split from `eval_network`.
      batch_stats: the network's BatchNorm statistics, as split from `eval_network`.
      features: (N, F) backbone features of the kNN sample (`Embedder`'s output on its images).
      images: (n, H, W, C) images whose views LiDAR reads, n >= 2 (the first images of the sample).

    Returns:
      The two scalars as Python floats (NaN where a feature is not finite).
    """
    rankme, lidar = _spectra(np.asarray(features, np.float32), self.view_features(params, batch_stats, images))
    return {"knn/rankme": float(rankme), "knn/lidar": float(lidar)}
