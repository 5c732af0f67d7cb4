"""The paper-reproduction scripts run end to end at tiny sizes and write what they promise.

Each script runs as a subprocess (`python -m experiments.<name> --small
--output_dir tmp_path`), as a user would run it from the repository root. No
test asserts a paper's claim: only that the JSON holds the promised keys with
finite, well-shaped values and that the figure is a PNG.
"""

import argparse
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REPO = pathlib.Path(__file__).resolve().parents[2]  # where `python -m experiments.<name>` runs


def _run(name, tmp_path):
  result = subprocess.run([sys.executable, "-m", f"experiments.{name}", "--small", "--output_dir", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  figure = tmp_path / "figures" / f"{name}.png"
  assert figure.read_bytes()[:8] == PNG_SIGNATURE
  data = json.loads((tmp_path / "results" / f"{name}.json").read_text())
  assert data["experiment"] == name and data["small"] is True
  assert data["command"].startswith(f"python -m experiments.{name} ") and "--small" in data["command"]
  assert data["commit"] is None or len(data["commit"]) == 40  # the code that wrote it, where git knows
  assert "--output_dir" not in data["command"] and str(tmp_path) in data["invoked_as"]
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
  result = subprocess.run([sys.executable, "-m", f"experiments.{script}", "--small", "--output_dir", str(tmp_path),
                           *extra], capture_output=True, text=True, cwd=REPO, timeout=600)
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


def _run_pretraining(tmp_path, script, *extra):
  result = subprocess.run([sys.executable, "-m", f"experiments.{script}", "--small", "--output_dir",
                           str(tmp_path / "out"), "--workdir", str(tmp_path / "runs"), *extra], capture_output=True,
                          text=True, cwd=REPO, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads((tmp_path / "out" / "results" / f"{script}-small.json").read_text())


def _assert_scores(entry, levels):
  for score in ("knn", "linear", "rand_index"):
    assert set(entry[score]) == set(levels)
    assert all(0 <= value <= 1 for value in entry[score].values())
  for part in ("a_vs_b", "a_vs_pixels", "b_vs_pixels"):
    assert set(entry["generalization"][part]) == {"lca_pearson", "lca_spearman", "lca_kendall",
                                                  "cophenetic_d1_to_p2", "cophenetic_d2_to_p1"}
    _finite(*entry["generalization"][part].values())


@pytest.mark.filterwarnings("ignore")
def test_readings_and_compare_methods_share_runs_and_carry_controls(tmp_path, bundled_dir):
  # One reading (each trains three models: all classes and the two halves); the default one, which
  # compare_methods declares as its `sag_vicreg`, so the two scripts share the run.
  data = _run_pretraining(tmp_path, "sag_vicreg_readings", "--datasets", "digits", "--seeds", "1",
                          "--variants", "same_view", "--features", "projector", f"--data_dir={bundled_dir}")
  assert data["complete"] and data["features"] == ["projector"]
  assert (tmp_path / "out" / "figures" / "sag_vicreg_readings-small-projector.png").read_bytes()[:8] == PNG_SIGNATURE
  digits = data["results"]["digits"]
  levels = {"label", "label_coarse"}
  for control in ("untrained", "pixels"):
    (run,) = digits["controls"]["runs"]
    _assert_scores(run["projector"][control], levels)
  # The pixels in both roles of the two-model protocol agree perfectly on their LCA tree.
  pixels_to_pixels = digits["controls"]["runs"][0]["projector"]["pixels"]["generalization"]["a_vs_b"]
  assert pixels_to_pixels["lca_kendall"] == pytest.approx(1.0, abs=1e-12)
  entry = digits["variants"]["same_view"]
  (run,) = entry["runs"]
  _assert_scores(run["projector"], levels)
  assert entry["summary"]["projector"]["knn"]["label"] == {"mean": run["projector"]["knn"]["label"], "std": 0.0,
                                                           "n": 1}
  # The walk's statistics over training.
  assert run["commit"] is None or len(run["commit"]) >= 12  # what code trained it, where git knows
  pairing = run["training"]["loss/self_pair_rate"]
  assert 0 <= pairing["mean"] <= 1 and len(pairing["values"]) == len(pairing["steps"]) >= 1
  # compare_methods in the same workdir finds the SAG-VICReg run (and the controls) instead of training again.
  compared = _run_pretraining(tmp_path, "compare_methods", "--datasets", "digits", "--seeds", "1",
                              "--methods", "sag_vicreg", "--features", "projector", f"--data_dir={bundled_dir}",
                              "--collect_only")
  assert compared["complete"]
  assert compared["results"]["digits"]["variants"]["sag_vicreg"]["runs"] == entry["runs"]
  assert compared["results"]["digits"]["controls"]["runs"] == digits["controls"]["runs"]


def test_collapse_recovery_collapses_only_the_last_projector_layer(bundled_dir, tmp_path):
  from experiments import _pretraining
  from experiments import collapse_recovery
  from jax_ssl.train import config as config_lib
  from jax_ssl.train import loop
  config = _pretraining.variant_config(collapse_recovery.METHODS[0], "digits", 0, _pretraining.SCALES["small"],
                                       str(bundled_dir))
  run = loop.Run(config, tmp_path)
  collapsed = collapse_recovery.collapse_projector(run.state.params, 1e-3)
  run.checkpointer.close()
  flat = dict(jax.tree_util.tree_leaves_with_path(run.state.params))
  flat_collapsed = dict(jax.tree_util.tree_leaves_with_path(collapsed))
  scaled = [jax.tree_util.keystr(path) for path in flat if not np.array_equal(flat[path], flat_collapsed[path])]
  assert scaled and all("projector" in name and "last" in name for name in scaled)
  for path in flat:
    if jax.tree_util.keystr(path) in scaled:
      np.testing.assert_allclose(flat_collapsed[path], 1e-3 * np.asarray(flat[path]), rtol=1e-6)
  reference = {"steps": [0, 10, 20], "embedding_std": [1.0, 1.0, 1.0]}
  assert collapse_recovery.recovery_step({"steps": [0, 10, 20], "embedding_std": [1e-3, 0.6, 0.95]}, reference) == 10
  assert collapse_recovery.recovery_step({"steps": [0, 10, 20], "embedding_std": [1e-3, 0.6, 0.95]}, reference,
                                         0.9) == 20
  assert collapse_recovery.recovery_step({"steps": [0, 10, 20], "embedding_std": [1e-3] * 3}, reference) is None
  for variant in collapse_recovery.METHODS:  # every method, the AdamW controls too, is a valid config
    config = _pretraining.variant_config(variant, "digits", 0, _pretraining.SCALES["cpu"], "")
    config_lib.validate(config, num_devices=1)
    assert all(config_lib.flatten(config)[key] == value for key, value in variant.overrides)


def test_reproducing_command_drops_only_the_flags_that_change_no_number():
  from experiments import _common
  # Under `python -m experiments.compare_methods`, argv[0] is the module's file; a script path names the same module.
  for script in (str(_common.EXPERIMENTS_DIR / "compare_methods.py"), "experiments/compare_methods.py"):
    argv = [script, "--keep_published", "--collect_only", "--seeds", "3",
            "--workdir", "/scratch/w", "--data_dir=/scratch/d", "--worker", "1", "--num_workers", "2",
            "--output_dir", "/scratch/o", "--datasets", "shapes", "--methods", "vicreg,tregs"]
    assert _common.reproducing_command(argv) == ("python -m experiments.compare_methods --seeds 3 --datasets shapes "
                                                 "--methods vicreg,tregs")
  assert _common.command_line(argv).endswith("--datasets shapes --methods vicreg,tregs")
  assert "--workdir /scratch/w" in _common.command_line(argv)


def test_variants_flag_keeps_the_order_given_and_names_the_known_ones_on_a_typo(capsys):
  from experiments import _pretraining
  from experiments import sag_vicreg_readings
  parser = argparse.ArgumentParser(prog="readings")
  _pretraining.add_variants_flag(parser, sag_vicreg_readings.VARIANTS)
  chosen = _pretraining.chosen_variants(parser.parse_args(["--variants", "same_view,vicreg"]),
                                        sag_vicreg_readings.VARIANTS, parser)
  assert [v.name for v in chosen] == ["same_view", "vicreg"]
  everything = _pretraining.chosen_variants(parser.parse_args([]), sag_vicreg_readings.VARIANTS, parser)
  assert [v.name for v in everything] == [v.name for v in sag_vicreg_readings.VARIANTS]
  with pytest.raises(SystemExit):
    _pretraining.chosen_variants(parser.parse_args(["--variants", "same_veiw"]), sag_vicreg_readings.VARIANTS, parser)
  message = capsys.readouterr().err.strip().splitlines()[-1]
  assert "--variants takes some of vicreg, cross_view" in message


@pytest.mark.parametrize("script", ["sag_vicreg_readings", "compare_methods", "visreg_ablations",
                                    "sag_vicreg_stability", "byol_tregs_scale"])
def test_every_declared_variant_is_a_valid_config_with_its_overrides(script):
  import importlib

  from experiments import _pretraining
  from jax_ssl.train import config as config_lib
  module = importlib.import_module(f"experiments.{script}")
  names = [variant.name for variant in module.VARIANTS]
  assert len(set(names)) == len(names)
  keys = {_pretraining._run_key(v, _pretraining.SCALES["cpu"], ["backbone"], True) for v in module.VARIANTS}
  assert len(keys) == len(names), "two variants would share their runs"
  for variant in module.VARIANTS:
    config = _pretraining.variant_config(variant, "digits", 0, _pretraining.SCALES["cpu"], "")
    config_lib.validate(config, num_devices=1)
    flat = config_lib.flatten(config)
    for key, value in variant.overrides:
      assert flat[key] == value, key


def test_t_reg_on_a_scaled_sphere_is_lowest_at_the_radius_byol_tregs_scale_states():
  # byol_tregs_scale's reading: on points of norm r whose unit-norm MST has total length E, T-REG is
  # -gamma r E / n + lambda (r - 1)^2, lowest at r = 1 + gamma E / (2 lambda n); far from 1 at gamma / lambda = 250.
  import scipy.sparse.csgraph
  import scipy.spatial

  from jax_ssl import losses
  rng = np.random.default_rng(0)
  unit = rng.normal(size=(64, 128))
  unit /= np.linalg.norm(unit, axis=1, keepdims=True)
  mst_total = scipy.sparse.csgraph.minimum_spanning_tree(scipy.spatial.distance.squareform(
      scipy.spatial.distance.pdist(unit))).sum()
  gamma, lam = 0.2, 8e-4
  stated = 1 + gamma * mst_total / (2 * lam * len(unit))
  radii = np.linspace(1, 3 * stated, 601)
  t_reg_at = jax.jit(lambda r: losses.t_reg(r * jax.numpy.asarray(unit, jax.numpy.float32), gamma, lam))
  values = [float(t_reg_at(r)) for r in radii]
  assert abs(radii[int(np.argmin(values))] - stated) <= 2 * (radii[1] - radii[0])
  assert stated > 100


def test_config_runs_gathers_each_seeds_report(tmp_path, monkeypatch):
  # Runs whose report.json exists are not trained again: the script only gathers them.
  from experiments import config_runs
  def accuracy(shift):  # CLIP's zero-shot probe has no pixels control
    return {encoder: {"knn": {"label": base + shift}, "linear": {"label": base + 2 * shift},
                      **({} if encoder == "pixels" else {"zero_shot": {"label": base / 2 + shift}})}
            for encoder, base in (("pixels", 0.2), ("initial", 0.1), ("trained", 0.5))}

  for seed, shift in enumerate((0.0, 0.1)):
    run = tmp_path / "runs" / f"seed{seed}"
    run.mkdir(parents=True)
    (run / "report.json").write_text(json.dumps({"method": "vicreg", "dataset": "shapes", "backbone": "small_cnn",
                                                 "steps": 7, "seed": seed, "accuracy": accuracy(shift)}))
  monkeypatch.setattr(sys, "argv", ["experiments/config_runs.py", "--config", "configs/vicreg.py", "--seeds", "2",
                                    "--workdir", str(tmp_path / "runs"), "--output_dir", str(tmp_path)])
  config_runs.main()
  data = json.loads((tmp_path / "results" / "config_runs-vicreg.json").read_text())
  linear = data["accuracy"]["trained"]["linear"]["label"]
  assert linear["values"] == [0.5, 0.7] and linear["mean"] == pytest.approx(0.6)
  assert linear["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1)), "the sample std"
  assert data["accuracy"]["pixels"]["knn"]["label"]["mean"] == pytest.approx(0.25) and data["seeds"] == [0, 1]
  assert data["accuracy"]["trained"]["zero_shot"]["label"]["values"] == [0.25, 0.35]
  assert "zero_shot" not in data["accuracy"]["pixels"]
  assert (tmp_path / "figures" / "config_runs-vicreg.png").read_bytes()[:8] == PNG_SIGNATURE
  # --from_results summarises the reports the JSON holds, with no run at hand.
  shutil.rmtree(tmp_path / "runs")
  monkeypatch.setattr(sys, "argv", ["experiments/config_runs.py", "--config", "configs/vicreg.py", "--seeds", "2",
                                    "--from_results", "--output_dir", str(tmp_path)])
  config_runs.main()
  again = json.loads((tmp_path / "results" / "config_runs-vicreg.json").read_text())
  assert again["accuracy"] == data["accuracy"] and again["command"] == data["command"]


def test_transfer_runs_summarises_each_seeds_suite(tmp_path, monkeypatch):
  # Seeds whose transfer.json exists are neither trained nor scored again: the script only gathers them.
  from experiments import transfer_runs

  def scores(shift):
    return {"linear": {"accuracy": 0.5 + shift, "c": 1.0}, "knn": {"10": 0.4 + shift, "20": 0.45},
            "few_shot": {"1": {"mean": 0.2 + shift}, "5": {"mean": 0.3}}}

  for seed, shift in enumerate((0.0, 0.1, 0.3)):
    run = tmp_path / "runs" / f"seed{seed}"
    run.mkdir(parents=True)
    datasets = {"shapes_ood": {"levels": ["label"], "scores": {e: {"label": scores(shift)} for e in
                                                              ("pixels", "initial", "trained")},
                               "groups": {e: {"label": {"shift": {"blur": 0.1 + shift}}} for e in
                                          ("pixels", "initial", "trained")}}}
    (run / "transfer.json").write_text(json.dumps({"method": "vicreg", "backbone": "small_cnn", "settings": {},
                                                   "workdir": str(run), "datasets": datasets}))
  monkeypatch.setattr(sys, "argv", ["experiments/transfer_runs.py", "--config", "configs/vicreg.py", "--seeds", "3",
                                    "--workdir", str(tmp_path / "runs"), "--output_dir", str(tmp_path)])
  transfer_runs.main()
  data = json.loads((tmp_path / "results" / "transfer_runs-vicreg.json").read_text())
  trained = data["summary"]["shapes_ood"]["trained"]
  values = [0.5, 0.6, 0.8]
  assert trained["label"]["linear"]["values"] == pytest.approx(values)
  assert trained["label"]["linear"]["std"] == pytest.approx(np.std(values, ddof=1))
  assert trained["label"]["knn@10"]["mean"] == pytest.approx(np.mean([0.4, 0.5, 0.7]))
  assert trained["label"]["1-shot"]["values"] == pytest.approx([0.2, 0.3, 0.5])
  assert trained["groups"]["shift"]["blur"]["values"] == pytest.approx([0.1, 0.2, 0.4])
  assert "workdir" not in data["runs"][0]


def test_keep_published_takes_only_runs_of_the_same_declaration(tmp_path):
  # A grid trained over several sessions: the runs the published JSON holds are taken, not trained again,
  # but only where config file, overrides, scale, features and the two-model protocol are the same.
  from experiments import _pretraining
  from experiments._pretraining import Variant
  from jax_ssl.losses import sag_vicreg

  def fake_run(seed, value):
    scores = {score: {"label": value, "label_coarse": value / 2} for score in _pretraining.SCORES}
    return {"seed": seed, "training": {}, "backbone": scores}

  def experiment(workdir, variants, scale=_pretraining.SCALES["cpu"]):
    return _pretraining.Experiment("readings", variants, ["digits"], 2, "cpu", dict(scale), "", workdir,
                                   ["backbone"], tmp_path / "out", two_model=False)

  same_view = Variant("same_view", "sag_vicreg.py", (("method.sag_vicreg.k", 5),))
  vicreg = Variant("vicreg", "vicreg.py")
  published = experiment(tmp_path / "session1", [vicreg, same_view])
  runs = {("controls", 0): {"seed": 0, "backbone": {c: fake_run(0, 0.1)["backbone"] for c in _pretraining.CONTROLS}},
          ("vicreg", 0): fake_run(0, 0.5), ("vicreg", 1): fake_run(1, 0.6), ("same_view", 0): fake_run(0, 0.7)}
  for (name, seed), run in runs.items():
    path = published.run_file("digits", name, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run))
  _pretraining.write_results(published, final=False)
  # The results JSON names its commit, and the reading a SAG-VICReg variant trains (the config's, where not overridden).
  written = json.loads(published.results_path.read_text())
  assert written["commit"] is None or len(written["commit"]) == 40
  assert written["variants"]["same_view"]["sag_vicreg_reading"] == {
      "graph": sag_vicreg.DEFAULT_GRAPH, "scale_over": sag_vicreg.DEFAULT_SCALE_OVER,
      "regularize": sag_vicreg.DEFAULT_REGULARIZE}
  assert "sag_vicreg_reading" not in written["variants"]["vicreg"]

  # A later session: VICReg renamed, SAG-VICReg at another k, a new variant.
  renamed = Variant("VICReg", "vicreg.py")
  other_k = Variant("same_view", "sag_vicreg.py", (("method.sag_vicreg.k", 10),))
  later = experiment(tmp_path / "session2", [renamed, other_k, Variant("barlow", "barlow_twins.py")])
  assert later.keep_published() == 3  # the controls' seed 0 and both VICReg seeds
  assert json.loads(later.run_file("digits", "VICReg", 1).read_text()) == runs[("vicreg", 1)]
  assert json.loads(later.run_file("digits", "controls", 0).read_text()) == runs[("controls", 0)]
  assert not later.run_file("digits", "controls", 1).exists()
  assert not later.run_file("digits", "same_view", 0).exists()
  later_results = later.collect()["digits"]
  assert later_results["variants"]["VICReg"]["runs"] == [runs[("vicreg", 0)], runs[("vicreg", 1)]]
  assert later.keep_published() == 0  # what the workdir holds stays

  # Another scale (more steps) is another declaration: nothing is taken.
  longer = experiment(tmp_path / "session3", [vicreg], scale={**_pretraining.SCALES["cpu"], "steps": 9000})
  assert longer.keep_published() == 0
  # Another script's published runs of the same declaration are taken too (compare_methods' VICReg and controls
  # from the readings experiment).
  other_script = _pretraining.Experiment("compare", [Variant("vicreg", "vicreg.py")], ["digits"], 2, "cpu",
                                         dict(_pretraining.SCALES["cpu"]), "", tmp_path / "session4", ["backbone"],
                                         tmp_path / "out", two_model=False)
  assert other_script.keep_published() == 3
  assert other_script.collect()["digits"]["controls"]["runs"] == [runs[("controls", 0)]]


def test_undefined_score_is_written_as_null_and_shown_as_undefined(tmp_path):
  # A collapsed run (VISReg without its scale term) has a constant projector output, whose cophenetic
  # correlation is undefined (NaN): the grid records it as null and goes on, instead of failing to write its JSON.
  from experiments import _pretraining
  from experiments._pretraining import Variant

  def fake_run(seed, rand_label):
    scores = {score: {"label": 0.5 + seed / 10} for score in _pretraining.SCORES}
    scores["rand_index"] = {"label": rand_label}
    return {"seed": seed, "training": {}, "backbone": scores}

  grid = _pretraining.Experiment("ablations", [Variant("no scale", "visreg.py")], ["digits"], 2, "cpu",
                                 dict(_pretraining.SCALES["cpu"]), "", tmp_path / "work", ["backbone"],
                                 tmp_path / "out", two_model=False)
  for seed, rand_label in ((0, float("nan")), (1, 0.9)):
    path = grid.run_file("digits", "no scale", seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fake_run(seed, rand_label)))  # Python's json writes NaN, as run_job does
  _pretraining.write_results(grid, final=False)
  written = json.loads(grid.results_path.read_text())["results"]["digits"]["variants"]["no scale"]
  assert written["runs"][0]["backbone"]["rand_index"]["label"] is None
  assert written["runs"][1]["backbone"]["rand_index"]["label"] == 0.9
  assert written["summary"]["backbone"]["rand_index"]["label"]["mean"] is None  # no mean over an undefined seed
  assert written["summary"]["backbone"]["knn"]["label"]["mean"] == pytest.approx(0.55)
  # Read back (null for the undefined score), the tables say so and keep the defined scores.
  table = _pretraining.markdown_tables({"digits": {"variants": {"no scale": written}, "controls": {}}}, "backbone")
  row = next(line for line in table.splitlines() if line.startswith("| no scale"))
  assert row.split(" | ")[1] == "0.550 ± 0.071" and row.rstrip(" |").endswith("undefined")
  _pretraining.figure({"digits": {"variants": {"no scale": written}, "controls": {}}}, "backbone",
                      tmp_path / "figure.png")
  assert (tmp_path / "figure.png").read_bytes()[:8] == PNG_SIGNATURE


def test_a_preempted_training_stops_the_grid_without_publishing_it(tmp_path, monkeypatch):
  # A SIGTERM makes loop.train save a checkpoint and return "preempted": the grid must not evaluate that
  # checkpoint as the finished run (and go on to the next training); it stops, naming the run, and a
  # rerun resumes it.
  from experiments import _pretraining
  from experiments._pretraining import Variant

  def preempted(config, workdir, mesh=None):
    return {"status": "preempted", "step": 1, "total_steps": config.train.num_steps, "workdir": str(workdir)}

  monkeypatch.setattr(_pretraining.loop, "train", preempted)
  grid = _pretraining.Experiment("ablations", [Variant("vicreg", "vicreg.py")], ["digits"], 1, "small",
                                 dict(_pretraining.SCALES["small"]), str(tmp_path / "data"), tmp_path / "work",
                                 ["backbone"], tmp_path / "out", two_model=False)
  controls = grid.run_file("digits", "controls", 0)  # finished earlier: only the variant's run is left
  controls.parent.mkdir(parents=True)
  scores = {score: {"label": 0.5} for score in _pretraining.SCORES}
  controls.write_text(json.dumps({"seed": 0, "backbone": {control: scores for control in _pretraining.CONTROLS}}))
  args = argparse.Namespace(keep_published=False, collect_only=False, num_workers=1, worker=0)
  with pytest.raises(SystemExit) as stopped:
    _pretraining.run(grid, args)
  steps = _pretraining.SCALES["small"]["steps"]
  assert str(stopped.value).startswith("digits vicreg seed 0: training in ")
  assert f"was preempted at step 1 of {steps}" in str(stopped.value)
  assert not grid.run_file("digits", "vicreg", 0).exists()


def _agreement_reference(a, b, labels, others):
  """float64: label agreement of each row's `others` nearest rows of b by cosine distance, itself left out."""
  a = np.asarray(a, np.float64) / np.linalg.norm(a, axis=1, keepdims=True)
  b = np.asarray(b, np.float64) / np.linalg.norm(b, axis=1, keepdims=True)
  agree = []
  for i in range(len(a)):
    order = [j for j in np.argsort(1.0 - b @ a[i]) if j != i][:others]
    agree.extend(labels[j] == labels[i] for j in order)
  return float(np.mean(agree))


@pytest.mark.parametrize("graph,scale_over", [("cross_view_own", "row"), ("same_view", "neighbours")])
def test_sag_vicreg_pairing_statistics_against_a_per_row_reference(graph, scale_over):
  import types

  from experiments import sag_vicreg_pairing
  rng = np.random.default_rng(3)
  z1 = rng.normal(size=(24, 6)).astype(np.float32)
  z2 = (z1 + 0.8 * rng.normal(size=z1.shape)).astype(np.float32)
  labels = rng.integers(0, 3, size=24)
  method = types.SimpleNamespace(k=5, percentile=20.0, graph=graph, scale_over=scale_over)
  stats = sag_vicreg_pairing.pairing_statistics(jax.random.key(0), z1, z2, labels, method)
  cosine = (z1 / np.linalg.norm(z1, axis=1, keepdims=True)) @ (z2 / np.linalg.norm(z2, axis=1, keepdims=True)).T
  assert stats["own_view_top1"] == pytest.approx(np.mean(np.argmax(cosine, axis=1) == np.arange(24)))
  # Both graphs: the own candidate plus the k - 1 = 4 nearest others.
  assert stats["cross_view_neighbours_same_class"] == pytest.approx(_agreement_reference(z1, z2, labels, 4))
  assert stats["same_view_neighbours_same_class"] == pytest.approx(_agreement_reference(z1, z1, labels, 4))
  assert 0.0 < stats["self_pair_rate"] < 1.0
  # Drawn partners are graph neighbours: one class everywhere agrees always, distinct classes never.
  for same, expected in ((np.zeros(24, int), 1.0), (np.arange(24), 0.0)):
    drawn = sag_vicreg_pairing.pairing_statistics(jax.random.key(0), z1, z2, same, method)
    assert drawn["partner_same_class"] == expected
    assert drawn["cross_view_neighbours_same_class"] == expected == drawn["same_view_neighbours_same_class"]


@pytest.mark.filterwarnings("ignore")
def test_sag_vicreg_pairing_tracks_each_reading_over_training(bundled_dir, tmp_path):
  from experiments import _pretraining
  from experiments import sag_vicreg_pairing
  command = [sys.executable, "-m", "experiments.sag_vicreg_pairing", "--small", "--readings", "same_view+row",
             "--seeds", "2", "--workdir", str(tmp_path / "runs"), "--num_workers", "2", "--data_dir", str(bundled_dir),
             "--output_dir", str(tmp_path)]
  first = subprocess.run([*command, "--worker", "0"], capture_output=True, text=True, cwd=REPO, timeout=300)
  assert first.returncode == 0, first.stderr[-3000:]
  # Worker 0 trains seed 0 only; the worker that finishes last writes the results.
  assert "still missing same_view+row seed 1" in first.stdout
  assert not (tmp_path / "results" / "sag_vicreg_pairing.json").exists()
  last = subprocess.run([*command, "--worker", "1"], capture_output=True, text=True, cwd=REPO, timeout=300)
  assert last.returncode == 0, last.stderr[-3000:]
  published_path = tmp_path / "results" / "sag_vicreg_pairing.json"
  data = json.loads(published_path.read_text())
  assert list(data["results"]) == ["same_view+row"] and data["seeds"] == 2
  assert "--worker" not in data["command"] and "--workdir" not in data["command"]
  entry = data["results"]["same_view+row"]
  assert [run["seed"] for run in entry["runs"]] == [0, 1]
  for run in entry["runs"]:
    assert run["steps"] == [0, 1, 2]  # every step at --small, and after the last
    for name in sag_vicreg_pairing.STATISTICS:
      assert len(run[name]) == 3 and all(0.0 <= value <= 1.0 for value in run[name])
  last_values = [run["partner_same_class"][-1] for run in entry["runs"]]
  assert entry["summary"]["partner_same_class"]["last"] == pytest.approx(
      {"mean": np.mean(last_values), "std": np.std(last_values, ddof=1), "n": 2})
  # A later session keeps the published runs of the same setup, and only those.
  setup = data["setup"]
  kept = sag_vicreg_pairing.keep_published(published_path, tmp_path / "later", setup, ["same_view+row"], 3)
  assert kept == 2
  assert sag_vicreg_pairing.keep_published(published_path, tmp_path / "later", setup, ["same_view+row"], 3) == 0
  other_setup = {**setup, "scale": dict(_pretraining.SCALES["cpu"])}
  assert sag_vicreg_pairing.keep_published(published_path, tmp_path / "other", other_setup, ["same_view+row"], 3) == 0
  typo = subprocess.run([sys.executable, "-m", "experiments.sag_vicreg_pairing", "--small", "--readings", "same_veiw"],
                        capture_output=True, text=True, cwd=REPO, timeout=300)
  assert typo.returncode == 2 and "unknown same_veiw" in typo.stderr
  unshared = subprocess.run([sys.executable, "-m", "experiments.sag_vicreg_pairing", "--small", "--num_workers", "2"],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
  assert unshared.returncode == 2 and "needs a --workdir that the workers share" in unshared.stderr


def test_finetune_runs_summarises_methods_with_their_controls_and_per_seed_verdicts():
  from experiments import finetune_runs

  def transfer(trained, initial, pixels):
    def scores(value):
      return {"label": {"linear": {"accuracy": value}, "knn": {"20": value / 2},
                        "few_shot": {"10": {"mean": value / 4}}}}
    return {name: {"scores": {"trained": scores(trained), "initial": scores(initial), "pixels": scores(pixels)}}
            for name in finetune_runs.DATASETS}

  runs = [{"method": "vicreg", "seed": seed, "transfer": transfer(0.3 + 0.1 * seed, 0.2, 0.25),
           "finetune": {"shapes": 0.5 + 0.1 * seed, "shapes_ood": 0.4}} for seed in range(3)]
  runs += [{"method": "dino", "seed": seed, "transfer": transfer(0.22, 0.2, 0.25),
            "finetune": {"shapes": 0.45, "shapes_ood": 0.35 if seed else 0.2}} for seed in range(3)]
  controls = [{"seed": seed, "shapes": 0.4, "shapes_ood": 0.3} for seed in range(3)]
  summary = finetune_runs.summarise(runs, controls)
  assert list(summary) == ["vicreg", "dino", "untrained", "pixels"]
  assert summary["vicreg"]["shapes linear"]["values"] == pytest.approx([0.3, 0.4, 0.5])
  assert summary["vicreg"]["shapes fine-tuned"]["std"] == pytest.approx(np.std([0.5, 0.6, 0.7], ddof=1))
  assert summary["vicreg"]["shapes_ood knn@20"]["mean"] == pytest.approx(0.2)
  assert summary["untrained"]["shapes fine-tuned"]["mean"] == pytest.approx(0.4)
  assert summary["pixels"]["shapes linear"]["mean"] == pytest.approx(0.25) and "shapes fine-tuned" not in summary[
      "pixels"]
  verdicts = finetune_runs.verdicts(runs, controls)
  assert verdicts["vicreg"]["shapes"] == {"fine-tuned above untrained in every seed": True,
                                          "linear above both controls in every seed": True}
  # dino: frozen below the pixels, and its seed-0 OOD fine-tuning below the untrained network's.
  assert verdicts["dino"]["shapes_ood"] == {"fine-tuned above untrained in every seed": False,
                                            "linear above both controls in every seed": False}


def test_experiments_run_as_modules_from_the_repository_root_without_path_edits():
  # `python -m experiments.<name>` from the repository root finds both packages: no script edits sys.path.
  edits = [str(path.relative_to(REPO)) for path in sorted((REPO / "experiments").rglob("*"))
           if path.is_file() and b"sys.path" in path.read_bytes()]
  assert not edits, f"files under experiments/ that edit sys.path: {edits}"
  modules = [".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
             for path in sorted((REPO / "experiments").rglob("*.py"))]
  assert "experiments.compare_methods" in modules and "experiments.bench.train" in modules
  # One fresh interpreter for all of them, with nothing on its path but the root (`-c` puts the working directory
  # first, as `-m` does).
  env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
  imported = subprocess.run([sys.executable, "-c", f"import importlib\nfor name in {modules!r}:\n"
                             "  importlib.import_module(name)"], capture_output=True, text=True, cwd=REPO, env=env,
                            timeout=300)
  assert imported.returncode == 0, imported.stderr[-3000:]
  helped = subprocess.run([sys.executable, "-m", "experiments.compare_methods", "--help"], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=300)
  assert helped.returncode == 0 and "--seeds" in helped.stdout, helped.stderr[-3000:]
