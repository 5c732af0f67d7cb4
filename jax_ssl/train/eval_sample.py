"""The labelled sample a run is evaluated on: the kNN monitor during training and the final probes.

The final probes compare the trained encoder with its two controls: the same
architecture at initialisation and the input pixels.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from jax_ssl.data import sources
from jax_ssl.eval import probes
from jax_ssl.eval import zero_shot
from jax_ssl.train import evaluation
from jax_ssl.train import heads
from jax_ssl.train import state as state_lib


def _flat_pixels(images: np.ndarray) -> np.ndarray:
  """The input-pixel control: each image as one float32 row of its pixel values."""
  return np.asarray(images, np.float32).reshape(len(images), -1)


class EvalSample:
  """The labelled images the kNN monitor and the final probes embed (a fixed sample per run).

  Read during training at the kNN monitor's steps (`knn`) and once after the
  last step (`final`), both on the loop's explicit sync points.
  """

  def __init__(self, run, test_source: sources.Source):
    """Draw the samples of the run's training split and of `test_source`.

    Args:
      run: the `loop.Run` being trained: its config, source, spec, method, embedder, mesh and state.
      test_source: the test split of the run's dataset.
    """
    self.run = run
    config = run.config
    self.train = evaluation.sample_split(run.source, config.eval.max_train_examples, seed=config.seed)
    self.test = evaluation.sample_split(test_source, config.eval.max_train_examples, seed=config.seed + 1)
    self.spectra = evaluation.SpectrumMonitor(run.step_config.definitions.eval_network, evaluation.lidar_view_specs(
        run.step_config.view_specs[:config.views.num_global], config.eval.lidar_views), run.mesh, seed=config.seed)

  def accuracies(self, params, batch_stats, probe_epochs: int | None = None) -> dict:
    """{"knn": {level: accuracy}, "linear": {level: accuracy} (if probe_epochs)} for an encoder's arrays.

    Args:
      params: the network's parameters.
      batch_stats: its BatchNorm statistics.
      probe_epochs: the linear probe's epochs; None for the kNN probe alone.

    Returns:
      The probes' accuracies per label level.
    """
    embed = self.run.embedder
    return self._probes(embed(params, batch_stats, self.train["image"]), embed(params, batch_stats, self.test["image"]),
                        probe_epochs)

  def knn(self, state: state_lib.TrainState) -> dict:
    """The monitor during training: kNN accuracy on the finest labels, RankMe and LiDAR (`SpectrumMonitor`).

    Args:
      state: the train state (its evaluated network is read).

    Returns:
      `{"knn_accuracy", "knn/rankme", "knn/lidar"}` as Python floats.
    """
    params, batch_stats = state_lib.evaluated_arrays(state, self.run.method)
    train = self.run.embedder(params, batch_stats, self.train["image"])
    accuracy = self._probes(train, self.run.embedder(params, batch_stats, self.test["image"]), None)["knn"]["label"]
    lidar_images = self.train["image"][:self.run.config.eval.lidar_samples]
    return {"knn_accuracy": float(accuracy), **self.spectra(params, batch_stats, train, lidar_images)}

  def final(self) -> dict:
    """kNN and linear probes per level: the trained encoder and its two controls.

    The controls are the same architecture at initialisation and the input
    pixels themselves (each image flattened): pretraining is worth what the
    trained encoder adds over the better of the two.
    """
    run, config, step_config = self.run, self.run.config, self.run.step_config
    initial = state_lib.initialize(lambda: state_lib.initial_state(
        config, run.method, run.spec.num_classes["label"], step_config.optimizer, step_config.probe_optimizer),
        run.shardings)
    epochs = config.eval.probe_epochs
    results = {"trained": self.accuracies(*state_lib.evaluated_arrays(run.state, run.method), epochs),
               "initial": self.accuracies(*state_lib.evaluated_arrays(initial, run.method), epochs),
               "pixels": self._probes(_flat_pixels(self.train["image"]), _flat_pixels(self.test["image"]), epochs)}
    if heads.head_of(run.method).has_text:  # zero-shot through the text tower; the pixels have no text side
      for name, state in (("trained", run.state), ("initial", initial)):
        results[name]["zero_shot"] = self.zero_shot(*state_lib.evaluated_arrays(state, run.method))
    return results

  @functools.cached_property
  def _joint_embedder(self) -> evaluation.Embedder:
    """The images' embeddings in CLIP's joint space: the projector's outputs."""
    return dataclasses.replace(self.run.embedder, output="projector")

  def zero_shot(self, params, batch_stats) -> dict:
    """CLIP's zero-shot accuracy per level on the test sample: the prompts are every caption of every class.

    Args:
      params: the network's parameters (with its text tower).
      batch_stats: its BatchNorm statistics.

    Returns:
      Accuracy per label level.
    """
    run = self.run
    captions, levels = run.spec.captions, run.spec.label_levels
    prompts = evaluation.embed_captions(run.step_config.definitions.eval_network, params, batch_stats, captions.tokens)
    images = self._joint_embedder(params, batch_stats, self.test["image"])
    parents = zero_shot.parents_from_labels({level: self.train[level] for level in levels}, captions.num_classes)
    return zero_shot.zero_shot_accuracies(images, prompts, {level: self.test[level] for level in levels}, parents,
                                          run.spec.num_classes)

  def _probes(self, train_features, test_features, probe_epochs: int | None) -> dict:
    run, config = self.run, self.run.config
    levels = run.spec.label_levels
    return probes.probe_accuracies(
        train_features, {level: self.train[level] for level in levels},
        test_features, {level: self.test[level] for level in levels},
        knn_k=config.eval.knn_k, knn_temperature=config.eval.knn_temperature, probe_epochs=probe_epochs,
        seed=config.seed)
