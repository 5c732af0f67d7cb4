"""The paper-reproduction scripts run end to end at tiny sizes and write what they promise.

Each script runs as a subprocess (`--small --output_dir tmp_path`), as a user
would run it from the repository root. No test asserts a paper's claim: only
that the JSON holds the promised keys with finite, well-shaped values and that
the figure is a PNG.
"""

import json
import math
import os
import subprocess
import sys

import pytest

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _run(name, tmp_path):
  env = {**os.environ, "PYTHONPATH": os.getcwd(), "XLA_FLAGS": ""}
  result = subprocess.run([sys.executable, f"experiments/{name}.py", "--small", "--output_dir", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  figure = tmp_path / "figures" / f"{name}.png"
  assert figure.read_bytes()[:8] == PNG_SIGNATURE
  data = json.loads((tmp_path / "results" / f"{name}.json").read_text())
  assert data["experiment"] == name and data["small"] is True
  assert data["command"].startswith(f"python experiments/{name}.py") and "--small" in data["command"]
  assert data["machine"]["platform"] == "cpu" and data["machine"]["cpu_cores"] >= 1
  assert data["figure"] == f"figures/{name}.png"
  return data


def _finite(*values):
  for value in values:
    if isinstance(value, list):
      _finite(*value)
    else:
      assert isinstance(value, (int, float)) and math.isfinite(value), value


def test_collapse_gradients(tmp_path):
  data = _run("collapse_gradients", tmp_path)
  radii = data["radii"]
  assert radii[0] == pytest.approx(1e-4) and radii[-1] == pytest.approx(10.0)
  assert all(a < b for a, b in zip(radii, radii[1:]))
  num_seeds = len(data["setup"]["seeds"])
  for name in ("vicreg", "barlow_twins", "sigreg", "swd", "visreg"):
    curve = data["curves"][name]
    for key in ("grad_norm_per_seed", "radial_derivative_per_seed", "loss_per_seed"):
      assert len(curve[key]) == num_seeds and all(len(row) == len(radii) for row in curve[key])
      _finite(curve[key])
    assert all(g >= 0 for row in curve["grad_norm_per_seed"] for g in row)
    summary = data["summary"][name]
    _finite(summary["loglog_slope_collapsed"], summary["grad_norm_at_smallest_r"], summary["grad_norm_at_r_1"])


def test_scaling_cost(tmp_path):
  data = _run("scaling_cost", tmp_path)
  regularizers = ["vicreg", "barlow_twins", "sigreg", "swd", "visreg", "t_reg"]
  for sweep, names in (("N", regularizers), ("D", regularizers), ("D_K2D", ["sigreg", "swd", "visreg"])):
    result = data["sweeps"][sweep]
    assert sorted(result["rows"]) == sorted(names)
    for rows in result["rows"].values():
      assert len(rows) == len(result["configs"]) >= 2
      for row in rows:
        assert row["time_s"] > 0 and row["temp_bytes"] >= 0 and row["total_bytes"] > 0
  for name in regularizers:
    exponents = data["exponents_time"][name]
    _finite(exponents["N"]["all"], exponents["N"]["largest_3"], exponents["D_fixed_K"]["all"])
  assert data["setup"]["expected_exponents"]["vicreg"]["D"] == 2


def test_point_cloud(tmp_path):
  data = _run("point_cloud", tmp_path)
  a, b = data["case_a_simplex"], data["case_b_sphere"]
  assert a["n"] <= a["d"] + 1 and b["n"] > b["d"] + 1
  assert a["after"]["target_cosine"] == pytest.approx(-1 / (a["n"] - 1))
  _finite(a["after"]["mean_abs_deviation"], a["after"]["max_abs_deviation"], a["after"]["norm_mean"],
          a["predicted_simplex_radius"])
  for key in ("uniformity", "resultant", "ks_cosine", "covering_radius", "nn_cv"):
    _finite(b["after"][key], b["before"][key], b["iid_uniform_reference"][key]["mean"],
            b["z_scores_vs_iid_uniform"][key])
  _finite(b["norms_after"]["mean"], b["continuous_uniform_uniformity"], a["loss_history"], b["loss_history"])
  assert -1.0 <= a["after"]["cosine_min"] <= a["after"]["cosine_max"] <= 1.0


def test_spectral_demo(tmp_path):
  data = _run("spectral_demo", tmp_path)
  assert data["input_space"]["relative_spread_unseen"] > 0
  for width in data["widths"].values():
    for method in ("vicreg", "sag_vicreg"):
      summary = width["summary"][method]
      for key in ("relative_spread_unseen", "seen_spread_over_separation", "unseen_spread_over_separation"):
        assert len(summary[key]["per_seed"]) == width["num_seeds"]
        _finite(summary[key]["mean"], summary[key]["per_seed"])
        assert summary[key]["mean"] > 0
      for run in width["runs"][method]:
        _finite(run["loss_history"], list(run["final_metrics"].values()))
        assert len(run["stats"]["spread_per_cluster"]) == 4
    assert 0 <= width["seeds_where_sag_relative_spread_is_lower"] <= width["num_seeds"]
    assert all(0 <= run["stats"]["knn_cluster_accuracy"] <= 1 for runs in width["runs"].values() for run in runs)


def _run_training_experiment(tmp_path, script, *extra):
  env = {**os.environ, "PYTHONPATH": os.getcwd(), "XLA_FLAGS": ""}
  result = subprocess.run([sys.executable, f"experiments/{script}.py", "--small", "--output_dir", str(tmp_path),
                           *extra], capture_output=True, text=True, env=env, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  name = f"{script}-small"
  assert (tmp_path / "figures" / f"{name}.png").read_bytes()[:8] == PNG_SIGNATURE
  return json.loads((tmp_path / "results" / f"{name}.json").read_text())


@pytest.mark.filterwarnings("ignore")
def test_overhead(tmp_path, bundled_dir):
  data = _run_training_experiment(tmp_path, "overhead", "--methods", "mse,tregs", f"--data_dir={bundled_dir}")
  assert data["experiment"] == "overhead" and data["device"] == "cpu" and set(data["step_s"]) == {"mse", "tregs"}
  (row,) = data["rows"]  # only the complete pair reports
  assert row["method"] == "tregs" and row["baseline"] == "mse"
  assert row["overhead"] == pytest.approx(row["step_s"] / row["baseline_step_s"] - 1)


@pytest.mark.filterwarnings("ignore")
def test_compare_methods(tmp_path, bundled_dir):
  data = _run_training_experiment(tmp_path, "compare_methods", "--datasets", "digits", "--methods", "tregs",
                                  "--seeds", "1", f"--data_dir={bundled_dir}")
  entry = data["results"]["digits"]["tregs"]
  (run,) = entry["runs"]
  for score in ("knn", "linear", "rand_index"):
    assert set(run[score]) == {"label", "label_coarse"}
    assert all(0 <= value <= 1 for value in run[score].values())
    assert entry["summary"][score]["label"] == {"mean": run[score]["label"], "std": 0.0}
  generalization = run["generalization"]
  assert set(generalization) == {"lca_pearson", "lca_spearman", "lca_kendall", "cophenetic_d1_to_p2",
                                 "cophenetic_d2_to_p1"}
  _finite(*generalization.values())
