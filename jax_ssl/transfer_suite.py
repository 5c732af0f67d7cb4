"""The transfer and out-of-distribution suite of a trained encoder (`python -m jax_ssl.evaluate transfer`).

Above `jax_ssl.train` and `jax_ssl.eval`, like `jax_ssl.protocols`: each
dataset is embedded by the run's frozen encoder and by its two controls, the
same network at initialisation and the input pixels, and every label level
is scored by the three protocols of `jax_ssl.eval.transfer`: the DINOv2-style
logistic-regression probe, kNN at several k, and few-shot ridge regression.

An out-of-distribution set (`DatasetSpec.fit_on`, e.g. `shapes_ood`) is
scored with probes fit on its in-domain dataset's train split, as the
papers' OOD tables are, and its linear-probe accuracy is broken down by its
groups (each shift of `shapes_ood`).
"""

from __future__ import annotations

import os

import jax
import numpy as np

from jax_ssl.data import catalog
from jax_ssl.data import sources
from jax_ssl.eval import transfer
from jax_ssl.train import evaluation
from jax_ssl.train.encoder import initial_encoder
from jax_ssl.train.encoder import load_encoder

BUNDLED_TRANSFER_SETS = ("digits", "shapes", "shapes_ood")
PIXEL_SIDE = 32  # the pixel control's images are at most this side (a 224 px image is 150k features)
ENCODERS = ("trained", "initial", "pixels")


def protocol(*, max_train: int | None, max_test: int | None, seed: int, c_grid=transfer.LOGISTIC_C_GRID,
             knn_ks=transfer.KNN_KS, shots=transfer.FEW_SHOTS, draws: int = transfer.FEW_SHOT_DRAWS) -> dict:
  """The suite's settings, as written into its JSON and its tables' header.

  Args:
    max_train: most train images per dataset (None: all).
    max_test: most test images per dataset (None: all).
    seed: seed of the samples, the hold-out split and the few-shot draws.
    c_grid: the logistic probe's C grid.
    knn_ks: kNN's neighbour counts.
    shots: few-shot's rows per class.
    draws: few-shot's draws per shot count.

  Returns:
    A JSON-ready dict.
  """
  return {
      "linear": {"method": "L2 multinomial logistic regression (scikit-learn, L-BFGS) on standardised features; "
                           "C chosen on a stratified 10% hold-out of the train split, then refit on all of it",
                 "c_grid": [float(c) for c in c_grid], "held_out_fraction": 0.1},
      "knn": {"method": "cosine, each of the k nearest train rows votes exp(cos / T)", "ks": [int(k) for k in knn_ks],
              "temperature": transfer.KNN_TEMPERATURE},
      "few_shot": {"method": "ridge regression onto {-1, +1} codes of features standardised on the drawn rows, "
                             "a bias feature of 100", "shots": [int(s) for s in shots], "draws": int(draws),
                   "l2": transfer.FEW_SHOT_L2},
      "pixels": f"each image at most {PIXEL_SIDE} px (antialiased bilinear), flattened, in [0, 1]",
      "max_train": max_train, "max_test": max_test, "seed": seed,
  }


def _pixel_rows(images: np.ndarray) -> np.ndarray:
  images = np.asarray(images, np.float32) / 255.0
  if images.shape[1] > PIXEL_SIDE:
    images = np.asarray(jax.image.resize(images, (len(images), PIXEL_SIDE, PIXEL_SIDE, images.shape[-1]), "linear",
                                         antialias=True))
  return images.reshape(len(images), -1)


def _sample(name: str, split: str, data_dir, max_images: int | None, seed: int, image_size: int) -> dict:
  spec = catalog.get_spec(name)
  source = sources.open_source(name, split, data_dir, image_size=image_size if spec.variable_size else None)
  return evaluation.sample_split(source, len(source) if max_images is None else max_images, seed)


def _scores(train: np.ndarray, test: np.ndarray, train_labels, test_labels, settings: dict, seed: int) -> dict:
  linear = transfer.logistic_probe(train, train_labels, test, test_labels, c_grid=settings["linear"]["c_grid"],
                                   seed=seed)
  return {"linear": linear,
          "knn": transfer.knn_accuracies(train, train_labels, test, test_labels, ks=settings["knn"]["ks"]),
          "few_shot": transfer.few_shot_accuracies(train, train_labels, test, test_labels,
                                                   shots=settings["few_shot"]["shots"],
                                                   draws=settings["few_shot"]["draws"], seed=seed)}


def evaluate_transfer(workdir: str | os.PathLike, datasets: list[str] | None = None, *, step: int | None = None,
                      data_dir: str | os.PathLike | None = None, max_train: int | None = 5000,
                      max_test: int | None = 2000, seed: int = 0, output: str = "backbone", **settings) -> dict:
  """The run's encoder and its controls on each dataset, by the three transfer protocols, per label level.

  Args:
    workdir: the training run's directory.
    datasets: dataset names; None for the bundled ones (`BUNDLED_TRANSFER_SETS`). An out-of-distribution
      set is fit on its `fit_on` dataset's train split.
    step: the checkpoint; None for the newest good one.
    data_dir: where the datasets are prepared; None for the run's `data.data_dir` on the run's dataset and
      each dataset's default location otherwise.
    max_train: most train images per dataset, drawn with `seed`.
    max_test: most test images per dataset, drawn with `seed + 1`.
    seed: seed of the samples, the probes' hold-out and the few-shot draws.
    output: "backbone" or "projector" features.
    **settings: `protocol`'s keyword arguments (`c_grid`, `knn_ks`, `shots`, `draws`).

  Returns:
    Dict with "protocol" ("transfer"), "settings" (`protocol`), "workdir", "step", "method", "backbone",
    and "datasets": {name: {"fit_on", "num_train", "num_test", "levels", "scores": {encoder: {level:
    {"linear": {"accuracy", "c", "held_out"}, "knn": {k: accuracy}, "few_shot": {shots: {"mean", "std",
    "values"}}}}}, and for a set with groups "groups": {encoder: {level: {group key: {name: accuracy}}}}}}.

  Raises:
    FileNotFoundError: no run or checkpoint in `workdir`, or a dataset that is not prepared.
    ValueError: an unknown dataset, or one without class labels.
  """
  chosen = list(datasets or BUNDLED_TRANSFER_SETS)
  for name in chosen:  # every name is checked before anything is embedded
    if "label" not in catalog.get_spec(name).label_keys:
      raise ValueError(f"dataset {name!r} has no class labels to probe; choose labelled datasets.")
  encoder = load_encoder(workdir, step, output)
  config = encoder.config
  encoders = {"trained": encoder, "initial": initial_encoder(config, output), "pixels": _pixel_rows}
  settings = protocol(max_train=max_train, max_test=max_test, seed=seed, **settings)
  results, embedded = {}, {}

  def sample_and_embed(name: str, split: str, sample_seed: int, max_images: int | None) -> tuple[dict, dict]:
    """The sample and its features for each encoder, once per (dataset, split): `shapes` and `shapes_ood`
    share `shapes`' train split."""
    if (name, split) not in embedded:
      where = data_dir
      if where is None and config.data.name == name:
        where = config.data.data_dir or None
      sample = _sample(name, split, where, max_images, sample_seed, encoder.image_size)
      embedded[name, split] = sample, {which: embed(sample["image"]) for which, embed in encoders.items()}
    return embedded[name, split]

  for name in chosen:
    spec = catalog.get_spec(name)
    fit_spec = catalog.get_spec(spec.fit_on or name)
    train, train_features = sample_and_embed(fit_spec.name, "train", seed, max_train)
    test, test_features = sample_and_embed(name, "test", seed + 1, max_test)
    levels = [level for level in spec.label_levels if level in fit_spec.label_keys]
    features = {which: (train_features[which], test_features[which]) for which in encoders}
    scores_, groups = {}, {}
    for which, (train_features, test_features) in features.items():
      scores_[which] = {level: _scores(train_features, test_features, train[level], test[level], settings, seed)
                        for level in levels}
      if spec.group_keys:
        groups[which] = {level: transfer.group_accuracies(
            spec, test, scores_[which][level]["linear"]["predictions"], test[level]) for level in levels}
    for by_level in scores_.values():
      for level_scores in by_level.values():
        level_scores["linear"].pop("predictions")
    results[name] = {"fit_on": fit_spec.name, "num_train": int(len(train["image"])),
                     "num_test": int(len(test["image"])), "levels": levels, "scores": scores_}
    if groups:
      results[name]["groups"] = groups
  return {"protocol": "transfer", "settings": settings, "workdir": str(workdir), "step": encoder.step,
          "method": config.method.name, "backbone": config.model.backbone, "output": output, "datasets": results}
