"""A training loop calls each loss with fresh keys and data of one shape: it must compile once."""

import chex
import jax
import numpy as np
import pytest

from tests.losses.catalogue import scalar_losses

LOSSES = scalar_losses(k=3, num_slices=16)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_new_keys_and_batches_do_not_retrace(name):
  # chex counts traces per code object, and SAG-VICReg's readings share one lambda.
  chex.clear_trace_counter()
  step = jax.jit(jax.value_and_grad(chex.assert_max_traces(LOSSES[name], n=1), argnums=(1, 2)))
  rng = np.random.default_rng(0)
  for seed in range(3):
    z1, z2 = rng.standard_normal((2, 16, 6)).astype(np.float32)
    value, _ = step(jax.random.key(seed), z1, z2)
    assert np.isfinite(value)
