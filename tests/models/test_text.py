"""The text tower reads a caption at its end token; the padding reaches nothing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jax_ssl import models
from jax_ssl.data import captions

CAPTIONS = captions.shapes_captions()


def _tower():
  return models.TextTransformer(len(CAPTIONS.vocabulary), CAPTIONS.context_length, width=32, depth=2, num_heads=4,
                                out_features=16, rngs=nnx.Rngs(0))


def test_padding_reaches_nothing_and_the_words_do():
  tower = _tower()
  tokens = CAPTIONS.tokenize(["a warm solid star", "this cool curved shape is a striped half disc"])
  graph, state = nnx.split(tower)
  embed = jax.jit(lambda state, tokens: nnx.merge(graph, state)(tokens))
  before = embed(state, tokens)
  assert before.shape == (2, 16)
  # Move the position embedding of the slots after the short caption's END: only the long one changes.
  short_end = int(np.argmax(tokens[0] == captions.END))
  moved = np.random.default_rng(0).standard_normal(tower.position_embedding.shape).astype(np.float32)
  tower.position_embedding[...] = tower.position_embedding[...].at[short_end + 1:].add(moved[short_end + 1:])
  after = embed(nnx.state(tower), tokens)
  np.testing.assert_allclose(after[0], before[0], rtol=1e-5, atol=1e-6)
  assert not np.allclose(after[1], before[1], atol=1e-3)
  # Another word changes the caption's embedding.
  swapped = CAPTIONS.tokenize(["a cool solid star"])
  assert not np.allclose(embed(nnx.state(tower), swapped)[0], after[0], atol=1e-3)


def test_wrong_token_shapes_are_named():
  with pytest.raises(ValueError, match=f"expects \\(batch, {CAPTIONS.context_length}\\) tokens"):
    _tower()(jnp.zeros((2, 3), jnp.int32))
  with pytest.raises(ValueError, match="divisible by num_heads"):
    models.TextTransformer(10, 4, width=30, depth=1, num_heads=4, out_features=8, rngs=nnx.Rngs(0))
