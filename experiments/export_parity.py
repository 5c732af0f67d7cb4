"""An exported encoder in the real torchvision and timm: the largest feature difference from load_encoder.

  python -m experiments.export_parity [--data_dir DIR]   # needs torch, torchvision and timm beside jax_ssl

For each backbone below, a one-step `:smoke` run of VICReg on the bundled
`digits` (its BatchNorm statistics moved once from their initial values) is
exported with `python -m jax_ssl.export`; the Python block of the export's
own model card (README.md) is executed as a user would paste it, building the
torchvision / timm model and loading the file with `strict=True`; for ViTs,
`timm.create_model("local-dir:DIR", pretrained=True)` is loaded too. The
PyTorch model in eval mode embeds random images already at the input size,
normalised with the export's `mean` / `std`, and `load_encoder` embeds the
same uint8 images. Writes experiments/results/export_parity.json: per
backbone, the largest absolute difference and that difference relative to the
largest feature magnitude.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import re
import tempfile
import time

import numpy as np

from experiments import _common

# (name, model overrides, view size): every stem, block and pool the export maps, at sizes a CPU trains in seconds.
CASES = (
    ("resnet18, CIFAR stem", {"backbone": "resnet18", "stem": "cifar", "width": 64}, 32),
    ("resnet18, ImageNet stem", {"backbone": "resnet18", "stem": "imagenet", "width": 64}, 64),
    ("resnet50, ImageNet stem", {"backbone": "resnet50", "stem": "imagenet", "width": 64}, 64),
    ("resnet18 width 8, CIFAR stem", {"backbone": "resnet18", "stem": "cifar", "width": 8}, 32),
    ("resnet50 width 16, ImageNet stem", {"backbone": "resnet50", "stem": "imagenet", "width": 16}, 64),
    ("small_cnn width 8", {"backbone": "small_cnn", "width": 8}, 16),
    ("vit_tiny/4, class token", {"backbone": "vit_tiny", "patch_size": 4, "pool": "cls"}, 32),
    ("vit_micro/4, mean pool", {"backbone": "vit_micro", "patch_size": 4, "pool": "mean"}, 16),
)


def _card_code(directory: pathlib.Path) -> str:
  card = (directory / "README.md").read_text()
  return re.search(r"```python\n(.*?)```", card, re.S).group(1)


def _differences(torch_features: np.ndarray, jax_features: np.ndarray) -> dict:
  largest = float(np.max(np.abs(jax_features)))
  absolute = float(np.max(np.abs(torch_features - jax_features)))
  return {"max_abs_difference": absolute, "relative_to_largest_feature": absolute / largest,
          "largest_feature": largest}


def run_case(name: str, model: dict, size: int, data_dir: str | None, scratch: pathlib.Path) -> dict:
  import os

  import timm
  import torch

  from configs import common
  from jax_ssl import export
  from jax_ssl.data import catalog
  from jax_ssl.train import encoder as encoder_lib
  from jax_ssl.train import loop

  config = common.smoke(common.bundled_base("vicreg"))
  config.data.data_dir = data_dir or ""
  config.views.size = size
  config.model.update(**model)
  config.train.num_steps = 1
  config.eval.report = False
  workdir, directory = scratch / f"run-{len(list(scratch.iterdir()))}", scratch / f"export-{name}"
  loop.train(config, workdir)
  export.export(workdir, directory)
  images = np.random.default_rng(0).integers(0, 256, (8, size, size, 3), dtype=np.uint8)
  jax_features = encoder_lib.load_encoder(workdir)(images)
  spec = catalog.get_spec(config.data.name)
  inputs = torch.from_numpy(((images / 255.0 - np.asarray(spec.mean)) / np.asarray(spec.std))
                            .transpose(0, 3, 1, 2).astype(np.float32))
  here = os.getcwd()
  os.chdir(directory)  # the card's code loads 'model.safetensors' from where it lies
  try:
    scope: dict = {}
    exec(_card_code(directory), scope)  # noqa: S102 - the card's own lines, as a user pastes them
  finally:
    os.chdir(here)
  result = {"model": model, "input_size": size, "strict_load": True}
  with torch.no_grad():
    result["card"] = _differences(scope["model"].eval()(inputs).numpy(), jax_features)
    if model["backbone"].startswith("vit"):
      local = timm.create_model(f"local-dir:{directory}", pretrained=True).eval()
      result["timm_local_dir"] = _differences(local(inputs).numpy(), jax_features)
  print(f"{name}: " + ", ".join(f"{key} {value['relative_to_largest_feature']:.2e}" for key, value in result.items()
                                if isinstance(value, dict) and "relative_to_largest_feature" in value))
  return result


def main() -> None:
  import timm
  import torch
  import torchvision

  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--data_dir", default=None, help="where the bundled datasets are prepared (default location)")
  parser.add_argument("--output_dir", type=pathlib.Path, default=_common.EXPERIMENTS_DIR)
  args = parser.parse_args()
  started = time.perf_counter()
  torch.set_num_threads(2)
  with tempfile.TemporaryDirectory() as scratch:
    cases = {name: run_case(name, model, size, args.data_dir, pathlib.Path(scratch)) for name, model, size in CASES}
  worst = max(value["relative_to_largest_feature"] for case in cases.values() for value in case.values()
              if isinstance(value, dict) and "relative_to_largest_feature" in value)
  result = {"experiment": "export_parity", "command": _common.reproducing_command(),
            "invoked_as": _common.command_line(), **_common.git_commit(),
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "run_time_s": time.perf_counter() - started, "machine": _common.machine_info(),
            "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__, "timm": timm.__version__},
            "protocol": "one-step :smoke VICReg run on digits per backbone; the export's card code run as written "
                        "(strict=True); 8 random uint8 images at the input size; PyTorch float32 on the CPU",
            "worst_relative_difference": worst, "cases": cases}
  path = args.output_dir / "results" / "export_parity.json"
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(_common._jsonable(result), indent=1) + "\n")
  print(f"worst relative difference {worst:.2e}; wrote {path}")


if __name__ == "__main__":
  main()
