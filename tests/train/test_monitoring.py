"""What a run leaves in its workdir: metrics.jsonl, TensorBoard events, the kNN monitor, report.md."""

import json
import time

from configs import common
from jax_ssl.eval import probes
from jax_ssl.train import evaluation as evaluation_lib
from jax_ssl.train import loop
from jax_ssl.train import monitor


def test_workdir_holds_metrics_events_and_a_report(bundled_dir, tmp_path):
  config = common.smoke(common.bundled_base("vicreg"))
  config.data.data_dir = str(bundled_dir)
  config.train.update(num_steps=4, log_every=2, eval_every=2)
  config.eval.update(max_train_examples=128, probe_epochs=3)
  summary = loop.train(config, tmp_path)

  records = monitor.read_metrics(tmp_path)
  assert [r["step"] for r in records] == [2, 4]
  for key in ("loss", "loss/invariance", "loss/variance", "loss/covariance", "grad_norm", "lr", "embedding/std",
              "embedding/effective_rank", "probe/accuracy", "images_per_second", "knn_accuracy"):
    assert key in records[-1], key
  assert records[-1]["embedding/effective_rank"] > 1 and 0 <= records[-1]["knn_accuracy"] <= 1
  assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
  assert json.loads((tmp_path / "config.json").read_text())["method"]["name"] == "vicreg"

  report = (tmp_path / "report.md").read_text()
  assert "| knn | label |" in report and "| linear | label |" in report and "initialisation" in report
  assert (tmp_path / "report_training.png").stat().st_size > 0 and (tmp_path / "report_accuracy.png").exists()
  evaluation = summary["evaluation"]
  assert set(evaluation) == {"trained", "initial", "pixels"} and set(evaluation["trained"]) == {"knn", "linear"}
  numbers = json.loads((tmp_path / "report.json").read_text())
  assert numbers["accuracy"] == evaluation and numbers["steps"] == 4 and numbers["final_metrics"]["loss"] > 0
  # The pixel control is the probes on the flattened eval images themselves.
  source = loop.open_training_source(config)
  train = evaluation_lib.sample_split(source, 128, seed=config.seed)
  test = evaluation_lib.sample_split(loop.open_training_source(config, "test"), 128, seed=config.seed + 1)
  flat = lambda images: images.reshape(len(images), -1).astype("float32")  # noqa: E731
  expected = probes.knn_accuracy_by_level(flat(train["image"]), {"label": train["label"]}, flat(test["image"]),
                                          {"label": test["label"]}, k=config.eval.knn_k,
                                          temperature=config.eval.knn_temperature)
  assert evaluation["pixels"]["knn"]["label"] == expected["label"]
  # Each row's gain is over the better control.
  row = next(line for line in report.splitlines() if line.startswith("| knn | label |"))
  pixels, initial, trained, gain = (float(cell) for cell in row.strip("|").split("|")[2:])
  assert abs(gain - (trained - max(pixels, initial))) < 2e-3


def test_read_metrics_merges_a_resumed_runs_records(tmp_path):
  (tmp_path / monitor.METRICS_FILE).write_text(
      '{"step": 1, "loss": 3.0}\n{"step": 2, "loss": 2.0}\n{"step": 2, "loss": 2.5, "knn_accuracy": 0.3}\n')
  assert monitor.read_metrics(tmp_path) == [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.5, "knn_accuracy": 0.3}]


def test_throughput_and_eta_count_from_the_step_after_compilation(bundled_dir, tmp_path, monkeypatch):
  # The first call of the step stands for compilation: 4 s longer than any step.
  jit_train_step = loop.step_lib.jit_train_step

  def slow_first_call(*args, **kwargs):
    step = jit_train_step(*args, **kwargs)
    calls = []

    def timed(*step_args):
      if not calls:
        time.sleep(4.0)
      calls.append(1)
      return step(*step_args)
    return timed

  monkeypatch.setattr(loop.step_lib, "jit_train_step", slow_first_call)
  config = common.smoke(common.bundled_base("vicreg"))
  config.data.data_dir = str(bundled_dir)
  config.train.update(num_steps=3, log_every=1, checkpoint_every=100)  # no save inside the timed steps
  config.eval.report = False
  loop.train(config, tmp_path)
  records = monitor.read_metrics(tmp_path)
  batch = config.train.global_batch_size
  # Counting the first call would give at most batch / 4 s per step; from step 2 on it is not counted, and a
  # step of the smoke model takes well under 1 s even on a loaded 2-core machine.
  assert records[0]["images_per_second"] == 0.0, records
  assert min(r["images_per_second"] for r in records[1:]) > batch / 1.0, records
