"""Backbones by name: the registry's errors, the common contract, the trainer's functional use.

The trainer splits a model once (`nnx.split`) and differentiates pure pytrees
inside `jax.jit`; `test_jit_grad_through_split_and_merge` runs exactly that.
"""


import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from jax_ssl import models
from tests.models.functional import split_merge_grad


def _build(name, dtype=jnp.float32, **kwargs):
  """`build_backbone` inside one `jit`: one compilation, not one per parameter shape.

  rbg keys compile faster than threefry on CPU; no test depends on the stream.
  """
  def build():
    return models.build_backbone(name, rngs=nnx.Rngs(jax.random.key(0, impl="rbg")), dtype=dtype, **kwargs)
  return nnx.jit(build)()


def _images(n, size, seed=0):
  return jnp.asarray(np.random.default_rng(seed).standard_normal((n, size, size, 3)), jnp.float32)


def _param_dtypes(model):
  return {leaf.dtype for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))}


def test_backbone_names():
  assert models.BACKBONES == ("resnet18", "resnet34", "resnet50", "vit_micro", "vit_tiny", "vit_small",
                              "vit_base", "vit_large", "small_cnn")


def _model_section(**change):
  section = ml_collections.ConfigDict(dict(backbone="resnet18", stem="cifar", width=64, patch_size=16, drop_path=0.0,
                                           projector="2048-2048-2048", projector_activation="relu",
                                           predictor="4096-256", dtype="float32", pool="cls"))
  section.update(**change)
  return section


@pytest.mark.parametrize("change,message", [
    (dict(backbone="resnet152"), "model.backbone 'resnet152' is unknown; backbones: resnet18"),
    (dict(stem="tiny"), "model.stem must be one of cifar, imagenet; got 'tiny'"),
    (dict(projector_activation="tanh"), "model.projector_activation must be one of relu, gelu"),
    (dict(dtype="float16"), "model.dtype must be one of float32, bfloat16"),
    (dict(width=0), "model.width must be positive"),
    (dict(backbone="vit_tiny", drop_path=1.0), r"model.drop_path is a probability in \[0, 1\)"),
    (dict(drop_path=0.1), "model.drop_path .* applies to ViT backbones, not 'resnet18'"),
    (dict(projector="2048--256"), "model.projector: MLP spec '2048--256' has an empty part"),
    (dict(predictor="big"), "model.predictor: MLP spec 'big'"),
])
def test_check_config_names_the_model_field(change, message):
  models.check_config(_model_section())
  with pytest.raises(ValueError, match=message):
    models.check_config(_model_section(**change))


def test_check_config_fits_vit_views_to_the_patches():
  sizes = {"views.size": 224, "views.local_size": 100}
  models.check_config(_model_section(), sizes)  # ResNets take any side
  with pytest.raises(ValueError, match="views.local_size = 100 must be a multiple of model.patch_size = 16"):
    models.check_config(_model_section(backbone="vit_small"), sizes)
  models.check_config(_model_section(backbone="vit_small", patch_size=4), sizes)


def test_unknown_name_lists_the_known_ones():
  with pytest.raises(ValueError, match="Unknown backbone 'resnet101'; known backbones: resnet18, resnet34"):
    models.build_backbone("resnet101", rngs=nnx.Rngs(0))


@pytest.mark.parametrize("name,kwargs,bad", [
    ("resnet18", dict(patch_size=16), "patch_size"),
    ("vit_small", dict(stem="cifar"), "stem"),
    ("small_cnn", dict(width=4, depth=3), "depth"),
])
def test_unknown_keyword_arguments_are_named(name, kwargs, bad):
  with pytest.raises(ValueError, match=f"Backbone '{name}' got unknown argument\\(s\\) \\['{bad}'\\]"):
    models.build_backbone(name, rngs=nnx.Rngs(0), **kwargs)


@pytest.mark.parametrize("name,kwargs,features,checks", [
    ("resnet50", dict(stem="cifar"), 2048, lambda m: m.stem.conv.kernel.shape == (3, 3, 3, 64)),
    ("resnet34", dict(), 512, lambda m: m.stem.conv.kernel.shape == (7, 7, 3, 64)),
    ("vit_base", dict(patch_size=14, image_size=112), 768, lambda m: m.pos_embed.shape == (1, 65, 768)),
    ("vit_small", dict(patch_size=32), 384, lambda m: m.pos_embed.shape == (1, 50, 384)),
    ("small_cnn", dict(width=5, in_channels=1), 10, lambda m: m.convs[0].kernel.shape == (3, 3, 1, 5)),
])
def test_keyword_arguments_reach_the_model(name, kwargs, features, checks):
  model = nnx.eval_shape(lambda: models.build_backbone(name, rngs=nnx.Rngs(0), **kwargs))
  assert model.num_features == features
  assert checks(model)


@pytest.mark.parametrize("name,kwargs,size,features", [
    ("small_cnn", dict(), 16, 32),
    ("resnet18", dict(stem="imagenet"), 32, 512),
    ("resnet50", dict(stem="cifar"), 16, 2048),
    ("vit_tiny", dict(patch_size=8, image_size=32), 32, 192),
    ("vit_tiny", dict(patch_size=8, image_size=32), 16, 192),  # a local crop: resized embedding
])
def test_every_family_gives_features_of_num_features_in_the_compute_dtype(name, kwargs, size, features):
  dtype = jnp.bfloat16  # float32, the default, is checked by each family's own tests
  num_features, param_dtypes = [], []

  def run(images):
    model = models.build_backbone(name, rngs=nnx.Rngs(0), dtype=dtype, **kwargs)
    num_features.append(model.num_features)
    param_dtypes.extend(_param_dtypes(model))
    return model(images)

  out = jax.eval_shape(run, jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32))
  assert num_features == [features]
  # The output carries the computation dtype (no cast back: the losses compute in
  # float32 whatever they are given); parameters never leave float32.
  assert out.shape == (2, features) and out.dtype == dtype
  assert set(param_dtypes) == {jnp.dtype(jnp.float32)}


def test_small_cnn_in_bfloat16_is_close_to_float32():
  low = _build("small_cnn", dtype=jnp.bfloat16)
  high = nnx.eval_shape(lambda: models.build_backbone("small_cnn", rngs=nnx.Rngs(0)))
  nnx.update(high, nnx.state(low))  # the same parameters, computed in float32
  x = _images(4, 16)
  forward = nnx.jit(lambda model, x: model(x))
  out = forward(low, x)
  assert out.dtype == jnp.bfloat16 and _param_dtypes(low) == {jnp.dtype(jnp.float32)}
  np.testing.assert_allclose(out.astype(np.float32), forward(high, x), rtol=0.05, atol=0.05)


@pytest.fixture(scope="module")
def small_cnn():
  return _build("small_cnn")


def test_jit_grad_through_split_and_merge(small_cnn):
  # ResNet-18 gets the same test in test_resnet.py.
  model = nnx.clone(small_cnn)
  x = _images(2, 16, seed=1)
  direction = jnp.asarray(np.random.default_rng(2).standard_normal(model.num_features), jnp.float32)
  # Copies: the split states alias the module's Variables, which the stateful forward below updates.
  initial_stats = jax.tree.map(np.array, nnx.state(model, nnx.BatchStat))
  params, rest, loss, grads, stats = split_merge_grad(model, x, direction)
  graphdef = nnx.split(model, nnx.Param, ...)[0]
  assert jax.tree.structure(grads) == jax.tree.structure(params)
  for path, grad in jax.tree_util.tree_leaves_with_path(grads):
    assert bool(jnp.all(jnp.isfinite(grad))) and float(jnp.abs(grad).max()) > 0, path
  # The same loss and updated running statistics as the stateful module in training mode.
  assert jax.tree.structure(stats) == jax.tree.structure(initial_stats)
  assert not np.allclose(jax.tree.leaves(stats)[0], jax.tree.leaves(initial_stats)[0])
  np.testing.assert_allclose(loss, jnp.sum(model(x) * direction), rtol=1e-4)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               stats, nnx.state(model, nnx.BatchStat))
  # The train/eval mode is static: it lives in the graphdef, not in the state.
  model.eval()
  eval_graphdef, _ = nnx.split(model)
  assert eval_graphdef != graphdef
  assert all(norm.use_running_average for norm in nnx.merge(eval_graphdef, params, rest).norms)
