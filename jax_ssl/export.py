"""`python -m jax_ssl.export --workdir W [--step N] --to DIR`: a run's encoder for PyTorch, torchvision and timm.

Writes into DIR (new, or empty):

- `model.safetensors`: the backbone only, float32, under torchvision's ResNet
  names or timm's VisionTransformer names, in PyTorch's layouts
  (`jax_ssl.models.torch_layout`); `--with_projector` adds an MLP projector as
  `projector.*`;
- `config.json` in timm's form: `architecture`, `num_features`,
  `global_pool`, `model_args` (everything that rebuilds the network), and
  `pretrained_cfg` with the input size and the normalisation (`mean`, `std`)
  the encoder expects, plus a `jax_ssl` section (method, step, dataset, stem);
- `README.md`: a model card with the run's probe numbers (from `report.json`)
  and the lines that load the file.

The arrays are those `jax_ssl.load_encoder(W, step)` computes with (the target
network's for a method evaluated on it), so a PyTorch model built as the card
says and fed images already at the input size, normalised with `mean` and
`std`, returns `load_encoder`'s features. Exit codes: 0 written, 2 bad input
(one line: no checkpoint, a head that has no PyTorch form, DIR not empty).
"""

from __future__ import annotations

import json
import pathlib
import shutil
import sys
import tempfile

from jax_ssl import command

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
# timm names every registered ViT by size; model_args overrides everything the name implies.
TIMM_VIT_SIZES = ("tiny", "small", "base", "large")
RESNET_DEPTHS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3), "resnet50": (3, 4, 6, 3)}
CIFAR_STEM_LINES = ("model.conv1 = torch.nn.Conv2d(3, {width}, kernel_size=3, stride=1, padding=1, bias=False)",
                    "model.maxpool = torch.nn.Identity()")


def _vit_config(config) -> tuple[str, dict, str]:
  from jax_ssl.models import vit
  size = config.model.backbone.removeprefix("vit_")
  width, depth, heads = vit.VIT_SIZES[size]
  pool = "token" if config.model.pool == "cls" else "avg"
  # Ours normalises every token, then pools: timm does so with fc_norm off (its default for "avg" is on).
  model_args = {"img_size": config.views.size, "patch_size": config.model.patch_size, "embed_dim": width,
                "depth": depth, "num_heads": heads, "mlp_ratio": 4.0, "qkv_bias": True, "class_token": True,
                "global_pool": pool, "fc_norm": False}
  named = size if size in TIMM_VIT_SIZES else "tiny"
  return f"vit_{named}_patch16_224", model_args, pool


def _resnet_config(config) -> tuple[str, dict, str]:
  # timm's ResNet names are torchvision's; neither builds a stem narrower than 64 channels, which the card rebuilds.
  return config.model.backbone, {}, "avg"


def timm_config(config, num_features: int, step: int) -> dict:
  """config.json in timm's form for the backbone of `config`, with a `jax_ssl` section saying where it comes from.

  `timm.create_model(architecture, num_classes=0, **model_args)` builds a ViT of the export's shape.

  Args:
    config: the run's config.
    num_features: the backbone's feature width.
    step: the checkpoint's step.

  Returns:
    A JSON-ready dict: `architecture`, `num_classes` (0), `num_features`, `global_pool`, `model_args`,
    `pretrained_cfg` (`input_size`, `mean`, `std`, `interpolation`, `crop_pct`, `num_classes`) and `jax_ssl`
    (method, step, dataset, backbone, stem, width, whether torchvision has the same network, the whole config).
  """
  from jax_ssl.data import catalog
  spec = catalog.get_spec(config.data.name)
  backbone = config.model.backbone
  if backbone.startswith("vit"):
    architecture, model_args, pool = _vit_config(config)
  elif backbone.startswith("resnet"):
    architecture, model_args, pool = _resnet_config(config)
  else:
    architecture, model_args, pool = backbone, {"width": config.model.width}, "avg"
  size = config.views.size
  return {
      "architecture": architecture, "num_classes": 0, "num_features": num_features, "global_pool": pool,
      "model_args": model_args,
      "pretrained_cfg": {"input_size": [3, size, size], "mean": list(spec.mean), "std": list(spec.std),
                         "interpolation": "bilinear", "crop_pct": 1.0, "num_classes": 0},
      "jax_ssl": {"method": config.method.name, "step": step, "dataset": config.data.name, "backbone": backbone,
                  "stem": config.model.stem if backbone.startswith("resnet") else None,
                  "width": config.model.width if not backbone.startswith("vit") else None,
                  "torchvision": _has_torchvision_twin(config), "config": json.loads(config.to_json())},
  }


def _has_torchvision_twin(config) -> bool:
  return config.model.backbone.startswith("resnet") and config.model.width == 64


def _loading_lines(config, exported: dict) -> list[str]:
  """The Python lines of the card that build the PyTorch model and load the file with strict=True."""
  backbone = config.model.backbone
  load = f"state = safetensors.torch.load_file('{WEIGHTS_FILE}')"
  if backbone.startswith("vit"):
    args = ", ".join(f"{key}={value!r}" for key, value in exported["model_args"].items())
    return ["import safetensors.torch", "import timm", "", load,
            f"model = timm.create_model('{exported['architecture']}', num_classes=0, {args})",
            "model.load_state_dict(state, strict=True)",
            "# or: timm.create_model('local-dir:THIS_DIR', pretrained=True)"]
  if backbone.startswith("resnet"):
    width = config.model.width
    build = [f"model = torchvision.models.{backbone}(weights=None)"]
    if width != 64:  # torchvision's stages rebuilt at this width, with its own blocks (so its own names)
      block = "BasicBlock" if backbone in ("resnet18", "resnet34") else "Bottleneck"
      depths = RESNET_DEPTHS[backbone]
      if config.model.stem == "imagenet":
        build.append(f"model.conv1 = torch.nn.Conv2d(3, {width}, kernel_size=7, stride=2, padding=3, bias=False)")
      build += [f"model.inplanes = {width}", f"model.bn1 = torch.nn.BatchNorm2d({width})",
                *(f"model.layer{stage + 1} = model._make_layer(torchvision.models.resnet.{block}, "
                  f"{width * 2**stage}, {depth}{', stride=2' if stage else ''})" for stage, depth in enumerate(depths))]
    if config.model.stem == "cifar":  # a 3x3 stride-1 first conv and no max-pool
      build += [line.format(width=width) for line in CIFAR_STEM_LINES]
    return ["import safetensors.torch", "import torch", "import torchvision", "", load, *build,
            "model.fc = torch.nn.Identity()", "model.load_state_dict(state, strict=True)"]
  width = config.model.width
  return ["import safetensors.torch", "import torch", "", load, "",
          "class SmallCNN(torch.nn.Module):  # (N, 3, H, W) -> (N, 2 * width)",
          f"  def __init__(self, width={width}):",
          "    super().__init__()",
          "    plan = ((3, width, 1), (width, 2 * width, 2), (2 * width, 2 * width, 1))",
          "    for index, (cin, cout, stride) in enumerate(plan, 1):",
          "      setattr(self, f'conv{index}', torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False))",
          "      setattr(self, f'bn{index}', torch.nn.BatchNorm2d(cout))",
          "",
          "  def forward(self, x):",
          "    for index in (1, 2, 3):",
          "      x = torch.relu(getattr(self, f'bn{index}')(getattr(self, f'conv{index}')(x)))",
          "    return x.mean(dim=(2, 3))",
          "",
          "model = SmallCNN()",
          "model.load_state_dict(state, strict=True)"]


def model_card(config, exported: dict, report: dict | None, with_projector: bool) -> str:
  """README.md of an export: what was trained, how well, and how to load it.

  Args:
    config: the run's config.
    exported: the export's config.json dict (`timm_config`).
    report: the run's report.json, or None if the run wrote none.
    with_projector: whether the projector's arrays are in the file.

  Returns:
    The card's Markdown.
  """
  info = exported["jax_ssl"]
  pretrained = exported["pretrained_cfg"]
  lines = [f"# {config.method.name} {config.model.backbone} pretrained on {config.data.name} with jax_ssl", "",
           f"Self-supervised pretraining with `{config.method.name}` for {info['step']} steps on `{config.data.name}` "
           f"(global batch {config.train.global_batch_size}, {config.views.size} px views, seed {config.seed}); "
           f"the backbone `{config.model.backbone}`"
           + (f" ({config.model.stem} stem, width {config.model.width})" if info["stem"] else "")
           + (f" (width {config.model.width})" if config.model.backbone == "small_cnn" else "")
           + f", {exported['num_features']} features, {exported['global_pool']} pooling.", "",
           f"Inputs: RGB images of {pretrained['input_size'][1]} x {pretrained['input_size'][2]} px in [0, 1], "
           f"normalised with mean {pretrained['mean']} and std {pretrained['std']} (NCHW in PyTorch).", ""]
  if report:
    lines += ["Probes of the run's own report (test split; controls: the input pixels and the same network at "
              "initialisation):", "", "| probe | level | pixels | initialisation | trained |",
              "| --- | --- | --- | --- | --- |"]
    accuracy = report.get("accuracy", {})
    for probe, by_level in accuracy.get("trained", {}).items():
      for level, value in by_level.items():
        pixels = accuracy.get("pixels", {}).get(probe, {}).get(level)
        initial = accuracy.get("initial", {}).get(probe, {}).get(level)
        lines.append(f"| {probe} | {level} | {'n/a' if pixels is None else f'{pixels:.3f}'} | "
                     f"{'n/a' if initial is None else f'{initial:.3f}'} | {value:.3f} |")
    lines.append("")
  else:
    lines += ["The run wrote no report (`eval.report` was off, or it did not finish).", ""]
  if not _has_torchvision_twin(config) and not config.model.backbone.startswith("vit"):
    lines += ["This backbone has no torchvision counterpart of the same shape; the lines below rebuild it with "
              "the same names.", ""]
  lines += ["Load it (backbone only, strict):", "", "```python", *_loading_lines(config, exported), "```", ""]
  if with_projector:
    lines += ["The file also holds the projector as `projector.*`, a `torch.nn.Sequential` of (Linear, "
              "BatchNorm1d, activation) per hidden layer and a last Linear: load the backbone from the other keys.",
              ""]
  lines += ["The run's whole config is `jax_ssl.config` in `config.json`.", ""]
  return "\n".join(lines)


def export(workdir: str | pathlib.Path, to: str | pathlib.Path, *, step: int | None = None,
           with_projector: bool = False) -> pathlib.Path:
  """Write the encoder of the run in `workdir` into `to` (see the module docstring).

  Args:
    workdir: a training run's directory.
    to: the export directory: new, or empty.
    step: the checkpoint; None for the newest good one.
    with_projector: also write the projector (an MLP head) as `projector.*`.

  Returns:
    The export directory.

  Raises:
    ValueError: `to` is a file or not empty, or `with_projector` for a run whose head is not an MLP projector.
    FileNotFoundError: `workdir` has no run, or no readable checkpoint (at `step`).
  """
  import safetensors.numpy

  from jax_ssl import methods
  from jax_ssl.models import torch_layout
  from jax_ssl.train import encoder as encoder_lib
  from jax_ssl.train import heads
  from jax_ssl.train import report as report_lib

  to = pathlib.Path(to)
  if to.exists() and (not to.is_dir() or any(to.iterdir())):
    raise ValueError(f"--to {to} exists and is not an empty directory: give a new or empty one (nothing is "
                     "overwritten).")
  config = encoder_lib.run_config(workdir)
  method = methods.from_config(config.method)
  head = method.head
  if with_projector and not heads.head_of(method).exports_projector:
    raise ValueError(f"a {config.method.name} run has no MLP projector to export (its head is {head}'s: a decoder, "
                     "predictor or prototype head has no PyTorch form here); export the backbone alone, without "
                     "--with_projector.")
  encoder = encoder_lib.load_encoder(workdir, step)
  params, stats = encoder.arrays()
  tensors = torch_layout.backbone_tensors(config.model.backbone, params["backbone"], stats.get("backbone", {}),
                                          encoder.step)
  if with_projector:
    tensors.update(torch_layout.mlp_tensors("projector", params["projector"], stats.get("projector", {}),
                                            encoder.step))
  exported = timm_config(config, encoder.num_features, encoder.step)
  report_path = pathlib.Path(workdir) / report_lib.REPORT_JSON
  report = json.loads(report_path.read_text()) if report_path.exists() else None
  to.parent.mkdir(parents=True, exist_ok=True)
  # Written beside `to`, then moved into place: an interrupted export leaves no partial directory.
  partial = pathlib.Path(tempfile.mkdtemp(prefix=f".{to.name}.", dir=to.parent))
  try:
    safetensors.numpy.save_file(tensors, str(partial / WEIGHTS_FILE),
                                metadata={"format": "pt", "jax_ssl_step": str(encoder.step)})
    (partial / CONFIG_FILE).write_text(json.dumps(exported, indent=2) + "\n")
    (partial / CARD_FILE).write_text(model_card(config, exported, report, with_projector))
    if to.exists():
      to.rmdir()
    partial.rename(to)
  finally:
    shutil.rmtree(partial, ignore_errors=True)
  return to


def main(argv: list[str] | None = None) -> int:
  """Runs the export; bad input becomes one line on stderr and exit code 2.

  Args:
    argv: the arguments without the program name; None reads `sys.argv[1:]`.

  Returns:
    0 when written, 2 on bad input.
  """
  parser = command.OneLineParser(prog="python -m jax_ssl.export", description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True, help="the training run's workdir")
  parser.add_argument("--step", type=command.at_least(0), default=None, help="default: the newest good checkpoint")
  parser.add_argument("--to", required=True, help="the directory to write (new, or empty)")
  parser.add_argument("--with_projector", action="store_true", help="also write the MLP projector")
  args = parser.parse_args(argv)
  try:
    to = export(args.workdir, args.to, step=args.step, with_projector=args.with_projector)
  except (ValueError, FileNotFoundError) as error:
    print(f"jax_ssl.export: {command.one_line(error)}", file=sys.stderr)
    return command.EXIT_BAD_INPUT
  print(f"wrote {to / WEIGHTS_FILE}, {to / CONFIG_FILE} and {to / CARD_FILE}")
  return 0


if __name__ == "__main__":
  command.exit_on_ctrl_c("export stopped by Ctrl-C; nothing was written.")
  sys.exit(main())
