"""`python -m jax_ssl.finetune --workdir W [--dataset NAME] [--config FILE[:arg]] [--config.<field>=<value> ...]`

Fine-tunes the encoder a pretraining run saved in W, with one linear head
per label level, on a labelled dataset (default: the run's own), and the
same recipe from the untrained network (the same architecture at the run's
initialisation) beside it, so that the table shows what pretraining adds.
The recipe follows the backbone (`jax_ssl.train.finetune`): DeiT's with
layer-wise learning-rate decay for ViTs, SGD with Nesterov momentum for
ResNets and the small CNN; `--config configs/finetune.py[:vit|convnet]` and
`--config.<field>=<value>` change it.

Writes into `--out` (default `W/finetune/<dataset>`): one run directory per
initialisation (`pretrained/`, `untrained/`: checkpoints, metrics.jsonl,
config.json, result.json), `finetune.json` (top-1 per level, the recipe and
where each run started) and `finetune.md`. Rerunning the same command
resumes a stopped run from its newest good checkpoint and skips the
finished ones. Exit codes: 0 done (or stopped by SIGTERM with a checkpoint
saved), 1 a non-finite loss, 2 bad input (one line: no run in W, an unknown
dataset or config key, a config that differs from the one in `--out`),
130 stopped by Ctrl-C.
"""

from __future__ import annotations

import json
import pathlib
import sys

from jax_ssl import command

RESULTS_JSON = "finetune.json"
RESULTS_MD = "finetune.md"


def load_config(argument: str | None, overrides: list[str], backbone: str):
  """The fine-tuning config: the file's (`path[:arg]`), or the backbone's recipe, with `field=value` overrides.

  Args:
    argument: `--config`'s value, or None.
    overrides: `field=value` settings, applied in order.
    backbone: the pretrained backbone, whose recipe is the default.

  Returns:
    The config (`ml_collections.ConfigDict`).

  Raises:
    ConfigError: an override names no field or does not parse, or the file does not return a ConfigDict.
    FileNotFoundError: the file does not exist.
  """
  import ml_collections

  from jax_ssl import protocols
  from jax_ssl.train import config as config_lib
  from jax_ssl.train import finetune_recipe

  config = (protocols.load_config_file(argument) if argument
            else finetune_recipe.default_config(finetune_recipe.recipe_for(backbone)))
  if not isinstance(config, ml_collections.ConfigDict):
    raise config_lib.ConfigError(f"get_config in {argument} returned a {type(config).__name__}, not a ConfigDict: "
                                 "start it from jax_ssl.train.finetune_recipe.default_config.")
  for item in overrides:
    key, equals, value = item.partition("=")
    if not equals:
      raise config_lib.ConfigError(f"--config.{item} has no value; write --config.{key}=<value>.")
    node, field, parsed = config_lib.typed_override(config, key, value)
    node[field] = parsed
  return config


def markdown(result: dict) -> str:
  """finetune.md: top-1 per level for each initialisation on the test split and its shifted sets, and the recipe.

  Args:
    result: what `run_finetuning` returns for completed runs.

  Returns:
    The Markdown text.
  """
  levels, runs = result["levels"], result["runs"]
  lines = [f"# Fine-tuning on {result['dataset']}", "",
           f"Encoder of `{result['workdir']}` ({result['method']}, `{result['backbone']}`), fine-tuned with a linear "
           f"head per label level by the `{result['config']['recipe']}` recipe; top-1 accuracy on the whole test "
           "split, and on the out-of-distribution sets of the same classes. `untrained` is the same recipe from "
           "the same network at its initialisation.", "",
           "| test set | initialisation | pretraining step | fine-tuning steps | " + " | ".join(levels) + " |",
           "| --- | --- | --- | --- | " + " | ".join("---" for _ in levels) + " |"]
  first = next(iter(runs.values()))
  for name in [result["dataset"], *first["shifted"]]:
    for init, run in runs.items():
      scores = run if name == result["dataset"] else run["shifted"][name]
      lines.append(f"| {name} ({scores['num_test']}) | {init} | {run['pretrained_step']} | {run['step']} | "
                   + " | ".join(f"{scores['top1'][level]:.3f}" for level in levels) + " |")
  for name, shifted in first["shifted"].items():
    for key, groups in shifted.get("groups", {}).items():
      lines += ["", f"{name}, top-1 at the finest level per {key}:", "",
                f"| initialisation | {' | '.join(groups)} |", f"| --- | {' | '.join('---' for _ in groups)} |"]
      lines += [f"| {init} | " + " | ".join(f"{run['shifted'][name]['groups'][key][group]:.3f}" for group in groups)
                + " |" for init, run in runs.items()]
  optim, train = result["config"]["optim"], result["config"]["train"]
  lines += ["", f"Recipe: {optim['name']}, base learning rate {optim['base_lr']:g} per 256 images, weight decay "
                f"{optim['weight_decay']:g}, layer decay {optim['layer_decay']:g}, warmup {optim['warmup_epochs']:g} "
                f"epochs then cosine, label smoothing {train['label_smoothing']:g}, batch "
                f"{train['global_batch_size']}, crops of scale {tuple(result['config']['views']['crop_scale'])}.", ""]
  return "\n".join(lines)


def run_finetuning(workdir: str | pathlib.Path, dataset: str | None = None, *, config=None,
                   inits: tuple[str, ...] = ("pretrained", "untrained"), step: int | None = None,
                   data_dir: str | None = None, out: str | pathlib.Path | None = None, on_second_interrupt=None,
                   progress_stream=None) -> dict:
  """Fine-tune the run's encoder and its untrained control; write finetune.json and finetune.md when both finish.

  Args:
    workdir: the pretraining run's directory.
    dataset: the labelled dataset; None for the run's own.
    config: the fine-tuning config; None for the backbone's recipe.
    inits: which initialisations to fine-tune, in order ("pretrained", "untrained").
    step: the pretraining checkpoint; None for the newest readable one.
    data_dir: where `dataset` is prepared; None for the run's `data.data_dir` on the run's own dataset.
    out: where the runs and results go; None for `workdir/finetune/<dataset>`.
    on_second_interrupt: what a second Ctrl-C calls.
    progress_stream: where the progress lines go; None for stdout.

  Returns:
    `{"dataset", "levels", "workdir", "method", "backbone", "config", "runs": {init: run}, "out",
    "status"}`, each run as `jax_ssl.train.finetune.finetune` returns it; status "interrupted" when a run
    stopped (nothing is written then).

  Raises:
    FileNotFoundError: no run or checkpoint in `workdir`, or the dataset is not prepared.
    ValueError: an unknown dataset, one without labels, or a bad config (`ConfigError`).
  """
  from jax_ssl.data import catalog
  from jax_ssl.train import encoder as encoder_lib
  from jax_ssl.train import finetune
  from jax_ssl.train import finetune_recipe

  workdir = pathlib.Path(workdir)
  pretraining = encoder_lib.run_config(workdir)
  dataset = dataset or pretraining.data.name
  spec = catalog.get_spec(dataset)
  if not spec.label_levels:
    raise ValueError(f"{dataset} has no class labels to fine-tune on; pick a labelled dataset.")
  if config is None:
    config = finetune_recipe.default_config(finetune_recipe.recipe_for(pretraining.model.backbone))
  config.data.name = dataset
  if data_dir is not None:
    config.data.data_dir = data_dir
  elif dataset == pretraining.data.name and not config.data.data_dir:
    config.data.data_dir = pretraining.data.data_dir
  out = pathlib.Path(out) if out is not None else workdir / "finetune" / dataset
  runs = {}
  for init in inits:
    runs[init] = finetune.finetune(config, workdir, out / init, init=init, step=step,
                                   on_second_interrupt=on_second_interrupt, progress_stream=progress_stream)
    if runs[init]["status"] != "completed":
      return {"status": "interrupted", "runs": runs, "out": str(out)}
  result = {"status": "completed", "dataset": dataset, "levels": list(spec.label_levels), "workdir": str(workdir),
            "method": pretraining.method.name, "backbone": pretraining.model.backbone,
            "config": json.loads(config.to_json()), "runs": runs, "out": str(out)}
  out.mkdir(parents=True, exist_ok=True)
  (out / RESULTS_JSON).write_text(json.dumps(result, indent=2) + "\n")
  (out / RESULTS_MD).write_text(markdown(result))
  return result


def main(argv: list[str] | None = None) -> int:
  """Runs the fine-tuning; every mistake the user can fix is one line on stderr and exit code 2.

  Args:
    argv: the arguments without the program name; None reads `sys.argv[1:]`.

  Returns:
    The exit code (see the module docstring).
  """
  parser = command.OneLineParser(prog="python -m jax_ssl.finetune", description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True, help="the pretraining run's workdir")
  parser.add_argument("--dataset", default=None, help="a labelled dataset; default: the run's")
  parser.add_argument("--config", default=None, help="configs/finetune.py[:vit|convnet][,key=value...]; "
                      "default: the backbone's recipe")
  parser.add_argument("--init", default="pretrained,untrained",
                      help="pretrained, untrained, or both (the default), comma-separated")
  parser.add_argument("--step", type=command.at_least(0), default=None, help="default: the newest good checkpoint")
  parser.add_argument("--data_dir", default=None, help="where the dataset is prepared")
  parser.add_argument("--out", default=None, help="default: WORKDIR/finetune/<dataset>")
  args, rest = parser.parse_known_args(argv)
  overrides = [item.removeprefix("--config.") for item in rest if item.startswith("--config.")]
  unknown = [item for item in rest if not item.startswith("--config.")]
  if unknown:
    parser.error(f"unrecognized arguments: {' '.join(unknown)}")
  inits = tuple(part.strip() for part in args.init.split(",") if part.strip())
  if not inits or any(init not in ("pretrained", "untrained") for init in inits) or len(set(inits)) < len(inits):
    parser.error(f"--init takes pretrained, untrained or both, comma-separated; got {args.init!r}")

  from jax_ssl.data import sources
  from jax_ssl.train import checkpoint
  from jax_ssl.train import config as config_lib
  from jax_ssl.train import encoder as encoder_lib
  from jax_ssl.train import finetune
  from jax_ssl.train import loop
  from jax_ssl.train import workdir as workdir_lib

  prog = parser.prog
  try:
    pretraining = encoder_lib.run_config(args.workdir)
    config = load_config(args.config, overrides, pretraining.model.backbone)
  except (FileNotFoundError, ValueError) as error:
    command.fail(command.EXIT_BAD_INPUT, command.one_line(error), prefix=prog)
  out_hint = args.out or pathlib.Path(args.workdir) / "finetune" / (args.dataset or pretraining.data.name)
  command.exit_on_ctrl_c(f"stopped by Ctrl-C; the checkpoints in {out_hint}, if any, are kept: rerun the same "
                         "command to resume.")
  try:
    result = run_finetuning(args.workdir, args.dataset, config=config, inits=inits, step=args.step,
                            data_dir=args.data_dir, out=args.out, on_second_interrupt=lambda: command.stop_now(
                                f"stopped at once by a second Ctrl-C; the checkpoints in {out_hint} are kept: "
                                "rerun the same command to resume."))
  except (config_lib.ConfigError, finetune.FinetuneConfigMismatchError, workdir_lib.WorkdirError,
          workdir_lib.WorkdirInUseError, sources.DatasetNotFoundError, FileNotFoundError, ValueError) as error:
    command.fail(command.EXIT_BAD_INPUT, command.one_line(error), prefix=prog)
  except (loop.NonFiniteError, checkpoint.NonFiniteStateError) as error:
    command.fail(command.EXIT_FAILED, command.one_line(error), prefix=prog)
  if result["status"] != "completed":
    stopped = next(run for run in result["runs"].values() if run["status"] != "completed")
    print(f"{prog}: stopped by {stopped['stopped_by']} at step {stopped['step']}/{stopped['total_steps']} of the "
          f"{stopped['init']} run; its checkpoint is in {stopped['run_dir']}: rerun the same command to resume.")
    return command.EXIT_INTERRUPTED if stopped["stopped_by"] == "SIGINT" else 0
  out = pathlib.Path(result["out"])
  print(markdown(result))
  print(f"wrote {out / RESULTS_JSON} and {out / RESULTS_MD}")
  return 0


if __name__ == "__main__":
  command.exit_on_ctrl_c("stopped by Ctrl-C before fine-tuning started; nothing was written.")
  sys.exit(main())
