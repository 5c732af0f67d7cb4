"""The heads on the backbone, one object per kind a method names (`Method.head`).

A head builds its modules onto the `Network`, checks what it needs of the
run's config, names the width of its output, runs the networks on the crops
of a step and hands the method its own embeddings type:

  projector  an MLP (`model.projector`)                         -> `methods.Embeddings`
  dino       DINO's prototype head (`models.DINOHead`)          -> `methods.Embeddings`
  mae        MAE's decoder of hidden patches                    -> `methods.MaskedPatches`
  ijepa      I-JEPA's predictor of hidden blocks' tokens        -> `methods.TargetBlocks`
  clip       a projector beside a text tower, a logit scale     -> `methods.ImageText`

The network builder, the loss function, the config checks and the encoder
loader each look the head up once (`head_of`); nothing else in the trainer
compares a method's head by name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any
from typing import ClassVar
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from jax_ssl import methods
from jax_ssl import models
from jax_ssl import ops
from jax_ssl.data import captions as captions_lib
from jax_ssl.data import catalog
from jax_ssl.models import heads as model_heads


class Crops(NamedTuple):
  """What a head's `embed` reads of a step.

  global_views, local_views: the augmented crops, (N, h, w, C) each.
  key: the step's key; the online network's draws (masks, blocks, stochastic depth) fold in 2, captions 3.
  labels: (N,) the images' labels (CLIP draws their captions).
  targets: the EMA target's outputs (`Head.target_outputs`), or None without a target network.
  statistics: the method's running statistics (DINO's center), or None.
  captions: (C, T, L) the dataset's caption tokens (CLIP), or None.
  """

  global_views: Sequence[jax.Array]
  local_views: Sequence[jax.Array]
  key: jax.Array
  labels: jax.Array
  targets: Any = None
  statistics: Any = None
  captions: jax.Array | None = None


def stacked_forward(network, images_by_view: Sequence[jax.Array], key: jax.Array | None = None):
  """`(features, projections, predictions)` of every view, each stacked on a leading view axis.

  Each view runs through the network on its own (BatchNorm statistics per view, as in the reference
  VICReg code).

  Args:
    network: a `Network`.
    images_by_view: the crops of each view, (N, h, w, C) each.
    key: the stochastic-depth key; view v draws from `fold_in(key, v)`. None: deterministic.

  Returns:
    `(V, N, F)` features, `(V, N, D)` projections and `(V, N, D)` predictions (None without a predictor).
  """
  keys = [None if key is None else jax.random.fold_in(key, index) for index in range(len(images_by_view))]
  outputs = [network(view, view_key) for view, view_key in zip(images_by_view, keys)]
  return tuple(None if outputs[0][i] is None else jnp.stack([o[i] for o in outputs]) for i in range(3))


def _stacked(outputs) -> tuple[jax.Array, ...]:
  return tuple(jnp.stack(parts) for parts in zip(*outputs))


def _online_key(crops: Crops) -> jax.Array:
  """The key of the online network's draws in a step (masks, blocks, stochastic depth)."""
  return jax.random.fold_in(crops.key, 2)


def _stochastic_key(network, key: jax.Array) -> jax.Array | None:
  return jax.random.fold_in(key, 1) if network.stochastic else None


@dataclasses.dataclass(frozen=True)
class Head:
  """A projector MLP on the backbone's features: the default head, and the base of the others.

  Class attributes:
    kind: the `Method.head` value this head serves.
    gathered: the loss compares images across the batch, so the embeddings are gathered onto every
      device; False for per-patch losses (their outputs stay sharded, the mean is reduced by the compiler).
    has_projection: `output="projector"` of an encoder is meaningful (an embedding, not pixels or tokens).
    has_text: the network has a text tower (CLIP).
    exports_projector: the head is the plain MLP that `jax_ssl.export --with_projector` can write.
  """

  kind: ClassVar[str] = "projector"
  gathered: ClassVar[bool] = True
  has_projection: ClassVar[bool] = True
  has_text: ClassVar[bool] = False
  exports_projector: ClassVar[bool] = True

  def check_config(self, config: ml_collections.ConfigDict, method: methods.Method) -> None:
    """Refuse, in one line, a config this head cannot run on (the projector needs nothing more).

    Args:
      config: the run config.
      method: the run's method.

    Raises:
      ValueError: naming the setting to change.
    """

  def build(self, network: nnx.Module, config: ml_collections.ConfigDict, method: methods.Method, *,
            dtype, rngs: nnx.Rngs) -> None:
    """Set the head's modules on `network` (`network.projector`, and a head's others).

    Args:
      network: the `Network` being built; its `backbone` exists.
      config: the run config (`model.projector`, `model.projector_activation`, ...).
      method: the run's method; its `unwrapped` hyperparameters size the head.
      dtype: the modules' compute dtype.
      rngs: the initialisers' random streams.
    """
    network.projector = models.projector(network.backbone.num_features, config.model.projector,
                                         activation=config.model.projector_activation, rngs=rngs, dtype=dtype)

  def output_width(self, config: ml_collections.ConfigDict, method: methods.Method) -> int:
    """The width of the head's output, what `output="projector"` embeds into.

    Args:
      config: the run config.
      method: the run's method.

    Returns:
      The output width.

    Raises:
      ValueError: the head's output is not an embedding (MAE's pixels, I-JEPA's tokens).
    """
    return model_heads.parse_spec(config.model.projector)[-1]

  def target_outputs(self, target: nnx.Module, global_views: Sequence[jax.Array]):
    """`(features, targets)` of the EMA target network on the global views, no gradient.

    Args:
      target: the target `Network`.
      global_views: the global crops.

    Returns:
      `(None, (V, N, D) head outputs)`: the probes read the online network's features.
    """
    return None, jax.lax.stop_gradient(stacked_forward(target, global_views)[1])

  def embed(self, network: nnx.Module, method: methods.Method, crops: Crops):
    """`(features, embeddings)`: the backbone's (V_g, N, F) features of the global views, and the method's input.

    Args:
      network: the online `Network`.
      method: the run's method.
      crops: the step's crops and what else the head reads.

    Returns:
      The global views' backbone features (the online probe reads the first) and the head's embeddings.
    """
    key = _online_key(crops)
    features, projections, predictions = stacked_forward(network, crops.global_views, jax.random.fold_in(key, 0))
    local = stacked_forward(network, crops.local_views, jax.random.fold_in(key, 1))[1] if crops.local_views else None
    return features, methods.Embeddings(projections, local, predictions, crops.targets, crops.statistics)

  def smoke(self, config: ml_collections.ConfigDict) -> None:
    """Shrink what this head needs of `config.model` for a seconds-long smoke run (nothing for an MLP).

    Args:
      config: the config being shrunk, changed in place.
    """


@dataclasses.dataclass(frozen=True)
class DINOHead(Head):
  """DINO's head: an MLP, then the method's `num_prototypes` cosine logits."""

  kind: ClassVar[str] = "dino"
  exports_projector: ClassVar[bool] = False

  def build(self, network, config, method, *, dtype, rngs):
    network.projector = models.DINOHead(network.backbone.num_features, config.model.projector,
                                        method.unwrapped.num_prototypes,
                                        activation=config.model.projector_activation, rngs=rngs, dtype=dtype)

  def output_width(self, config, method):
    return method.unwrapped.num_prototypes


@dataclasses.dataclass(frozen=True)
class _ViTPatchHead(Head):
  """A head on a ViT's patch tokens of the global views only (MAE, I-JEPA)."""

  gathered: ClassVar[bool] = False
  has_projection: ClassVar[bool] = False
  exports_projector: ClassVar[bool] = False
  produces: ClassVar[str] = ""  # what the head outputs instead of an embedding, for the refusal
  label: ClassVar[str] = ""  # the method's name as prose says it

  def check_config(self, config, method):
    if not config.model.backbone.startswith("vit"):
      raise ValueError(f"method {config.method.name!r} masks a ViT's patches; set model.backbone to a vit_* "
                       f"backbone, not {config.model.backbone!r}.")
    if config.views.num_local:
      raise ValueError(f"method {config.method.name!r} masks the global views only; set views.num_local to 0.")

  def output_width(self, config, method):
    raise ValueError(f"an {self.label} run has no projector embeddings (its {self.produces}); use "
                     "output='backbone'.")

  def smoke(self, config):
    config.model.update(backbone="vit_micro", patch_size=4)


@dataclasses.dataclass(frozen=True)
class MAEDecoder(_ViTPatchHead):
  """MAE's decoder: the ViT encodes each global view's visible patches, the decoder reconstructs them all."""

  kind: ClassVar[str] = "mae"
  produces: ClassVar[str] = "decoder reconstructs pixels"
  label: ClassVar[str] = "MAE"

  def build(self, network, config, method, *, dtype, rngs):
    mae = method.unwrapped
    network.projector = models.MAEDecoder(network.backbone.num_features, grid_size=network.backbone.grid_size,
                                          patch_size=network.backbone.patch_size, width=mae.decoder_width,
                                          depth=mae.decoder_depth, num_heads=mae.decoder_heads, dtype=dtype,
                                          rngs=rngs)

  def embed(self, network, method, crops):
    mask_ratio = method.unwrapped.mask_ratio

    def reconstruct(images, key):  # hide mask_ratio of the patches, encode the rest, reconstruct them all
      patches = models.patchify(images, network.backbone.patch_size)
      keep, mask = models.random_keep(key, images.shape[0], patches.shape[1], mask_ratio)
      tokens = network.backbone.tokens(images, _stochastic_key(network, key), keep=keep)
      return tokens[:, 0], network.projector(tokens, keep), patches, mask

    key = _online_key(crops)
    features, reconstructions, patches, mask = _stacked(
        reconstruct(view, jax.random.fold_in(key, index)) for index, view in enumerate(crops.global_views))
    return features, methods.MaskedPatches(features, reconstructions, patches, mask)


@dataclasses.dataclass(frozen=True)
class IJEPAPredictor(_ViTPatchHead):
  """I-JEPA's predictor: a context block of each global view predicts the target network's tokens of hidden blocks."""

  kind: ClassVar[str] = "ijepa"
  produces: ClassVar[str] = "predictor fills in hidden patch tokens"
  label: ClassVar[str] = "I-JEPA"

  def build(self, network, config, method, *, dtype, rngs):
    ijepa = method.unwrapped
    network.projector = models.IJEPAPredictor(network.backbone.num_features, grid_size=network.backbone.grid_size,
                                              width=ijepa.predictor_width, depth=ijepa.predictor_depth,
                                              num_heads=ijepa.predictor_heads, dtype=dtype, rngs=rngs)

  def target_outputs(self, target, global_views):
    """`(features, targets)`: the target ViT's pooled tokens and standardised patch tokens of each whole view.

    Args:
      target: the target `Network`.
      global_views: the global crops.

    Returns:
      (V, N, F) features (what probes read for I-JEPA) and float32 (V, N, P, F) tokens, no gradient.
    """
    def tokens_of(images):
      tokens = target.backbone.tokens(images)
      return target.backbone.pool_tokens(tokens), models.ijepa.standardize_tokens(tokens[:, 1:])

    return jax.lax.stop_gradient(_stacked(tokens_of(view) for view in global_views))

  def embed(self, network, method, crops):
    ijepa = method.unwrapped

    def predict(images, key):  # draw the blocks, encode the context, predict every target block's tokens
      context, blocks = models.multi_block_masks(
          key, images.shape[0], network.backbone.grid_size, num_targets=ijepa.num_targets,
          target_scale=ijepa.target_scale, target_aspect=ijepa.target_aspect, context_scale=ijepa.context_scale)
      tokens = network.backbone.tokens(images, _stochastic_key(network, key), visible=context)
      return network.backbone.pool_tokens(tokens, context), network.projector(tokens[:, 1:], context, blocks), blocks

    key = _online_key(crops)
    features, predictions, blocks = _stacked(
        predict(view, jax.random.fold_in(key, index)) for index, view in enumerate(crops.global_views))
    return features, methods.TargetBlocks(features, predictions, crops.targets, blocks)


@dataclasses.dataclass(frozen=True)
class CLIPTowers(Head):
  """CLIP's two towers: the projector on the images beside a text transformer on their captions."""

  kind: ClassVar[str] = "clip"
  has_text: ClassVar[bool] = True
  exports_projector: ClassVar[bool] = False

  def check_config(self, config, method):
    if config.views.num_global != 1 or config.views.num_local:
      raise ValueError(f"method {config.method.name!r} pairs one view of each image with a caption; set "
                       "views.num_global to 1 and views.num_local to 0.")
    if catalog.get_spec(config.data.name).captions is None:
      captioned = ", ".join(spec.name for spec in catalog.CATALOG.values() if spec.captions is not None)
      raise ValueError(f"method {config.method.name!r} trains on captions, and data.name {config.data.name!r} "
                       f"has none; use a captioned dataset ({captioned}).")

  def build(self, network, config, method, *, dtype, rngs):
    super().build(network, config, method, dtype=dtype, rngs=rngs)
    clip = method.unwrapped
    captions = catalog.get_spec(config.data.name).captions
    network.text = models.TextTransformer(len(captions.vocabulary), captions.context_length,
                                          width=clip.text_width, depth=clip.text_depth,
                                          num_heads=clip.text_heads, out_features=network.projector.out_features,
                                          pad_id=captions_lib.PAD, end_id=captions_lib.END, dtype=dtype, rngs=rngs)
    network.log_logit_scale = nnx.Param(jnp.full((), -jnp.log(clip.init_temperature), jnp.float32))

  def embed(self, network, method, crops):
    # A caption for each image: its label's, in a template drawn per image.
    tokens = captions_lib.draw_captions(jax.random.fold_in(crops.key, 3), crops.labels, crops.captions)
    features, projections, _ = stacked_forward(network, crops.global_views, jax.random.fold_in(_online_key(crops), 0))
    joint = jnp.concatenate([projections, network.text(tokens)[None].astype(projections.dtype)])
    # CLIP's embeddings are the normalised projections (its Fig. 3), and they are what a `+tregs`
    # add-on spreads: on the raw projections, which the loss does not see, T-REG would only grow
    # their norms against its weak sphere term.
    joint = joint * ops.inverse_norms(joint)[..., None]
    return features, methods.ImageText(joint, network.log_logit_scale[...])

  def smoke(self, config):
    config.model.projector = "64"  # CLIP's projection is one Linear


HEADS: dict[str, Head] = {head.kind: head for head in (Head(), DINOHead(), MAEDecoder(), IJEPAPredictor(),
                                                        CLIPTowers())}


def head_of(method: methods.Method) -> Head:
  """The head a method names (`Method.head`).

  Args:
    method: a method (an add-on's base decides).

  Returns:
    The `Head` of that kind.
  """
  return HEADS[method.head]
