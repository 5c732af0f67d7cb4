"""`python -m jax_ssl.evaluate {structure,checkpoint,generalization,dense,transfer} ...`: evaluation commands.

  structure A.npy B.npy           compare the hierarchies of two sets of the same items
                                  (embeddings, or raw inputs such as images: rows are flattened)
  checkpoint --workdir DIR        probes, Rand index and structure-to-pixels of a trained encoder,
                                  per level of the label hierarchy
  generalization --config CFG     the two-model protocol: train on each half of the classes,
                                  compare the two models on the first half's test images
  dense --workdir DIR             linear segmentation (mean IoU per level) and PCA feature maps
                                  of a trained encoder, on a dataset with masks (shapes) or class
                                  maps (ade20k)
  transfer --workdir DIR          linear (DINOv2's protocol), kNN and few-shot probes of a trained
                                  encoder and its controls on transfer and out-of-distribution
                                  datasets (default: digits, shapes, shapes_ood)

Each writes a JSON file (every number), a Markdown summary where it says so,
and figures, into --output_dir. Exit codes: 0 done, 2 bad input (one line on
stderr says what and what to do; checked before anything is computed or
trained), 130 stopped by Ctrl-C or a training it runs was preempted.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

import numpy as np

from jax_ssl import command
from jax_ssl import protocols
from jax_ssl.eval import figures
from jax_ssl.eval import scores
from jax_ssl.eval import trees
from jax_ssl.train import loop

EXIT_BAD_INPUT = command.EXIT_BAD_INPUT
EXIT_STOPPED = command.EXIT_INTERRUPTED  # a training it runs was preempted or interrupted
NPY_MAGIC = b"\x93NUMPY"  # how every .npy file begins


def _jsonable(value):
  if isinstance(value, dict):
    return {str(k): _jsonable(v) for k, v in value.items() if not isinstance(v, np.ndarray)}
  if isinstance(value, (list, tuple)):
    return [_jsonable(v) for v in value]
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, float) and not np.isfinite(value):
    return None
  return value


def _write_json(path: pathlib.Path, result: dict) -> None:
  path.write_text(json.dumps(_jsonable(result), indent=2) + "\n")


def _structure_table(rows: dict[str, dict[str, float]]) -> list[str]:
  keys = scores.STRUCTURE_KEYS
  lines = ["| comparison | " + " | ".join(keys) + " |", "| --- |" + " --- |" * len(keys)]
  for name, row in rows.items():
    lines.append(f"| {name} | " + " | ".join(f"{row[key]:.4f}" for key in keys) + " |")
  return lines


def _load_rows(path: str) -> np.ndarray:
  """The array of a .npy file, checked to hold real numbers with one row per item."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path} does not exist; give a .npy file with one row per item.")
  with open(path, "rb") as file:
    if file.read(len(NPY_MAGIC)) != NPY_MAGIC:
      raise ValueError(f"{path} is not a .npy file (it does not begin with numpy's header); write the array with "
                       "numpy.save.")
  try:
    rows = np.load(path, allow_pickle=False)
  except ValueError as error:
    raise ValueError(f"{path} is not a numpy array of numbers ({command.one_line(error).split('. ')[0]}).") from None
  scores.as_rows(rows, str(path))  # one row per item, not empty, real numbers
  return rows


def run_structure(args) -> dict:
  """The `structure` command: compare the hierarchies of two .npy sets of the same items.

  Writes `structure.json` and `dendrograms.png` (the two Ward trees of the compared items) into the output
  directory, by default `structure-<A stem>-vs-<B stem>` in the working directory, and prints the scores.

  Args:
    args: the parsed command line: `first` and `second` (.npy paths), `max_items`, `seed`, `output_dir`.

  Returns:
    `scores.compare_structure`'s dict plus the two paths as "first" and "second".

  Raises:
    FileNotFoundError: if a .npy file does not exist.
    ValueError: if a file is not a numpy array or the two sets cannot be compared (`scores.compare_structure`).
  """
  output = _output_dir(args, f"structure-{pathlib.Path(args.first).stem}-vs-{pathlib.Path(args.second).stem}")
  first, second = _load_rows(args.first), _load_rows(args.second)
  result = scores.compare_structure(first, second, max_items=args.max_items, seed=args.seed)
  result.update(first=str(args.first), second=str(args.second))
  _created(output)
  items = result["items"]
  figures.dendrograms({pathlib.Path(args.first).name: trees.ward_linkage(scores.as_rows(first, "A")[items]),
                       pathlib.Path(args.second).name: trees.ward_linkage(scores.as_rows(second, "B")[items])},
                      output / "dendrograms.png")
  _write_json(output / "structure.json", result)
  print("\n".join(_structure_table({f"{args.first} vs {args.second}": result["scores"]})))
  print(f"{result['num_items']} items; wrote {output / 'structure.json'} and {output / 'dendrograms.png'}")
  return result


def _checkpoint_markdown(result: dict) -> str:
  levels = result["levels"]
  lines = [f"# Evaluation of {result['workdir']} (step {result['step']})", "",
           f"{result['method']} with a {result['backbone']} backbone ({result['output']} outputs), "
           f"evaluated on {result['dataset']} "
           f"({result['num_train']} train images fit the probes, {result['num_test']} {result['split']} images are "
           f"scored; the Rand index and the structure use {result['num_items']} of them).", "",
           "| level | kNN (weighted) | kNN (majority) | linear probe | Rand index |", "| --- | --- | --- | --- | --- |"]
  for level in levels:
    lines.append(f"| {level} | {result['knn'][level]:.4f} | {result['knn_majority'][level]:.4f} | "
                 f"{result['linear'][level]:.4f} | {result['rand_index'][level]:.4f} |")
  if "zero_shot" in result:
    lines += ["", "CLIP's zero-shot accuracy (the class whose caption prompts lie nearest in the joint space), on "
              f"every {result['split']} image: " + ", ".join(f"{level} {accuracy:.4f}"
                                                            for level, accuracy in result["zero_shot"].items()) + "."]
  lines += ["", "Structure of the embeddings against the input pixels (label-free):", "",
            *_structure_table({"pixels vs features": result["structure_to_inputs"]}), "",
            "![scores by level](scores_by_level.png)", "", "![dendrograms](dendrograms.png)", ""]
  return "\n".join(lines)


def run_checkpoint(args) -> dict:
  """The `checkpoint` command: evaluate a trained encoder per level of the label hierarchy.

  Writes `eval.json`, `eval.md`, `scores_by_level.png` and `dendrograms.png` (input pixels and encoder features
  of the evaluated items) into the output directory, by default `<workdir>/eval`, and prints the summary.

  Args:
    args: the parsed command line: `workdir`, `dataset`, `step`, `data_dir`, `split`, `hierarchy`, `max_train`,
      `max_items`, `probe_epochs`, `features`, `seed`, `output_dir`.

  Returns:
    `protocols.evaluate_checkpoint`'s dict.

  Raises:
    FileNotFoundError: if the workdir, its checkpoint, the dataset or the hierarchy file is missing.
    ValueError: for invalid settings or inputs, as raised by the evaluation.
  """
  output = _output_dir(args, str(pathlib.Path(args.workdir) / "eval"))
  result = protocols.evaluate_checkpoint(args.workdir, args.dataset, step=args.step, data_dir=args.data_dir,
                                         split=args.split, hierarchy_file=args.hierarchy, max_train=args.max_train,
                                         max_items=args.max_items, probe_epochs=args.probe_epochs, seed=args.seed,
                                         output=args.features)
  _created(output)
  figures.scores_by_level({"kNN": result["knn"], "linear": result["linear"], "Rand index": result["rand_index"]},
                          output / "scores_by_level.png", title=f"{result['method']} on {result['dataset']}")
  # The trees behind the structure numbers: pixels and features of the same evaluated items.
  figures.dendrograms({"input pixels": trees.ward_linkage(scores.as_rows(result["item_inputs"], "images")),
                       "encoder features": trees.ward_linkage(result["item_features"])}, output / "dendrograms.png")
  _write_json(output / "eval.json", result)
  (output / "eval.md").write_text(_checkpoint_markdown(result))
  print(_checkpoint_markdown(result).split("\n\n![")[0])
  print(f"wrote {output / 'eval.json'}, {output / 'eval.md'} and figures")
  return result


def _dense_markdown(result: dict) -> str:
  lines = [f"# Dense probe: {result['method']} ({result['backbone']}) on {result['dataset']}, step {result['step']}",
           "", f"A linear head on the frozen feature maps ({result['feature_grid'][0]} x {result['feature_grid'][1]}), "
           f"trained on {result['num_train']} images per level (background + each class on its object mask); "
           f"mean IoU on the {result['num_test']} test images. Controls: the encoder at initialisation and the "
           "input pixels (a linear head on each pixel's colour).", "",
           "| level | trained | initialisation | pixels |", "| --- | --- | --- | --- |"]
  for level, by_encoder in result["levels"].items():
    lines.append(f"| {level} | " + " | ".join(f"{by_encoder[name]['miou']:.3f}"
                                             for name in ("trained", "initial", "pixels")) + " |")
  return "\n".join(lines + ["", "![PCA feature maps](pca.png)", ""])


def run_dense(args) -> dict:
  """The `dense` command: linear segmentation per label level and PCA feature maps of a trained encoder.

  Writes `dense.json`, `dense.md` and `pca.png` (test images over the first three principal components of
  the trained and the initial encoder's feature maps) into the output directory, by default
  `<workdir>/eval`, and prints the summary.

  Args:
    args: the parsed command line: `workdir`, `dataset`, `step`, `data_dir`, `max_train`, `epochs`, `seed`,
      `output_dir`.

  Returns:
    `protocols.evaluate_dense`'s dict.

  Raises:
    FileNotFoundError: if the workdir, its checkpoint or the dataset is missing.
    ValueError: if the run's dataset has no masks.
  """
  output = _output_dir(args, str(pathlib.Path(args.workdir) / "eval"))
  result = protocols.evaluate_dense(args.workdir, args.dataset, step=args.step, data_dir=args.data_dir,
                                    max_train=args.max_train, epochs=args.epochs, seed=args.seed)
  _created(output)
  figures.pca_maps(result["pca_images"], {"trained": result["pca"]["trained"],
                                          "initialisation": result["pca"]["initial"]}, output / "pca.png")
  _write_json(output / "dense.json", result)
  (output / "dense.md").write_text(_dense_markdown(result))
  print(_dense_markdown(result).split("\n\n![")[0])
  print(f"wrote {output / 'dense.json'}, {output / 'dense.md'} and {output / 'pca.png'}")
  return result


def _transfer_markdown(result: dict) -> str:
  settings = result["settings"]
  lines = [f"# Transfer: {result['method']} ({result['backbone']}, {result['output']} features), step {result['step']}",
           "", "Frozen features of the trained encoder beside its controls, the same network at initialisation and "
           f"the input pixels ({settings['pixels']}). linear: {settings['linear']['method']}. kNN@k: "
           f"{settings['knn']['method']}, T = {settings['knn']['temperature']}. n-shot: "
           f"{settings['few_shot']['method']}, l2 = {settings['few_shot']['l2']:g}, mean ± std over "
           f"{settings['few_shot']['draws']} draws. At most "
           f"{settings['max_train']} train and {settings['max_test']} test images per dataset, seed "
           f"{settings['seed']}.", ""]
  for name, dataset in result["datasets"].items():
    fitted = f"; probes fit on {dataset['fit_on']}'s train split" if dataset["fit_on"] != name else ""
    lines += [f"## {name}", "", f"{dataset['num_train']} train and {dataset['num_test']} test images{fitted}.", "",
              "| level | probe | pixels | initialisation | trained |", "| --- | --- | --- | --- | --- |"]
    scores_ = dataset["scores"]
    for level in dataset["levels"]:
      cells = {which: scores_[which][level] for which in ("pixels", "initial", "trained")}
      lines.append(f"| {level} | linear | " + " | ".join(f"{cells[w]['linear']['accuracy']:.3f}" for w in cells) + " |")
      for k in cells["trained"]["knn"]:
        lines.append(f"| {level} | kNN@{k} | " + " | ".join(f"{cells[w]['knn'][k]:.3f}" for w in cells) + " |")
      for shots in cells["trained"]["few_shot"]:
        lines.append(f"| {level} | {shots}-shot | " + " | ".join(
            f"{cells[w]['few_shot'][shots]['mean']:.3f} ± {cells[w]['few_shot'][shots]['std']:.3f}" for w in cells)
            + " |")
    for key, by_encoder in _groups_by_key(dataset).items():
      level = dataset["levels"][0]
      names = list(by_encoder["trained"][level])
      lines += ["", f"Linear probe at {level} by {key}:", "", "| encoder | " + " | ".join(names) + " |",
                "| --- |" + " --- |" * len(names)]
      for which in ("pixels", "initial", "trained"):
        lines.append(f"| {which} | " + " | ".join(f"{by_encoder[which][level][n]:.3f}" for n in names) + " |")
    lines.append("")
  return "\n".join(lines + ["![linear probe per dataset](transfer.png)", ""])


def _groups_by_key(dataset: dict) -> dict:
  """{group key: {encoder: {level: {name: accuracy}}}} from a dataset's "groups" ({encoder: {level: {key: ...}}})."""
  regrouped = {}
  for which, by_level in dataset.get("groups", {}).items():
    for level, by_key in by_level.items():
      for key, values in by_key.items():
        regrouped.setdefault(key, {}).setdefault(which, {})[level] = values
  return regrouped


def run_transfer(args) -> dict:
  """The `transfer` command: the trained encoder and its controls on each dataset, by three protocols.

  Writes `transfer.json`, `transfer.md` and `transfer.png` (linear probe accuracy at each dataset's first
  level) into the output directory, by default `<workdir>/eval`, and prints the summary.

  Args:
    args: the parsed command line: `workdir`, `datasets` (comma-separated, or None), `step`, `data_dir`,
      `max_train`, `max_test`, `c_grid` (or None), `features`, `seed`, `output_dir`.

  Returns:
    `transfer_suite.evaluate_transfer`'s dict.

  Raises:
    FileNotFoundError: if the workdir, its checkpoint or a dataset is missing.
    ValueError: for an unknown dataset or one without labels.
  """
  from jax_ssl import transfer_suite
  output = _output_dir(args, str(pathlib.Path(args.workdir) / "eval"))
  datasets = [name.strip() for name in args.datasets.split(",") if name.strip()] if args.datasets else None
  grid = {} if args.c_grid is None else {"c_grid": args.c_grid}
  result = transfer_suite.evaluate_transfer(args.workdir, datasets, step=args.step, data_dir=args.data_dir,
                                            max_train=args.max_train, max_test=args.max_test, seed=args.seed,
                                            output=args.features, **grid)
  _created(output)
  first_level = {name: (dataset["levels"][0], dataset["scores"]) for name, dataset in result["datasets"].items()}
  figures.scores_by_level({which: {name: scores_[which][level]["linear"]["accuracy"]
                                   for name, (level, scores_) in first_level.items()}
                           for which in ("pixels", "initial", "trained")}, output / "transfer.png",
                          title="linear probe, first level")
  _write_json(output / "transfer.json", result)
  (output / "transfer.md").write_text(_transfer_markdown(result))
  print(_transfer_markdown(result).split("\n![")[0])
  print(f"wrote {output / 'transfer.json'}, {output / 'transfer.md'} and {output / 'transfer.png'}")
  return result


def _generalization_markdown(result: dict) -> str:
  return "\n".join([
      f"# Two-model generalization: {result['method']} on {result['dataset']}", "",
      f"Model A trained on classes {result['classes_a']}, model B on classes {result['classes_b']}; both embed "
      f"{result['num_items']} test images of A's classes. High A-vs-B similarity means B, which never saw these "
      "classes, organises them the way A does.", "",
      *_structure_table({"A vs B": result["a_vs_b"], "pixels vs A": result["a_vs_pixels"],
                         "pixels vs B": result["b_vs_pixels"],
                         "A vs B at initialisation (control)": result["untrained_a_vs_b"],
                         "pixels vs A at initialisation (control)": result["untrained_a_vs_pixels"]}), "",
      f"Features: {result['output']} outputs. The controls are the same two networks before training: "
      "a trained pair is worth its distance above them.", "",
      "![dendrograms](dendrograms.png)", "",
      "Class centroids of the compared images (SAG-VICReg Fig. 6): a model that keeps the global structure of "
      "classes it never saw puts related classes' centroids together (B's panels); coloured by "
      f"{result['centroids']['group_level']}.", "",
      "![class centroids](centroids.png)", ""])


def run_generalization(args) -> dict:
  """The `generalization` command: train models A and B on the two halves of the classes and compare them.

  The runs go to `<workdir>/model_a` and `<workdir>/model_b`, the workdir defaulting to
  `workdirs/generalization-<config stem>[-<arg>]`. Writes `generalization.json`, `generalization.md`,
  `embeddings.npz` (the compared items and both models' features), `dendrograms.png` and `centroids.png`
  (UMAP layouts and dendrograms of the class centroids) into the output
  directory, by default `<workdir>/eval`, and prints the summary.

  Args:
    args: the parsed command line: `config` (`path.py[:arg]`), `workdir`, `data_dir`, `max_items`, `features`,
      `seed`, `output_dir`.

  Returns:
    `protocols.generalization`'s dict.

  Raises:
    FileNotFoundError: if the config file or the dataset is missing.
    ValueError: if the config is invalid or the evaluation rejects its inputs.
  """
  config = protocols.load_config_file(args.config)
  if args.data_dir:
    config.data.data_dir = args.data_dir
  path, _, arg = args.config.partition(":")
  name = f"generalization-{pathlib.Path(path).stem}" + (f"-{arg.replace(',', '-')}" if arg else "")
  workdir = pathlib.Path(args.workdir or pathlib.Path("workdirs") / name)
  output = _output_dir(args, str(workdir / "eval"))
  result = protocols.generalization(config, workdir, max_items=args.max_items, seed=args.seed, output=args.features)
  _created(output)
  np.savez(output / "embeddings.npz", items=result["items"], **result["features"])
  figures.dendrograms({"model A": trees.ward_linkage(result["features"]["model_a"]),
                       "model B": trees.ward_linkage(result["features"]["model_b"])}, output / "dendrograms.png")
  views = result["centroids"]
  titles = {"pixels": "pixels", "model_a": "model A (trained on these classes)",
            "model_b": "model B (never saw them)"}
  figures.centroid_maps({titles[name]: layout for name, layout in views["umap"].items()},
                        {titles[name]: trees.ward_linkage(points) for name, points in views["points"].items()},
                        views["names"], views["groups"], output / "centroids.png", group_level=views["group_level"])
  _write_json(output / "generalization.json", result)
  (output / "generalization.md").write_text(_generalization_markdown(result))
  print(_generalization_markdown(result).split("\n\n![")[0])
  print(f"wrote {output / 'generalization.json'}, {output / 'generalization.md'}, embeddings.npz and figures")
  return result


def _output_dir(args, default: str) -> pathlib.Path:
  """The output directory, checked before anything is computed; it is created when the results are written.

  Raises:
    ValueError: it is a file, lies under a file, or cannot be written (one line).
  """
  output = pathlib.Path(args.output_dir or default)
  if output.exists() and not output.is_dir():
    raise ValueError(f"--output_dir {output} is a file, not a directory: give a directory for the results.")
  existing = next(path for path in (output.absolute(), *output.absolute().parents) if path.exists())
  if not existing.is_dir():
    raise ValueError(f"--output_dir {output} cannot be created: {existing} is a file.")
  if not os.access(existing, os.W_OK | os.X_OK):
    raise ValueError(f"--output_dir {output} cannot be written ({existing} is not writable): give a writable "
                     "directory.")
  return output


def _created(output: pathlib.Path) -> pathlib.Path:
  """`output`, created now that there are results to write."""
  output.mkdir(parents=True, exist_ok=True)
  return output


_positive = command.at_least(3)  # item counts: the structure scores need three items


def _positive_floats(text: str) -> tuple[float, ...]:
  """An argparse type: comma-separated positive numbers."""
  try:
    values = tuple(float(part) for part in text.split(",") if part.strip())
  except ValueError:
    raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
  if not values or not all(value > 0 and value < float("inf") for value in values):
    raise argparse.ArgumentTypeError(f"{text!r}: give positive finite numbers, e.g. 0.01,1,100")
  return values


def parser() -> argparse.ArgumentParser:
  """The command-line parser: subcommands `structure`, `checkpoint`, `generalization`, `dense` and `transfer`.

  Returns:
    An `argparse.ArgumentParser` whose parsed namespace holds `command` and `run`, the function of the chosen
    subcommand.
  """
  main = command.OneLineParser(prog="python -m jax_ssl.evaluate", description=__doc__.split("\n\n")[0],
                        formatter_class=argparse.RawDescriptionHelpFormatter)
  commands = main.add_subparsers(dest="command", required=True,
                                 metavar="{structure,checkpoint,generalization,dense,transfer}")

  structure = commands.add_parser("structure", help="compare the hierarchies of two sets of the same items")
  structure.add_argument("first", help="A.npy: (N, F) embeddings or (N, ...) raw inputs")
  structure.add_argument("second", help="B.npy: the same N items")
  structure.add_argument("--max_items", type=_positive, default=None, help="compare a random subset of this size")
  structure.set_defaults(run=run_structure)

  checkpoint = commands.add_parser("checkpoint", help="evaluate a trained encoder per level of the label hierarchy")
  checkpoint.add_argument("--workdir", required=True, help="the training run's workdir")
  checkpoint.add_argument("--dataset", default=None, help="default: the dataset the run trained on")
  checkpoint.add_argument("--step", type=command.at_least(0), default=None,
                          help="default: the newest readable checkpoint")
  checkpoint.add_argument("--data_dir", default=None)
  checkpoint.add_argument("--split", default="test")
  checkpoint.add_argument("--hierarchy", default=None, help="JSON file of extra levels (see jax_ssl.eval.hierarchy)")
  checkpoint.add_argument("--max_train", type=command.at_least(1), default=10_000,
                          help="train images that fit the probes")
  checkpoint.add_argument("--max_items", type=_positive, default=2000, help="items for the Rand index and structure")
  checkpoint.add_argument("--probe_epochs", type=command.at_least(0), default=100, help="0 skips the linear probe")
  checkpoint.set_defaults(run=run_checkpoint)

  generalization = commands.add_parser("generalization", help="the two-model protocol of SAG-VICReg")
  generalization.add_argument("--config", required=True, help="configs/<x>.py[:arg], as for jax_ssl.main")
  generalization.add_argument("--workdir", default=None, help="default: workdirs/generalization-<config>")
  generalization.add_argument("--data_dir", default=None, help="overrides the config's data.data_dir")
  generalization.add_argument("--max_items", type=_positive, default=2000, help="test images compared")
  generalization.set_defaults(run=run_generalization)

  dense_probe = commands.add_parser("dense", help="linear segmentation and PCA feature maps of a trained encoder")
  dense_probe.add_argument("--workdir", required=True, help="the training run's workdir (a dataset with masks)")
  dense_probe.add_argument("--dataset", default=None, help="default: the run's (one with masks or class maps: "
                           "shapes, ade20k)")
  dense_probe.add_argument("--step", type=command.at_least(0), default=None,
                           help="default: the newest readable checkpoint")
  dense_probe.add_argument("--data_dir", default=None)
  dense_probe.add_argument("--max_train", type=command.at_least(1), default=2000,
                           help="train images that fit each head")
  dense_probe.add_argument("--epochs", type=command.at_least(1), default=30, help="passes of each head over its images")
  dense_probe.set_defaults(run=run_dense)

  transfer = commands.add_parser("transfer", help="linear, kNN and few-shot probes on transfer and OOD datasets")
  transfer.add_argument("--workdir", required=True, help="the training run's workdir")
  transfer.add_argument("--datasets", default=None,
                        help="comma-separated dataset names; default: the bundled digits, shapes and shapes_ood")
  transfer.add_argument("--step", type=command.at_least(0), default=None, help="default: the newest good checkpoint")
  transfer.add_argument("--data_dir", default=None, help="where the datasets are prepared")
  transfer.add_argument("--max_train", type=command.at_least(2), default=5000, help="train images per dataset")
  transfer.add_argument("--max_test", type=command.at_least(1), default=2000, help="test images per dataset")
  transfer.add_argument("--c_grid", type=_positive_floats, default=None,
                        help="comma-separated C values of the logistic probe's search (default 1e-4, ..., 1e2)")
  transfer.set_defaults(run=run_transfer)

  for subparser in (checkpoint, generalization, transfer):
    subparser.add_argument("--features", choices=("backbone", "projector"), default="backbone",
                         help="evaluate the backbone's features or the projector's embeddings (the paper's)")
  for subparser in (structure, checkpoint, generalization, dense_probe, transfer):
    subparser.add_argument("--output_dir", default=None, help="where the JSON, Markdown and figures go")
    subparser.add_argument("--seed", type=int, default=0, help="seed of subsampling, clustering and probes")
  return main


def main(argv: list[str] | None = None) -> int:
  """Runs one evaluation command; a ValueError or FileNotFoundError becomes one line on stderr.

  Args:
    argv: command-line arguments without the program name; None reads `sys.argv[1:]`.

  Returns:
    The exit code: 0 when the command finished, `EXIT_BAD_INPUT` (2) on bad input, `EXIT_STOPPED` (130)
    when a training it runs was preempted or interrupted (rerunning resumes it). Malformed arguments make
    argparse exit with status 2 itself.
  """
  args = parser().parse_args(argv)
  try:
    args.run(args)
  except loop.TrainingStoppedError as error:
    print(f"jax_ssl.evaluate {args.command}: {error}", file=sys.stderr)
    return EXIT_STOPPED
  except (ValueError, FileNotFoundError) as error:  # ConfigError and DatasetNotFoundError among them
    message = " ".join(str(error).split())
    print(f"jax_ssl.evaluate {args.command}: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT
  return 0


if __name__ == "__main__":
  command.exit_on_ctrl_c("evaluate stopped by Ctrl-C; the checkpoints of any training it ran are kept: rerun the same "
                         "command to resume.")
  sys.exit(main())
