"""Trace-time validation of loss inputs.

Shapes are static under `jit`, so a wrong rank or a mismatch is reported here,
naming the argument, before XLA sees it. Every check returns the input cast to
float32: losses compute in float32 whatever the input dtype.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def embeddings(name: str, z: jax.Array, *, min_rows: int = 1) -> jax.Array:
  """`z` as a float32 (N, D) array; ValueError if it is not 2-D or has < min_rows rows.

  Args:
    name: the argument's name, for the error message.
    z: the embeddings, expected `(N, D)` floating point.
    min_rows: the fewest rows N the loss accepts.

  Returns:
    `z` as a float32 `(N, D)` array.

  Raises:
    ValueError: if `z` is not 2-D, has fewer than `min_rows` rows or no column, or is not floating point.
  """
  z = jnp.asarray(z)
  if z.ndim != 2:
    raise ValueError(f"{name} must be a 2-D (batch, dim) array of embeddings, got shape {z.shape}.")
  if z.shape[0] < min_rows:
    raise ValueError(f"{name} needs at least {min_rows} rows (samples), got shape {z.shape}.")
  if z.shape[1] < 1:
    raise ValueError(f"{name} needs at least one feature column, got shape {z.shape}.")
  if not jnp.issubdtype(z.dtype, jnp.floating):
    raise ValueError(f"{name} must be a floating-point array, got dtype {z.dtype}.")
  return z.astype(jnp.float32)


def views(name: str, v: jax.Array) -> jax.Array:
  """`v` as a float32 (V, N, D) stack of views; ValueError if it is not 3-D.

  Args:
    name: the argument's name, for the error message.
    v: the views, expected `(V, N, D)` floating point.

  Returns:
    `v` as a float32 `(V, N, D)` array.

  Raises:
    ValueError: if `v` is not 3-D, has an empty axis, or is not floating point.
  """
  v = jnp.asarray(v)
  if v.ndim != 3:
    raise ValueError(f"{name} must be a 3-D (views, batch, dim) array, got shape {v.shape}.")
  if min(v.shape) < 1:
    raise ValueError(f"{name} must have at least one view, sample and feature, got shape {v.shape}.")
  if not jnp.issubdtype(v.dtype, jnp.floating):
    raise ValueError(f"{name} must be a floating-point array, got dtype {v.dtype}.")
  return v.astype(jnp.float32)


def same_shape(name_a: str, a: jax.Array, name_b: str, b: jax.Array) -> None:
  """Check that two loss inputs have the same shape.

  Args:
    name_a: the first argument's name, for the error message.
    a: the first array.
    name_b: the second argument's name, for the error message.
    b: the second array.

  Raises:
    ValueError: if `a.shape != b.shape`.
  """
  if a.shape != b.shape:
    raise ValueError(f"{name_a} and {name_b} must have the same shape, got {a.shape} and {b.shape}.")


def directions(name: str, d: jax.Array, dim: int) -> jax.Array:
  """`d` as float32 (dim, K) slice directions matching embeddings of width `dim`.

  Args:
    name: the argument's name, for the error message.
    d: the directions, expected `(dim, K)` with K >= 1.
    dim: the embedding width the directions must match.

  Returns:
    `d` as a float32 `(dim, K)` array.

  Raises:
    ValueError: if `d` is not 2-D, its first axis is not `dim`, or it has no column.
  """
  d = jnp.asarray(d)
  if d.ndim != 2 or d.shape[0] != dim or d.shape[1] < 1:
    raise ValueError(
        f"{name} must be a (dim, num_slices) array with dim = {dim} (the embedding width), "
        f"got shape {d.shape}.")
  return d.astype(jnp.float32)


def nan_if_any_nan(value: jax.Array, *inputs: jax.Array) -> jax.Array:
  """`value`, or NaN when any of `inputs` holds a NaN (no gradient flows through the test).

  For losses that read only part of an input (a random walk's partners): a NaN
  embedding must never leave the loss finite.

  Args:
    value: the loss (or any array) to return.
    *inputs: the arrays to test for NaNs; at least one.

  Returns:
    `value`, or NaN in its place (broadcast to its shape) when any input holds a NaN.
  """
  has_nan = jnp.any(jnp.stack([jnp.any(jnp.isnan(x)) for x in inputs]))
  return jnp.where(has_nan, jnp.nan, value)
