"""`jax_ssl.load_encoder(workdir, step=None)`: a trained backbone as a function of images.

`initial_encoder(config)` is the same at initialisation, the untrained control.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import jax
import ml_collections
import numpy as np
import optax
from flax import nnx

from jax_ssl import methods
from jax_ssl.data import catalog
from jax_ssl.train import checkpoint
from jax_ssl.train import config as config_lib
from jax_ssl.train import evaluation
from jax_ssl.train import heads
from jax_ssl.train import optim
from jax_ssl.train import state as state_lib
from jax_ssl.train import workdir as workdir_lib


@dataclasses.dataclass(frozen=True)
class Encoder:
  """Features of images: `encoder(images)` with uint8 or [0, 1] float (N, H, W, C) -> (N, F) numpy.

  F = `num_features`: the backbone's features, or the projector's width when
  the encoder was made with `output="projector"`. With `output="feature_map"`
  the features keep their grid: (N, h, w, F), the backbone's last spatial
  features (a ViT's patch tokens), for dense probes.

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
    """Embed a batch of images.

    Args:
      images: array-like (N, H, W, C) with C = 3 (channels last), uint8 in [0, 255] or float in [0, 1]; any
        spatial size (resized to `image_size`).

    Returns:
      float32 numpy features of shape (N, `num_features`); (0, `num_features`) for an empty batch.

    Raises:
      ValueError: one line naming what is wrong and the accepted form: not (N, H, W, 3), another dtype, a
        float outside [0, 1] (e.g. [0, 255] values in a float array), or a NaN or inf.
    """
    images = check_images(images)
    if len(images) == 0:
      return np.zeros((0, self.num_features), np.float32)
    return self._embedder(self._params, self._batch_stats, images)

  def arrays(self) -> tuple[dict, dict]:
    """The arrays the features come from: the network's parameters and its BatchNorm statistics.

    Returns:
      `(params, batch_stats)`, nested dicts of numpy arrays keyed by module path (`params["backbone"]`, ...),
      as `nnx.to_pure_dict` lays them out.
    """
    return jax.device_get(nnx.to_pure_dict(self._params)), jax.device_get(nnx.to_pure_dict(self._batch_stats))

  def embed_captions(self, tokens) -> np.ndarray:
    """CLIP's text tower on tokenized captions (a CLIP run's encoder): (..., L) tokens -> (..., D) numpy.

    Args:
      tokens: (..., L) int tokens (`jax_ssl.data.captions.Captions.tokens` of the run's dataset).

    Returns:
      float32 (..., D) text embeddings in the joint space, beside `output="projector"` image embeddings.

    Raises:
      ValueError: the run's method has no text tower.
    """
    if not heads.head_of(methods.from_config(self.config.method)).has_text:
      raise ValueError(f"a {self.config.method.name} run has no text tower; captions embed only in a CLIP run.")
    return evaluation.embed_captions(self._embedder.eval_network, self._params, self._batch_stats, tokens)


def check_images(images, channels: int = 3) -> np.ndarray:
  """`images` as a numpy (N, H, W, C) batch an encoder accepts, or ValueError naming the problem in one line.

  Args:
    images: array-like batch.
    channels: C; every dataset of the catalog is RGB, and the backbones are built for 3 channels.

  Returns:
    The batch as a numpy array (not copied if it already is one).

  Raises:
    ValueError: not four-dimensional with `channels` channels last, neither uint8 nor floating point, or a
      float batch with a NaN or inf or a value outside [0, 1].
  """
  images = np.asarray(images)
  layout = f"a (N, H, W, {channels}) batch, channels last"
  if images.ndim != 4:
    raise ValueError(f"images must be {layout}; got shape {images.shape}.")
  if images.shape[-1] != channels:
    hint = " (channels first? move them last)" if images.shape[1] == channels else ""
    raise ValueError(f"images must be {layout}; got shape {images.shape}{hint}.")
  if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
    raise ValueError(f"images must be uint8 in [0, 255] or float in [0, 1]; got dtype {images.dtype}.")
  if np.issubdtype(images.dtype, np.floating) and images.size:
    if not np.isfinite(images).all():
      raise ValueError("images contain NaN or inf.")
    low, high = float(images.min()), float(images.max())
    if low < 0.0 or high > 1.0:
      raise ValueError(f"float images must lie in [0, 1], got values in [{low:g}, {high:g}]; give [0, 255] "
                       "images as uint8 (or divide them by 255).")
  return images


def _run_arrays(config: ml_collections.ConfigDict):
  """What every encoder of a run's config needs: method, dataset spec, class count, mesh, and the state at init."""
  method = methods.from_config(config.method)
  spec = catalog.get_spec(config.data.name)
  num_classes = spec.num_classes["label"]
  # The optimizer only shapes the optimizer state; its schedule is irrelevant here.
  optimizer = optim.make_optimizer(config, optax.constant_schedule(0.0))
  probe_optimizer = optax.adam(config.train.probe_lr)
  init = lambda: state_lib.initial_state(config, method, num_classes, optimizer, probe_optimizer)  # noqa: E731
  return method, spec, num_classes, state_lib.data_mesh(), init


def _check_output(config, method, output: str) -> None:
  if output == "projector":
    heads.head_of(method).output_width(config, method)  # a head whose output is not an embedding refuses


def _encoder(config, method, spec, num_classes, mesh, step, params, batch_stats, output) -> Encoder:
  definitions = state_lib.definitions(config, method, num_classes)
  embedder = evaluation.Embedder(definitions.eval_network, config.views.size, spec.mean, spec.std, mesh,
                                 output=output)
  width = heads.head_of(method).output_width(config, method) if output == "projector" else definitions.num_features
  return Encoder(step, width, config.views.size, config, embedder, params, batch_stats)


def run_config(workdir: str | pathlib.Path) -> ml_collections.ConfigDict:
  """The config of the run in `workdir`, as today's code reads it.

  Without `config.json` (deleted), the config the newest checkpoint recorded stands in.

  Args:
    workdir: a training run's directory.

  Returns:
    The run's config (`config.upgrade_saved_config` applied).

  Raises:
    FileNotFoundError: `workdir` has neither `config.json` nor a checkpoint that records its config.
  """
  workdir = pathlib.Path(workdir)
  config_path = workdir / workdir_lib.CONFIG_FILE
  saved = (json.loads(config_path.read_text()) if config_path.exists()
           else checkpoint.saved_config(workdir / workdir_lib.CHECKPOINT_DIR))
  if saved is None:
    raise FileNotFoundError(f"{workdir} is not a jax_ssl workdir: it has no {workdir_lib.CONFIG_FILE} (nor checkpoints "
                            "that record their config).")
  return ml_collections.ConfigDict(config_lib.upgrade_saved_config(saved))


def load_encoder(workdir: str | pathlib.Path, step: int | None = None, output: str = "backbone") -> Encoder:
  """The encoder saved in `workdir` at `step` (default: the newest readable checkpoint).

  Args:
    workdir: a training run's directory.
    step: the checkpoint to load; None for the newest readable one.
    output: `"backbone"` (features, the default), `"projector"` (the
      embeddings the loss saw, where SAG-VICReg computes its structure metrics)
      or `"feature_map"` (spatial features, for dense probes).

  Returns:
    An `Encoder` holding the restored parameters and BatchNorm statistics (the target network's for a
    method evaluated on it, such as I-JEPA); its `step` is the checkpoint's.

  Raises:
    FileNotFoundError: if `workdir` has neither `config.json` nor a checkpoint that records its config, no
      checkpoint, or the requested one cannot be read (nor, for the newest, any earlier one).
    ValueError: if `output` is not one of `evaluation.OUTPUTS`, or is "projector" for an MAE or I-JEPA run.
  """
  workdir = pathlib.Path(workdir)
  config = run_config(workdir)
  method, spec, num_classes, mesh, init = _run_arrays(config)
  _check_output(config, method, output)
  abstract = jax.eval_shape(init)
  shardings = state_lib.state_shardings(abstract, mesh, fsdp=False)
  with checkpoint.orbax_quiet():  # a reader needs none of Orbax's own logging; jax_ssl names skipped steps
    checkpointer = checkpoint.Checkpointer(workdir / workdir_lib.CHECKPOINT_DIR, save_every=1, keep=1 << 30)
    try:
      restored_step, state = checkpointer.restore_state(step, checkpoint.abstract_like(abstract, shardings))
    finally:
      checkpointer.close()
  return _encoder(config, method, spec, num_classes, mesh, restored_step,
                  *state_lib.evaluated_arrays(state, method), output)


def initial_encoder(config: ml_collections.ConfigDict, output: str = "backbone") -> Encoder:
  """The encoder of `config` at initialisation (step 0, from `config.seed`): the untrained control.

  Args:
    config: a full run config; `method`, `data.name`, `model`, `optim`, `views.size`, `train.probe_lr`
      and `seed` shape the network and its initial parameters.
    output: `"backbone"` (features, the default) or `"projector"` (the projector's embeddings).

  Returns:
    An `Encoder` with the freshly initialised parameters and `step` 0.

  Raises:
    ValueError: if `output` is not one of `evaluation.OUTPUTS`, or is "projector" for an MAE or I-JEPA run.
  """
  method, spec, num_classes, mesh, init = _run_arrays(config)
  _check_output(config, method, output)
  state = state_lib.initialize(init, state_lib.state_shardings(jax.eval_shape(init), mesh, fsdp=False))
  return _encoder(config, method, spec, num_classes, mesh, 0, *state_lib.evaluated_arrays(state, method), output)
