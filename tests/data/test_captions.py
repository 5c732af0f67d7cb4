"""Captions of `shapes` from its label hierarchy: every attribute named, tokens that decode back, a fair draw."""

import jax
import numpy as np
import pytest

from jax_ssl.data import captions
from jax_ssl.data import catalog
from jax_ssl.data.bundled import shapes

CAPTIONS = captions.shapes_captions()


def _decode(tokens):
  words = [CAPTIONS.vocabulary[t] for t in tokens]
  end = words.index("<end>")
  assert set(words[end + 1:]) <= {"<pad>"} and "<pad>" not in words[:end]
  return " ".join(words[:end])


def test_every_caption_names_its_class_colour_texture_and_shape():
  assert CAPTIONS.num_classes == 36 and CAPTIONS.num_templates == len(captions.SHAPES_TEMPLATES)
  assert catalog.get_spec("shapes").captions == CAPTIONS and catalog.get_spec("digits").captions is None
  for label in range(36):
    shape = shapes.SHAPES[label // 4]
    colour, texture = shapes.VARIANTS[label % 4].split("_")
    family = captions.FAMILY_WORDS[shapes.FAMILIES[int(shapes.family_of(label))]]
    for template, text in zip(captions.SHAPES_TEMPLATES, CAPTIONS.texts[label]):
      padded = f" {text} "
      for word in (colour, texture, captions.SHAPE_WORDS[shape]):
        assert f" {word} " in padded, (label, text)
      assert (f" {family} " in padded) == ("{family}" in template), (label, text)
  # Under every template the 36 captions differ: a caption identifies its class.
  for template in range(CAPTIONS.num_templates):
    assert len({row[template] for row in CAPTIONS.texts}) == 36


def test_tokens_decode_to_the_captions():
  tokens = CAPTIONS.tokens
  assert tokens.shape == (36, CAPTIONS.num_templates, CAPTIONS.context_length) and tokens.dtype == np.int32
  longest = max(len(text.split()) for row in CAPTIONS.texts for text in row)
  assert CAPTIONS.context_length == longest + 1
  for label in (0, 17, 35):
    for template in range(CAPTIONS.num_templates):
      assert _decode(tokens[label, template]) == CAPTIONS.texts[label][template]


def test_bad_captions_are_refused_in_one_line():
  with pytest.raises(ValueError, match="outside the vocabulary: \\['octagon'\\]"):
    CAPTIONS.tokenize(["a warm octagon"])
  with pytest.raises(ValueError, match="at most"):
    CAPTIONS.tokenize([" ".join(["a"] * CAPTIONS.context_length)])
  with pytest.raises(ValueError, match="same positive number"):
    captions.Captions((("a b",), ("a", "b")))


def test_draw_gives_each_label_one_of_its_own_captions_and_every_template():
  labels = np.arange(2000) % 36
  drawn = np.asarray(jax.jit(captions.draw_captions)(jax.random.key(0), labels, CAPTIONS.tokens))
  matches = (drawn[:, None, :] == CAPTIONS.tokens[labels]).all(-1)  # (N, T): which template each row is
  assert np.all(matches.sum(1) == 1)
  counts = np.bincount(matches.argmax(1), minlength=CAPTIONS.num_templates)
  assert counts.min() > 2000 / CAPTIONS.num_templates * 0.8
