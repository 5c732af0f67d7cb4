"""Captions generated from a dataset's label hierarchy, and their word tokens: image-text training on `shapes`.

Each of the 36 fine classes of the bundled `shapes` is a colour (warm or
cool), a texture (solid or striped), a shape and the shape's family. A
caption fills one of `SHAPES_TEMPLATES` with those words ("a warm striped
hexagon", "a polygonal shape: a striped warm hexagon", ...); the templates
name the attributes in different orders and not all of them name the family,
so a text encoder has to read the words, not their positions. The trainer
draws a template per image and step (`draw_captions` from `Captions.tokens`, by label
on the device), so the captions are a pure function of the labels and the
step's key.

Tokens: one id per word of a fixed vocabulary (every word the captions
use, sorted), after two special ids: `PAD` (0) fills each caption up to
`context_length`, and `END` (1) follows its last word; a text encoder reads
its caption at the `END` token. Zero-shot classification embeds every
caption of every class (`Captions.texts`) as its prompts.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jax_ssl.data.bundled import shapes

PAD = 0
END = 1
SPECIAL_TOKENS = ("<pad>", "<end>")

# Each template names the colour, texture and shape; some also the family.
SHAPES_TEMPLATES = (
    "a {colour} {texture} {shape}",
    "a photo of a {texture} {shape} in {colour} colours",
    "a {shape} , {colour} and {texture}",
    "a {family} shape : a {texture} {colour} {shape}",
    "this {colour} {family} shape is a {texture} {shape}",
)
SHAPE_WORDS = {"circle": "circle", "ring": "ring", "half_disc": "half disc", "triangle": "triangle",
               "square": "square", "hexagon": "hexagon", "star": "star", "cross": "cross",
               "tri_star": "three pointed star"}
FAMILY_WORDS = {"curved": "curved", "polygon": "polygonal", "spiky": "spiky"}


@dataclasses.dataclass(frozen=True)
class Captions:
  """The captions of a dataset's fine classes: `texts[c][t]` describes class c in template t.

  Attributes:
    texts: (C, T) captions, lower-case words separated by single spaces; every class has T of them.
  """

  texts: tuple[tuple[str, ...], ...]

  def __post_init__(self):
    if not self.texts or len({len(row) for row in self.texts}) != 1 or not self.texts[0]:
      raise ValueError("Captions need the same positive number of captions for every class.")

  @functools.cached_property
  def vocabulary(self) -> tuple[str, ...]:
    """The special tokens, then every word of the captions in sorted order: token id -> word."""
    words = sorted({word for row in self.texts for text in row for word in text.split()})
    return SPECIAL_TOKENS + tuple(words)

  @property
  def num_classes(self) -> int:
    return len(self.texts)

  @property
  def num_templates(self) -> int:
    return len(self.texts[0])

  @functools.cached_property
  def context_length(self) -> int:
    """Tokens per caption: the longest caption's words and its `END`."""
    return max(len(text.split()) for row in self.texts for text in row) + 1

  def tokenize(self, texts: Sequence[str]) -> np.ndarray:
    """Captions -> (n, context_length) int32 tokens: each word's id, `END`, then `PAD`.

    Args:
      texts: captions made of the vocabulary's words, at most `context_length - 1` of them each.

    Returns:
      int32 array (n, context_length).

    Raises:
      ValueError: a word outside the vocabulary, or a caption too long.
    """
    ids = {word: index for index, word in enumerate(self.vocabulary)}
    tokens = np.full((len(texts), self.context_length), PAD, np.int32)
    for row, text in enumerate(texts):
      words = text.split()
      unknown = [word for word in words if word not in ids or ids[word] < len(SPECIAL_TOKENS)]
      if unknown:
        raise ValueError(f"caption {text!r} has words outside the vocabulary: {unknown}.")
      if len(words) >= self.context_length:
        raise ValueError(f"caption {text!r} has {len(words)} words; at most {self.context_length - 1} fit.")
      tokens[row, :len(words)] = [ids[word] for word in words]
      tokens[row, len(words)] = END
    return tokens

  @functools.cached_property
  def tokens(self) -> np.ndarray:
    """(C, T, context_length) int32: every class's captions, tokenized."""
    flat = self.tokenize([text for row in self.texts for text in row])
    return flat.reshape(self.num_classes, self.num_templates, self.context_length)


def draw_captions(key: jax.Array, labels: jax.Array, tokens: jax.Array) -> jax.Array:
  """A caption for each label, its template drawn uniformly and independently per label: (N, L) tokens.

  Args:
    key: PRNG key of the draw.
    labels: (N,) int fine labels.
    tokens: (C, T, L) every class's tokenized captions (`Captions.tokens`).

  Returns:
    (N, L) int32: row i is `tokens[labels[i], t_i]`, t_i uniform in [0, T).
  """
  tokens = jnp.asarray(tokens)
  templates = jax.random.randint(key, jnp.shape(labels), 0, tokens.shape[1])
  return tokens[labels, templates]


def shapes_captions(templates: Sequence[str] = SHAPES_TEMPLATES) -> Captions:
  """The captions of `shapes`' 36 variants, in label order, each filled into every template.

  Args:
    templates: format strings with the fields `colour`, `texture`, `shape` and `family`.

  Returns:
    `Captions` with `texts[variant][template]`.
  """
  texts = []
  for label in range(shapes.num_classes()):
    shape = shapes.SHAPES[int(shapes.shape_of(label))]
    colour, texture = shapes.VARIANTS[label % len(shapes.VARIANTS)].split("_")
    words = {"colour": colour, "texture": texture, "shape": SHAPE_WORDS[shape],
             "family": FAMILY_WORDS[shapes.FAMILIES[int(shapes.family_of(label))]]}
    texts.append(tuple(template.format(**words) for template in templates))
  return Captions(tuple(texts))
