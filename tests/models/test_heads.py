"""MLP heads: spec parsing, layer layout, the forward pass against numpy, BatchNorm modes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import special

from jax_ssl import models


def _rngs(seed=0):
  # rbg keys compile faster than threefry on CPU; no test depends on the stream.
  return nnx.Rngs(jax.random.key(seed, impl="rbg"))


def _features(n, d, seed=0):
  return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def _kernel(linear):
  return np.asarray(linear.kernel[...], np.float64)


def test_layer_widths_and_last_layer_without_bias_or_batchnorm():
  mlp = models.MLP(16, "64-32-8", rngs=_rngs())
  assert mlp.widths == (64, 32, 8) and mlp.out_features == 8
  assert [linear.kernel.shape for linear in mlp.hidden_linears] == [(16, 64), (64, 32)]
  assert all(linear.bias is None for linear in mlp.hidden_linears)  # BN's shift replaces it
  assert [norm.num_features for norm in mlp.hidden_norms] == [64, 32]
  assert mlp.last.kernel.shape == (32, 8) and mlp.last.bias is None
  norms = [module for _, module in nnx.iter_graph(mlp) if isinstance(module, nnx.BatchNorm)]
  assert len(norms) == 2  # none after the last Linear
  params = sum(leaf.size for leaf in jax.tree.leaves(nnx.state(mlp, nnx.Param)))
  assert params == 16 * 64 + 2 * 64 + 64 * 32 + 2 * 32 + 32 * 8
  assert mlp(jnp.asarray(_features(4, 16))).shape == (4, 8)


def test_spec_as_a_sequence_and_single_layer():
  assert models.MLP(4, (8, 2), rngs=_rngs()).widths == (8, 2)
  assert models.parse_spec(np.array([8, 2])) == (8, 2)
  assert models.parse_spec(" 8192-8192 -8192 ") == (8192, 8192, 8192)
  single = models.MLP(4, "3", rngs=_rngs())
  assert len(single.hidden_linears) == 0 and single.last.kernel.shape == (4, 3)
  np.testing.assert_allclose(single(jnp.ones((2, 4))), np.ones((2, 4)) @ _kernel(single.last), rtol=1e-5)


def test_projector_and_byol_predictor_differ_only_in_the_last_bias():
  proj = models.projector(32, "64-16", rngs=_rngs())
  assert proj.last.bias is None and proj.out_features == 16
  predictor = nnx.eval_shape(lambda: models.byol_predictor(32, rngs=nnx.Rngs(0)))
  assert predictor.widths == (4096, 256) and predictor.activation == "relu"
  assert predictor.last.bias.shape == (256,)
  assert predictor.hidden_linears[0].bias is None and predictor.hidden_norms[0].num_features == 4096
  assert models.byol_predictor(16, "32-8", rngs=_rngs()).last.bias.shape == (8,)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_eval_forward_matches_numpy(activation):
  mlp = models.MLP(6, "10-7-3", activation=activation, last_bias=True, rngs=_rngs(1))
  rng = np.random.default_rng(1)
  for norm in mlp.hidden_norms:  # non-trivial running statistics and affine parameters
    shape = (norm.num_features,)
    norm.mean[...] = jnp.asarray(rng.standard_normal(shape), jnp.float32)
    norm.var[...] = jnp.asarray(rng.uniform(0.5, 2.0, shape), jnp.float32)
    norm.scale[...] = jnp.asarray(rng.uniform(0.5, 1.5, shape), jnp.float32)
    norm.bias[...] = jnp.asarray(rng.standard_normal(shape), jnp.float32)
  mlp.last.bias[...] = jnp.asarray(rng.standard_normal(3), jnp.float32)
  mlp.eval()
  x = _features(5, 6, seed=2)
  expected = x.astype(np.float64)
  for linear, norm in zip(mlp.hidden_linears, mlp.hidden_norms):
    h = expected @ _kernel(linear)
    h = (h - np.asarray(norm.mean[...])) / np.sqrt(np.asarray(norm.var[...]) + 1e-5)
    h = h * np.asarray(norm.scale[...]) + np.asarray(norm.bias[...])
    expected = np.maximum(h, 0) if activation == "relu" else 0.5 * h * (1 + special.erf(h / np.sqrt(2)))
  expected = expected @ _kernel(mlp.last) + np.asarray(mlp.last.bias[...])
  np.testing.assert_allclose(mlp(jnp.asarray(x)), expected, rtol=1e-4, atol=1e-5)


def test_train_mode_normalises_with_batch_statistics_and_updates_running_ones():
  mlp = models.MLP(8, "16-4", rngs=_rngs(3))
  x = _features(32, 8, seed=3) + 2.0
  pre_norm = x.astype(np.float64) @ _kernel(mlp.hidden_linears[0])
  mlp(jnp.asarray(x))
  norm = mlp.hidden_norms[0]
  # PyTorch's momentum 0.1: new = 0.9 * old + 0.1 * batch, from mean 0 and variance 1.
  np.testing.assert_allclose(norm.mean[...], 0.1 * pre_norm.mean(axis=0), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(norm.var[...], 0.9 + 0.1 * pre_norm.var(axis=0), rtol=1e-4)
  # Batch statistics: shifting every input by the same vector cancels out.
  shift = _features(1, 8, seed=4)
  np.testing.assert_allclose(mlp(jnp.asarray(x + shift)), mlp(jnp.asarray(x)), rtol=1e-3, atol=1e-4)
  mlp.eval()
  assert not np.allclose(mlp(jnp.asarray(x + shift)), mlp(jnp.asarray(x)), atol=1e-2)


def test_bfloat16_output_with_float32_parameters():
  mlp = models.projector(8, "16-4", rngs=_rngs(), dtype=jnp.bfloat16)
  assert {leaf.dtype for leaf in jax.tree.leaves(nnx.state(mlp, nnx.Param))} == {jnp.dtype(jnp.float32)}
  assert mlp(jnp.asarray(_features(4, 8))).dtype == jnp.bfloat16


@pytest.mark.parametrize("spec,message", [
    ("", "MLP spec is empty"),
    ("   ", "MLP spec is empty"),
    ((), "MLP spec is empty"),
    ("2048--256", "empty part at position 1"),
    ("-256", "empty part at position 0"),
    ("256-", "empty part at position 1"),
    ("2048-abc-256", "part 'abc' is not an integer"),
    ("2048-2.5", "part '2.5' is not an integer"),
    ("2048-0-256", "width 0 must be a positive integer"),
    ((256, -1), "width -1 must be a positive integer"),
    ((256, 2.0), "width 2.0 is not an integer"),
])
def test_bad_specs_name_the_bad_part_and_show_an_example(spec, message):
  with pytest.raises(ValueError, match=message) as error:
    models.parse_spec(spec)
  assert "e.g. '2048-2048-256'" in str(error.value)


def test_unknown_activation():
  with pytest.raises(ValueError, match=r"activation must be one of \('relu', 'gelu'\), got 'tanh'"):
    models.MLP(4, "8-2", activation="tanh", rngs=_rngs())


def test_dino_head_matches_numpy_and_its_logits_are_cosines():
  head = models.DINOHead(16, "32-32-8", 12, rngs=_rngs())
  assert [linear.kernel.shape for linear in head.linears] == [(16, 32), (32, 32), (32, 8)]
  assert all(linear.bias is not None for linear in head.linears) and head.out_features == 12
  assert not nnx.state(head, nnx.BatchStat), "DINO's head has no BatchNorm"
  x = _features(5, 16)
  hidden = x.astype(np.float64)
  for index, linear in enumerate(head.linears):
    hidden = hidden @ _kernel(linear) + np.asarray(linear.bias[...], np.float64)
    if index < 2:
      hidden = hidden * special.ndtr(hidden)  # exact GELU
  bottleneck = hidden / np.linalg.norm(hidden, axis=1, keepdims=True)
  prototypes = np.asarray(head.prototypes[...], np.float64)
  expected = bottleneck @ (prototypes / np.linalg.norm(prototypes, axis=0))
  logits = np.asarray(head(jnp.asarray(x)))
  np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
  assert np.abs(logits).max() <= 1.0 + 1e-5
  # The weight norm is fixed: scaling a prototype's column does not change its logit.
  head.prototypes[...] = head.prototypes[...] * jnp.arange(1.0, 13.0)
  np.testing.assert_allclose(head(jnp.asarray(x)), logits, rtol=1e-5, atol=1e-6)


def test_dino_head_maps_a_zero_bottleneck_to_zero_logits():
  head = models.DINOHead(4, "8", 6, rngs=_rngs())
  head.linears[0].kernel[...] = jnp.zeros((4, 8))
  head.linears[0].bias[...] = jnp.zeros(8)
  np.testing.assert_array_equal(head(jnp.ones((2, 4))), 0.0)
