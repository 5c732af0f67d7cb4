"""Zero-shot classification from prompts against a float64 loop, and the hierarchy read off labels."""

import numpy as np
import pytest

from jax_ssl.eval import zero_shot


def _reference(images, prompts, labels, parents, num_classes):
  """Prompt ensembles by loops: a fine class is the unit mean of its unit prompts, a coarse class the unit sum."""
  def unit(v):
    return v / np.linalg.norm(v)
  fine = [unit(np.mean([unit(p) for p in class_prompts], axis=0)) for class_prompts in prompts]
  accuracies = {}
  for level, level_labels in labels.items():
    classes = [unit(sum(fine[f] for f in range(len(fine)) if parents[level][f] == c))
               for c in range(num_classes[level])]
    correct = 0
    for image, label in zip(images, level_labels):
      scores = [unit(image) @ c for c in classes]
      correct += int(np.argmax(scores) == label)
    accuracies[level] = correct / len(images)
  return accuracies


def test_matches_a_loop_reference_at_every_level():
  rng = np.random.default_rng(0)
  fine_labels = np.arange(60) % 6
  coarse_of_fine = np.array([0, 0, 1, 1, 2, 2])
  prompts = rng.standard_normal((6, 4, 5))
  images = prompts[fine_labels].mean(1) + 1.5 * rng.standard_normal((60, 5))
  labels = {"label": fine_labels, "label_coarse": coarse_of_fine[fine_labels]}
  parents = zero_shot.parents_from_labels(labels, 6)
  np.testing.assert_array_equal(parents["label"], np.arange(6))
  np.testing.assert_array_equal(parents["label_coarse"], coarse_of_fine)
  num_classes = {"label": 6, "label_coarse": 3}
  result = zero_shot.zero_shot_accuracies(images, prompts, labels, parents, num_classes)
  expected = _reference(images, prompts, labels, parents, num_classes)
  assert result == pytest.approx(expected, abs=1e-12)
  assert 0 < result["label"] < 1 and result["label_coarse"] >= result["label"]
  # Images at their class's prompts are all classified right, at every level.
  exact = zero_shot.zero_shot_accuracies(prompts[fine_labels].mean(1), prompts, labels, parents, num_classes)
  assert exact == {"label": 1.0, "label_coarse": 1.0}


def test_unseen_fine_classes_and_broken_hierarchies():
  labels = {"label": np.array([0, 0, 2]), "label_coarse": np.array([1, 1, 0])}
  np.testing.assert_array_equal(zero_shot.parents_from_labels(labels, 4)["label_coarse"], [1, -1, 0, -1])
  with pytest.raises(ValueError, match="not a hierarchy"):
    zero_shot.parents_from_labels({"label": np.array([0, 0]), "label_coarse": np.array([0, 1])}, 1)
  with pytest.raises(ValueError, match="width 3 cannot be compared with text embeddings of width 2"):
    zero_shot.zero_shot_accuracies(np.ones((2, 3)), np.ones((1, 1, 2)), {"label": np.zeros(2, int)},
                                   {"label": np.zeros(1, int)}, {"label": 1})
