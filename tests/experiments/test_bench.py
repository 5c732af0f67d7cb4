"""The benchmark scripts run end to end at tiny sizes and write the results they promise."""

import json
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def _run(module, output, *extra):
  result = subprocess.run([sys.executable, "-m", module, "--small", "--output", str(output), *extra],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(output.read_text())


def test_losses_benchmark(tmp_path):
  result = _run("experiments.bench.losses", tmp_path / "losses.json")
  names = [row["name"] for row in result["rows"]]
  assert any(name.startswith("mst_length") for name in names)
  assert "visreg_regularizer fwd+grad" in names and "sigreg fwd+grad" in names
  for row in result["rows"]:
    assert row["time_s"] > 0 and row["reference_time_s"] > 0 and row["ratio"] > 0
    assert row["meets_goal"] is None  # goals are graded at the sizes only
  assert result["device"] == "cpu" and result["small"] is True


@pytest.mark.filterwarnings("ignore")
def test_data_benchmark(tmp_path, bundled_dir):
  result = _run("experiments.bench.data", tmp_path / "data.json", f"--data_dir={bundled_dir}")
  for key in ("load_images_per_s", "augment_images_per_s", "pipeline_images_per_s"):
    assert result[key] > 0
  step = result["train_step"]
  assert 0 < step["fraction_2_views"] < step["fraction_2_global_6_local"] < 1


@pytest.mark.filterwarnings("ignore")
def test_train_benchmark(tmp_path, bundled_dir):
  # One method: each further one is another step to compile, on the same code path.
  result = _run("experiments.bench.train", tmp_path / "train.json", f"--data_dir={bundled_dir}", "--methods=vicreg")
  assert [row["method"] for row in result["rows"]] == ["vicreg"]
  assert result["vicreg_images_per_s"] > 0
  for row in result["rows"]:
    assert row["step_s"] > 0 and row["meets_goal"] is None
  assert result["rows"][0]["overhead_vs_vicreg"] == 0.0


@pytest.mark.filterwarnings("ignore")
def test_train_benchmark_end_to_end_times_the_real_loop_against_its_step(tmp_path, bundled_dir):
  # The smoke config logs and checkpoints every step: 6 steps leave 5 logged intervals after the compiling one.
  result = _run("experiments.bench.train", tmp_path / "e2e.json", f"--data_dir={bundled_dir}", "--end_to_end",
                "--config=configs/default.py:smoke", "--steps=6", "--rounds=1")
  assert result["benchmark"] == "train_end_to_end" and result["on_device"] is True
  assert (result["total_steps"], result["steady_state_steps"], result["log_every"]) == (6, 5, 1)
  (only_round,) = result["rounds"]
  assert result["end_to_end_images_per_s"] > 0 and result["step_images_per_s"] > 0
  assert result["ratio"] == pytest.approx(result["end_to_end_images_per_s"] / result["step_images_per_s"])
  assert only_round["ratio"] == result["ratio"]
  # The headline compares like with like (both rates over all their time); the median repeat's is kept beside it.
  assert only_round["ratio_to_median_step"] == pytest.approx(
      only_round["end_to_end_images_per_s"] / only_round["step_median_images_per_s"])
  # The recorded command reproduces this file: where the data was prepared is left out, the output kept.
  assert result["command"].startswith("python -m experiments.bench.train --small --output ")
  assert "--data_dir" not in result["command"] and f"--data_dir={bundled_dir}" in result["invoked_as"]
  # configs/default.py trains SAG-VICReg: the JSON says which reading, and from which commit.
  assert set(result["sag_vicreg_reading"]) == {"graph", "scale_over", "regularize"}
  assert result["commit"] is None or len(result["commit"]) == 40


@pytest.mark.filterwarnings("ignore")
def test_step_profile_accounts_for_the_step_by_kind_and_phase(tmp_path, bundled_dir):
  result = _run("experiments.bench.step_profile", tmp_path / "profile.json", f"--data_dir={bundled_dir}",
                "--repeats=1")
  assert result["benchmark"] == "step_profile" and result["op_s_per_step"] > 0
  assert sum(result["share_by_kind"].values()) == pytest.approx(1.0)
  assert sum(result["seconds_by_phase"].values()) == pytest.approx(result["op_s_per_step"])
  # The small CNN convolves forward and backward, and its views are cut on the device.
  phases = result["seconds_by_kind_and_phase"]
  assert phases["convolution/forward"] > 0 and phases["convolution/backward"] > 0
  assert result["seconds_by_phase"]["augmentation"] > 0
  (form,) = result["weight_gradient_forms"]
  assert set(form["seconds"]) == {"taps", "flat", "contracted"} and max(form["relative_error"].values()) < 1e-5


def test_step_profile_sorts_hlo_ops_by_what_they_compute():
  import jax
  import jax.numpy as jnp

  from experiments.bench import step_profile

  def loss(x, w):
    y = jax.lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.sum(jax.nn.relu(y) @ jnp.ones((4, 2)))

  x, w = jnp.ones((2, 6, 6, 3)), jnp.ones((3, 3, 3, 4))
  text = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(x, w).compile().as_text()
  computations, instructions = step_profile.parse_hlo(text)
  classified = {step_profile.classify(name, computations, instructions) for name in instructions}
  assert {("convolution", "forward"), ("convolution", "backward")} <= classified
  assert any(kind == "matmul" for kind, _ in classified)
  assert step_profile.kind_of(["parameter", "transpose", "copy"]) == "layout"
  assert step_profile.kind_of(["parameter", "add", "maximum"]) == "elementwise"
  assert step_profile.kind_of(["parameter", "add", "reduce"]) == "reduction"
  assert step_profile.phase_of("jit(step)/jit(_multi_crop)/vmap()/while/body/select_n") == "augmentation"
  assert step_profile.phase_of("jit(step)/transpose(jvp())/conv_general_dilated") == "backward"
