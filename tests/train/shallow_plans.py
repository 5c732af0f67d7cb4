"""`python -m tests.train.shallow_plans DEVICES [--fsdp]`: every recipe planned at its paper's batch, shallow.

The suite cannot afford to compile the recipes at full depth on pod-sized
simulated meshes; their widths, views, batches and heads are what a mesh
mistake depends on, so this keeps them and cuts depth (every ViT to one
block, every ResNet stage to one block, MAE's decoder and I-JEPA's predictor
to one block). One JSON line per recipe: its plan, or its one-line error.
A recipe whose paper's batch does not divide over the devices (CIFAR's 200
over 64) is refused, and then planned on the largest power of two it divides
over (what FSDP can split the parameters' power-of-two widths over).
"""

from __future__ import annotations

import importlib
import json
import pathlib
import sys

RECIPES = sorted(path.stem for path in (pathlib.Path(__file__).parents[2] / "configs" / "recipes").glob("*.py")
                 if not path.stem.startswith("_"))
# The recipes whose default variant is not the one the suite plans.
VARIANTS = {"cifar100_resnet34": "sag_vicreg"}


def shallow_models() -> None:
  """Cut every ViT to one block and every ResNet stage to one block, keeping their widths."""
  from jax_ssl.models import registry
  from jax_ssl.models import resnet
  from jax_ssl.models import vit

  vit.VIT_SIZES.update({size: (width, 1, heads) for size, (width, _, heads) in vit.VIT_SIZES.items()})
  for name, kind in (("resnet18", "basic"), ("resnet34", "basic"), ("resnet50", "bottleneck")):
    accepted = registry._BUILDERS[name][1]  # noqa: SLF001 (a test-side patch of the registry)
    registry._BUILDERS[name] = (lambda kind=kind, **kwargs: resnet.ResNet(kind, (1, 1, 1, 1), **kwargs), accepted)  # noqa: SLF001


def main(devices: int, fsdp: bool) -> None:
  from jax_ssl import dry_run
  dry_run.simulate_devices(devices)
  shallow_models()
  from jax_ssl.train import config as config_lib
  from jax_ssl.train import plan as plan_lib
  from jax_ssl.train import state as state_lib

  for recipe in RECIPES:
    config = importlib.import_module(f"configs.recipes.{recipe}").get_config(VARIANTS.get(recipe))
    for section, fields in (("mae", ("decoder_depth",)), ("ijepa", ("predictor_depth",))):
      config.method[section].update({field: 1 for field in fields})
    config.mesh.fsdp = fsdp
    line = {"recipe": recipe}
    try:
      config_lib.validate(config, num_devices=devices)
      line["plan"] = plan_lib.make_plan(config, state_lib.data_mesh(), accelerator="h100")
    except ValueError as error:
      line["error"] = str(error)
      batch = config.train.global_batch_size
      divides = max(2**power for power in range(devices.bit_length()) if batch % 2**power == 0 and 2**power <= devices)
      if "does not divide" in line["error"] and divides > 1:
        config_lib.validate(config, num_devices=divides)
        import jax
        line["plan"] = plan_lib.make_plan(config, state_lib.data_mesh(jax.devices()[:divides]), accelerator="h100")
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
  main(int(sys.argv[1]), "--fsdp" in sys.argv)
