"""jax_ssl: self-supervised pretraining with explicit embedding regularizers.

  jax_ssl.losses        the losses of VICReg, SAG-VICReg, VISReg, LeJEPA, T-REG(S) and the baselines
  jax_ssl.ops           kernels under them (exact fast sort, MST, kNN, random slices)
  jax_ssl.data          datasets by name, grain pipeline, on-device augmentation
  jax_ssl.models        ResNet, ViT, projector heads (Flax NNX)
  jax_ssl.methods       methods by name: losses composed over views, by family
  jax_ssl.eval          probes and the label-free structure metrics (arrays in, numbers out)
  jax_ssl.protocols     a checkpoint's evaluation, the two-model generalization protocol
  python -m jax_ssl.main --config configs/<x>.py   pretraining runs
  python -m jax_ssl.evaluate {structure,checkpoint,generalization,dense,transfer} ...   evaluation
  python -m jax_ssl.finetune --workdir W   fine-tuning, beside the untrained network
  python -m jax_ssl.export --workdir W --to DIR   the backbone for PyTorch (torchvision / timm names)
"""


def load_encoder(workdir, step=None, output="backbone"):
  """A trained backbone from a run's workdir: `encoder(images) -> (N, F)` numpy features.

  Images are uint8 or [0, 1] float (N, H, W, C); they are resized to the
  training view size and normalised as in training. `step` picks a
  checkpoint (default: the newest readable one); `output="projector"` gives
  the projector's embeddings instead of the backbone's features, and
  `output="feature_map"` the backbone's last spatial features (N, h, w, F).

  Args:
    workdir: a training run's directory (str or `pathlib.Path`).
    step: the checkpoint step to load; None for the newest readable one.
    output: "backbone" (features), "projector" (the embeddings the loss saw) or "feature_map".

  Returns:
    A `jax_ssl.train.encoder.Encoder`, callable on image batches.

  Raises:
    FileNotFoundError: if `workdir` has no saved config or no readable checkpoint (or none at `step`).
    ValueError: if `output` is not one of those, or is "projector" for a run whose head gives no embedding
      (MAE, I-JEPA).
  """
  from jax_ssl.train.encoder import load_encoder as _load_encoder
  return _load_encoder(workdir, step, output)
