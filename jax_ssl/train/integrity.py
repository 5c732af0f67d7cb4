"""What a saved train state must satisfy: every float finite, and the arrays read back equal to those written.

`integrity_report` is one jitted pass over a state's arrays on the devices:
per array, whether it is finite and a 32-bit fingerprint of its bytes. A save
refuses a state with a NaN or inf anywhere (parameters, optimizer state,
BatchNorm statistics, EMA targets, method statistics) and writes the
fingerprints beside it; a restore recomputes them on what it read and
rejects a checkpoint whose arrays differ (a flipped byte that the storage
format does not notice) or that holds a non-finite value.

The fingerprint of an array is `sum_i mix(w_i ^ mix(i + c))` modulo 2^32,
over its 32-bit words `w_i` (narrower dtypes widened, wider ones split) at
flat index `i`, with `mix` MurmurHash3's 32-bit finaliser. Any change of one
word changes the sum unless the two mixed values collide (odds 2^-32), the
index makes it depend on where each word lies, and since wrapping addition is
associative and commutative the value is the same however the array is
sharded or reduced. It guards against corruption, not against tampering.
"""

from __future__ import annotations

import collections
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# An odd constant (2^32 / golden ratio), so that index 0 does not hash a zero word to zero.
_INDEX_OFFSET = 0x9E3779B9


def _mix(h: jax.Array) -> jax.Array:
  """MurmurHash3's 32-bit finaliser: every input bit affects every output bit (uint32 in, uint32 out)."""
  h = h ^ (h >> 16)
  h = h * jnp.uint32(0x85EBCA6B)
  h = h ^ (h >> 13)
  h = h * jnp.uint32(0xC2B2AE35)
  return h ^ (h >> 16)


def _words(x: jax.Array) -> jax.Array:
  """The array's bytes as uint32 words, keeping its shape (a trailing axis of 2 for 64-bit dtypes)."""
  if x.dtype == jnp.bool_:
    return x.astype(jnp.uint32)
  width = jnp.dtype(x.dtype).itemsize
  if width == 1:
    return lax.bitcast_convert_type(x, jnp.uint8).astype(jnp.uint32)
  if width == 2:
    return lax.bitcast_convert_type(x, jnp.uint16).astype(jnp.uint32)
  return lax.bitcast_convert_type(x, jnp.uint32)  # 4 bytes: same shape; 8 bytes: a trailing axis of 2


def array_fingerprint(x: jax.Array) -> jax.Array:
  """A uint32 checksum of an array's values and their positions (see the module docstring).

  The flat index is built from per-axis iotas rather than by flattening, so a sharded array is hashed where
  it lies and only the scalar partial sums cross devices.

  Args:
    x: an array of any shape and dtype.

  Returns:
    A uint32 scalar, equal for arrays of equal shape, dtype and bytes.
  """
  words = _words(jnp.asarray(x))
  index = jnp.zeros(words.shape, jnp.uint32)
  for axis, size in enumerate(words.shape):
    index = index * jnp.uint32(size) + lax.broadcasted_iota(jnp.uint32, words.shape, axis)
  return jnp.sum(_mix(words ^ _mix(index + jnp.uint32(_INDEX_OFFSET))), dtype=jnp.uint32)


def integrity_report(tree) -> dict[str, jax.Array]:
  """Per leaf of `tree`, in `jax.tree.leaves` order: whether it is finite, and its fingerprint.

  Args:
    tree: a pytree of arrays (a train state).

  Returns:
    `{"finite": bool (L,), "fingerprint": uint32 (L,)}`; a leaf that is not floating point (an integer step,
    a PRNG key's data) counts as finite.
  """
  leaves = jax.tree.leaves(tree)
  finite = [jnp.all(jnp.isfinite(leaf)) if jnp.issubdtype(leaf.dtype, jnp.inexact) else jnp.bool_(True)
            for leaf in leaves]
  return {"finite": jnp.stack(finite) if leaves else jnp.zeros((0,), bool),
          "fingerprint": jnp.stack([array_fingerprint(leaf) for leaf in leaves]) if leaves
          else jnp.zeros((0,), jnp.uint32)}


def leaf_names(tree) -> list[str]:
  """The path of every leaf of `tree` (`jax.tree_util.keystr`), in `jax.tree.leaves` order.

  Args:
    tree: a pytree.

  Returns:
    One string per leaf, e.g. `".params['backbone']['conv'].value"`.
  """
  return [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_leaves_with_path(tree)]


@dataclasses.dataclass(frozen=True)
class Report:
  """An `integrity_report` on the host, with each leaf's name and whether it is floating point."""

  names: tuple[str, ...]
  floating: tuple[bool, ...]
  finite: tuple[bool, ...]
  fingerprints: tuple[int, ...]

  @classmethod
  def fetch(cls, tree, report: dict[str, jax.Array]) -> Report:
    """The host copy of `report` (`integrity_report(tree)`, on the devices); waits for it.

    Args:
      tree: the pytree the report is of (arrays or `jax.ShapeDtypeStruct`s; names and dtypes are read).
      report: `integrity_report(tree)`, replicated.

    Returns:
      The `Report`.
    """
    host = jax.device_get(report)
    floating = tuple(bool(jnp.issubdtype(leaf.dtype, jnp.inexact)) for leaf in jax.tree.leaves(tree))
    return cls(tuple(leaf_names(tree)), floating, tuple(bool(f) for f in np.asarray(host["finite"])),
               tuple(int(f) for f in np.asarray(host["fingerprint"])))

  @property
  def non_finite(self) -> list[str]:
    """The names of the leaves holding a NaN or inf."""
    return [name for name, finite in zip(self.names, self.finite) if not finite]

  def describe_non_finite(self) -> str:
    """"26 of 40 float arrays (params 12, opt_state 14)": how many leaves are non-finite, by top-level field."""
    by_field = collections.Counter(_top_level(name) for name in self.non_finite)
    fields = ", ".join(f"{field} {count}" for field, count in by_field.items())
    return f"{len(self.non_finite)} of {sum(self.floating)} float arrays ({fields})"

  def as_json(self) -> dict[str, int]:
    """{leaf name: fingerprint}: what a save writes beside the state."""
    return dict(zip(self.names, self.fingerprints))

  def differing(self, saved: dict[str, int]) -> list[str]:
    """The leaves whose fingerprint differs from `saved` (`as_json` of the state that was written).

    Args:
      saved: {leaf name: fingerprint}, as saved with the state.

    Returns:
      The sorted names of the leaves whose fingerprints differ; a leaf missing from either side counts.
    """
    mine = self.as_json()
    return sorted(name for name in mine.keys() | saved.keys() if mine.get(name) != saved.get(name))


def _top_level(name: str) -> str:
  """"params" of "['params']['backbone']...", "opt_state" of ".opt_state[0]..." (dataclass fields print so)."""
  head = name.lstrip(".[").split("]")[0].split(".")[0].split("[")[0]
  return head.strip("'\"")
