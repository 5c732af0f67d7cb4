"""Evaluation protocols built from the metrics: a structure comparison, a checkpoint report, two-model generalization.

Each protocol returns a JSON-ready dict; `jax_ssl.eval.cli` writes it with its
Markdown and figures. They are plain functions so that experiments can call
them without the command line.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
from collections.abc import Mapping

import numpy as np

from jax_ssl.eval import clustering
from jax_ssl.eval import hierarchy
from jax_ssl.eval import probes
from jax_ssl.eval import structure

STRUCTURE_KEYS = ("lca_pearson", "lca_spearman", "lca_kendall", "cophenetic_d1_to_p2", "cophenetic_d2_to_p1")


def as_rows(array, name: str) -> np.ndarray:
  """An (N, ...) array of items as (N, F) float64 rows: images and other raw inputs are flattened."""
  array = np.asarray(array)
  if array.ndim < 2:
    raise ValueError(f"{name} must hold one row per item, (N, F) or (N, H, W, C); got shape {array.shape}.")
  if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
    raise ValueError(f"{name} must be numeric, got dtype {array.dtype}.")
  return array.reshape(len(array), -1).astype(np.float64)


def subsample(num_items: int, max_items: int | None, seed: int) -> np.ndarray:
  """Sorted indices of at most `max_items` of `num_items` items, the same for every call with the same seed."""
  if max_items is None or num_items <= max_items:
    return np.arange(num_items)
  return np.sort(np.random.default_rng(seed).choice(num_items, max_items, replace=False))


def structure_scores(x1, x2) -> dict[str, float]:
  """The five label-free numbers comparing the hierarchy of two sets of the same items (SAG-VICReg, Sec. 5).

  LCA similarity (Pearson, Spearman, Kendall tau-b between the two Ward trees'
  leaf-to-leaf path lengths) and cophenetic similarity in both directions
  (merge heights of one tree against the chordal distances of the other set).
  """
  lca = structure.lca_similarity(x1, x2)
  cophenetic = structure.cophenetic_similarity(x1, x2)
  return {"lca_pearson": lca["pearson"], "lca_spearman": lca["spearman"], "lca_kendall": lca["kendall"],
          "cophenetic_d1_to_p2": cophenetic["d1_to_p2"], "cophenetic_d2_to_p1": cophenetic["d2_to_p1"]}


def compare_structure(x1, x2, *, max_items: int | None = None, seed: int = 0) -> dict:
  """`structure_scores` of two (N, ...) arrays of the same items, on at most `max_items` of them."""
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

  Returns `{"knn": {level: acc}, "knn_majority": {...}, "linear": {level: acc},
  "rand_index": {level: ri}, "structure_to_inputs": scores or None, "num_items": n}`,
  plus the sampled test rows as arrays: `items` and their `item_features`.
  """
  k = min(knn_k, len(train_features))
  results = {
      "knn": probes.knn_accuracy_by_level(train_features, train_levels, test_features, test_levels, k=k,
                                          temperature=knn_temperature),
      "knn_majority": probes.knn_accuracy_by_level(train_features, train_levels, test_features, test_levels, k=k,
                                                   weighted=False),
  }
  linear = probes.linear_probe_by_level(train_features, train_levels, test_features, test_levels,
                                        epochs=probe_epochs, seed=seed)
  results["linear"] = {level: result["accuracy"] for level, result in linear.items()}
  results["linear_learning_rate"] = {level: result["best_learning_rate"] for level, result in linear.items()}
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
  from jax_ssl.data import sources
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
  """
  train_images, train_levels = _split(dataset, "train", data_dir, hierarchy_file, max_train, seed)
  test_images, test_levels = _split(dataset, split, data_dir, hierarchy_file, None, seed)
  results = evaluate_features(embed(train_images), train_levels, embed(test_images), test_levels,
                              test_inputs=test_images, max_items=max_items, knn_k=knn_k,
                              knn_temperature=knn_temperature, probe_epochs=probe_epochs, seed=seed)
  return {"dataset": dataset, "split": split, "num_train": int(len(train_images)), "num_test": int(len(test_images)),
          "levels": list(test_levels), **results, "item_inputs": test_images[results["items"]]}


def pixels(images) -> np.ndarray:
  """The input-pixel control: each image flattened to one float row."""
  return as_rows(images, "images")


def evaluate_checkpoint(workdir: str | os.PathLike, dataset: str | None = None, *, step: int | None = None,
                        data_dir: str | os.PathLike | None = None, split: str = "test",
                        hierarchy_file: str | os.PathLike | None = None, max_train: int | None = 10_000,
                        max_items: int | None = 2000, probe_epochs: int = 100, seed: int = 0,
                        output: str = "backbone") -> dict:
  """Embed `dataset` with the encoder saved in `workdir` and evaluate it (see `evaluate_embedding`).

  The train split (at most `max_train` images) fits the probes; `split` is
  evaluated. `dataset` defaults to the one the run trained on. `output`:
  backbone features or projector embeddings (`jax_ssl.load_encoder`).
  """
  from jax_ssl.train.encoder import load_encoder
  encoder = load_encoder(workdir, step, output)
  dataset = dataset or encoder.config.data.name
  if data_dir is None and dataset == encoder.config.data.name and encoder.config.data.data_dir:
    data_dir = encoder.config.data.data_dir
  results = evaluate_embedding(encoder, dataset, data_dir=data_dir, split=split, hierarchy_file=hierarchy_file,
                               max_train=max_train, max_items=max_items, knn_k=encoder.config.eval.knn_k,
                               knn_temperature=encoder.config.eval.knn_temperature, probe_epochs=probe_epochs,
                               seed=seed)
  return {"protocol": "checkpoint", "workdir": str(workdir), "step": encoder.step, "method": encoder.config.method.name,
          "output": output, "backbone": encoder.config.model.backbone, **results}


def load_config_file(argument: str):
  """`path/to/config.py[:arg]` -> the ConfigDict its `get_config(arg)` returns (the trainer's --config syntax)."""
  path, _, arg = argument.partition(":")
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"config file {path} does not exist.")
  spec = importlib.util.spec_from_file_location(f"_jax_ssl_config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ValueError(f"config file {path} defines no get_config(arg=None).")
  return module.get_config(arg or None)


def half_configs(config):
  """Model A's and model B's configs: `config` trained on the first and on the second half of its classes.

  Model B starts from another initialisation (`seed + 1`): with a shared one,
  two models that barely moved from it would agree by construction, and the
  protocol would rank methods by how little they train.
  """
  import ml_collections

  from jax_ssl.train import config as config_lib
  halves = []
  for offset, which in enumerate(("first_half", "second_half")):
    half = ml_collections.ConfigDict(config.to_dict())
    config_lib.COMMON_VARIANTS[which](half)
    half.seed = config.seed + offset
    halves.append(half)
  return tuple(halves)


def generalization(config, workdir: str | os.PathLike, *, max_items: int | None = 2000, seed: int = 0,
                   output: str = "backbone") -> dict:
  """The two-model protocol of SAG-VICReg (Sec. 5.3): does a model trained on unseen classes agree in structure?

  Model A trains on the first half of the fine classes, model B on the second
  half (each resumes if its workdir already holds checkpoints). Both embed the
  test images of the first half's classes, and the LCA and cophenetic
  similarities of the two embeddings say how much of A's hierarchy over its
  own classes B recovers without having seen them. Each model's similarity to
  the input pixels is reported beside it, for scale, and so is the same
  comparison between the two networks at initialisation (`untrained_a_vs_b`:
  what two untrained encoders agree on by themselves). Model B starts from
  another initialisation than A (`half_configs`). The runs skip their
  end-of-training report (`python -m jax_ssl.eval checkpoint` gives one).
  `output` picks backbone features or projector embeddings.
  """
  import jax

  from jax_ssl.train import config as config_lib
  from jax_ssl.train import loop
  from jax_ssl.train.encoder import load_encoder

  workdir = pathlib.Path(workdir)
  config_a, config_b = half_configs(config)
  runs = {}
  for name, half in (("model_a", config_a), ("model_b", config_b)):
    # The protocol's numbers are its own; `checkpoint` gives either model the full report.
    half.eval.report = False
    config_lib.validate(half, num_devices=jax.device_count())
    runs[name] = workdir / name
    loop.train(half, runs[name])
  images, items = _first_half_test_images(config_a, max_items, seed)
  features = {name: load_encoder(path, output=output)(images) for name, path in runs.items()}
  controls = _control_scores(config_a, config_b, images, output)
  pixel_rows = pixels(images)
  return {
      "protocol": "generalization", "workdir": str(workdir), "method": config.method.name,
      "dataset": config_a.data.name, "classes_a": config_a.data.classes, "classes_b": config_b.data.classes,
      "num_items": int(len(items)),
      "a_vs_b": structure_scores(features["model_a"], features["model_b"]),
      "a_vs_pixels": structure_scores(pixel_rows, features["model_a"]),
      "b_vs_pixels": structure_scores(pixel_rows, features["model_b"]),
      "untrained_a_vs_b": controls["untrained"]["a_vs_b"],
      "untrained_a_vs_pixels": controls["untrained"]["a_vs_pixels"],
      "output": output,
      "items": items, "features": features,
  }


def _first_half_test_images(config_a, max_items: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """The test images of model A's classes that the protocol compares (at most `max_items`), and their indices."""
  from jax_ssl.data import sources
  from jax_ssl.train import config as config_lib
  classes_a = config_lib.parse_classes(config_a.data.classes)
  test = sources.load_numpy(config_a.data.name, "test", config_a.data.data_dir or None)
  seen_by_a = np.flatnonzero(np.isin(test["label"], classes_a))
  items = seen_by_a[subsample(len(seen_by_a), max_items, seed)]
  return test["image"][items], items


def _control_scores(config_a, config_b, images, output: str) -> dict:
  """The protocol's numbers with models A and B at initialisation, and with the pixels in both roles."""
  from jax_ssl.train.encoder import initial_encoder
  untrained = [initial_encoder(half, output)(images) for half in (config_a, config_b)]
  pixel_rows = pixels(images)
  pixels_to_pixels = structure_scores(pixel_rows, pixel_rows)
  return {
      "untrained": {"a_vs_b": structure_scores(*untrained), "a_vs_pixels": structure_scores(pixel_rows, untrained[0]),
                    "b_vs_pixels": structure_scores(pixel_rows, untrained[1])},
      "pixels": {"a_vs_b": pixels_to_pixels, "a_vs_pixels": pixels_to_pixels, "b_vs_pixels": pixels_to_pixels},
  }


def untrained_generalization(config, *, max_items: int | None = 2000, seed: int = 0,
                             output: str = "backbone") -> dict:
  """The two-model protocol's numbers for its controls, without training anything.

  `untrained`: models A and B at initialisation (the seeds `half_configs`
  gives them); `pixels`: the input pixels in both roles (A vs B is then the
  pixels' tree against the pixels themselves). Each also against the pixels.
  """
  config_a, config_b = half_configs(config)
  images, items = _first_half_test_images(config_a, max_items, seed)
  return {"num_items": int(len(items)), **_control_scores(config_a, config_b, images, output)}
