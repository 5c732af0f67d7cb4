"""The backbones' arrays under PyTorch's names and layouts: torchvision / timm ResNets, timm's ViT.

The models already compute as PyTorch does (explicit padding, BatchNorm
epsilon 1e-5, exact GELU, timm's fused qkv layout, LayerNorm epsilon 1e-6), so
a state dict is a renaming plus two transpositions:

- a conv kernel, stored (kh, kw, in, out), becomes OIHW (out, in, kh, kw);
- a Linear kernel, stored (in, out), becomes (out, in);
- BatchNorm's `scale`, `bias`, `mean`, `var` become `weight`, `bias`,
  `running_mean`, `running_var`, with `num_batches_tracked` (the training
  step: PyTorch reads it only when its momentum is None).

Names. ResNet (torchvision's, which timm shares): `conv1`, `bn1`,
`layer{1-4}.{i}.conv{1,2,3}` / `bn{1,2,3}`, the projection shortcut as
`downsample.0` (conv) and `downsample.1` (BN); no `fc`. ViT (timm's
`VisionTransformer`): `cls_token`, `pos_embed` (class token slot first),
`patch_embed.proj`, `blocks.{i}.norm1`, `blocks.{i}.attn.qkv` (q, k, v
stacked along the output axis, each head after head), `blocks.{i}.attn.proj`,
`blocks.{i}.norm2`, `blocks.{i}.mlp.fc1` / `fc2`, `norm`. `SmallCNN` has no
counterpart: `conv{1-3}`, `bn{1-3}`. An MLP projector is a `torch.nn.Sequential`
of Linear, BatchNorm1d and activation, under a prefix.

Every function takes the nested dicts of `nnx.to_pure_dict` (numpy
arrays, or `jax.ShapeDtypeStruct`s to get the layout alone) and returns a flat
{name: array} dict.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

Tree = dict[str, Any]


def _permute(x, axes: tuple[int, ...]):
  """`x` transposed by `axes`: a numpy array, or a `jax.ShapeDtypeStruct` whose shape is permuted."""
  if isinstance(x, jax.ShapeDtypeStruct):
    return jax.ShapeDtypeStruct(tuple(x.shape[axis] for axis in axes), x.dtype)
  return np.ascontiguousarray(np.transpose(np.asarray(x, np.float32), axes))


def _plain(x):
  return x if isinstance(x, jax.ShapeDtypeStruct) else np.asarray(x, np.float32)


def _conv(name: str, conv: Tree, tensors: dict) -> None:
  tensors[f"{name}.weight"] = _permute(conv["kernel"], (3, 2, 0, 1))
  if "bias" in conv:
    tensors[f"{name}.bias"] = _plain(conv["bias"])


def _linear(name: str, linear: Tree, tensors: dict) -> None:
  tensors[f"{name}.weight"] = _permute(linear["kernel"], (1, 0))
  if "bias" in linear:
    tensors[f"{name}.bias"] = _plain(linear["bias"])


def _batch_norm(name: str, params: Tree, stats: Tree, step: int, tensors: dict) -> None:
  tensors[f"{name}.weight"] = _plain(params["scale"])
  tensors[f"{name}.bias"] = _plain(params["bias"])
  tensors[f"{name}.running_mean"] = _plain(stats["mean"])
  tensors[f"{name}.running_var"] = _plain(stats["var"])
  tensors[f"{name}.num_batches_tracked"] = np.asarray(step, np.int64)


def _layer_norm(name: str, params: Tree, tensors: dict) -> None:
  tensors[f"{name}.weight"] = _plain(params["scale"])
  tensors[f"{name}.bias"] = _plain(params["bias"])


def resnet_tensors(params: Tree, stats: Tree, step: int) -> dict:
  """A `jax_ssl.models.resnet.ResNet`'s arrays as torchvision's `ResNet` names them (no `fc`).

  Args:
    params: the backbone's parameters (`stem`, `stages`), as nested dicts.
    stats: the backbone's BatchNorm statistics, as nested dicts of the same structure.
    step: the training step, written as every BatchNorm's `num_batches_tracked`.

  Returns:
    {torchvision name: array}, float32 (int64 for `num_batches_tracked`).
  """
  tensors = {}
  _conv("conv1", params["stem"]["conv"], tensors)
  _batch_norm("bn1", params["stem"]["bn"], stats["stem"]["bn"], step, tensors)
  for stage_index in sorted(params["stages"], key=int):
    stage, stage_stats = params["stages"][stage_index], stats["stages"][stage_index]
    for block_index in sorted(stage, key=int):
      block, block_stats = stage[block_index], stage_stats[block_index]
      prefix = f"layer{int(stage_index) + 1}.{int(block_index)}"
      for layer in (1, 2, 3):
        if f"conv{layer}" in block:
          _conv(f"{prefix}.conv{layer}", block[f"conv{layer}"], tensors)
          _batch_norm(f"{prefix}.bn{layer}", block[f"bn{layer}"], block_stats[f"bn{layer}"], step, tensors)
      if block.get("shortcut"):
        _conv(f"{prefix}.downsample.0", block["shortcut"]["conv"], tensors)
        _batch_norm(f"{prefix}.downsample.1", block["shortcut"]["bn"], block_stats["shortcut"]["bn"], step,
                    tensors)
  return tensors


def small_cnn_tensors(params: Tree, stats: Tree, step: int) -> dict:
  """A `SmallCNN`'s arrays as `conv{1-3}` and `bn{1-3}` (it has no torchvision counterpart).

  Args:
    params: the backbone's parameters (`convs`, `norms`), as nested dicts.
    stats: its BatchNorm statistics.
    step: written as every BatchNorm's `num_batches_tracked`.

  Returns:
    {name: array}.
  """
  tensors = {}
  for index in sorted(params["convs"], key=int):
    _conv(f"conv{int(index) + 1}", params["convs"][index], tensors)
    _batch_norm(f"bn{int(index) + 1}", params["norms"][index], stats["norms"][index], step, tensors)
  return tensors


def vit_tensors(params: Tree) -> dict:
  """A `VisionTransformer`'s arrays as timm's `VisionTransformer` names them (no head).

  Args:
    params: the backbone's parameters, as nested dicts.

  Returns:
    {timm name: float32 array}.
  """
  tensors = {"cls_token": _plain(params["cls_token"]), "pos_embed": _plain(params["pos_embed"])}
  _conv("patch_embed.proj", params["patch_embed"], tensors)
  for index in sorted(params["blocks"], key=int):
    block, prefix = params["blocks"][index], f"blocks.{int(index)}"
    _layer_norm(f"{prefix}.norm1", block["norm1"], tensors)
    _linear(f"{prefix}.attn.qkv", block["attn"]["qkv"], tensors)
    _linear(f"{prefix}.attn.proj", block["attn"]["proj"], tensors)
    _layer_norm(f"{prefix}.norm2", block["norm2"], tensors)
    _linear(f"{prefix}.mlp.fc1", block["mlp"]["fc1"], tensors)
    _linear(f"{prefix}.mlp.fc2", block["mlp"]["fc2"], tensors)
  _layer_norm("norm", params["norm"], tensors)
  return tensors


def mlp_tensors(prefix: str, params: Tree, stats: Tree, step: int) -> dict:
  """An `MLP` head as a `torch.nn.Sequential` of (Linear, BatchNorm1d, activation) * (k - 1), Linear.

  Module i of the Sequential: hidden layer j's Linear at 3j, its BatchNorm1d at 3j + 1 (the activation at
  3j + 2 has no arrays), the last Linear at 3(k - 1).

  Args:
    prefix: the Sequential's name, e.g. "projector".
    params: the head's parameters (`hidden_linears`, `hidden_norms`, `last`).
    stats: its BatchNorm statistics.
    step: written as every BatchNorm's `num_batches_tracked`.

  Returns:
    {name: array}.
  """
  tensors = {}
  hidden = sorted(params.get("hidden_linears", {}), key=int)
  for index in hidden:
    position = 3 * int(index)
    _linear(f"{prefix}.{position}", params["hidden_linears"][index], tensors)
    _batch_norm(f"{prefix}.{position + 1}", params["hidden_norms"][index], stats["hidden_norms"][index], step,
                tensors)
  _linear(f"{prefix}.{3 * len(hidden)}", params["last"], tensors)
  return tensors


def backbone_tensors(backbone: str, params: Tree, stats: Tree, step: int) -> dict:
  """The backbone named `backbone` (a `model.backbone` value) under PyTorch's names.

  Args:
    backbone: "resnet18", "resnet34", "resnet50", "small_cnn" or "vit_<size>".
    params: the backbone's parameters, as nested dicts.
    stats: its BatchNorm statistics (empty for a ViT).
    step: the training step, for BatchNorm's `num_batches_tracked`.

  Returns:
    {name: array}.

  Raises:
    ValueError: for a backbone this module does not know.
  """
  if backbone.startswith("resnet"):
    return resnet_tensors(params, stats, step)
  if backbone == "small_cnn":
    return small_cnn_tensors(params, stats, step)
  if backbone.startswith("vit"):
    return vit_tensors(params)
  raise ValueError(f"no PyTorch layout for backbone {backbone!r}.")
