"""`python -m jax_ssl.export`: the file holds torchvision / timm names and shapes, and computes load_encoder's features.

The features are checked against forward passes written here in PyTorch's
conventions, in float64 numpy: NCHW activations, OIHW kernels, (out, in)
Linear weights, BatchNorm from its running statistics (eps 1e-5), explicit
padding, LayerNorm (eps 1e-6), exact GELU, timm's fused qkv. They read only
the exported names, as torchvision and timm would.
"""

import dataclasses
import json
import pathlib

import jax
import numpy as np
import pytest
import safetensors.numpy
from flax import nnx
from scipy import special

from configs import common
from jax_ssl import export
from jax_ssl import models
from jax_ssl.data import catalog
from jax_ssl.models import torch_layout
from jax_ssl.train import encoder as encoder_lib
from jax_ssl.train import loop

MANIFESTS = json.loads((pathlib.Path(__file__).parent / "models" / "torch_manifests.json").read_text())["models"]


# PyTorch's conventions in float64 numpy.

def _conv(x, weight, bias=None, stride=1, padding=0):
  """(N, C, H, W) x (O, C, kh, kw) -> (N, O, H', W'), zero padding on every side, as torch.nn.Conv2d."""
  x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
  kh, kw = weight.shape[2:]
  windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
  out = np.einsum("nchwij,ocij->nohw", windows, weight)
  return out if bias is None else out + bias[None, :, None, None]


def _batch_norm(x, state, name):
  mean, var = state[f"{name}.running_mean"], state[f"{name}.running_var"]
  scale = state[f"{name}.weight"] / np.sqrt(var + 1e-5)
  return (x - mean[None, :, None, None]) * scale[None, :, None, None] + state[f"{name}.bias"][None, :, None, None]


def _max_pool(x):
  """3x3, stride 2, padding 1 (padding never wins), as torch.nn.MaxPool2d(3, 2, 1)."""
  x = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
  return np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3))[:, :, ::2, ::2].max(axis=(-1, -2))


def _relu(x):
  return np.maximum(x, 0.0)


def resnet_forward(state, x):
  """torchvision's ResNet without fc; the stem's kernel size says which (7: ImageNet stem, 3: CIFAR stem)."""
  imagenet = state["conv1.weight"].shape[-1] == 7
  x = _relu(_batch_norm(_conv(x, state["conv1.weight"], stride=2 if imagenet else 1, padding=3 if imagenet else 1),
                        state, "bn1"))
  if imagenet:
    x = _max_pool(x)
  for stage in (1, 2, 3, 4):
    block = 0
    while f"layer{stage}.{block}.conv1.weight" in state:
      prefix, stride = f"layer{stage}.{block}", 2 if stage > 1 and block == 0 else 1
      bottleneck = f"{prefix}.conv3.weight" in state
      y = x
      for layer in (1, 2, 3) if bottleneck else (1, 2):
        weight = state[f"{prefix}.conv{layer}.weight"]
        # The stride sits on the 3x3 conv: conv1 of a basic block, conv2 of a bottleneck (ResNet v1.5).
        layer_stride = stride if layer == (2 if bottleneck else 1) else 1
        y = _batch_norm(_conv(y, weight, stride=layer_stride, padding=weight.shape[-1] // 2), state,
                        f"{prefix}.bn{layer}")
        if layer < (3 if bottleneck else 2):
          y = _relu(y)
      shortcut = x
      if f"{prefix}.downsample.0.weight" in state:
        shortcut = _batch_norm(_conv(x, state[f"{prefix}.downsample.0.weight"], stride=stride), state,
                               f"{prefix}.downsample.1")
      x = _relu(y + shortcut)
      block += 1
  return x.mean(axis=(2, 3))


def small_cnn_forward(state, x):
  for index, stride in ((1, 1), (2, 2), (3, 1)):
    x = _relu(_batch_norm(_conv(x, state[f"conv{index}.weight"], stride=stride, padding=1), state, f"bn{index}"))
  return x.mean(axis=(2, 3))


def _layer_norm(x, state, name):
  mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + 1e-6) * state[f"{name}.weight"] + state[f"{name}.bias"]


def _linear(x, state, name):
  return x @ state[f"{name}.weight"].T + state[f"{name}.bias"]


def vit_forward(state, x, num_heads, pool):
  """timm's VisionTransformer without head: global_pool "token" or "avg" (fc_norm off: norm, then pool)."""
  weight = state["patch_embed.proj.weight"]
  patches = _conv(x, weight, state["patch_embed.proj.bias"], stride=weight.shape[-1])
  batch, width = patches.shape[:2]
  tokens = patches.reshape(batch, width, -1).transpose(0, 2, 1)
  tokens = np.concatenate([np.broadcast_to(state["cls_token"], (batch, 1, width)), tokens], axis=1)
  tokens = tokens + state["pos_embed"]
  block = 0
  while f"blocks.{block}.norm1.weight" in state:
    prefix = f"blocks.{block}"
    qkv = _linear(_layer_norm(tokens, state, f"{prefix}.norm1"), state, f"{prefix}.attn.qkv")
    qkv = qkv.reshape(batch, -1, 3, num_heads, width // num_heads).transpose(2, 0, 3, 1, 4)
    query, key, value = qkv
    logits = query @ key.transpose(0, 1, 3, 2) / np.sqrt(width // num_heads)
    attention = np.exp(logits - logits.max(-1, keepdims=True))
    attention /= attention.sum(-1, keepdims=True)
    attended = (attention @ value).transpose(0, 2, 1, 3).reshape(batch, -1, width)
    tokens = tokens + _linear(attended, state, f"{prefix}.attn.proj")
    hidden = _linear(_layer_norm(tokens, state, f"{prefix}.norm2"), state, f"{prefix}.mlp.fc1")
    hidden = 0.5 * hidden * (1.0 + special.erf(hidden / np.sqrt(2.0)))  # exact GELU
    tokens = tokens + _linear(hidden, state, f"{prefix}.mlp.fc2")
    block += 1
  tokens = _layer_norm(tokens, state, "norm")
  return tokens[:, 0] if pool == "token" else tokens[:, 1:].mean(axis=1)


def _torch_input(images, config):
  spec = catalog.get_spec(config.data.name)
  x = images.astype(np.float64) / 255.0
  x = (x - np.asarray(spec.mean)) / np.asarray(spec.std)
  return x.transpose(0, 3, 1, 2)  # NCHW


def _forward(state, config, images):
  x = _torch_input(images, config)
  backbone = config.model.backbone
  if backbone.startswith("resnet"):
    return resnet_forward(state, x)
  if backbone == "small_cnn":
    return small_cnn_forward(state, x)
  exported = export.timm_config(config, 0, 0)["model_args"]
  return vit_forward(state, x, exported["num_heads"], exported["global_pool"])


# Names and shapes, without allocating the reference models.

def _abstract_tensors(backbone, **kwargs):
  module = nnx.eval_shape(lambda: models.build_backbone(backbone, rngs=nnx.Rngs(0), **kwargs))
  params = nnx.to_pure_dict(nnx.state(module, nnx.Param))
  stats = nnx.to_pure_dict(nnx.state(module, nnx.BatchStat))
  return torch_layout.backbone_tensors(backbone, params, stats, step=0)


@pytest.mark.parametrize("backbone,kwargs,reference", [
    ("resnet18", {"stem": "imagenet", "width": 64}, "torchvision.resnet18"),
    ("resnet50", {"stem": "imagenet", "width": 64}, "torchvision.resnet50"),
    ("vit_small", {"patch_size": 16, "image_size": 224}, "timm.vit_small_patch16_224"),
])
def test_the_export_has_the_names_and_shapes_of_torchvision_and_timm(backbone, kwargs, reference):
  tensors = _abstract_tensors(backbone, **kwargs)
  assert {name: list(np.shape(value)) for name, value in tensors.items()} == MANIFESTS[reference]


# The numbers: random arrays in every slot (BatchNorm statistics included), features of both.

def _randomised(encoder, seed):
  """`encoder` with every parameter and BatchNorm statistic drawn at random (variances positive)."""
  rng = np.random.default_rng(seed)
  params, stats = encoder.arrays()
  draw = lambda x: (0.3 * rng.normal(size=x.shape)).astype(x.dtype)  # noqa: E731
  params = jax.tree.map(draw, params)
  stats = jax.tree_util.tree_map_with_path(
      lambda path, x: rng.uniform(0.5, 2.0, x.shape).astype(x.dtype) if "var" in jax.tree_util.keystr(path)
      else draw(x), stats)
  new_params, new_stats = encoder._params, encoder._batch_stats  # noqa: SLF001 - the test swaps the arrays
  nnx.replace_by_pure_dict(new_params, params)
  nnx.replace_by_pure_dict(new_stats, stats)
  return dataclasses.replace(encoder, _params=new_params, _batch_stats=new_stats)


@pytest.mark.parametrize("model", [
    {"backbone": "resnet18", "stem": "cifar", "width": 8},
    {"backbone": "resnet50", "stem": "imagenet", "width": 4},
    {"backbone": "small_cnn", "width": 8},
    {"backbone": "vit_micro", "patch_size": 4, "pool": "cls"},
    {"backbone": "vit_micro", "patch_size": 4, "pool": "mean"},
])
def test_pytorch_conventions_on_the_exported_arrays_give_the_encoders_features(model, bundled_dir):
  config = common.smoke(common.bundled_base("vicreg"))
  config.data.data_dir = str(bundled_dir)
  config.views.size = 32 if model["backbone"] == "resnet50" else 16
  config.model.update(**model)
  encoder = _randomised(encoder_lib.initial_encoder(config), seed=1)
  params, stats = encoder.arrays()
  state = torch_layout.backbone_tensors(config.model.backbone, params["backbone"], stats.get("backbone", {}), 7)
  state = {name: np.asarray(value, np.float64) for name, value in state.items()}
  images = np.random.default_rng(2).integers(0, 256, (4, config.views.size, config.views.size, 3), dtype=np.uint8)
  np.testing.assert_allclose(encoder(images), _forward(state, config, images), rtol=1e-4, atol=1e-5)


def test_export_writes_what_load_encoder_computes_and_refuses_bad_input(bundled_dir, tmp_path, capsys):
  config = common.smoke(common.bundled_base("vicreg"))
  config.data.data_dir = str(bundled_dir)
  config.train.num_steps = 1
  loop.train(config, tmp_path / "run")  # with its report: the card shows the probes
  assert export.main(["--workdir", str(tmp_path / "run"), "--to", str(tmp_path / "out"), "--with_projector"]) == 0
  state = safetensors.numpy.load_file(str(tmp_path / "out" / export.WEIGHTS_FILE))
  assert state["bn1.num_batches_tracked"] == 1 and state["bn1.num_batches_tracked"].dtype == np.int64
  assert state["projector.0.weight"].shape == (64, 16) and state["projector.3.weight"].shape == (64, 64)
  # Images already at the input size: the contract's (a resize belongs to the user's pipeline).
  images = np.random.default_rng(3).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
  backbone = {name: np.asarray(value, np.float64) for name, value in state.items() if not name.startswith("proj")}
  np.testing.assert_allclose(encoder_lib.load_encoder(tmp_path / "run")(images), _forward(backbone, config, images),
                             rtol=1e-4, atol=1e-5)
  exported = json.loads((tmp_path / "out" / export.CONFIG_FILE).read_text())
  assert exported["pretrained_cfg"]["input_size"] == [3, 16, 16] and exported["num_features"] == 16
  assert exported["jax_ssl"]["step"] == 1 and exported["jax_ssl"]["config"]["model"]["width"] == 8
  card = (tmp_path / "out" / export.CARD_FILE).read_text()
  report = json.loads((tmp_path / "run" / "report.json").read_text())
  assert f"{report['accuracy']['trained']['linear']['label']:.3f}" in card and "strict=True" in card
  capsys.readouterr()

  refused = {"an existing non-empty --to": ["--workdir", str(tmp_path / "run"), "--to", str(tmp_path / "out")],
             "no run": ["--workdir", str(tmp_path / "nothing"), "--to", str(tmp_path / "out2")],
             "no such step": ["--workdir", str(tmp_path / "run"), "--step", "9", "--to", str(tmp_path / "out3")]}
  for arguments in refused.values():
    assert export.main(arguments) == 2
    error = capsys.readouterr().err
    assert error.startswith("jax_ssl.export: ") and error.count("\n") == 1, error
  assert not (tmp_path / "out2").exists() and not (tmp_path / "out3").exists()
  (tmp_path / "mae").mkdir()  # a run's config is enough: the head is refused before any checkpoint is read
  (tmp_path / "mae" / "config.json").write_text(common.smoke(common.bundled_base("mae")).to_json())
  assert export.main(["--workdir", str(tmp_path / "mae"), "--to", str(tmp_path / "mae_out"), "--with_projector"]) == 2
  assert "a mae run has no MLP projector to export (its head is mae's" in capsys.readouterr().err
