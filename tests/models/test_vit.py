"""Vision Transformer: parameter counts, attention against numpy, position-embedding resizing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jax_ssl import models
from jax_ssl.models import vit


def _rngs(seed=0):
  # rbg keys compile faster than threefry on CPU; no test depends on the stream.
  return nnx.Rngs(jax.random.key(seed, impl="rbg"))


def _build(**kwargs):
  """A `VisionTransformer` initialised inside one `jit` (one compilation, not one per shape)."""
  return nnx.jit(lambda: models.VisionTransformer(**kwargs, rngs=_rngs()))()


# One compilation per model and input shape instead of one per primitive.
_forward = nnx.jit(lambda model, x: model(x))
_tokens = nnx.jit(lambda model, x: model.tokens(x))


def _images(n, height, width=None, seed=0):
  shape = (n, height, width or height, 3)
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _num_params(module):
  return sum(leaf.size for leaf in jax.tree.leaves(nnx.state(module, nnx.Param)))


@pytest.fixture(scope="module")
def small_vit():
  # Position embedding stored for a 4 x 4 grid (32 px, patches of 8).
  return _build(width=32, depth=2, num_heads=4, patch_size=8, image_size=32)


def test_vit_base_16_parameter_count():
  model = nnx.eval_shape(lambda: models.vision_transformer("base", rngs=nnx.Rngs(0)))
  patch_embedding = 16 * 16 * 3 * 768 + 768
  cls_and_positions = 768 + 197 * 768
  layer_norms = 2 * 2 * 768
  attention = (768 * 3 * 768 + 3 * 768) + (768 * 768 + 768)  # qkv with bias, output projection
  mlp = (768 * 3072 + 3072) + (3072 * 768 + 768)
  block = layer_norms + attention + mlp
  assert block == 7_087_872
  assert patch_embedding + cls_and_positions + 12 * block + 2 * 768 == 85_798_656
  assert _num_params(model) == 85_798_656
  assert model.num_features == 768 and model.pos_embed.shape == (1, 197, 768)


# timm's counts minus the 1000-way head: 5,717,416 (Ti/16), 22,050,664 (S/16), 304,326,632 (L/16).
@pytest.mark.parametrize("size,expected", [
    ("tiny", 5_524_416),
    ("small", 21_665_664),
    ("large", 303_301_632),
])
def test_smaller_standard_sizes_parameter_counts(size, expected):
  model = nnx.eval_shape(lambda: models.vision_transformer(size, rngs=nnx.Rngs(0)))
  assert _num_params(model) == expected
  assert model.num_features == models.VIT_SIZES[size][0]


def test_self_attention_matches_numpy():
  attention = nnx.jit(lambda: vit.SelfAttention(16, 4, dtype=jnp.float32, rngs=_rngs(1)))()
  x = np.random.default_rng(1).standard_normal((2, 5, 16)).astype(np.float32)
  qkv = x @ np.asarray(attention.qkv.kernel[...]) + np.asarray(attention.qkv.bias[...])
  q, k, v = (qkv[..., i * 16:(i + 1) * 16].reshape(2, 5, 4, 4) for i in range(3))
  logits = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(4.0)
  weights = np.exp(logits - logits.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  heads = np.einsum("bhqk,bkhd->bqhd", weights, v).reshape(2, 5, 16)
  expected = heads @ np.asarray(attention.proj.kernel[...]) + np.asarray(attention.proj.bias[...])
  np.testing.assert_allclose(_forward(attention, jnp.asarray(x)), expected, rtol=1e-4, atol=1e-5)


def test_encoder_block_is_permutation_equivariant(small_vit):
  block = small_vit.blocks[0]
  tokens = jnp.asarray(np.random.default_rng(2).standard_normal((2, 6, 32)), jnp.float32)
  perm = np.array([3, 0, 5, 1, 4, 2])
  np.testing.assert_allclose(_forward(block, tokens[:, perm]), _forward(block, tokens)[:, perm],
                             rtol=1e-5, atol=1e-5)


def test_native_size_uses_the_stored_position_embedding(small_vit):
  model = small_vit
  np.testing.assert_array_equal(model.position_embedding(4, 4), model.pos_embed[...])
  x = _images(2, 32, seed=3)

  @nnx.jit
  def by_hand(model, x):
    patches = model.patch_embed(x).reshape(2, 16, 32)
    cls = jnp.broadcast_to(model.cls_token[...], (2, 1, 32))
    tokens = jnp.concatenate([cls, patches], axis=1) + model.pos_embed[...]
    for block in model.blocks:
      tokens = block(tokens)
    return model.norm(tokens)

  expected = by_hand(model, x)
  np.testing.assert_array_equal(_tokens(model, x), expected)
  np.testing.assert_array_equal(_forward(model, x), expected[:, 0])


@pytest.mark.parametrize("height,width", [(16, 24), (48, 48)])  # grids 2 x 3 and 6 x 6
def test_other_input_sizes_resize_the_grid_part(small_vit, height, width):
  model = small_vit
  grid_height, grid_width = height // 8, width // 8
  embedding = model.position_embedding(grid_height, grid_width)
  assert embedding.shape == (1, 1 + grid_height * grid_width, 32)
  np.testing.assert_array_equal(embedding[:, 0], model.pos_embed[:, 0])  # CLS slot untouched
  tokens = _tokens(model, _images(2, height, width, seed=4))
  assert tokens.shape == (2, 1 + grid_height * grid_width, 32)
  assert bool(jnp.all(jnp.isfinite(tokens)))
  np.testing.assert_array_equal(_forward(model, _images(2, height, width, seed=4)), tokens[:, 0])


def test_resizing_keeps_constants_and_ramps_ordered():
  model = _build(width=2, depth=0, num_heads=1, patch_size=4, image_size=16)
  rows = np.repeat(np.arange(4.0), 4)  # grid row index, channel 0
  grid = np.stack([np.full(16, 7.0), rows], axis=-1)
  model.pos_embed[...] = jnp.asarray(np.concatenate([[[-1.0, -1.0]], grid])[None], jnp.float32)
  resized = np.asarray(nnx.jit(lambda model: model.position_embedding(2, 3))(model))
  np.testing.assert_allclose(resized[0, 1:, 0], 7.0, rtol=1e-6)
  ramp = resized[0, 1:, 1].reshape(2, 3)
  np.testing.assert_allclose(ramp[:, 0], ramp[:, 2], rtol=1e-6)  # constant along columns
  assert ramp[0, 0] < ramp[1, 0] and 0.0 <= ramp.min() and ramp.max() <= 3.0


def test_the_position_embedding_is_used(small_vit):
  model = nnx.clone(small_vit)
  x = _images(2, 16, seed=5)
  before = _forward(model, x)
  # A random change: a constant one would vanish in the LayerNorms.
  noise = np.random.default_rng(5).standard_normal(model.pos_embed.shape).astype(np.float32)
  model.pos_embed[...] = model.pos_embed[...] + noise
  assert not np.allclose(_forward(model, x), before, atol=1e-3)


def test_bfloat16_computation_keeps_float32_parameters():
  model = _build(width=32, depth=1, num_heads=4, patch_size=8, image_size=16, dtype=jnp.bfloat16)
  assert {leaf.dtype for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))} == {jnp.dtype(jnp.float32)}
  out = _forward(model, _images(2, 16))
  assert out.dtype == jnp.bfloat16 and out.shape == (2, 32)
  # Same parameters computed in float32: bfloat16 rounding (8 mantissa bits) only.
  reference = nnx.eval_shape(lambda: models.VisionTransformer(
      width=32, depth=1, num_heads=4, patch_size=8, image_size=16, rngs=nnx.Rngs(0)))
  nnx.update(reference, nnx.state(model))
  np.testing.assert_allclose(out.astype(np.float32), _forward(reference, _images(2, 16)), atol=0.1)


def test_bad_shapes_raise(small_vit):
  with pytest.raises(ValueError, match="multiples of patch_size"):
    small_vit(_images(1, 20))
  with pytest.raises(ValueError, match="expects \\(B, H, W, C\\)"):
    small_vit(jnp.zeros((16, 16, 3)))
  with pytest.raises(ValueError, match="must be a multiple of patch_size"):
    models.VisionTransformer(width=32, depth=1, num_heads=4, patch_size=16, image_size=40, rngs=_rngs())
  with pytest.raises(ValueError, match="divisible by num_heads"):
    models.VisionTransformer(width=30, depth=1, num_heads=4, patch_size=8, image_size=16, rngs=_rngs())
  with pytest.raises(ValueError, match="size must be one of"):
    models.vision_transformer("huge", rngs=_rngs())


def test_drop_path_keeps_or_drops_whole_samples_and_preserves_the_mean():
  branch = jnp.ones((4000, 3, 2), jnp.float32)
  dropped = np.asarray(vit.drop_path(branch, 0.25, jax.random.key(0)))
  per_sample = dropped.reshape(4000, -1)
  assert set(np.unique(per_sample)) == {0.0, np.float32(1 / 0.75)}
  assert np.all(per_sample.min(axis=1) == per_sample.max(axis=1)), "a sample is kept or dropped whole"
  assert abs((per_sample[:, 0] == 0).mean() - 0.25) < 0.03
  assert abs(dropped.mean() - 1.0) < 0.04
  np.testing.assert_array_equal(vit.drop_path(branch, 0.25, None), branch)
  np.testing.assert_array_equal(vit.drop_path(branch, 0.0, jax.random.key(0)), branch)


def test_stochastic_depth_grows_linearly_and_needs_a_key():
  model = _build(width=32, depth=3, num_heads=4, patch_size=8, image_size=32, drop_path_rate=0.2)
  assert [block.drop_rate for block in model.blocks] == pytest.approx([0.0, 0.1, 0.2])
  x = _images(8, 32)
  plain = _build(width=32, depth=3, num_heads=4, patch_size=8, image_size=32)
  # Same parameters (same seed): without a key the network is the deterministic one.
  np.testing.assert_allclose(_forward(model, x), _forward(plain, x), rtol=1e-6)
  stochastic = nnx.jit(lambda m, x, key: m(x, key))
  first, again = stochastic(model, x, jax.random.key(1)), stochastic(model, x, jax.random.key(1))
  np.testing.assert_array_equal(first, again)
  assert not np.allclose(first, _forward(model, x)), "a key must drop some branches"
  with pytest.raises(ValueError, match="drop_path_rate must lie in"):
    models.VisionTransformer(width=32, depth=2, num_heads=4, patch_size=8, image_size=32, drop_path_rate=1.0,
                             rngs=_rngs())
