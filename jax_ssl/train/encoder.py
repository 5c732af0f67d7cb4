"""`jax_ssl.load_encoder(workdir, step=None)`: a trained backbone as a function of images."""

from __future__ import annotations

import dataclasses
import json
import pathlib

import jax
import ml_collections
import numpy as np
import optax

from jax_ssl import methods
from jax_ssl.data import catalog
from jax_ssl.train import checkpoint
from jax_ssl.train import evaluation
from jax_ssl.train import loop
from jax_ssl.train import optim
from jax_ssl.train import state as state_lib


@dataclasses.dataclass(frozen=True)
class Encoder:
  """Backbone features of images: `encoder(images)` with uint8 or [0, 1] float (N, H, W, C) -> (N, F) numpy.

  Images are resized to the training view size (`image_size`) and normalised
  with the training dataset's statistics, as the trainer's own probes do.
  """

  step: int
  num_features: int
  image_size: int
  config: ml_collections.ConfigDict
  _embedder: evaluation.Embedder
  _params: object
  _batch_stats: object

  def __call__(self, images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4:
      raise ValueError(f"images must be a (N, H, W, C) batch, got shape {images.shape}.")
    return self._embedder(self._params, self._batch_stats, images)


def load_encoder(workdir: str | pathlib.Path, step: int | None = None) -> Encoder:
  """The backbone saved in `workdir` at `step` (default: the newest readable checkpoint)."""
  workdir = pathlib.Path(workdir)
  config_path = workdir / loop.CONFIG_FILE
  if not config_path.exists():
    raise FileNotFoundError(f"{workdir} is not a jax_ssl workdir: it has no {loop.CONFIG_FILE}.")
  config = ml_collections.ConfigDict(json.loads(config_path.read_text()))
  method = methods.get_method(config.method.name)
  spec = catalog.get_spec(config.data.name)
  num_classes = spec.num_classes["label"]
  mesh = loop.data_mesh()
  # The optimizer only shapes the saved optimizer state; its schedule is irrelevant here.
  optimizer = optim.make_optimizer(config, optax.constant_schedule(0.0))
  probe_optimizer = optax.adam(config.train.probe_lr)
  init = lambda: state_lib.initial_state(config, method, num_classes, optimizer, probe_optimizer)  # noqa: E731
  abstract = jax.eval_shape(init)
  shardings = state_lib.state_shardings(abstract, mesh, fsdp=False)
  checkpointer = checkpoint.Checkpointer(workdir / loop.CHECKPOINT_DIR, save_every=1, keep=1 << 30)
  try:
    restored_step, state = checkpointer.restore_state(step, checkpoint.abstract_like(abstract, shardings))
  finally:
    checkpointer.close()
  definitions = state_lib.definitions(config, method, num_classes)
  embedder = evaluation.Embedder(definitions.eval_network, config.views.size, spec.mean, spec.std, mesh)
  return Encoder(restored_step, definitions.num_features, config.views.size, config, embedder, state.params,
                 state.batch_stats)
