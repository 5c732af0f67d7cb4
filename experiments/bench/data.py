"""Benchmark of the input pipeline and on-device augmentation.

  python -m experiments.bench.data           # writes results/data-<device>.json
  python -m experiments.bench.data --small   # seconds; for a quick check
  python -m experiments.bench.data --jpeg --workers 1,2   # the host path on ImageNet-shaped JPEGs

Measured on the bundled `shapes` dataset (32x32 RGB), in one run:
  * load: grain batches (shuffle, read, decode) per second, no augmentation;
  * augment: the multi-crop views of a batch on device (jitted), without loading;
  * pipeline: load + 2 global 32 px views + 6 local 16 px views, end to end,
    images per second (the issue's headline number);
  * the fraction of a ResNet-18 (CIFAR stem) VICReg training step that the
    augmentation of its views takes: aug / (aug + step), for the 2-view VICReg
    recipe and for the 2 + 6 multi-crop recipe (both timed in this run).

`--jpeg` measures the host path that datasets too big for the devices take:
a synthetic ImageNet-shaped JPEG dataset (5,000 images of 300-500 px,
`jpeg_dataset.py`, generated locally) read by the grain pipeline with 0, 1,
2, ... decoding worker processes (`--workers`), each image decoded in draft
mode and resized once to `--image_size` (224, the largest ImageNet view);
and, on one core, the decode alone with and without draft mode.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import pathlib
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from PIL import Image

from experiments import _common
from experiments.bench import jpeg_dataset
from experiments.bench.losses import device_description
from experiments.bench.losses import device_name
from experiments.bench.losses import time_call
from jax_ssl import losses
from jax_ssl import models
from jax_ssl.data import catalog
from jax_ssl.data import pipeline
from jax_ssl.data import sources
from jax_ssl.data import views

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"


def images_per_second(batches: int, batch_size: int, seconds: float) -> float:
  return batches * batch_size / seconds


def bench_load(source, batch_size: int, batches: int) -> float:
  iterator = iter(pipeline.train_dataset(source, global_batch_size=batch_size, seed=0))
  next(iterator)  # threads started, first batch ready
  start = time.perf_counter()
  for _ in range(batches):
    next(iterator)
  return images_per_second(batches, batch_size, time.perf_counter() - start)


def bench_pipeline(source, specs, batch_size: int, batches: int) -> float:
  iterator = iter(pipeline.train_dataset(source, global_batch_size=batch_size, seed=0))
  key = jax.random.key(0)
  jax.block_until_ready(views.multi_crop(key, next(iterator)["image"], specs))  # compile
  start = time.perf_counter()
  for step in range(batches):
    crops = views.multi_crop(jax.random.fold_in(key, step), next(iterator)["image"], specs)
  jax.block_until_ready(crops)
  return images_per_second(batches, batch_size, time.perf_counter() - start)


def vicreg_step(batch_size: int, spec: str, width: int):
  """A ResNet-18 (CIFAR stem) + projector VICReg step with LARS: (state, two views) -> state."""
  backbone = models.build_backbone("resnet18", stem="cifar", width=width, rngs=nnx.Rngs(0))
  projector = models.projector(backbone.num_features, spec, rngs=nnx.Rngs(1))
  model = nnx.Sequential(backbone, projector)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  optimizer = optax.lars(0.3 * batch_size / 256, weight_decay=1e-6)

  def loss_fn(params, rest, view1, view2):
    network = nnx.merge(graphdef, params, rest, copy=True)
    embeddings = network(jnp.concatenate([view1, view2]))
    loss, _ = losses.vicreg_loss(embeddings[:batch_size], embeddings[batch_size:])
    return loss, nnx.state(network, nnx.BatchStat)

  @jax.jit
  def step(params, rest, opt_state, view1, view2):
    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, rest, view1, view2)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), batch_stats, opt_state, loss

  return step, (params, rest, optimizer.init(params))


def bench_step_fraction(images, batch_size: int, repeats: int, spec: str, width: int) -> dict:
  mean, std = catalog.get_spec("shapes").mean, catalog.get_spec("shapes").std
  two_views = views.vicreg_views(32, mean, std)
  multi = views.multicrop_views(32, 16, 2, 6, mean=mean, std=std)
  key = jax.random.key(1)
  aug_two = time_call(lambda k: views.multi_crop(k, images, two_views), key, repeats=repeats)
  aug_multi = time_call(lambda k: views.multi_crop(k, images, multi), key, repeats=repeats)
  step, (params, rest, opt_state) = vicreg_step(batch_size, spec, width)
  view1, view2 = views.multi_crop(key, images, two_views)
  step_time = time_call(step, params, rest, opt_state, view1, view2, repeats=repeats, min_total_s=0)
  return {
      "train_step_s": step_time,
      "augment_2_views_s": aug_two,
      "augment_2_global_6_local_s": aug_multi,
      "fraction_2_views": aug_two / (aug_two + step_time),
      "fraction_2_global_6_local": aug_multi / (aug_multi + step_time),
  }


def bench_jpeg(args) -> dict:
  """Grain's host path on synthetic JPEGs by worker count, and the decode alone on one core (draft vs full)."""
  directory = args.data_dir or tempfile.mkdtemp(prefix="jax_ssl_bench_jpeg_")
  source = jpeg_dataset.source(directory, args.num_jpegs, args.image_size)
  raw = [source._records[i]["image"] for i in range(64)]  # encoded bytes

  def full_decode(encoded):
    with Image.open(io.BytesIO(encoded)) as image:
      return sources.resize_shorter_side_and_center_crop(np.asarray(image.convert("RGB")), args.image_size)

  decoders = {"draft": lambda e: sources.decode_image_bytes(e, args.image_size), "full": full_decode}
  for decode in decoders.values():  # warm-up: the first decode loads the codec
    decode(raw[0])
  # Alternate the two over three rounds and keep each one's best: a shared machine's load shifts in time.
  seconds = {name: float("inf") for name in decoders}
  for _ in range(3):
    for name, decode in decoders.items():
      start = time.perf_counter()
      for encoded in raw:
        decode(encoded)
      seconds[name] = min(seconds[name], time.perf_counter() - start)
  decode_rates = {name: len(raw) / s for name, s in seconds.items()}
  by_workers = {}
  for workers in [int(w) for w in args.workers.split(",")]:
    iterator = iter(pipeline.train_dataset(source, global_batch_size=args.jpeg_batch, seed=0, worker_count=workers))
    next(iterator)  # workers started, first batch ready
    start = time.perf_counter()
    for _ in range(args.jpeg_batches):
      next(iterator)
    by_workers[str(workers)] = images_per_second(args.jpeg_batches, args.jpeg_batch, time.perf_counter() - start)
    print(f"{workers:2d} workers: {by_workers[str(workers)]:8.0f} images/s", flush=True)
    del iterator
  return {
      "benchmark": "data_jpeg", "device": device_name(), "device_description": device_description(),
      "jax_version": jax.__version__, "date": datetime.date.today().isoformat(),
      "command": _common.reproducing_command(), "invoked_as": _common.command_line(), **_common.git_commit(),
      "dataset": f"synthetic: {args.num_jpegs} JPEGs of 300-500 px (quality 90), tfds array_record",
      "image_size": args.image_size, "batch_size": args.jpeg_batch, "batches_timed": args.jpeg_batches,
      "decode_one_core_images_per_s": decode_rates,
      "images_per_s_by_workers": by_workers,
      "timing": "steady state after the first batch; workers: grain processes decoding in draft mode + one resize",
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--small", action="store_true", help="tiny sizes, for a quick check")
  parser.add_argument("--data_dir", default=None, help="where bundled datasets are (default: prepared afresh)")
  parser.add_argument("--output", type=pathlib.Path, default=None)
  parser.add_argument("--jpeg", action="store_true", help="benchmark the host path on synthetic JPEGs instead")
  parser.add_argument("--workers", default="0,1,2", help="--jpeg: grain worker counts to time")
  parser.add_argument("--num_jpegs", type=int, default=5000)
  parser.add_argument("--image_size", type=int, default=224)
  parser.add_argument("--jpeg_batch", type=int, default=128)
  parser.add_argument("--jpeg_batches", type=int, default=20)
  args = parser.parse_args()
  if args.jpeg:
    if args.small:
      args.num_jpegs, args.jpeg_batch, args.jpeg_batches = 64, 16, 2
    result = bench_jpeg(args)
    output = args.output or RESULTS_DIR / f"data-jpeg-{result['device']}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"decode on one core: draft {result['decode_one_core_images_per_s']['draft']:.0f} images/s, full "
          f"{result['decode_one_core_images_per_s']['full']:.0f}")
    print(f"wrote {output}")
    return
  if args.small:
    # One batch size throughout, so the step-fraction timing reuses the augmentations compiled before it.
    batch_size, batches, repeats, step_batch, spec, width = 32, 3, 2, 32, "64-64", 8
  else:
    batch_size, batches, repeats, step_batch, spec, width = 256, 20, 3, 256, "2048-2048-2048", 64

  data_dir = args.data_dir or tempfile.mkdtemp(prefix="jax_ssl_bench_")
  source = sources.open_source("shapes", "train", data_dir)
  shapes_spec = catalog.get_spec("shapes")
  multi = views.multicrop_views(32, 16, 2, 6, mean=shapes_spec.mean, std=shapes_spec.std)
  images = jnp.asarray(next(iter(pipeline.train_dataset(source, global_batch_size=batch_size, seed=0)))["image"])

  load = bench_load(source, batch_size, batches)
  augment_time = time_call(lambda k: views.multi_crop(k, images, multi), jax.random.key(0), repeats=repeats)
  full = bench_pipeline(source, multi, batch_size, batches)
  step_images = jnp.asarray(next(iter(pipeline.train_dataset(source, global_batch_size=step_batch, seed=1)))["image"])
  fraction = bench_step_fraction(step_images, step_batch, repeats, spec, width)

  result = {
      "benchmark": "data",
      "device": device_name(),
      "device_description": device_description(),
      "jax_version": jax.__version__,
      "date": datetime.date.today().isoformat(),
      "command": _common.reproducing_command(),
      "invoked_as": _common.command_line(),
      **_common.git_commit(),
      "small": args.small,
      "dataset": "shapes (32x32 RGB, bundled)",
      "batch_size": batch_size,
      "views": "2 global 32 px (scale 0.3-1) + 6 local 16 px (scale 0.05-0.3), LeJEPA/VISReg recipe",
      "load_images_per_s": load,
      "augment_images_per_s": batch_size / augment_time,
      "pipeline_images_per_s": full,
      "train_step": {"model": f"ResNet-18 CIFAR stem (width {width}) + projector {spec}, VICReg, LARS",
                     "batch_size": step_batch, **fraction},
      "timing": "load and pipeline: steady-state throughput over consecutive batches; others: median after warm-up",
  }
  print(f"load only            {load:10.0f} images/s")
  print(f"augment only (8 views) {batch_size / augment_time:8.0f} images/s")
  print(f"load + 2+6 views     {full:10.0f} images/s")
  print(f"train step ({step_batch} images, 2 views): {fraction['train_step_s']:.3f} s; augmentation takes "
        f"{100 * fraction['fraction_2_views']:.1f}% of step+aug (2 views), "
        f"{100 * fraction['fraction_2_global_6_local']:.1f}% (2+6 views)")
  output = args.output or RESULTS_DIR / f"data-{result['device']}.json"
  output.parent.mkdir(parents=True, exist_ok=True)
  output.write_text(json.dumps(result, indent=2) + "\n")
  print(f"wrote {output}")


if __name__ == "__main__":
  main()
