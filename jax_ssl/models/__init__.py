"""Backbones and heads, as Flax NNX modules.

Every backbone takes float images (B, H, W, C), has an int `num_features`,
and returns the (B, num_features) representation linear probes use:
globally average-pooled features for `ResNet` and `SmallCNN`, the final-normed
CLS token for `VisionTransformer`. `dtype` sets the computation dtype
(e.g. bfloat16); parameters are always float32.

Modules are built in training mode: BatchNorm normalises with batch statistics
and updates its running averages (NNX momentum 0.9 = PyTorch momentum 0.1,
epsilon 1e-5). `model.eval()` switches every BatchNorm to the running
statistics, `model.train()` back. The mode is static, so it travels in the
graphdef of `nnx.split`; the running averages are `nnx.BatchStat` state.

Functional use: `graphdef, params, rest = nnx.split(model, nnx.Param, ...)`
once, then inside `jax.jit` + `jax.grad` rebuild with
`nnx.merge(graphdef, params, rest, copy=True)` and return
`nnx.state(module, nnx.BatchStat)` as the new statistics. (`copy=True` because
BatchNorm writes its statistics under `grad`'s trace; the states that
`nnx.split` returns alias the live module's Variables.)
"""

from jax_ssl.models.heads import MLP
from jax_ssl.models.heads import DINOHead
from jax_ssl.models.heads import byol_predictor
from jax_ssl.models.heads import parse_spec
from jax_ssl.models.heads import projector
from jax_ssl.models.ijepa import IJEPAPredictor
from jax_ssl.models.ijepa import multi_block_masks
from jax_ssl.models.mae import MAEDecoder
from jax_ssl.models.mae import patchify
from jax_ssl.models.mae import random_keep
from jax_ssl.models.registry import BACKBONES
from jax_ssl.models.registry import MODEL_CHOICES
from jax_ssl.models.registry import build_backbone
from jax_ssl.models.registry import check_config
from jax_ssl.models.resnet import ResNet
from jax_ssl.models.resnet import resnet18
from jax_ssl.models.resnet import resnet34
from jax_ssl.models.resnet import resnet50
from jax_ssl.models.small_cnn import SmallCNN
from jax_ssl.models.text import TextTransformer
from jax_ssl.models.vit import VIT_SIZES
from jax_ssl.models.vit import VisionTransformer
from jax_ssl.models.vit import vision_transformer

__all__ = [
    "BACKBONES",
    "DINOHead",
    "IJEPAPredictor",
    "MAEDecoder",
    "MLP",
    "MODEL_CHOICES",
    "ResNet",
    "SmallCNN",
    "TextTransformer",
    "VIT_SIZES",
    "VisionTransformer",
    "build_backbone",
    "byol_predictor",
    "check_config",
    "multi_block_masks",
    "parse_spec",
    "patchify",
    "projector",
    "random_keep",
    "resnet18",
    "resnet34",
    "resnet50",
    "vision_transformer",
]
