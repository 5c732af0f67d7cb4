"""`python -m jax_ssl.evaluate`: structure, checkpoint and generalization, end to end on bundled data."""

import json
import os
import re
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jax_ssl import evaluate
from jax_ssl import protocols
from jax_ssl import transfer_suite
from jax_ssl.data import sources
from jax_ssl.eval import probes
from jax_ssl.eval import scores
from jax_ssl.train import config as config_lib
from jax_ssl.train import loop
from jax_ssl.train.encoder import load_encoder

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _arrays(tmp_path, n=120):
  rng = np.random.default_rng(0)
  first = rng.normal(size=(n, 12))
  second = first @ rng.normal(size=(12, 6)) + 0.3 * rng.normal(size=(n, 6))
  np.save(tmp_path / "a.npy", first)
  np.save(tmp_path / "b.npy", second)
  return first, second


def test_structure_writes_the_five_numbers(tmp_path, capsys):
  first, second = _arrays(tmp_path)
  output = tmp_path / "out"
  arguments = ["structure", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--output_dir", str(output)]
  assert evaluate.main(arguments) == 0
  result = json.loads((output / "structure.json").read_text())
  expected = scores.structure_scores(first, second)
  assert result["num_items"] == 120 and result["dims"] == [12, 6]
  for key in scores.STRUCTURE_KEYS:
    assert result["scores"][key] == pytest.approx(expected[key], abs=1e-12)
  printed = capsys.readouterr().out
  assert all(f"{expected[key]:.4f}" in printed for key in scores.STRUCTURE_KEYS)
  assert (output / "dendrograms.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_structure_of_a_set_with_itself_and_of_raw_images(tmp_path):
  images = np.random.default_rng(1).integers(0, 256, size=(50, 4, 4, 3), dtype=np.uint8)
  np.save(tmp_path / "images.npy", images)
  output = tmp_path / "out"
  evaluate.main(["structure", str(tmp_path / "images.npy"), str(tmp_path / "images.npy"), "--output_dir", str(output)])
  scores = json.loads((output / "structure.json").read_text())["scores"]
  for key in ("lca_pearson", "lca_spearman", "lca_kendall"):
    assert scores[key] == pytest.approx(1.0, abs=1e-12)
  assert scores["cophenetic_d1_to_p2"] == pytest.approx(scores["cophenetic_d2_to_p1"])


def test_structure_subsamples_the_same_items_in_both_sets(tmp_path):
  first, second = _arrays(tmp_path)
  output = tmp_path / "out"
  evaluate.main(["structure", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--max_items", "40",
            "--output_dir", str(output)])
  result = json.loads((output / "structure.json").read_text())
  items = scores.subsample(120, 40, 0)
  assert result["num_items"] == 40
  assert result["scores"]["lca_kendall"] == pytest.approx(
      scores.structure_scores(first[items], second[items])["lca_kendall"], abs=1e-12)


@pytest.mark.parametrize("second, message", [
    (np.zeros((7, 3)), "same items: 120 rows against 7"),
    (np.full((120, 3), np.nan), "NaN"),
    (np.zeros(120), r"one row per item"),
    (np.ones((120, 3)), "the second set has no structure to compare: its 120 compared rows are all identical"),
    (np.zeros((0, 3)), r"bad.npy is empty \(shape \(0, 3\)\)"),
    (np.ones((120, 3)) * (1 + 2j), r"bad.npy holds complex numbers \(complex128\)"),
    (np.array(["a", "b"] * 60).reshape(120, 1), "bad.npy must be numeric, got dtype <U1"),
])
def test_structure_bad_input_exits_2_with_the_reason(tmp_path, capsys, second, message):
  _arrays(tmp_path)
  np.save(tmp_path / "bad.npy", second)
  assert evaluate.main(["structure", str(tmp_path / "a.npy"), str(tmp_path / "bad.npy"),
                   "--output_dir", str(tmp_path / "out")]) == evaluate.EXIT_BAD_INPUT
  error = capsys.readouterr().err
  assert error.startswith("jax_ssl.evaluate structure:") and re.search(message, error)
  assert error.count("\n") == 1, "one line"


def test_a_file_that_is_not_npy_or_an_output_dir_that_is_a_file_exits_2(tmp_path, capsys):
  _arrays(tmp_path)
  (tmp_path / "text.npy").write_text("1 2 3\n")
  assert evaluate.main(["structure", str(tmp_path / "text.npy"), str(tmp_path / "b.npy"),
                        "--output_dir", str(tmp_path / "out")]) == evaluate.EXIT_BAD_INPUT
  assert capsys.readouterr().err == (f"jax_ssl.evaluate structure: {tmp_path / 'text.npy'} is not a .npy file (it "
                                     "does not begin with numpy's header); write the array with numpy.save.\n")
  (tmp_path / "file").write_text("")
  for arguments in (["structure", str(tmp_path / "a.npy"), str(tmp_path / "b.npy")], ["checkpoint", "--workdir",
                                                                                       str(tmp_path)]):
    assert evaluate.main([*arguments, "--output_dir", str(tmp_path / "file")]) == evaluate.EXIT_BAD_INPUT
    assert capsys.readouterr().err.endswith(f"--output_dir {tmp_path / 'file'} is a file, not a directory: give a "
                                            "directory for the results.\n")
  assert evaluate.main(["checkpoint", "--workdir", str(tmp_path), "--output_dir",
                        str(tmp_path / "file" / "out")]) == evaluate.EXIT_BAD_INPUT
  assert f"cannot be created: {tmp_path / 'file'} is a file" in capsys.readouterr().err
  assert not (tmp_path / "structure-a-vs-b").exists()


@pytest.mark.parametrize("arguments,message", [
    (["dense", "--workdir", "w", "--epochs", "-1"], "argument --epochs: must be at least 1, got -1"),
    (["dense", "--workdir", "w", "--max_train", "0"], "argument --max_train: must be at least 1, got 0"),
    (["checkpoint", "--workdir", "w", "--max_train", "0"], "argument --max_train: must be at least 1, got 0"),
    (["checkpoint", "--workdir", "w", "--probe_epochs", "-2"], "argument --probe_epochs: must be at least 0, got -2"),
    (["checkpoint", "--workdir", "w", "--max_items", "two"], "argument --max_items: 'two' is not an integer"),
])
def test_out_of_range_arguments_are_one_line_and_exit_2(arguments, message, capsys):
  with pytest.raises(SystemExit) as exited:
    evaluate.main(arguments)
  error = capsys.readouterr().err
  assert exited.value.code == evaluate.EXIT_BAD_INPUT and error.count("\n") == 1
  assert error.startswith(f"python -m jax_ssl.evaluate {arguments[0]}: {message}"), error


def test_the_module_runs_from_the_command_line(tmp_path):
  _arrays(tmp_path)
  env = {**os.environ, "PYTHONPATH": REPO}
  result = subprocess.run([sys.executable, "-m", "jax_ssl.evaluate", "structure", str(tmp_path / "a.npy"),
                           str(tmp_path / "missing.npy")], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)
  assert result.returncode == 2 and "missing.npy does not exist" in result.stderr
  result = subprocess.run([sys.executable, "-m", "jax_ssl.evaluate", "structure", str(tmp_path / "a.npy"),
                           str(tmp_path / "b.npy")], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
  assert result.returncode == 0, result.stderr
  assert "lca_kendall" in result.stdout and (tmp_path / "structure-a-vs-b" / "structure.json").exists()


@pytest.fixture(scope="module")
def digits_workdir(bundled_dir, tmp_path_factory):
  config = protocols.load_config_file(os.path.join(REPO, "configs", "vicreg.py:smoke"))
  config.data.data_dir = str(bundled_dir)
  config.eval.report = False
  config_lib.validate(config, num_devices=8)
  workdir = tmp_path_factory.mktemp("digits_run")
  loop.train(config, workdir)
  return workdir


def test_checkpoint_reports_every_level(digits_workdir, bundled_dir, tmp_path, capsys):
  output = tmp_path / "eval"
  assert evaluate.main(["checkpoint", "--workdir", str(digits_workdir), "--data_dir", str(bundled_dir),
                   "--max_train", "300", "--max_items", "90", "--probe_epochs", "3", "--output_dir", str(output)]) == 0
  result = json.loads((output / "eval.json").read_text())
  assert result["dataset"] == "digits" and result["levels"] == ["label", "label_coarse"]
  test = sources.load_numpy("digits", "test", bundled_dir)
  assert result["num_test"] == len(test["image"]) and result["num_train"] == 300 and result["num_items"] == 90
  # The probes saw the right splits and levels: recompute kNN from the saved encoder.
  train = sources.load_numpy("digits", "train", bundled_dir)
  rows = scores.subsample(len(train["image"]), 300, 0)
  encoder = load_encoder(digits_workdir)
  coarse = np.array([0, 1, 2, 2, 1, 2, 0, 1, 0, 0])
  expected = probes.knn_accuracy_by_level(
      encoder(train["image"][rows]), {"label": train["label"][rows], "label_coarse": coarse[train["label"][rows]]},
      encoder(test["image"]), {"label": test["label"], "label_coarse": coarse[test["label"]]},
      k=min(encoder.config.eval.knn_k, 300), temperature=encoder.config.eval.knn_temperature)
  assert result["knn"] == pytest.approx(expected, abs=1e-9)
  for level in result["levels"]:
    for score in ("knn", "knn_majority", "linear", "rand_index"):
      assert 0.0 <= result[score][level] <= 1.0
  assert set(result["structure_to_inputs"]) == set(scores.STRUCTURE_KEYS)
  markdown = (output / "eval.md").read_text()
  assert "| label_coarse |" in markdown and "pixels vs features" in markdown
  for figure in ("scores_by_level.png", "dendrograms.png"):
    assert (output / figure).stat().st_size > 1000
  # In the same test: the trained run is a module fixture, and xdist would train it again elsewhere.
  assert "zero_shot" not in result
  with pytest.raises(ValueError, match="a vicreg run has no text tower"):
    encoder.embed_captions(np.zeros((1, 4), np.int32))
  capsys.readouterr()
  unknown_dataset = ["checkpoint", "--workdir", str(digits_workdir), "--dataset", "mnist"]
  assert evaluate.main(unknown_dataset) == evaluate.EXIT_BAD_INPUT
  assert "unknown dataset 'mnist'" in capsys.readouterr().err


def test_checkpoint_of_a_directory_without_a_run_exits_2(tmp_path, capsys):
  assert evaluate.main(["checkpoint", "--workdir", str(tmp_path)]) == evaluate.EXIT_BAD_INPUT
  assert "is not a jax_ssl workdir" in capsys.readouterr().err


@pytest.mark.xdist_group("umap")  # with test_centroids' UMAP test: numba compiles its kernels once
def test_generalization_trains_two_halves_and_compares_them(bundled_dir, tmp_path):
  workdir, output = tmp_path / "runs", tmp_path / "eval"
  # Host-fed, so that the two halves train one program (on the devices, each half's split is another shape).
  config = os.path.join(REPO, "configs", "vicreg.py:smoke,data.on_device=false,data.worker_count=0")
  assert evaluate.main(["generalization", "--config", config, "--data_dir",
                   str(bundled_dir), "--workdir", str(workdir), "--max_items", "60", "--output_dir", str(output)]) == 0
  configs = {name: json.loads((workdir / name / loop.CONFIG_FILE).read_text()) for name in ("model_a", "model_b")}
  assert configs["model_a"]["data"]["classes"] == "0-4" and configs["model_b"]["data"]["classes"] == "5-9"
  result = json.loads((output / "generalization.json").read_text())
  embeddings = np.load(output / "embeddings.npz")
  test = sources.load_numpy("digits", "test", bundled_dir)
  assert result["num_items"] == 60 and np.all(test["label"][embeddings["items"]] <= 4)
  expected = scores.structure_scores(embeddings["model_a"], embeddings["model_b"])
  assert result["a_vs_b"] == pytest.approx(expected, abs=1e-12)
  reloaded = load_encoder(workdir / "model_a")(test["image"][embeddings["items"]])
  np.testing.assert_allclose(embeddings["model_a"], reloaded, rtol=1e-5, atol=1e-6)
  assert "A vs B" in (output / "generalization.md").read_text()
  # SAG-VICReg's Figure 6: each encoder's centroids of the classes compared, laid out in 2-D.
  views = result["centroids"]
  present = np.unique(test["label"][embeddings["items"]])
  assert views["classes"] == present.tolist() and views["names"] == [str(label) for label in present]
  assert set(views["umap"]) == {"pixels", "model_a", "model_b"}
  assert views["group_level"] == "label" and views["groups"] == views["classes"]  # digits has one level
  assert all(np.isfinite(layout).all() and np.shape(layout) == (len(present), 2) for layout in views["umap"].values())
  assert (output / "centroids.png").stat().st_size > 0


def test_generalization_stops_at_a_preempted_half(bundled_dir, tmp_path, capsys, monkeypatch):
  # A SIGTERM makes loop.train save a checkpoint and return: the protocol must neither train model B
  # nor compare a half-trained model A as if it were finished.
  trained = []

  def preempted(config, workdir, mesh=None):
    trained.append(os.path.basename(workdir))
    return {"status": "preempted", "step": 300, "total_steps": 3000, "workdir": str(workdir)}

  monkeypatch.setattr(loop, "train", preempted)
  output = tmp_path / "eval"
  assert evaluate.main(["generalization", "--config", os.path.join(REPO, "configs", "vicreg.py:smoke"),
                        "--data_dir", str(bundled_dir), "--workdir", str(tmp_path / "runs"),
                        "--output_dir", str(output)]) == evaluate.EXIT_STOPPED
  assert trained == ["model_a"]
  error = capsys.readouterr().err
  assert "was preempted at step 300 of 3000" in error and "rerun the same command to resume" in error
  assert not output.exists()


def test_generalization_refuses_what_it_cannot_compare_before_training(bundled_dir, tmp_path, capsys, monkeypatch):
  def never(*args, **kwargs):
    raise AssertionError("nothing may train before the protocol's inputs are checked")

  monkeypatch.setattr(loop, "train", never)
  (tmp_path / "ade20k.py").write_text(
      "from configs import common\n\ndef get_config(arg=None):\n"
      "  config = common.bundled_base('vicreg')\n  config.data.name = 'ade20k'\n  return config\n")
  assert evaluate.main(["generalization", "--config", str(tmp_path / "ade20k.py"),
                        "--workdir", str(tmp_path / "runs")]) == evaluate.EXIT_BAD_INPUT
  assert "data.name 'ade20k' has no class labels (only segmentation): use a labelled dataset" in capsys.readouterr().err
  # Three test images of model A's five digits that cover two classes: too few centroids for the layout.
  test = sources.load_numpy("digits", "test", bundled_dir)
  seen_by_a = np.flatnonzero(test["label"] <= 4)
  seed = next(seed for seed in range(100)
              if len(np.unique(test["label"][seen_by_a[scores.subsample(len(seen_by_a), 3, seed)]])) < 3)
  assert evaluate.main(["generalization", "--config", os.path.join(REPO, "configs", "vicreg.py:smoke"),
                        "--data_dir", str(bundled_dir), "--workdir", str(tmp_path / "runs"), "--max_items", "3",
                        "--seed", str(seed)]) == evaluate.EXIT_BAD_INPUT
  error = capsys.readouterr().err
  assert "max_items = 3 draws test images of 2 of model A's classes; the class-centroid layout needs at least 3" \
      in error and error.count("\n") == 1
  assert not (tmp_path / "runs").exists()


def test_generalization_with_a_missing_config_exits_2(tmp_path, capsys):
  assert evaluate.main(["generalization", "--config", str(tmp_path / "none.py")]) == evaluate.EXIT_BAD_INPUT
  assert "none.py does not exist" in capsys.readouterr().err


def test_dense_probe_on_masks_and_on_ade20k_class_maps(bundled_dir, tmp_path, capsys):
  # One 2-step smoke run on `shapes` (which has masks) serves every check: training it is most of the cost.
  run = tmp_path / "run"
  config = protocols.load_config_file(os.path.join(REPO, "configs", "vicreg.py:smoke,data.name=shapes"))
  config.data.data_dir = str(bundled_dir)
  config.eval.report = False
  loop.train(config, run)

  output = tmp_path / "eval"
  assert evaluate.main(["dense", "--workdir", str(run), "--max_train", "64", "--epochs", "2",
                        "--output_dir", str(output)]) == 0
  result = json.loads((output / "dense.json").read_text())
  assert set(result["levels"]) == {"label", "label_coarse", "label_family"}
  for by_encoder in result["levels"].values():
    assert set(by_encoder) == {"trained", "initial", "pixels"}
    for scores_ in by_encoder.values():
      assert 0.0 <= scores_["miou"] <= 1.0 and 0.0 <= scores_["pixel_accuracy"] <= 1.0
  assert len(result["levels"]["label_family"]["pixels"]["iou"]) == 4  # background and 3 families
  assert result["num_train"] == 64 and result["feature_grid"] == [8, 8]  # small_cnn halves the 16 px views
  assert (output / "pca.png").stat().st_size > 0 and "| label_family |" in (output / "dense.md").read_text()

  # A dataset without masks or class maps: one line, exit code 2.
  assert evaluate.main(["dense", "--workdir", str(run), "--dataset", "digits", "--data_dir",
                        str(bundled_dir)]) == evaluate.EXIT_BAD_INPUT
  error = capsys.readouterr().err
  assert "dataset 'digits' has no segmentation masks; the dense probe needs one that has (ade20k, shapes, " \
         "shapes_ood)" in error

  # ADE20K loads by name from a prepared tfds data_dir; tfds' mock data stands in for its files.
  with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE), \
      mock.patch.object(sources, "check_prepared", lambda *args: None), \
      mock.patch.object(sources, "SKIP_IMAGE_DECODING", False):
    result = protocols.evaluate_dense(run, "ade20k", data_dir="/nonexistent-mock-12", epochs=1)
  assert result["dataset"] == "ade20k" and result["num_train"] == 12 and list(result["levels"]) == ["segmentation"]
  for scores_ in result["levels"]["segmentation"].values():
    assert len(scores_["iou"]) == 151 and np.isnan(scores_["iou"][0])  # "unlabelled" is not scored
    assert 0.0 <= scores_["miou"] <= 1.0


def test_clip_zero_shot_of_the_report_and_of_the_checkpoint_agree(bundled_dir, tmp_path):
  # Two paths to the same numbers: the trainer's report (its eval sample is the whole test split here)
  # and `python -m jax_ssl.evaluate checkpoint` on the run's last checkpoint.
  from configs import clip
  config = clip.get_config("smoke")
  config.data.data_dir = str(bundled_dir)
  config.eval.max_train_examples = 2000
  summary = loop.train(config, tmp_path / "run")
  levels = ["label", "label_coarse", "label_family"]
  reported = summary["evaluation"]["trained"]["zero_shot"]
  assert list(reported) == levels and list(summary["evaluation"]["initial"]["zero_shot"]) == levels
  assert "zero_shot" not in summary["evaluation"]["pixels"]
  assert all(0.0 <= value <= 1.0 for value in reported.values())
  joint = load_encoder(tmp_path / "run", output="projector")
  assert protocols.clip_zero_shot(joint, "shapes", bundled_dir) == pytest.approx(reported, abs=1e-12)
  output = tmp_path / "eval"
  assert evaluate.main(["checkpoint", "--workdir", str(tmp_path / "run"), "--max_train", "200", "--max_items", "40",
                        "--probe_epochs", "1", "--output_dir", str(output)]) == 0
  assert json.loads((output / "eval.json").read_text())["zero_shot"] == pytest.approx(reported, abs=1e-12)
  assert "CLIP's zero-shot accuracy" in (output / "eval.md").read_text()
  with pytest.raises(ValueError, match="dataset 'digits' has no captions"):
    protocols.clip_zero_shot(joint, "digits", bundled_dir)


def test_transfer_scores_each_dataset_level_and_control(digits_workdir, bundled_dir, tmp_path, capsys):
  output = tmp_path / "transfer"
  assert evaluate.main(["transfer", "--workdir", str(digits_workdir), "--datasets", "digits,shapes_ood",
                        "--data_dir", str(bundled_dir), "--max_train", "108", "--max_test", "54",
                        "--c_grid", "0.01,1", "--output_dir", str(output)]) == 0
  result = json.loads((output / "transfer.json").read_text())
  assert result["settings"]["knn"]["ks"] == [10, 20, 100, 200] and result["settings"]["few_shot"]["shots"] == [
      1, 5, 10, 25] and result["settings"]["max_train"] == 108
  digits, ood = result["datasets"]["digits"], result["datasets"]["shapes_ood"]
  assert digits["levels"] == ["label"] and ood["levels"] == ["label", "label_coarse", "label_family"]
  assert ood["fit_on"] == "shapes" and ood["num_train"] == 108 and ood["num_test"] == 54
  for dataset in (digits, ood):
    assert set(dataset["scores"]) == {"trained", "initial", "pixels"}
    for by_level in dataset["scores"].values():
      for scores_ in by_level.values():
        assert 0.0 <= scores_["linear"]["accuracy"] <= 1.0 and scores_["linear"]["c"] in (0.01, 1.0)
        assert set(scores_["knn"]) == {"10", "20", "100", "200"}
  assert {"1", "5"} <= set(digits["scores"]["trained"]["label"]["few_shot"]) and "25" not in digits["scores"][
      "trained"]["label"]["few_shot"], "108 images of 10 classes hold no class of 25"
  shifts = ood["groups"]["trained"]["label"]["shift"]
  assert list(shifts) == ["colour", "texture", "background", "noise", "blur", "contrast"]
  markdown = (output / "transfer.md").read_text()
  assert "## shapes_ood" in markdown and "probes fit on shapes's train split" in markdown and "kNN@200" in markdown
  assert (output / "transfer.png").stat().st_size > 0
  capsys.readouterr()
  assert evaluate.main(["transfer", "--workdir", str(digits_workdir), "--datasets", "ade20k"]) == 2
  assert "dataset 'ade20k' has no class labels to probe" in capsys.readouterr().err

  # A dataset by its tfds name, from a prepared data_dir: tfds' mock data stands in for its files.
  with tfds.testing.mock_data(num_examples=60, policy=tfds.testing.MockPolicy.USE_CODE), \
      mock.patch.object(sources, "check_prepared", lambda *args: None), \
      mock.patch.object(sources, "SKIP_IMAGE_DECODING", False):
    mocked = transfer_suite.evaluate_transfer(digits_workdir, ["dtd"], data_dir="/nonexistent-mock-60",
                                              max_train=40, max_test=20, c_grid=(1.0,))
  dtd = mocked["datasets"]["dtd"]
  assert dtd["num_train"] == 40 and dtd["num_test"] == 20 and dtd["levels"] == ["label"]
  assert 0.0 <= dtd["scores"]["trained"]["label"]["linear"]["accuracy"] <= 1.0
