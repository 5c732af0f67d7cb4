"""Protocols that train or load encoders, above `jax_ssl.train` and `jax_ssl.eval`.

`evaluate_checkpoint` scores the encoder a training run saved, and
`evaluate_dense` its feature maps by linear segmentation; `generalization`
is SAG-VICReg's two-model protocol (train on each half of the classes,
compare the two models' hierarchies on the first half's test images), and
`untrained_generalization` its controls. Each returns a JSON-ready dict
(plus arrays); `python -m jax_ssl.evaluate` writes them with their Markdown
and figures. `load_config_file` reads a config file as the trainer's
`--config` does.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib

import jax
import ml_collections
import numpy as np

from jax_ssl.data import catalog
from jax_ssl.data import sources
from jax_ssl.eval import centroids
from jax_ssl.eval import dense
from jax_ssl.eval import scores
from jax_ssl.eval import zero_shot
from jax_ssl.train import config as config_lib
from jax_ssl.train import loop
from jax_ssl.train.encoder import initial_encoder
from jax_ssl.train.encoder import load_encoder


def evaluate_checkpoint(workdir: str | os.PathLike, dataset: str | None = None, *, step: int | None = None,
                        data_dir: str | os.PathLike | None = None, split: str = "test",
                        hierarchy_file: str | os.PathLike | None = None, max_train: int | None = 10_000,
                        max_items: int | None = 2000, probe_epochs: int = 100, seed: int = 0,
                        output: str = "backbone") -> dict:
  """Embed `dataset` with the encoder saved in `workdir` and evaluate it (see `evaluate_embedding`).

  The train split (at most `max_train` images) fits the probes; `split` is
  evaluated. `dataset` defaults to the one the run trained on. `output`:
  backbone features or projector embeddings (`jax_ssl.load_encoder`).
  The kNN settings are the run's own (`config.eval.knn_k`, `config.eval.knn_temperature`).

  Args:
    workdir: the training run's directory.
    dataset: dataset to evaluate on; None for the run's.
    step: checkpoint to load; None for the newest readable one.
    data_dir: where the dataset's files are; None uses the run's `data.data_dir` when evaluating on its dataset.
    split: split to score.
    hierarchy_file: optional label hierarchy JSON adding coarser levels.
    max_train: most train images that fit the probes; None uses all.
    max_items: most scored items for the Rand index and the structure scores.
    probe_epochs: epochs of the linear probe; 0 skips it.
    seed: seed of the subsampling, the clustering and the linear probe.
    output: `"backbone"` or `"projector"`.

  Returns:
    `scores.evaluate_embedding`'s dict plus "protocol" ("checkpoint"), "workdir", "step" (the checkpoint's),
    "method", "output" and "backbone"; for a CLIP run on a dataset with captions, "zero_shot" too
    (`clip_zero_shot`).

  Raises:
    FileNotFoundError: if `workdir` has no saved config or readable checkpoint (`load_encoder`).
    ValueError: if `output` is invalid or the evaluation rejects its inputs.
  """
  encoder = load_encoder(workdir, step, output)
  dataset = dataset or encoder.config.data.name
  if data_dir is None and dataset == encoder.config.data.name and encoder.config.data.data_dir:
    data_dir = encoder.config.data.data_dir
  results = scores.evaluate_embedding(encoder, dataset, data_dir=data_dir, split=split, hierarchy_file=hierarchy_file,
                                      max_train=max_train, max_items=max_items, knn_k=encoder.config.eval.knn_k,
                                      knn_temperature=encoder.config.eval.knn_temperature, probe_epochs=probe_epochs,
                                      seed=seed)
  results = {"protocol": "checkpoint", "workdir": str(workdir), "step": encoder.step,
             "method": encoder.config.method.name, "output": output, "backbone": encoder.config.model.backbone,
             **results}
  captions = catalog.get_spec(dataset).captions
  if encoder.config.method.name.removesuffix("+tregs") == "clip" and captions is not None:
    results["zero_shot"] = clip_zero_shot(load_encoder(workdir, encoder.step, "projector"), dataset, data_dir, split)
  return results


def clip_zero_shot(joint_encoder, dataset: str, data_dir: str | os.PathLike | None = None,
                   split: str = "test") -> dict[str, float]:
  """A CLIP encoder's zero-shot accuracy per label level of `dataset`, its classes' captions as the prompts.

  Args:
    joint_encoder: a CLIP run's encoder made with `output="projector"` (images in the joint space).
    dataset: a dataset with captions (`DatasetSpec.captions`).
    data_dir: where the dataset's files are; None for the default.
    split: the split scored; the train split's labels give the hierarchy.

  Returns:
    level -> accuracy (`eval.zero_shot.zero_shot_accuracies`).

  Raises:
    ValueError: the dataset has no captions, or the encoder has no text tower.
  """
  spec = catalog.get_spec(dataset)
  if spec.captions is None:
    raise ValueError(f"dataset {dataset!r} has no captions to prompt with.")
  prompts = joint_encoder.embed_captions(spec.captions.tokens)
  train, scored = (sources.load_numpy(dataset, name, data_dir) for name in ("train", split))
  levels = spec.label_levels
  parents = zero_shot.parents_from_labels({level: train[level] for level in levels}, spec.captions.num_classes)
  return zero_shot.zero_shot_accuracies(joint_encoder(scored["image"]), prompts,
                                        {level: scored[level] for level in levels}, parents, spec.num_classes)


def evaluate_dense(workdir: str | os.PathLike, dataset: str | None = None, *, step: int | None = None,
                   data_dir: str | os.PathLike | None = None, max_train: int | None = 2000, epochs: int = 30,
                   label_size: int = 64, num_pca_images: int = 8, seed: int = 0) -> dict:
  """The dense probe of a trained encoder: linear segmentation per label level, and PCA feature maps.

  The frozen feature maps (`load_encoder(output="feature_map")`: ResNet's last
  stage, a ViT's patch tokens) of at most `max_train` train images fit a
  linear head, scored on the test split by mean IoU (an out-of-distribution
  set such as `shapes_ood` is scored with heads fit on its `fit_on` set). On a
  dataset with object masks (`shapes`), one head per level of the label
  hierarchy, whose per-pixel classes are the background (0) and the image's
  class + 1 on its mask; on one with class maps (`ade20k`), one head over its classes, the
  unlabelled class 0 ignored. The same protocol runs on the controls: the
  encoder at initialisation and the input pixels (a linear head on each
  pixel's colour).

  Args:
    workdir: the training run's directory.
    dataset: a dataset with masks or class maps (`DatasetSpec.mask_key`, `segmentation_key`); None for
      the run's.
    step: checkpoint to load; None for the newest readable one.
    data_dir: where the dataset's files are; None for the run's `data.data_dir` (on the run's dataset).
    max_train: most train images that fit the heads; None uses all.
    epochs: passes of each head over its train images.
    label_size: the labels are scored at most at this side (nearest-neighbour subsampling of larger maps).
    num_pca_images: test images shown in the PCA figure (their maps are returned under "pca").
    seed: seed of the subsampling and the heads.

  Returns:
    Dict with "protocol" ("dense"), "workdir", "step", "method", "backbone", "dataset", "num_train",
    "num_test", "feature_grid" ([h, w]), "levels" ({level: {encoder: {"miou", "pixel_accuracy", "iou"}}}
    for the encoders "trained", "initial" and "pixels"), and the arrays "pca_images" (uint8 test images)
    and "pca" ({"trained", "initial"}: their `dense.pca_rgb` maps).

  Raises:
    FileNotFoundError: if `workdir` has no saved config or readable checkpoint, or the dataset is missing.
    ValueError: if the dataset has neither masks nor class maps.

  References:
    Wu et al. (VISReg), 2026: linear segmentation and PCA feature maps (Figures 1, 8, 9).
  """
  encoder = load_encoder(workdir, step, "feature_map")
  config = encoder.config
  spec = catalog.get_spec(dataset or config.data.name)
  if not (spec.mask_key or spec.segmentation_key):
    dense_sets = ", ".join(name for name, other in catalog.CATALOG.items() if other.mask_key or other.segmentation_key)
    raise ValueError(f"dataset {spec.name!r} has no segmentation masks; the dense probe needs one that has "
                     f"({dense_sets}).")
  if data_dir is None and spec.name == config.data.name:
    data_dir = config.data.data_dir or None
  train = sources.load_numpy(spec.fit_on or spec.name, "train", data_dir)  # an OOD set: its in-domain set's
  test = sources.load_numpy(spec.name, "test", data_dir)
  rows = scores.subsample(len(train["image"]), max_train, seed)
  stride = max(1, spec.image_size // label_size)  # nearest-neighbour subsampling of the label maps
  if spec.segmentation_key:  # one level: the class maps, unlabelled pixels ignored
    targets = {"segmentation": (train["segmentation"][rows], test["segmentation"])}
    num_classes, ignore_label = {"segmentation": spec.num_classes["segmentation"]}, 0
  else:
    targets = {level: (dense.dense_labels(train["mask"][rows], train[level][rows]),
                       dense.dense_labels(test["mask"], test[level])) for level in spec.label_levels}
    num_classes, ignore_label = {level: spec.num_classes[level] + 1 for level in spec.label_levels}, None
  encoders = {"trained": encoder, "initial": initial_encoder(config, "feature_map"),
              # The pixels' control: each pixel's colour in [0, 1], on the label grid.
              "pixels": lambda images: np.asarray(images[:, ::stride, ::stride], np.float32) / 255.0}
  maps = {name: (embed(train["image"][rows]), embed(test["image"])) for name, embed in encoders.items()}
  levels = {}
  for level, (train_targets, test_targets) in targets.items():
    train_targets, test_targets = train_targets[:, ::stride, ::stride], test_targets[:, ::stride, ::stride]
    levels[level] = {name: dense.linear_segmentation(train_maps, train_targets, test_maps, test_targets,
                                                     num_classes[level], ignore_label=ignore_label, epochs=epochs,
                                                     seed=seed)
                     for name, (train_maps, test_maps) in maps.items()}
  shown = slice(0, num_pca_images)
  return {"protocol": "dense", "workdir": str(workdir), "step": encoder.step, "method": config.method.name,
          "backbone": config.model.backbone, "dataset": spec.name, "num_train": int(len(rows)),
          "num_test": int(len(test["image"])), "feature_grid": list(maps["trained"][1].shape[1:3]),
          "levels": levels, "pca_images": test["image"][shown],
          "pca": {name: dense.pca_rgb(maps[name][1][shown]) for name in ("trained", "initial")}}


def load_config_file(argument: str):
  """`path/to/config.py[:arg]` -> the ConfigDict its `get_config(arg)` returns (the trainer's --config syntax).

  Args:
    argument: a config file path, optionally followed by `:` and the argument for its `get_config`.

  Returns:
    What `get_config(arg)` returns, `arg` being None when no argument (or an empty one) is given.

  Raises:
    FileNotFoundError: if the config file does not exist.
    ValueError: if the file defines no `get_config`.
  """
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


MIN_CENTROIDS = 3  # the UMAP layout of the class centroids needs three points


def _check_labelled(config) -> None:
  """ValueError unless the config's dataset has class labels, which the protocol splits in halves."""
  spec = catalog.get_spec(config.data.name)
  if "label" not in spec.num_classes:
    raise ValueError(f"the two-model protocol splits a dataset's classes in two halves, and data.name "
                     f"{spec.name!r} has no class labels (only {', '.join(spec.num_classes)}): use a labelled "
                     "dataset.")


def half_configs(config):
  """Model A's and model B's configs: `config` trained on the first and on the second half of its classes.

  Model B starts from another initialisation (`seed + 1`): with a shared one,
  two models that barely moved from it would agree by construction, and the
  protocol would rank methods by how little they train.

  Args:
    config: the run config (`ml_collections.ConfigDict`); it is not modified.

  Returns:
    `(config_a, config_b)`: copies of `config` with `data.classes` set to the first / second half of the fine
    classes (`config.restrict_to_half`) and `seed` to `config.seed` / `config.seed + 1`.

  Raises:
    ValueError: if `config.data.name` is not a known dataset.
  """
  halves = []
  for which in (0, 1):
    half = ml_collections.ConfigDict(config.to_dict())
    config_lib.restrict_to_half(half, which)
    half.seed = config.seed + which
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
  end-of-training report (`python -m jax_ssl.evaluate checkpoint` gives one).
  `output` picks backbone features or projector embeddings.

  Args:
    config: the run config (`ml_collections.ConfigDict`) both halves derive from.
    workdir: directory of the two runs, `workdir/model_a` and `workdir/model_b`.
    max_items: most test images of A's classes compared, drawn with `seed`; None compares all.
    seed: seed of the image sample.
    output: `"backbone"` or `"projector"`.

  Returns:
    Dict with "protocol" ("generalization"), "workdir", "method", "dataset", "classes_a", "classes_b",
    "num_items", the `scores.structure_scores` dicts "a_vs_b", "a_vs_pixels", "b_vs_pixels", "untrained_a_vs_b"
    and "untrained_a_vs_pixels", "output", "items" (int indices into the test split), "features"
    ({"model_a", "model_b"}: (num_items, F) arrays) and "centroids" (`centroid_views` of the pixels and
    both models: SAG-VICReg's Figure 6).

  Raises:
    ValueError: if a half's config is invalid (`config.validate`'s `ConfigError`), the dataset is unknown or has
      no class labels, or the compared items cover fewer than 3 classes (all checked before training).
    loop.TrainingStoppedError: a half's training was preempted or interrupted (its checkpoint is kept).

  References:
    Simai, Talmon, Shaham, arXiv 2506.18104, Sec. 5.3.
  """
  workdir = pathlib.Path(workdir)
  _check_labelled(config)
  config_a, config_b = half_configs(config)
  # Everything that can be refused is, before either model trains (minutes to hours).
  for half in (config_a, config_b):
    # The protocol's numbers are its own; `checkpoint` gives either model the full report.
    half.eval.report = False
    config_lib.validate(half, num_devices=jax.device_count())
  images, items = _first_half_test_images(config_a, max_items, seed)
  compared_classes = np.unique(sources.load_numpy(config_a.data.name, "test", config_a.data.data_dir or None)
                               ["label"][items])
  if len(compared_classes) < MIN_CENTROIDS:
    raise ValueError(f"max_items = {max_items} draws test images of {len(compared_classes)} of model A's classes; "
                     f"the class-centroid layout needs at least {MIN_CENTROIDS}: compare more items.")
  runs = {}
  for name, half in (("model_a", config_a), ("model_b", config_b)):
    runs[name] = workdir / name
    # A half stopped by a preemption must not be compared as if trained, nor the next half started.
    loop.require_completed(loop.train(half, runs[name]))
  features = {name: load_encoder(path, output=output)(images) for name, path in runs.items()}
  controls = _control_scores(config_a, config_b, images, output)
  pixel_rows = scores.pixels(images)
  views = centroid_views(config_a, items, {"pixels": pixel_rows, **features}, seed)
  return {
      "protocol": "generalization", "workdir": str(workdir), "method": config.method.name,
      "dataset": config_a.data.name, "classes_a": config_a.data.classes, "classes_b": config_b.data.classes,
      "num_items": int(len(items)),
      "a_vs_b": scores.structure_scores(features["model_a"], features["model_b"]),
      "a_vs_pixels": scores.structure_scores(pixel_rows, features["model_a"]),
      "b_vs_pixels": scores.structure_scores(pixel_rows, features["model_b"]),
      "untrained_a_vs_b": controls["untrained"]["a_vs_b"],
      "untrained_a_vs_pixels": controls["untrained"]["a_vs_pixels"],
      "output": output,
      "items": items, "features": features,
      "centroids": views,
  }


def centroid_views(config_a, items: np.ndarray, rows_by_name: dict[str, np.ndarray], seed: int) -> dict:
  """SAG-VICReg's Figure 6 for the protocol: each encoder's class centroids of the compared test images, in 2-D.

  Args:
    config_a: model A's config (dataset, data_dir).
    items: indices into the test split of the compared images.
    rows_by_name: {encoder name: (len(items), F) features}, e.g. the pixels and the two models.
    seed: seed of the UMAP layouts.

  Returns:
    `{"classes": [C ints], "names": [C names], "group_level": the coarsest label level,
    "groups": [C ints, each class's group at that level], "umap": {name: [[x, y] per class]},
    "points": {name: (C, F) centroids}}` (the centroids as arrays: not part of the JSON).
  """
  spec = catalog.get_spec(config_a.data.name)
  test = sources.load_numpy(config_a.data.name, "test", config_a.data.data_dir or None)
  group_level = spec.label_levels[-1]
  labels, group_labels = test["label"][items], test[group_level][items]
  points = {}
  for name, rows in rows_by_name.items():
    classes, points[name] = centroids.class_centroids(rows, labels)
  groups = [int(group_labels[np.flatnonzero(labels == label)[0]]) for label in classes]
  names = [spec.class_names[label] if spec.class_names else str(label) for label in classes]
  layouts = {name: centroids.umap_layout(rows, seed=seed).tolist() for name, rows in points.items()}
  return {"classes": classes.tolist(), "names": names, "group_level": group_level, "groups": groups,
          "umap": layouts, "points": points}


def _first_half_test_images(config_a, max_items: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """The test images of model A's classes that the protocol compares (at most `max_items`), and their indices."""
  classes_a = catalog.parse_classes(config_a.data.classes)
  test = sources.load_numpy(config_a.data.name, "test", config_a.data.data_dir or None)
  seen_by_a = np.flatnonzero(np.isin(test["label"], classes_a))
  items = seen_by_a[scores.subsample(len(seen_by_a), max_items, seed)]
  return test["image"][items], items


def _control_scores(config_a, config_b, images, output: str) -> dict:
  """The protocol's numbers with models A and B at initialisation, and with the pixels in both roles."""
  untrained = [initial_encoder(half, output)(images) for half in (config_a, config_b)]
  pixel_rows = scores.pixels(images)
  pixels_to_pixels = scores.structure_scores(pixel_rows, pixel_rows)
  return {
      "untrained": {"a_vs_b": scores.structure_scores(*untrained),
                    "a_vs_pixels": scores.structure_scores(pixel_rows, untrained[0]),
                    "b_vs_pixels": scores.structure_scores(pixel_rows, untrained[1])},
      "pixels": {"a_vs_b": pixels_to_pixels, "a_vs_pixels": pixels_to_pixels, "b_vs_pixels": pixels_to_pixels},
  }


def untrained_generalization(config, *, max_items: int | None = 2000, seed: int = 0,
                             output: str = "backbone") -> dict:
  """The two-model protocol's numbers for its controls, without training anything.

  `untrained`: models A and B at initialisation (the seeds `half_configs`
  gives them); `pixels`: the input pixels in both roles (A vs B is then the
  pixels' tree against the pixels themselves). Each also against the pixels.

  Args:
    config: the run config (`ml_collections.ConfigDict`) the two halves derive from.
    max_items: most test images of A's classes compared, drawn with `seed`; None compares all.
    seed: seed of the image sample.
    output: `"backbone"` or `"projector"`.

  Returns:
    `{"num_items": n, "untrained": {...}, "pixels": {...}}`, each inner dict mapping "a_vs_b", "a_vs_pixels" and
    "b_vs_pixels" to `scores.structure_scores` dicts.

  Raises:
    ValueError: if `config.data.name` is not a known dataset.

  References:
    Simai, Talmon, Shaham, arXiv 2506.18104, Sec. 5.3.
  """
  _check_labelled(config)
  config_a, config_b = half_configs(config)
  images, items = _first_half_test_images(config_a, max_items, seed)
  return {"num_items": int(len(items)), **_control_scores(config_a, config_b, images, output)}
