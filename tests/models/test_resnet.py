"""ResNets: parameter counts, stems, zero-initialised residual branches, BatchNorm modes.

Full-width models are only traced (`eval_shape`, or `jit` with outputs that
need no random weights); computations run on a width-8 ResNet-18 and on single
blocks, to stay fast on CPU.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jax_ssl import models
from jax_ssl.models import resnet
from tests.models.functional import split_merge_grad


def _rngs():
  # rbg keys compile several times faster than threefry on CPU, and every new
  # parameter shape costs a compilation; no test depends on the random stream.
  return nnx.Rngs(jax.random.key(0, impl="rbg"))


@nnx.jit
def _forward(model, x):
  """`(model(x), model.feature_map(x))`, compiled once per model and input shape."""
  return model(x), model.feature_map(x)


_apply = nnx.jit(lambda module, x: module(x))


def _images(n, size, seed=0, channels=3):
  return jnp.asarray(np.random.default_rng(seed).standard_normal((n, size, size, channels)), jnp.float32)


def _num_params(module):
  return sum(leaf.size for leaf in jax.tree.leaves(nnx.state(module, nnx.Param)))


@pytest.fixture(scope="module")
def resnet18_width8():
  # Initialised inside one jit: one compilation instead of one per parameter shape.
  return nnx.jit(lambda: models.resnet18(stem="cifar", width=8, rngs=_rngs()))()


@pytest.fixture
def small_resnet18(resnet18_width8):
  return nnx.clone(resnet18_width8)  # tests switch modes and update statistics


@pytest.fixture(scope="module")
def abstract_resnet50():
  return nnx.eval_shape(lambda: models.resnet50(rngs=nnx.Rngs(0)))


# torchvision's counts minus their 1000-way fc (512 * 1000 + 1000 = 513,000 for
# R18/R34, 2048 * 1000 + 1000 = 2,049,000 for R50): 11,689,512, 21,797,672, 25,557,032.
@pytest.mark.parametrize("build,expected", [(models.resnet18, 11_176_512), (models.resnet34, 21_284_672)])
def test_parameter_counts_without_classifier(build, expected):
  model = nnx.eval_shape(lambda: build(rngs=nnx.Rngs(0)))
  assert _num_params(model) == expected
  assert model.num_features == 512


def test_resnet50_parameter_count_without_classifier(abstract_resnet50):
  assert _num_params(abstract_resnet50) == 23_508_032
  assert abstract_resnet50.num_features == 2048


def test_cifar_stem_has_a_3x3_kernel_instead_of_7x7():
  cifar = nnx.eval_shape(lambda: models.resnet18(stem="cifar", rngs=nnx.Rngs(0)))
  assert cifar.stem.conv.kernel.shape == (3, 3, 3, 64)
  assert _num_params(cifar) == 11_176_512 - (49 - 9) * 3 * 64


def test_running_statistics_are_state_not_parameters(abstract_resnet50):
  model = abstract_resnet50
  norms = [module for _, module in nnx.iter_graph(model) if isinstance(module, nnx.BatchNorm)]
  assert len(norms) == 1 + 3 * 16 + 4  # stem, three per bottleneck, one per projection shortcut
  channels = sum(norm.num_features for norm in norms)
  assert sum(leaf.size for leaf in jax.tree.leaves(nnx.state(model, nnx.BatchStat))) == 2 * channels
  assert sum(leaf.size for leaf in jax.tree.leaves(nnx.state(model))) == 23_508_032 + 2 * channels


@pytest.mark.parametrize("stem,stem_shape,map_shape", [
    ("cifar", (2, 32, 32, 64), (2, 4, 4, 512)),
    ("imagenet", (2, 8, 8, 64), (2, 1, 1, 512)),
])
def test_stems_set_the_resolution_of_stage_1(stem, stem_shape, map_shape):
  # CIFAR stem: 32 px into stage 1; ImageNet stem: 32 / 4. Three stride-2 stages follow.
  def run(images):
    model = models.resnet18(stem=stem, rngs=nnx.Rngs(0))
    return model.stem(images), model.feature_map(images), model(images)

  stem_out, feature_map, out = jax.eval_shape(run, jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32))
  assert stem_out.shape == stem_shape and feature_map.shape == map_shape
  assert out.shape == (2, 512) and out.dtype == jnp.float32


def test_unknown_stem_and_bad_layouts_raise():
  with pytest.raises(ValueError, match="stem must be one of \\('imagenet', 'cifar'\\), got 'tiny'"):
    models.resnet18(stem="tiny", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="block must be one of"):
    models.ResNet("wide", (2, 2, 2, 2), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="four positive block counts"):
    models.ResNet("basic", (2, 2, 2), rngs=nnx.Rngs(0))


def test_output_is_the_spatial_mean_of_the_last_feature_map(small_resnet18):
  model = small_resnet18
  model.eval()
  out, feature_map = _forward(model, _images(4, 16))
  assert out.shape == (4, model.num_features) == (4, 64)
  assert feature_map.shape == (4, 2, 2, 64)  # 16 px, CIFAR stem, three stride-2 stages
  np.testing.assert_allclose(out, feature_map.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)


def test_max_pool_pads_with_minus_infinity_and_has_a_gradient_under_jit():
  x = -jnp.arange(1.0, 17.0).reshape(1, 4, 4, 1)  # all negative: zero padding would win
  pooled = resnet.max_pool_3x3_stride_2(x)
  np.testing.assert_array_equal(pooled[0, :, :, 0], [[-1.0, -2.0], [-5.0, -6.0]])
  # The ImageNet stem's pool must be differentiable inside jit: the gradient
  # is 1 at each window's maximum.
  grad = jax.jit(jax.grad(lambda v: resnet.max_pool_3x3_stride_2(v).sum()))(x)
  expected = np.zeros((4, 4))
  expected[:2, :2] = 1.0
  np.testing.assert_array_equal(grad[0, :, :, 0], expected)


@pytest.mark.parametrize("build,last_norm,num_blocks", [
    (models.resnet18, "bn2", 8),
    (models.resnet50, "bn3", 16),
])
def test_last_batchnorm_of_every_block_starts_at_zero_scale(build, last_norm, num_blocks):
  def initial_scales():
    blocks = [block for stage in build(rngs=nnx.Rngs(0)).stages for block in stage]
    return [(getattr(block, last_norm).scale[...], block.bn1.scale[...]) for block in blocks]

  # Only BatchNorm scales leave the jit, so XLA drops the random kernels: the
  # full-width models are checked at the cost of a few constants.
  scales = jax.jit(initial_scales)()
  assert len(scales) == num_blocks
  for last, first in scales:
    np.testing.assert_array_equal(last, 0.0)
    np.testing.assert_array_equal(first, 1.0)


@pytest.mark.parametrize("block_class,in_features,width", [
    (resnet.BasicBlock, 8, 16),
    (resnet.BottleneckBlock, 16, 4),  # expands to 16
])
def test_blocks_start_as_relu_of_their_shortcut(block_class, in_features, width):
  out_features = width * block_class.expansion
  downsampling, identity = nnx.jit(lambda: (
      block_class(in_features, width, 2, dtype=jnp.float32, rngs=_rngs()),
      block_class(out_features, width, 1, dtype=jnp.float32, rngs=_rngs())))()
  assert downsampling.shortcut is not None and identity.shortcut is None
  downsampling.eval()  # running statistics still at their initial mean 0, variance 1
  identity.eval()
  x = _images(2, 8, seed=1, channels=in_features)
  # Projection shortcut (stride 2, 1x1 conv + BN): the block is relu(shortcut(x)).
  hidden = _apply(downsampling, x)
  assert hidden.shape == (2, 4, 4, out_features) and float(jnp.abs(hidden).max()) > 0
  np.testing.assert_allclose(hidden, jax.nn.relu(_apply(downsampling.shortcut, x)), rtol=1e-6, atol=1e-6)
  # Identity shortcut on a non-negative input (a ReLU output): the identity.
  np.testing.assert_allclose(_apply(identity, hidden), hidden, rtol=1e-6, atol=1e-6)


def test_train_mode_updates_running_stats_with_pytorch_momentum(small_resnet18):
  stem = small_resnet18.stem
  x = _images(4, 16, seed=2)
  conv_out = stem.conv(x)
  stem(x)  # built in train mode
  # new = 0.9 * old + 0.1 * batch, from the initial mean 0 and variance 1.
  np.testing.assert_allclose(stem.bn.mean[...], 0.1 * conv_out.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(stem.bn.var[...], 0.9 + 0.1 * conv_out.var(axis=(0, 1, 2)), rtol=1e-4)


def test_eval_mode_is_deterministic_per_example_and_leaves_stats_alone(small_resnet18):
  model = small_resnet18
  x = _images(4, 16, seed=3)
  other = x.at[2:].set(_images(2, 16, seed=4))  # same first half, different second half
  _forward(model, x)
  model.eval()
  stats_before = jax.tree.map(np.array, nnx.state(model, nnx.BatchStat))
  out, _ = _forward(model, x)
  np.testing.assert_array_equal(_forward(model, x)[0], out)
  jax.tree.map(np.testing.assert_array_equal, nnx.state(model, nnx.BatchStat), stats_before)
  # Running statistics make each output independent of the rest of the batch.
  np.testing.assert_allclose(_forward(model, other)[0][:2], out[:2], rtol=1e-5, atol=1e-6)
  model.train()
  assert not np.allclose(_forward(model, other)[0][:2], out[:2], atol=1e-3)  # batch statistics again
  assert not np.allclose(model.stem.bn.mean[...], stats_before["stem"]["bn"]["mean"])


def test_jit_grad_through_split_and_merge(small_resnet18):
  """The trainer's functional use: split once, merge inside `jit` + `grad`, get pure pytrees back."""
  model = small_resnet18
  x = _images(2, 16, seed=5)
  direction = jnp.asarray(np.random.default_rng(5).standard_normal(model.num_features), jnp.float32)
  params, rest, loss, grads, stats = split_merge_grad(model, x, direction)
  assert bool(jnp.isfinite(loss))
  assert jax.tree.structure(grads) == jax.tree.structure(params)
  for path, grad in jax.tree_util.tree_leaves_with_path(grads):
    assert bool(jnp.all(jnp.isfinite(grad))), path
  # The returned running statistics moved away from their initial (0, 1);
  # the state passed in is untouched.
  assert not np.allclose(stats["stem"]["bn"]["mean"][...], 0.0)
  np.testing.assert_array_equal(rest["stem"]["bn"]["mean"][...], 0.0)
  # A zero-initialised gamma closes each residual branch: its last BN gets a
  # gradient, the layers before it none yet, while the stem does.
  block = grads["stages"][0][0]
  assert float(jnp.abs(block["bn2"]["scale"][...]).max()) > 0
  np.testing.assert_array_equal(block["conv1"]["kernel"][...], 0.0)
  assert float(jnp.abs(grads["stem"]["conv"]["kernel"][...]).max()) > 0
