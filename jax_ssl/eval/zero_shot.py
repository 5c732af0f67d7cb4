"""Zero-shot classification from caption prompts (CLIP), at every level of a label hierarchy."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def _unit_rows(x: np.ndarray) -> np.ndarray:
  norms = np.linalg.norm(x, axis=-1, keepdims=True)
  return x / np.maximum(norms, 1e-12)


def class_embeddings(prompt_embeddings: np.ndarray, parents: np.ndarray, num_classes: int) -> np.ndarray:
  """The text side of a zero-shot classifier: one unit vector per class of a label level.

  A fine class's vector is the normalised mean of its normalised prompt
  embeddings (CLIP's prompt ensembling, Radford et al. 2021, Sec. 3.1.4); a
  coarser class's is the normalised sum of the vectors of the fine classes
  under it.

  Args:
    prompt_embeddings: (C, T, D) text embeddings of the T prompts of each of the C fine classes.
    parents: (C,) int, the class of each fine class at this level (the identity at the finest); -1 for
      a fine class that belongs to none.
    num_classes: classes at this level.

  Returns:
    float64 (num_classes, D); a class with no fine class under it is the zero vector (never predicted
    unless every score ties).
  """
  fine = _unit_rows(np.mean(_unit_rows(np.asarray(prompt_embeddings, np.float64)), axis=1))
  parents = np.asarray(parents)
  summed = np.zeros((num_classes, fine.shape[1]))
  known = parents >= 0
  np.add.at(summed, parents[known], fine[known])
  return _unit_rows(summed)


def zero_shot_accuracies(image_embeddings: np.ndarray, prompt_embeddings: np.ndarray,
                         labels: Mapping[str, np.ndarray], parents: Mapping[str, np.ndarray],
                         num_classes: Mapping[str, int]) -> dict[str, float]:
  """Accuracy, per label level, of predicting the class whose caption prompts are nearest in cosine.

  Args:
    image_embeddings: (N, D) image embeddings in the joint space.
    prompt_embeddings: (C, T, D) text embeddings of every fine class's prompts.
    labels: level -> (N,) int labels of the images.
    parents: level -> (C,) the class of each fine class at that level (`class_embeddings`).
    num_classes: level -> classes at that level.

  Returns:
    level -> accuracy in [0, 1].

  Raises:
    ValueError: the widths of the images and the prompts differ.
  """
  images = _unit_rows(np.asarray(image_embeddings, np.float64))
  if images.shape[1] != np.shape(prompt_embeddings)[-1]:
    raise ValueError(f"image embeddings of width {images.shape[1]} cannot be compared with text embeddings "
                     f"of width {np.shape(prompt_embeddings)[-1]}.")
  accuracies = {}
  for level, level_labels in labels.items():
    classes = class_embeddings(prompt_embeddings, parents[level], num_classes[level])
    predicted = np.argmax(images @ classes.T, axis=1)
    accuracies[level] = float(np.mean(predicted == np.asarray(level_labels)))
  return accuracies


def parents_from_labels(labels: Mapping[str, np.ndarray], num_fine: int, fine_level: str = "label") -> dict:
  """Each level's class of each fine class, read off labelled records.

  Args:
    labels: level -> (N,) int labels of the same N records, `fine_level` among them.
    num_fine: the number of fine classes C.
    fine_level: the key of the finest level.

  Returns:
    level -> (C,) int64, -1 for a fine class none of the records has.

  Raises:
    ValueError: a fine class appears under two classes of a level (the labels are not a hierarchy).
  """
  fine = np.asarray(labels[fine_level])
  parents = {}
  for level, level_labels in labels.items():
    level_labels = np.asarray(level_labels)
    mapping = np.full(num_fine, -1, np.int64)
    for fine_class in np.unique(fine):
      above = np.unique(level_labels[fine == fine_class])
      if len(above) != 1:
        raise ValueError(f"fine class {fine_class} lies under {len(above)} classes of {level!r}: not a hierarchy.")
      mapping[fine_class] = above[0]
    parents[level] = mapping
  return parents
