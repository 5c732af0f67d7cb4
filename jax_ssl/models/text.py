"""A small text transformer: CLIP's text tower, for captions of a few words."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl.models import vit


class TextTransformer(nnx.Module):
  """(B, L) int tokens -> (B, out_features): a caption's embedding, read at its end-of-text token.

  Tokens are a caption's words, one `end_id` token, then `pad_id` up to L
  (`jax_ssl.data.captions`' layout, whose ids are the defaults).

  A token embedding plus a learned position embedding, `depth` pre-norm
  blocks (`vit.EncoderBlock`) in which the padding is hidden from attention,
  a final LayerNorm, the token at `end_id`, and a Linear projection without
  bias (CLIP's text tower, Radford et al. 2021, Sec. 2.4). CLIP's attention
  is causal; here every word sees every other. The end token sees the whole
  caption either way, and the padding reaches nothing, so a caption's
  embedding does not depend on how much padding follows it.

  Init as CLIP's: token embeddings N(0, 0.02), positions N(0, 0.01), the
  projection N(0, width^-1/2); the blocks as the ViT's.

  Args:
    vocab_size: number of token ids (special tokens included).
    context_length: tokens per caption, L.
    width, depth, num_heads: the transformer's width, blocks and attention heads.
    out_features: the width of the joint image-text embedding.
    mlp_ratio: hidden width of the feed-forward as a multiple of `width`.
    pad_id, end_id: the padding and end-of-text token ids.
    dtype: computation dtype; parameters stay float32.
    rngs: `nnx.Rngs` with a `params` stream.
  """

  def __init__(self, vocab_size: int, context_length: int, *, width: int, depth: int, num_heads: int,
               out_features: int, mlp_ratio: float = 4.0, pad_id: int = 0, end_id: int = 1,
               dtype: Any = jnp.float32, rngs: nnx.Rngs):
    if width % num_heads:
      raise ValueError(f"width ({width}) must be divisible by num_heads ({num_heads}).")
    self.context_length = context_length
    self.pad_id, self.end_id = pad_id, end_id
    self.out_features = out_features
    self.token_embedding = nnx.Embed(vocab_size, width, embedding_init=jax.nn.initializers.normal(0.02),
                                     dtype=dtype, rngs=rngs)
    self.position_embedding = nnx.Param(jax.nn.initializers.normal(0.01)(rngs.params(), (context_length, width),
                                                                         jnp.float32))
    self.blocks = nnx.List([vit.EncoderBlock(width, num_heads, mlp_ratio, dtype=dtype, rngs=rngs)
                            for _ in range(depth)])
    self.norm = vit._layer_norm(width, dtype=dtype, rngs=rngs)
    self.projection = nnx.Linear(width, out_features, use_bias=False,
                                 kernel_init=jax.nn.initializers.normal(width**-0.5), dtype=dtype, rngs=rngs)

  def __call__(self, tokens: jax.Array) -> jax.Array:
    """Embed a batch of tokenized captions (`data.captions.Captions.tokenize`).

    Args:
      tokens: (B, context_length) int token ids: words, one `end_id`, then `pad_id`.

    Returns:
      (B, out_features) embeddings in the computation dtype.

    Raises:
      ValueError: if `tokens` is not (B, context_length).
    """
    if tokens.ndim != 2 or tokens.shape[1] != self.context_length:
      raise ValueError(f"TextTransformer expects (batch, {self.context_length}) tokens, got shape {tokens.shape}.")
    x = self.token_embedding(tokens) + self.position_embedding[...].astype(self.token_embedding.dtype)
    visible = tokens != self.pad_id
    for block in self.blocks:
      x = block(x, key_mask=visible)
    x = self.norm(x)
    end = jnp.argmax(tokens == self.end_id, axis=1)
    return self.projection(jnp.take_along_axis(x, end[:, None, None], axis=1)[:, 0])
