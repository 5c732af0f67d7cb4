"""The trainer's functional use of a model, shared by the model tests."""

import jax
import jax.numpy as jnp
from flax import nnx


def split_merge_grad(model: nnx.Module, x: jax.Array, direction: jax.Array):
  """Split once, then merge inside `jit` + `grad`: returns (params, rest, loss, grads, new batch stats).

  The loss is `sum(model(x) * direction)`. `copy=True`: BatchNorm writes its
  statistics into the merged module under `grad`'s trace, which NNX forbids
  for Variables coming from `jit`'s level.
  """
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  @jax.jit
  def step(params, rest, x):
    def loss_fn(params):
      module = nnx.merge(graphdef, params, rest, copy=True)
      return jnp.sum(module(x) * direction), nnx.state(module, nnx.BatchStat)
    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    return loss, grads, stats

  return (params, rest, *step(params, rest, x))
