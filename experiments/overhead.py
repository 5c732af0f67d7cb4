"""Step-time overhead of SAG-VICReg's pairing over VICReg, and of T-REGS over L_MSE, backbone included.

  python -m experiments.overhead                 # the papers' batch size (256), ResNet-18 CIFAR, on this machine
  python -m experiments.overhead --setup imagenet  # ResNet-50, 224 px, 8192-d projector (GPU-sized)
  python -m experiments.overhead --small         # seconds; for the tests

The claims. SAG-VICReg (Appendix J): an ImageNet epoch takes 3600 s against
VICReg's 2800 s on an L40, +28.5%. T-REGS: the MST costs O(B^2 D) per batch,
small next to the backbone. Each method here runs the trainer's own jitted
step (augmentation, backbone, projector, loss, LARS) on the same batch; the
overhead is its median step time over the baseline's, minus one. L_MSE is
T-REGS without T-REG (the invariance term alone, beta * MSE), registered
here for the measurement only: it collapses if trained.

Writes experiments/results/overhead[-<setup>]-<device>.json and the figure beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import pathlib
import tempfile
from typing import ClassVar

import jax

from experiments import _common
from experiments.bench.losses import device_description
from experiments.bench.losses import device_name
from experiments.bench.train import step_time
from jax_ssl import losses
from jax_ssl.methods import registry
from jax_ssl.train import config as config_lib

EXPERIMENTS = pathlib.Path(__file__).resolve().parent
PAIRS = (("sag_vicreg", "vicreg", 0.285), ("tregs", "mse", None))  # (method, baseline, paper's overhead)

SETUPS = {
    # The T-REGS CIFAR protocol, and SAG-VICReg's batch size.
    "cifar": dict(backbone="resnet18", stem="cifar", width=64, size=32, projector="2048-2048-2048", batch=256),
    # SAG-VICReg's ImageNet measurement: ResNet-50 and VICReg's 8192-d projector.
    "imagenet": dict(backbone="resnet50", stem="imagenet", width=64, size=224, projector="8192-8192-8192", batch=256),
    "small": dict(backbone="small_cnn", stem="cifar", width=4, size=16, projector="32-32", batch=16),
}


@dataclasses.dataclass(frozen=True)
class MSE(registry.Method):
  """L_MSE alone: T-REGS's objective without T-REG (`beta` times the invariance)."""

  name: ClassVar[str] = "mse"
  beta: float = registry.TREGS.beta

  def loss(self, embeddings, key, directions=None):
    loss = self.beta * losses.invariance(*embeddings.two_views)
    return loss, {"invariance": loss}


def register_mse() -> None:
  """L_MSE as a method of this process, for timing: T-REGS's objective without T-REG."""
  registry.METHODS.setdefault(MSE.name, MSE)


def method_config(method: str, setup: dict, data_dir: str):
  config = config_lib.base_config()
  config.method.name = method
  config.data.update(name="shapes", data_dir=data_dir)
  config.views.size = setup["size"]
  config.model.update(backbone=setup["backbone"], stem=setup["stem"], width=setup["width"],
                      projector=setup["projector"])
  config.train.update(global_batch_size=setup["batch"], num_steps=1000, log_every=1000)
  config.eval.report = False
  return config


def figure(rows: list[dict], path: pathlib.Path, title: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axis = plt.subplots(figsize=(5.2, 3.2))
  names = [f"{r['method']}\nvs {r['baseline']}" for r in rows]
  axis.bar(names, [100 * r["overhead"] for r in rows], color="#4878a8", label="measured here")
  for index, row in enumerate(rows):
    if row["paper_overhead"] is not None:
      axis.hlines(100 * row["paper_overhead"], index - 0.4, index + 0.4, colors="#c44e52", label="paper")
  axis.axhline(0, color="black", linewidth=0.6)
  axis.set_ylabel("step-time overhead (%)")
  axis.set_title(title, fontsize=9)
  axis.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--setup", choices=("cifar", "imagenet"), default="cifar")
  parser.add_argument("--small", action="store_true", help="a tiny network, for a quick check")
  parser.add_argument("--batch", type=int, default=None, help="override the setup's global batch")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--methods", default="vicreg,sag_vicreg,mse,tregs", help="a subset: only complete pairs report")
  parser.add_argument("--data_dir", default=None, help="where bundled datasets are (default: prepared afresh)")
  parser.add_argument("--output_dir", type=pathlib.Path, default=None,
                      help="write DIR/results and DIR/figures (default: experiments/)")
  args = parser.parse_args()
  setup_name = "small" if args.small else args.setup
  setup = dict(SETUPS[setup_name])
  if args.batch:
    setup["batch"] = args.batch
  register_mse()
  data_dir = args.data_dir or tempfile.mkdtemp(prefix="jax_ssl_overhead_data_")
  workdirs = pathlib.Path(tempfile.mkdtemp(prefix="jax_ssl_overhead_"))
  times = {}
  for method in args.methods.split(","):
    repeats = 1 if args.small else args.repeats
    times[method] = step_time(method_config(method, setup, data_dir), workdirs / method, repeats)
    print(f"{method:12s} {times[method]:8.4f} s/step", flush=True)
  rows = [{"method": method, "baseline": baseline, "step_s": times[method], "baseline_step_s": times[baseline],
           "overhead": times[method] / times[baseline] - 1, "paper_overhead": paper}
          for method, baseline, paper in PAIRS if method in times and baseline in times]
  device = device_name()
  name = "overhead" + ("" if setup_name == "cifar" else f"-{setup_name}") + ("" if device == "cpu" else f"-{device}")
  result = {
      "experiment": "overhead", "device": device, "device_description": device_description(),
      "jax_version": jax.__version__, "date": datetime.date.today().isoformat(), "setup_name": setup_name,
      "setup": setup, "repeats": args.repeats, "step_s": times, "rows": rows,
      "timing": "median of repeated trainer steps on one fixed batch, after a warm-up step",
      "command": _common.reproducing_command(), "invoked_as": _common.command_line(), **_common.git_commit(),
  }
  if "sag_vicreg" in times:
    result["sag_vicreg_reading"] = _common.sag_vicreg_reading(method_config("sag_vicreg", setup, data_dir))
  results_dir = (args.output_dir or EXPERIMENTS) / "results"
  figures_dir = (args.output_dir or EXPERIMENTS) / "figures"
  results_dir.mkdir(parents=True, exist_ok=True)
  figures_dir.mkdir(parents=True, exist_ok=True)
  (results_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
  figure(rows, figures_dir / f"{name}.png",
         f"{setup['backbone']}, {setup['size']} px, batch {setup['batch']} on {device_description()}")
  for row in rows:
    paper = "" if row["paper_overhead"] is None else f"  (paper: {100 * row['paper_overhead']:+.1f}%)"
    print(f"{row['method']} over {row['baseline']}: {100 * row['overhead']:+.1f}%{paper}")
  print(f"wrote {results_dir / (name + '.json')}")


if __name__ == "__main__":
  main()
