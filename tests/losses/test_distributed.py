"""Global-batch semantics: on 8 devices with the batch sharded, every loss and gradient equals one device's."""

import jax
import numpy as np
import pytest
from jax.sharding import AxisType
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jax_ssl import losses
from tests.losses.catalogue import scalar_losses

LOSSES = scalar_losses(k=5, num_slices=32)
N, D = 64, 12


@pytest.fixture(scope="module")
def mesh():
  assert jax.device_count() == 8, "tests/conftest.py should provide 8 CPU devices"
  return jax.make_mesh((8,), ("data",), axis_types=(AxisType.Auto,))


@pytest.fixture(scope="module")
def batch():
  rng = np.random.default_rng(0)
  z1 = rng.standard_normal((N, D)).astype(np.float32)
  return z1, (z1 + 0.3 * rng.standard_normal((N, D))).astype(np.float32)


def _shard(mesh, *arrays):
  sharding = NamedSharding(mesh, P("data", None))
  return [jax.device_put(a, sharding) for a in arrays]


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_sharded_loss_and_gradient_equal_single_device(name, mesh, batch):
  value_and_grad = jax.jit(jax.value_and_grad(LOSSES[name], argnums=(1, 2)))
  key = jax.random.key(42)
  value, grads = value_and_grad(key, *batch)
  sharded_z1, sharded_z2 = _shard(mesh, *batch)
  assert len(sharded_z1.sharding.device_set) == 8
  sharded_value, sharded_grads = value_and_grad(key, sharded_z1, sharded_z2)
  np.testing.assert_allclose(sharded_value, value, rtol=1e-5, atol=1e-6)
  for sharded_grad, grad in zip(sharded_grads, grads):
    np.testing.assert_allclose(sharded_grad, grad, rtol=1e-4, atol=1e-5 * np.abs(grad).max() + 1e-9)


def test_sharded_graph_kernels_equal_single_device(mesh, batch):
  affinity = jax.jit(losses.knn_affinity)(*batch)
  sharded_affinity = jax.jit(losses.knn_affinity)(*_shard(mesh, *batch))
  np.testing.assert_allclose(sharded_affinity, affinity, rtol=1e-6, atol=1e-7)
  key = jax.random.key(7)
  walk = jax.jit(losses.random_walk_pairs)
  np.testing.assert_array_equal(walk(key, sharded_affinity), walk(key, affinity))
  src, dst = jax.jit(losses.mst_edges)(batch[0])
  sharded_src, sharded_dst = jax.jit(losses.mst_edges)(_shard(mesh, batch[0])[0])
  np.testing.assert_array_equal(sharded_src, src)
  np.testing.assert_array_equal(sharded_dst, dst)
