"""The numbers a set of features gets: probes and Rand index per label level, and structure comparisons.

Arrays in, JSON-ready dicts out: `compare_structure` (two sets of the same
items), `evaluate_features` (train/test features and labels),
`evaluate_embedding` (any function of images on a dataset, the pixel control
`pixels` among them). `jax_ssl.protocols` builds the checkpoint report and
the two-model generalization protocol on top of them, and
`python -m jax_ssl.evaluate` runs those from the command line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from jax_ssl.data import sources
from jax_ssl.eval import clustering
from jax_ssl.eval import hierarchy
from jax_ssl.eval import probes
from jax_ssl.eval import structure
from jax_ssl.eval.inputs import subsample

STRUCTURE_KEYS = ("lca_pearson", "lca_spearman", "lca_kendall", "cophenetic_d1_to_p2", "cophenetic_d2_to_p1")


def as_rows(array, name: str) -> np.ndarray:
  """An (N, ...) array of items as (N, F) float64 rows: images and other raw inputs are flattened.

  Args:
    array: array-like (N, F) or (N, H, W, C), any numeric or bool dtype.
    name: how the error messages call the array.

  Returns:
    float64 (N, F) array, F the product of the trailing dimensions.

  Raises:
    ValueError: if `array` has fewer than 2 dimensions, is empty, or is not real numeric (complex values are
      refused: casting would drop their imaginary part).
  """
  array = np.asarray(array)
  if array.ndim < 2:
    raise ValueError(f"{name} must hold one row per item, (N, F) or (N, H, W, C); got shape {array.shape}.")
  if array.size == 0:
    raise ValueError(f"{name} is empty (shape {array.shape}): it needs items, each with at least one value.")
  if np.iscomplexobj(array):
    raise ValueError(f"{name} holds complex numbers ({array.dtype}); give real features (e.g. their real part or "
                     "modulus, or both as columns).")
  if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
    raise ValueError(f"{name} must be numeric, got dtype {array.dtype}.")
  return array.reshape(len(array), -1).astype(np.float64)


def structure_scores(x1, x2) -> dict[str, float]:
  """The five label-free numbers comparing the hierarchy of two sets of the same items (SAG-VICReg, Sec. 5).

  LCA similarity (Pearson, Spearman, Kendall tau-b between the two Ward trees'
  leaf-to-leaf path lengths) and cophenetic similarity in both directions
  (merge heights of one tree against the chordal distances of the other set).

  Args:
    x1: (n, d1) embeddings of the items, n >= 3.
    x2: (n, d2) embeddings of the same items, row i of both being item i.

  Returns:
    Dict of floats keyed by `STRUCTURE_KEYS`: 'lca_pearson', 'lca_spearman', 'lca_kendall',
    'cophenetic_d1_to_p2' and 'cophenetic_d2_to_p1'.

  Raises:
    ValueError: if a set is not a real 2-D array with at least 3 rows and no NaN / inf row, or the row counts
      differ.

  References:
    Simai, Talmon, Shaham, arXiv 2506.18104, Sec. 4.4 and 5.
  """
  lca = structure.lca_similarity(x1, x2)
  cophenetic = structure.cophenetic_similarity(x1, x2)
  return {"lca_pearson": lca["pearson"], "lca_spearman": lca["spearman"], "lca_kendall": lca["kendall"],
          "cophenetic_d1_to_p2": cophenetic["d1_to_p2"], "cophenetic_d2_to_p1": cophenetic["d2_to_p1"]}


def compare_structure(x1, x2, *, max_items: int | None = None, seed: int = 0) -> dict:
  """`structure_scores` of two (N, ...) arrays of the same items, on at most `max_items` of them.

  Args:
    x1: (N, ...) first set (embeddings, or raw inputs such as images, which are flattened).
    x2: (N, ...) second set, row i being the same item as in `x1`.
    max_items: most items compared, drawn at random (`subsample`); None compares all.
    seed: seed of the item sample.

  Returns:
    `{"num_items": n, "dims": [F1, F2], "scores": structure_scores, "items": (n,) int indices of the sampled
    rows}`.

  Raises:
    ValueError: if either set is not numeric with one row per item, the row counts differ, the compared rows of
      a set are all identical (a collapsed embedding), or `structure_scores` rejects the sample (e.g. fewer than
      3 items, NaN or inf).
  """
  x1, x2 = as_rows(x1, "the first set"), as_rows(x2, "the second set")
  if len(x1) != len(x2):
    raise ValueError(f"the two sets must hold the same items: {len(x1)} rows against {len(x2)}.")
  items = subsample(len(x1), max_items, seed)
  for rows, name in ((x1, "the first set"), (x2, "the second set")):
    if np.all(rows[items] == rows[items][:1]):
      raise ValueError(f"{name} has no structure to compare: its {len(items)} compared rows are all identical "
                       "(a collapsed embedding?).")
  return {"num_items": int(len(items)), "dims": [int(x1.shape[1]), int(x2.shape[1])],
          "scores": structure_scores(x1[items], x2[items]), "items": items}


def evaluate_features(train_features, train_levels: Mapping[str, np.ndarray], test_features,
                      test_levels: Mapping[str, np.ndarray], *, test_inputs=None, max_items: int | None = 2000,
                      knn_k: int = 20, knn_temperature: float = 0.07, probe_epochs: int = 100,
                      seed: int = 0) -> dict:
  """Probes per level (train -> test), Rand index per level and structure vs the inputs (on test items).

  The kNN and linear probes use all given rows; the Rand index and the structure comparison use at most
  `max_items` test rows, drawn with `seed`.

  Args:
    train_features: (N, F) features of the train items.
    train_levels: {level: (N,) integer labels}.
    test_features: (M, F) features of the test items.
    test_levels: {level: (M,) integer labels}, the same levels as `train_levels`.
    test_inputs: optional (M, ...) raw inputs of the test items (e.g. images); when given, the sampled items'
      features are compared with them by `structure_scores`.
    max_items: most test items for the Rand index and the structure scores; None uses all.
    knn_k: neighbours of the kNN votes (capped at N).
    knn_temperature: temperature of the weighted kNN vote.
    probe_epochs: epochs of the linear probe; 0 skips it.
    seed: seed of the linear probe, the item sample and the clustering.

  Returns:
    `{"knn": {level: acc}, "knn_majority": {level: acc}, "rand_index": {level: ri}, "structure_to_inputs":
    scores or None, "num_items": n}`, plus `"linear": {level: acc}` and `"linear_learning_rate": {level: rate}`
    when the linear probe runs, and the sampled test rows as arrays: `items` (n,) and their `item_features`
    (n, F).

  Raises:
    ValueError: if the probes, the clustering or the structure comparison reject their inputs (mismatched
      levels or rows, malformed labels or features, fewer than 3 sampled items).
  """
  results = probes.probe_accuracies(train_features, train_levels, test_features, test_levels, knn_k=knn_k,
                                    knn_temperature=knn_temperature, probe_epochs=probe_epochs, seed=seed,
                                    learning_rates=True)
  results["knn_majority"] = probes.knn_accuracy_by_level(train_features, train_levels, test_features, test_levels,
                                                         k=min(knn_k, len(train_features)), weighted=False)
  items = subsample(len(test_features), max_items, seed)
  features = np.asarray(test_features)[items]
  results["rand_index"] = clustering.hierarchical_rand_index(
      features, {level: np.asarray(labels)[items] for level, labels in test_levels.items()}, seed=seed)
  results["structure_to_inputs"] = (None if test_inputs is None else
                                    structure_scores(as_rows(np.asarray(test_inputs)[items], "inputs"), features))
  results["num_items"] = int(len(items))
  # The sampled rows behind the Rand index and the structure numbers (arrays: not written to JSON).
  results["items"], results["item_features"] = items, features
  return results


def _split(dataset: str, split: str, data_dir, hierarchy_file, max_examples: int | None, seed: int):
  arrays = sources.load_numpy(dataset, split, data_dir)
  rows = subsample(len(arrays["image"]), max_examples, seed)
  levels = hierarchy.dataset_levels(dataset, arrays, hierarchy_file)
  return arrays["image"][rows], {level: labels[rows] for level, labels in levels.items()}


def evaluate_embedding(embed, dataset: str, *, data_dir: str | os.PathLike | None = None, split: str = "test",
                       hierarchy_file: str | os.PathLike | None = None, max_train: int | None = 10_000,
                       max_items: int | None = 2000, knn_k: int = 20, knn_temperature: float = 0.07,
                       probe_epochs: int = 100, seed: int = 0) -> dict:
  """`evaluate_features` of `embed(images) -> (N, F)` on `dataset`: train split fits the probes, `split` is scored.

  Any function of uint8 images works: a trained encoder, the same network at
  initialisation, or the flattened pixels themselves (the controls every
  comparison of methods carries).

  Args:
    embed: function of uint8 (N, S, S, 3) images returning (N, F) features.
    dataset: dataset name (`jax_ssl.data.catalog`).
    data_dir: where the dataset's files are; None for the default.
    split: split to score; the train split always fits the probes.
    hierarchy_file: optional label hierarchy JSON adding coarser levels (`hierarchy.read_hierarchy`).
    max_train: most train images used, drawn with `seed`; None uses all. The scored split is used whole.
    max_items: most scored items for the Rand index and the structure scores (`evaluate_features`).
    knn_k: neighbours of the kNN votes.
    knn_temperature: temperature of the weighted kNN vote.
    probe_epochs: epochs of the linear probe; 0 skips it.
    seed: seed of the train sample and of `evaluate_features`.

  Returns:
    `evaluate_features`' dict plus "dataset", "split", "num_train", "num_test", "levels" (list of level names)
    and "item_inputs", the images of the sampled items.
  """
  train_images, train_levels = _split(dataset, "train", data_dir, hierarchy_file, max_train, seed)
  test_images, test_levels = _split(dataset, split, data_dir, hierarchy_file, None, seed)
  results = evaluate_features(embed(train_images), train_levels, embed(test_images), test_levels,
                              test_inputs=test_images, max_items=max_items, knn_k=knn_k,
                              knn_temperature=knn_temperature, probe_epochs=probe_epochs, seed=seed)
  return {"dataset": dataset, "split": split, "num_train": int(len(train_images)), "num_test": int(len(test_images)),
          "levels": list(test_levels), **results, "item_inputs": test_images[results["items"]]}


def pixels(images) -> np.ndarray:
  """The input-pixel control: each image flattened to one float row.

  Args:
    images: (N, H, W, C) images (any numeric dtype).

  Returns:
    float64 (N, H * W * C) array.

  Raises:
    ValueError: if `images` has fewer than 2 dimensions or is not numeric.
  """
  return as_rows(images, "images")
