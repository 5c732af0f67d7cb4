"""Dry-run plans of every recipe at pod scale, checked against analytic counts and a measured GPU step.

  python -m experiments.bench.plan --devices 64         # every recipe on 64 devices, and the checks below
  python -m experiments.bench.plan --only recipes --devices 256 --recipes visreg_imagenet_vitb16,cifar100_resnet34
  python -m experiments.bench.plan --small              # shallow models, a few minutes: a check of the script

Four results files in experiments/bench/results/, each with its command and commit:

  plan-recipes.json       every `configs/recipes/*.py` at full depth and its paper's global batch, planned
                          for each of `--devices` simulated devices, replicated and FSDP, with the H100
                          figures (peak bf16 at 40% MFU, and whether XLA:CPU's memory estimate of the
                          step fits an H100); a batch that does not divide over the devices is
                          named, and planned rounded up to the next multiple. Invocations add to the file.
  plan-flops.json         FLOPs per image from the compiled step of ResNet-18/50 and ViT-S/B at 224 px
                          (VICReg, two views, a 64-wide projector) against 2 views x 3 x the analytic
                          forward count (convolutions and matrix products, 2 FLOPs per multiply-add).
  plan-fsdp-scaling.json  per-device parameter + optimizer bytes of the VISReg ViT-B/16 recipe on 8
                          devices, replicated against FSDP, beside the ideal 1/8.
  plan-h100-point.json    the committed H100 train bench (`train-nvidia-h100-80gb-hbm3.json`) against
                          the plan of the same step: VICReg's measured step time gives the MFU, and the
                          other methods' step times predicted at that MFU are compared with their measured ones.

Each plan compiles in a worker process of its own device count (`--worker`), since a JAX backend's
device count is fixed when it starts.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import pathlib
import subprocess
import sys

from experiments import _common

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
RECIPES = sorted(path.stem for path in (_common.REPO_ROOT / "configs" / "recipes").glob("*.py")
                 if not path.stem.startswith("_"))
VARIANTS = {"cifar100_resnet34": "sag_vicreg"}
FLOPS_BACKBONES = ("resnet18", "resnet50", "vit_small", "vit_base")
H100_BENCH = RESULTS_DIR / "train-nvidia-h100-80gb-hbm3.json"


def resnet_forward_flops(block: str, depths, size: int = 224) -> float:
  """2 x multiply-adds of a ResNet's convolutions with the ImageNet stem (He et al., CVPR 2016, Table 1)."""
  side = size // 2
  macs = side * side * 7 * 7 * 3 * 64  # stem convolution, stride 2
  side //= 2  # max pool
  channels = 64
  for stage, depth in enumerate(depths):
    width = 64 * 2**stage
    for index in range(depth):
      stride = 2 if stage > 0 and index == 0 else 1
      out_side = side // stride
      if block == "basic":
        macs += out_side**2 * 9 * (channels * width + width * width)
        out_channels = width
      else:  # 1x1 reduce at the input side, 3x3 with the stride, 1x1 expand
        macs += side**2 * channels * width + out_side**2 * (9 * width * width + width * 4 * width)
        out_channels = 4 * width
      if stride != 1 or channels != out_channels:
        macs += out_side**2 * channels * out_channels
      channels, side = out_channels, out_side
  return 2.0 * macs


def vit_forward_flops(width: int, depth: int, patch: int = 16, size: int = 224) -> float:
  """2 x multiply-adds of a ViT: patch embedding, then per block qkv, attention, projection and a 4x MLP."""
  patches = (size // patch) ** 2
  tokens = patches + 1
  return 2.0 * (patches * patch * patch * 3 * width + depth * (tokens * 12 * width * width + 2 * tokens**2 * width))


ANALYTIC_FORWARD = {
    "resnet18": lambda: resnet_forward_flops("basic", (2, 2, 2, 2)),
    "resnet50": lambda: resnet_forward_flops("bottleneck", (3, 4, 6, 3)),
    "vit_small": lambda: vit_forward_flops(384, 12),
    "vit_base": lambda: vit_forward_flops(768, 12),
}


def flops_config(backbone: str):
  """VICReg on ImageNet at 224 px, two views, a one-layer 64-wide projector: the backbone is nearly all of it."""
  from jax_ssl.train import config as config_lib
  config = config_lib.base_config()
  config.data.name = "imagenet2012"
  config.views.update(recipe="vicreg", size=224, small_images=False)
  config.model.update(backbone=backbone, stem="imagenet", projector="64")
  config.train.update(global_batch_size=8, num_steps=10)
  return config


def recipe_config(recipe: str, fsdp: bool = False):
  config = importlib.import_module(f"configs.recipes.{recipe}").get_config(VARIANTS.get(recipe))
  config.mesh.fsdp = fsdp
  return config


def _shallow() -> None:
  """--small: every ViT and ResNet stage one block deep (the suite's shallow plans)."""
  from tests.train import shallow_plans
  shallow_plans.shallow_models()


def worker(task: str, devices: int, names: list[str], small: bool) -> None:
  """Plan each of `names` on `devices` simulated devices; one JSON line each."""
  from jax_ssl import dry_run
  dry_run.simulate_devices(devices)
  if small:
    _shallow()
  from jax_ssl.train import config as config_lib
  from jax_ssl.train import plan as plan_lib
  from jax_ssl.train import state as state_lib

  for name in names:
    for fsdp in ((False, True) if task in ("recipes", "fsdp") else (False,)):
      config = recipe_config(name, fsdp) if task in ("recipes", "fsdp") else (
          flops_config(name) if task == "flops" else h100_config(name))
      line = {"name": name, "fsdp": fsdp}
      batch = config.train.global_batch_size
      if task == "recipes" and batch % devices:
        # The paper's batch does not divide over the devices: say so, and plan the next batch that does.
        line["error"] = f"train.global_batch_size = {batch} does not divide over the {devices} devices"
        config.train.global_batch_size = -(-batch // devices) * devices
        line["batch_rounded_up_from"] = batch
      try:
        config_lib.validate(config, num_devices=devices)
        line["plan"] = plan_lib.make_plan(config, state_lib.data_mesh(), accelerator="h100", check_memory=False)
      except ValueError as error:
        line["error"] = str(error)
      print(json.dumps(line), flush=True)


def h100_config(method: str):
  """The H100 train bench's step: ResNet-18 (CIFAR stem), projector 2048-2048-2048, 2 views of 32 px, batch 256."""
  from experiments.bench import train as train_bench
  setup = json.loads(H100_BENCH.read_text())
  config = train_bench.method_config(method, 256, "resnet18", 64, "2048-2048-2048", "")
  for field, value in setup.get("sag_vicreg_reading", {}).items():
    config.method.sag_vicreg[field] = value  # the reading that bench ran
  return config


def _run_worker(task: str, devices: int, names: list[str], small: bool) -> list[dict]:
  command = [sys.executable, "-m", "experiments.bench.plan", "--worker", task, "--worker_devices", str(devices),
             "--names", ",".join(names), *(["--small"] if small else [])]
  result = subprocess.run(command, capture_output=True, text=True, cwd=_common.REPO_ROOT, check=False)
  if result.returncode != 0:
    raise RuntimeError(f"the {task} worker on {devices} devices failed:\n{result.stderr[-3000:]}")
  return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def _write(name: str, output_dir: pathlib.Path, result: dict, small: bool) -> None:
  path = output_dir / f"{name}{'-small' if small else ''}.json"
  header = {"benchmark": name, "command": _common.command_line(), **_common.git_commit(),
            "date": datetime.date.today().isoformat(), "small": small,
            "note": "plans compiled for simulated CPU devices; nothing was run"}
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps({**header, **result}, indent=2) + "\n")
  print(f"wrote {path}")


def recipes(args) -> None:
  # Added to what an earlier invocation planned (other device counts or recipes); each plan records its command.
  path = args.output_dir / f"plan-recipes{'-small' if args.small else ''}.json"
  plans = json.loads(path.read_text())["plans"] if path.exists() else {}
  for devices in args.devices:
    for line in _run_worker("recipes", devices, args.recipes, args.small):
      line["command"] = _common.command_line()
      plans.setdefault(str(devices), {})[line["name"] + ("+fsdp" if line["fsdp"] else "")] = line
  _write("plan-recipes", args.output_dir, {"plans": plans}, args.small)


def flops(args) -> None:
  rows = []
  for line in _run_worker("flops", 8, list(FLOPS_BACKBONES), args.small):
    analytic = 2 * 3 * ANALYTIC_FORWARD[line["name"]]()
    measured = line["plan"]["flops_per_image"]
    rows.append({"backbone": line["name"], "plan_flops_per_image": measured,
                 "analytic_flops_per_image": analytic, "ratio": measured / analytic})
  _write("plan-flops", args.output_dir, {"setup": "VICReg, 2 views at 224 px, projector 64, batch 8 on 8 devices; "
                                                  "analytic: 2 views x 3 x forward", "rows": rows}, args.small)


def fsdp_scaling(args) -> None:
  lines = {line["fsdp"]: line["plan"] for line in _run_worker("fsdp", 8, ["visreg_imagenet_vitb16"], args.small)}
  bytes_of = {layout: lines[fsdp]["per_device_bytes"]["parameters"] + lines[fsdp]["per_device_bytes"]["optimizer_state"]
              for layout, fsdp in (("replicated", False), ("fsdp", True))}
  _write("plan-fsdp-scaling", args.output_dir, {
      "recipe": "visreg_imagenet_vitb16", "devices": 8, "per_device_parameter_optimizer_bytes": bytes_of,
      "ideal_fsdp_bytes": bytes_of["replicated"] / 8,
      "fsdp_over_ideal": bytes_of["fsdp"] / (bytes_of["replicated"] / 8),
      "xla_temporary_bytes": {"replicated": lines[False]["per_device_bytes"]["xla_temporary"],
                              "fsdp": lines[True]["per_device_bytes"]["xla_temporary"]}}, args.small)


def h100_point(args) -> None:
  measured = {row["method"]: row["step_s"] for row in json.loads(H100_BENCH.read_text())["rows"]}
  plans = {line["name"]: line["plan"] for line in _run_worker("h100", 1, list(measured), args.small)}
  from jax_ssl.train import plan as plan_lib
  peak = plan_lib.ACCELERATORS["h100"].peak_flops
  mfu = plans["vicreg"]["flops_per_step"] / measured["vicreg"] / peak
  rows = [{"method": method, "flops_per_step": plans[method]["flops_per_step"], "measured_step_s": measured[method],
           "predicted_step_s": plans[method]["flops_per_step"] / (peak * mfu),
           "predicted_over_measured": plans[method]["flops_per_step"] / (peak * mfu) / measured[method]}
          for method in measured]
  _write("plan-h100-point", args.output_dir, {
      "source": str(H100_BENCH.relative_to(_common.REPO_ROOT)), "peak_bf16_flops": peak,
      "vicreg_mfu": mfu, "rows": rows}, args.small)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--only", choices=("recipes", "flops", "fsdp", "h100"), default=None)
  parser.add_argument("--devices", type=int, nargs="+", default=[64])
  parser.add_argument("--recipes", type=lambda text: text.split(","), default=RECIPES)
  parser.add_argument("--small", action="store_true", help="shallow models: a quick check of the script")
  parser.add_argument("--output_dir", type=pathlib.Path, default=RESULTS_DIR)
  parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
  parser.add_argument("--worker_devices", type=int, default=None, help=argparse.SUPPRESS)
  parser.add_argument("--names", default="", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    worker(args.worker, args.worker_devices, args.names.split(","), args.small)
    return
  for task, run in (("flops", flops), ("fsdp", fsdp_scaling), ("h100", h100_point), ("recipes", recipes)):
    if args.only in (None, task):
      run(args)


if __name__ == "__main__":
  main()
