"""Heads on top of a backbone: projectors/expanders, BYOL's predictor and DINO's head.

One `MLP` covers them all. Its widths come as a spec string such as
`"2048-2048-256"` (VICReg's expander is `"8192-8192-8192"`, BYOL's predictor
`"4096-256"`). Hidden layers are Linear -> BatchNorm -> activation; the last is
a plain Linear. Following SimCLR, Barlow Twins and VICReg, the last layer has
neither BN nor bias in a projector; BYOL's predictor (Grill et al., NeurIPS
2020) keeps the bias. Hidden Linears have no bias either, because the
BatchNorm shift that follows absorbs it.

BatchNorms use the package's convention (see `jax_ssl.models.resnet`) and
switch with `model.train()` / `model.eval()` like the backbones'.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl.models import resnet

ACTIVATIONS = {
    "relu": jax.nn.relu,
    # Exact erf GELU, as PyTorch's nn.GELU computes it by default.
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
}

_SPEC_EXAMPLE = "e.g. '2048-2048-256' (hidden widths, then the output width)"


def parse_spec(spec: str | Sequence[int]) -> tuple[int, ...]:
  """Layer output widths from `"w1-w2-...-wk"` (or a sequence of ints), each a positive integer.

  Args:
    spec: the widths joined by `"-"` (whitespace around each part is ignored), or a non-empty
      sequence of integers (NumPy integers included; bools are rejected).

  Returns:
    The widths as a tuple of plain Python ints, in order.

  Raises:
    ValueError: naming the offending part, for an empty spec, an empty or
      non-integer part, or a width below 1.
  """
  if isinstance(spec, str):
    if not spec.strip():
      raise ValueError(f"MLP spec is empty; give the Linear widths joined by '-', {_SPEC_EXAMPLE}.")
    widths = []
    for index, part in enumerate(spec.split("-")):
      part = part.strip()
      if not part:
        raise ValueError(f"MLP spec {spec!r} has an empty part at position {index} "
                         f"(doubled, leading or trailing '-'; negative widths are not allowed); "
                         f"{_SPEC_EXAMPLE}.")
      try:
        widths.append(int(part))
      except ValueError:
        raise ValueError(f"MLP spec {spec!r}: part {part!r} is not an integer; {_SPEC_EXAMPLE}.") from None
  else:
    widths = list(spec)
    if not widths:
      raise ValueError(f"MLP spec is empty; give at least one width, {_SPEC_EXAMPLE}.")
    for width in widths:
      if isinstance(width, bool) or not isinstance(width, numbers.Integral):
        raise ValueError(f"MLP spec {tuple(spec)}: width {width!r} is not an integer; {_SPEC_EXAMPLE}.")
    widths = [int(width) for width in widths]  # NumPy integers become plain ints
  for width in widths:
    if width < 1:
      raise ValueError(f"MLP spec {spec!r}: width {width} must be a positive integer; {_SPEC_EXAMPLE}.")
  return tuple(widths)


class MLP(nnx.Module):
  """(..., in_features) -> (..., out_features) through the Linear widths listed in `spec`.

  With widths w_1..w_k: k - 1 hidden layers `act(BN(x W_i))` (no Linear bias),
  then `x W_k (+ b_k if last_bias)` with no BN. A one-width spec is a single
  Linear. BatchNorm statistics run over every axis but the last.

  Args:
    in_features: width of the input features.
    spec: the widths, `"w1-...-wk"` or a sequence of ints (see `parse_spec`).
    activation: `"relu"` or `"gelu"`, for the hidden layers.
    last_bias: whether the last Linear has a bias.
    dtype: computation dtype; parameters stay float32.
    rngs: `nnx.Rngs` with a `params` stream.
  """

  def __init__(self, in_features: int, spec: str | Sequence[int], *, activation: str = "relu",
               last_bias: bool = False, dtype: Any = jnp.float32, rngs: nnx.Rngs):
    widths = parse_spec(spec)
    if activation not in ACTIVATIONS:
      raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}; "
                       "e.g. activation='relu'.")
    self.activation = activation
    self.widths = widths
    self.out_features: int = widths[-1]
    hidden_linears, hidden_norms = [], []
    for width in widths[:-1]:
      hidden_linears.append(nnx.Linear(in_features, width, use_bias=False, dtype=dtype, rngs=rngs))
      hidden_norms.append(resnet.batch_norm(width, dtype=dtype, rngs=rngs))
      in_features = width
    self.hidden_linears = nnx.List(hidden_linears)
    self.hidden_norms = nnx.List(hidden_norms)
    self.last = nnx.Linear(in_features, widths[-1], use_bias=last_bias, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    act = ACTIVATIONS[self.activation]
    for linear, norm in zip(self.hidden_linears, self.hidden_norms):
      x = act(norm(linear(x)))
    return self.last(x)


def projector(in_features: int, spec: str | Sequence[int], *, activation: str = "relu",
              rngs: nnx.Rngs, dtype: Any = jnp.float32) -> MLP:
  """The projector of SimCLR / Barlow Twins, VICReg's "expander": an `MLP` whose last Linear has no bias.

  Args:
    in_features: width of the backbone features fed to the projector.
    spec: the Linear widths, `"w1-...-wk"` or a sequence of ints (see `parse_spec`).
    activation: `"relu"` or `"gelu"`, for the hidden layers.
    rngs: `nnx.Rngs` with a `params` stream.
    dtype: computation dtype; parameters stay float32.

  Returns:
    An `MLP` mapping `(..., in_features)` to `(..., wk)`.

  Raises:
    ValueError: for an invalid `spec` or an unknown `activation`.
  """
  return MLP(in_features, spec, activation=activation, last_bias=False, dtype=dtype, rngs=rngs)


def byol_predictor(in_features: int, spec: str | Sequence[int] = "4096-256", *, rngs: nnx.Rngs,
                   dtype: Any = jnp.float32) -> MLP:
  """BYOL's predictor: Linear -> BN -> ReLU -> Linear with bias, 4096 hidden and 256 out by default.

  Args:
    in_features: width of the projections fed to the predictor.
    spec: the Linear widths, `"w1-...-wk"` or a sequence of ints (see `parse_spec`).
    rngs: `nnx.Rngs` with a `params` stream.
    dtype: computation dtype; parameters stay float32.

  Returns:
    An `MLP` with ReLU hidden layers and a biased last Linear, mapping `(..., in_features)` to `(..., wk)`.

  Raises:
    ValueError: for an invalid `spec`.

  References:
    Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020.
  """
  return MLP(in_features, spec, activation="relu", last_bias=True, dtype=dtype, rngs=rngs)


class DINOHead(nnx.Module):
  """DINO's head: an MLP without BatchNorm, an l2-normalised bottleneck, then K weight-normalised prototypes.

  `x -> h = L_k(act(... act(L_1 x)))` (biased Linears, truncated-normal
  weights of std 0.02), `h / |h|`, then logits `(h / |h|) V_j / |V_j|` for
  the K prototype columns V_j: DINO's weight-normalised last layer with its
  norm fixed to 1 (`norm_last_layer=True`), so every logit is a cosine.

  Args:
    in_features: width of the backbone features.
    spec: the MLP's widths, the last one the bottleneck (DINO: `"2048-2048-256"`; see `parse_spec`).
    num_prototypes: K, the output width (DINO: 65536).
    activation: `"relu"` or `"gelu"` (DINO's), between the MLP's Linears.
    dtype: computation dtype; parameters stay float32.
    rngs: `nnx.Rngs` with a `params` stream.

  References:
    Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021, Sec. 3.1 and App. C.
  """

  def __init__(self, in_features: int, spec: str | Sequence[int], num_prototypes: int, *,
               activation: str = "gelu", dtype: Any = jnp.float32, rngs: nnx.Rngs):
    widths = parse_spec(spec)
    if activation not in ACTIVATIONS:
      raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}.")
    self.activation = activation
    self.dtype = dtype
    self.out_features: int = num_prototypes
    init = nnx.initializers.truncated_normal(stddev=0.02)
    linears = []
    for width in widths:
      linears.append(nnx.Linear(in_features, width, kernel_init=init, dtype=dtype, rngs=rngs))
      in_features = width
    self.linears = nnx.List(linears)
    self.prototypes = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), (in_features, num_prototypes)))

  def __call__(self, x: jax.Array) -> jax.Array:
    act = ACTIVATIONS[self.activation]
    for index, linear in enumerate(self.linears):
      x = linear(x)
      if index < len(self.linears) - 1:
        x = act(x)
    x = x.astype(jnp.float32)
    # F.normalize's floor: a zero bottleneck maps to zero logits instead of NaN.
    x = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    prototypes = self.prototypes[...]
    prototypes = prototypes / jnp.linalg.norm(prototypes, axis=0, keepdims=True)
    return (x.astype(self.dtype) @ prototypes.astype(self.dtype)).astype(jnp.float32)
