"""The exact fast sort: values, permutations and gradients equal numpy's / lax.sort's."""

import functools

import hypothesis
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl import ops
from jax_ssl.ops import sorting

SHAPES = [(7,), (5, 33), (3, 4, 9), (2, 1)]


def _random(shape, seed=0):
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("axis", [0, -1])
def test_sort_and_ranks_match_numpy(shape, axis):
  x = _random(shape)
  np.testing.assert_array_equal(jax.jit(ops.sort, static_argnums=1)(x, axis), np.sort(x, axis=axis))
  expected_ranks = np.argsort(np.argsort(x, axis=axis), axis=axis)
  np.testing.assert_array_equal(jax.jit(ops.sort_ranks, static_argnums=1)(x, axis), expected_ranks)
  np.testing.assert_array_equal(jax.jit(ops.argsort, static_argnums=1)(x, axis), np.argsort(x, axis=axis))


def test_threaded_host_path_matches_numpy():
  # Large enough to be split over the host threads.
  x = _random((300, 1024), seed=1)
  np.testing.assert_array_equal(jax.jit(ops.sort)(x), np.sort(x, axis=-1))
  np.testing.assert_array_equal(
      jax.jit(ops.sort_ranks)(x), np.argsort(np.argsort(x, axis=-1), axis=-1))


@pytest.mark.parametrize("inverse", [False, True])
def test_lax_path_used_off_cpu_agrees_with_host_path(inverse):
  x = jnp.asarray(_random((6, 50), seed=2))
  lax_path = jax.jit(functools.partial(sorting._permutation_with_lax, inverse=inverse))(x)
  host_path = jax.jit(functools.partial(sorting._permutation_on_host, inverse=inverse))(x)
  np.testing.assert_array_equal(lax_path, host_path)


def test_sort_gradient_equals_lax_sort_gradient():
  x = _random((40, 6), seed=3)
  cotangent = _random((40, 6), seed=4)
  ours = jax.grad(lambda v: jnp.sum(ops.sort(v, axis=0) * cotangent))(x)
  reference = jax.grad(lambda v: jnp.sum(jnp.sort(v, axis=0) * cotangent))(x)
  np.testing.assert_array_equal(ours, reference)


def test_sort_under_vmap():
  x = _random((4, 3, 20), seed=5)
  np.testing.assert_array_equal(jax.jit(jax.vmap(ops.sort))(x), np.sort(x, axis=-1))


def test_nan_sorts_last():
  x = np.array([3.0, np.nan, -1.0, 2.0], np.float32)
  np.testing.assert_array_equal(ops.sort(x)[:3], [-1.0, 2.0, 3.0])
  assert np.isnan(ops.sort(x)[3])


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=2, max_side=40),
                             elements=hypothesis.strategies.floats(-1e6, 1e6, width=32, allow_subnormal=False)))
def test_sort_matches_numpy_for_any_input(x):
  # Ties included: sorted values never depend on how ties are ordered. Subnormals
  # excluded: XLA:CPU treats them as zero (and so does the host sort, which runs on
  # an XLA thread), where numpy outside XLA orders them.
  np.testing.assert_array_equal(ops.sort(x), np.sort(x, axis=-1))
  ranks = np.asarray(ops.sort_ranks(x))
  np.testing.assert_array_equal(np.sort(ranks, axis=-1), np.broadcast_to(np.arange(x.shape[-1]), x.shape))
  np.testing.assert_array_equal(np.take_along_axis(np.sort(x, axis=-1), ranks, axis=-1), x)


def _w2_reference(samples, targets):
  return np.mean((np.sort(samples.astype(np.float64), axis=-1) - targets) ** 2, axis=-1)


def test_squared_w2_1d_value_and_gradient():
  samples = _random((5, 30), seed=6)
  targets = np.sort(_random((30,), seed=7)).astype(np.float64)
  np.testing.assert_allclose(
      jax.jit(ops.squared_w2_1d)(samples, targets), _w2_reference(samples, targets), rtol=1e-5)
  # d/dx of mean_i (x_(i) - y_i)^2, per slice: 2 (x - y[rank(x)]) / n.
  ranks = np.argsort(np.argsort(samples, axis=-1), axis=-1)
  expected_grad = 2 * (samples - targets[ranks]) / samples.shape[-1]
  grad = jax.grad(lambda s: jnp.sum(ops.squared_w2_1d(s, targets)))(samples)
  np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-7)


def test_squared_w2_1d_rejects_mismatched_targets():
  with pytest.raises(ValueError, match="sorted_targets"):
    ops.squared_w2_1d(np.zeros((3, 5), np.float32), np.zeros(4, np.float32))


def _sort_in_child(x, result_queue):
  result_queue.put(np.array_equal(sorting._host_permutation(x, inverse=False), np.argsort(x, axis=-1)))


@pytest.mark.filterwarnings("ignore:.*fork.*:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_host_sort_works_in_a_forked_child():
  # Data-loading workers fork; a pool inherited from the parent has no threads and would hang.
  import multiprocessing
  x = _random((64, 4096), seed=8)
  sorting._host_permutation(x, inverse=True)  # the parent's pool exists now
  context = multiprocessing.get_context("fork")
  results = context.Queue()
  child = context.Process(target=_sort_in_child, args=(x, results))
  child.start()
  child.join(timeout=60)
  if child.is_alive():
    child.kill()
    pytest.fail("the host sort hung in a forked child")
  assert results.get(timeout=5)
