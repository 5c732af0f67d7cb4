"""Writes the key names and shapes of torchvision's and timm's reference backbones, for tests/test_export.py.

  python -m experiments.torch_manifests   # needs torch, torchvision and timm; run once

The export (`python -m jax_ssl.export`) promises state dicts that these models
load with `strict=True`: torchvision's `resnet18` and `resnet50` with their
classifier replaced by `Identity`, and timm's `vit_small_patch16_224` without
a head. The test compares the export's names and shapes with this file, so the
suite checks the promise without PyTorch installed.
"""

from __future__ import annotations

import argparse
import json
import pathlib

OUTPUT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "models" / "torch_manifests.json"


def _one_array_a_line(manifest: dict) -> str:
  """The manifest as JSON with one array (name and shape) per line, for readable diffs."""
  def entries(keys: dict) -> str:
    return ",\n".join(f"   {json.dumps(key)}: {json.dumps(shape)}" for key, shape in keys.items())

  models = ",\n".join(f"  {json.dumps(name)}: {{\n{entries(keys)}\n  }}" for name, keys in manifest["models"].items())
  header = {key: value for key, value in manifest.items() if key != "models"}
  return json.dumps(header, indent=1)[:-2] + ',\n "models": {\n' + models + "\n }\n}\n"


def main() -> None:
  import timm
  import torch
  import torchvision

  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--output", default=str(OUTPUT))
  args = parser.parse_args()
  models = {}
  for name in ("resnet18", "resnet50"):
    model = getattr(torchvision.models, name)(weights=None)
    model.fc = torch.nn.Identity()
    models[f"torchvision.{name}"] = model
  models["timm.vit_small_patch16_224"] = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0)
  manifest = {"versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                           "timm": timm.__version__},
              "command": "python -m experiments.torch_manifests",
              "models": {name: {key: list(value.shape) for key, value in model.state_dict().items()}
                         for name, model in models.items()}}
  pathlib.Path(args.output).write_text(_one_array_a_line(manifest))
  counts = ", ".join(f"{name} ({len(keys)} arrays)" for name, keys in manifest["models"].items())
  print(f"wrote {args.output}: {counts}")


if __name__ == "__main__":
  main()
