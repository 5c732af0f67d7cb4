"""Fine-tuning (`python -m jax_ssl.finetune`): the recipe's pieces against references, resume, the command."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from configs import common
from jax_ssl import finetune as finetune_cli
from jax_ssl import models
from jax_ssl.train import config as config_lib
from jax_ssl.train import encoder as encoder_lib
from jax_ssl.train import finetune
from jax_ssl.train import finetune_recipe
from jax_ssl.train import loop
from jax_ssl.train import signals


def _flat(tree) -> dict[str, object]:
  return {jax.tree_util.keystr(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _vit_classifier_params():
  """A ViT-Micro's parameters (2 blocks) under a classifier's layout, with one head."""
  vit = models.build_backbone("vit_micro", rngs=nnx.Rngs(0), patch_size=4, image_size=16)
  params = nnx.to_pure_dict(nnx.split(vit, nnx.Param, ...)[1])
  return {"backbone": params, "heads": {"label": {"kernel": jnp.ones((64, 3)), "bias": jnp.zeros((3,))}}}


def test_layer_decay_gives_each_layer_its_power_of_the_decay():
  params = _vit_classifier_params()
  scales = _flat(finetune_recipe.learning_rate_scales(params, depth=2, layer_decay=0.5))
  expected = {}
  for name in scales:
    if "['blocks']" in name:
      block = int(name.split("['blocks'][")[1].split("]")[0])
      expected[name] = 0.5 ** (2 - block)  # block i (0-based) is layer i + 1 of 0..L + 1
    elif any(f"['{embedding}']" in name for embedding in ("patch_embed", "cls_token", "pos_embed")):
      expected[name] = 0.5 ** 3
    else:  # the final norm and the heads
      expected[name] = 1.0
  assert scales == pytest.approx(expected)
  assert set(expected.values()) == {0.5 ** k for k in range(4)}  # every layer is present


def test_layer_decay_scales_adamw_updates_layer_by_layer_and_decay_skips_tokens_and_vectors():
  params = _vit_classifier_params()
  grads = jax.tree.map(lambda p: jnp.full(p.shape, 0.3, jnp.float32) + jnp.arange(p.size).reshape(p.shape) * 1e-3,
                       params)
  config = finetune_recipe.default_config("vit")
  config.optim.update(layer_decay=0.7, weight_decay=0.05)

  def updates(layer_decay):
    config.optim.layer_decay = layer_decay
    optimizer = finetune_recipe.make_optimizer(config, optax.constant_schedule(1e-3), depth=2)
    return _flat(optimizer.update(grads, optimizer.init(params), params)[0])

  decayed, flat = updates(0.7), updates(1.0)
  scales = _flat(finetune_recipe.learning_rate_scales(params, depth=2, layer_decay=0.7))
  for name, update in flat.items():
    np.testing.assert_allclose(decayed[name], scales[name] * np.asarray(update), rtol=1e-5, err_msg=name)
  # AdamW's first step is -lr * (sign(g) + wd * p) where decay applies: kernels only, not tokens or vectors.
  mask = _flat(finetune_recipe.decay_mask(params))
  flat_params = _flat(params)
  for name, update in flat.items():
    applies = flat_params[name].ndim >= 2 and "cls_token" not in name and "pos_embed" not in name
    assert mask[name] == applies, name
    expected = -1e-3 * (1.0 + (0.05 * np.asarray(flat_params[name]) if applies else 0.0))
    np.testing.assert_allclose(update, expected, rtol=1e-3, atol=1e-9, err_msg=name)


def test_smoothed_cross_entropy_against_a_float64_reference():
  rng = np.random.default_rng(0)
  logits, labels = rng.normal(size=(7, 5)) * 3, rng.integers(0, 5, 7)
  for smoothing in (0.0, 0.1, 0.5):
    targets = np.full((7, 5), smoothing / 5)
    targets[np.arange(7), labels] += 1 - smoothing
    log_softmax = logits - logits.max(1, keepdims=True)
    log_softmax -= np.log(np.exp(log_softmax).sum(1, keepdims=True))
    reference = -(targets * log_softmax).sum(1).mean()
    got = finetune_recipe.smoothed_cross_entropy(jnp.asarray(logits, jnp.float32), jnp.asarray(labels), smoothing)
    np.testing.assert_allclose(float(got), reference, rtol=1e-5)
  assert np.isnan(float(finetune_recipe.smoothed_cross_entropy(jnp.full((2, 3), jnp.nan), jnp.array([0, 1]), 0.1)))


def test_recipe_follows_the_backbone_and_bad_fields_are_one_line():
  assert finetune_recipe.recipe_for("vit_tiny") == "vit" and finetune_recipe.recipe_for("resnet50") == "convnet"
  vit, convnet = finetune_recipe.default_config("vit"), finetune_recipe.default_config("convnet")
  assert (vit.optim.name, vit.optim.layer_decay, vit.train.label_smoothing, vit.model.drop_path) == (
      "adamw", 0.65, 0.1, 0.1)
  assert (convnet.optim.name, convnet.optim.layer_decay, convnet.model.drop_path) == ("sgd", 1.0, 0.0)
  for field, value, message in (("train.global_batch_size", 12, "multiple of the 8 devices"),
                                ("optim.layer_decay", 0.0, "layer_decay must lie in"),
                                ("train.label_smoothing", 1.0, "label_smoothing must lie in"),
                                ("model.drop_path", 0.1, "only ViTs have"),
                                ("views.flip_prob", 2.0, "flip_prob must be a probability")):
    config = finetune_recipe.default_config("convnet")
    section, name = field.split(".")
    config[section][name] = value
    with pytest.raises(config_lib.ConfigError, match=message):
      finetune_recipe.check_config(config, "small_cnn", num_devices=8)


def test_the_config_file_names_a_recipe_and_takes_settings():
  from configs import finetune as finetune_configs

  config = finetune_configs.get_config("vit,train.num_epochs=3,optim.layer_decay=0.75")
  assert (config.recipe, config.train.num_epochs, config.optim.layer_decay) == ("vit", 3.0, 0.75)
  assert finetune_configs.get_config().to_dict() == finetune_recipe.default_config("convnet").to_dict()
  for arg, message in (("vit,convnet", "takes one recipe"), ("mlp", "takes one recipe"),
                       ("optim.lr=1", "unknown config key 'optim.lr'")):
    with pytest.raises(config_lib.ConfigError, match=message):
      finetune_configs.get_config(arg)


@pytest.fixture(scope="module")
def smoke_run(bundled_dir, tmp_path_factory):
  """A 2-step VICReg pretraining on `shapes` (the dataset with a shifted set)."""
  config = common.smoke(common.bundled_base("vicreg"))
  config.data.update(name="shapes", data_dir=str(bundled_dir))
  config.eval.report = False
  workdir = tmp_path_factory.mktemp("finetune") / "run"
  loop.require_completed(loop.train(config, workdir))
  return workdir


def _small(steps: int = 4) -> object:
  config = finetune_recipe.default_config("convnet")
  config.train.update(global_batch_size=16, num_steps=steps, log_every=1, checkpoint_every=2)
  return config


def test_each_initialisation_starts_from_its_backbone(smoke_run):
  pretraining = encoder_lib.run_config(smoke_run)
  config = _small()
  config.data.name = "shapes"
  run = finetune.setup(config, pretraining, 4000, loop.data_mesh())
  for init, encoder in (("pretrained", encoder_lib.load_encoder(smoke_run)),
                        ("untrained", encoder_lib.initial_encoder(pretraining))):
    step, params, stats = finetune.backbone_arrays(smoke_run, init, None)
    state = finetune.initial_state(run, params, stats)
    expected_params, expected_stats = encoder.arrays()
    assert step == encoder.step
    got = jax.device_get(nnx.to_pure_dict(state.params))
    jax.tree.map(np.testing.assert_array_equal, got["backbone"], expected_params["backbone"])
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(nnx.to_pure_dict(state.batch_stats))["backbone"],
                 expected_stats["backbone"])
    assert not np.any(got["heads"]["label"]["kernel"])  # zero heads: uniform predictions at step 0


@pytest.mark.parametrize("on_device", ["true", "false"])
def test_a_stopped_run_resumes_to_the_uninterrupted_result(smoke_run, tmp_path, monkeypatch, on_device):
  config = _small(steps=4)
  config.data.update(name="shapes", on_device=on_device)
  straight = finetune.finetune(config, smoke_run, tmp_path / "straight", init="pretrained")
  assert straight["status"] == "completed" and set(straight["top1"]) == {"label", "label_coarse", "label_family"}
  assert set(straight["shifted"]) == {"shapes_ood"} and set(straight["shifted"]["shapes_ood"]["groups"]) == {
      "shift", "severity"}

  agreed = signals.StopSignals.agreed
  calls = []

  def stop_after_two_steps(self, can_sync):
    calls.append(can_sync)
    return len(calls) == 2 or agreed(self, can_sync)

  monkeypatch.setattr(signals.StopSignals, "agreed", stop_after_two_steps)
  stopped = finetune.finetune(config, smoke_run, tmp_path / "resumed", init="pretrained")
  assert (stopped["status"], stopped["step"]) == ("interrupted", 2)
  assert not (tmp_path / "resumed" / finetune.RESULT_FILE).exists()
  monkeypatch.setattr(signals.StopSignals, "agreed", agreed)
  resumed = finetune.finetune(config, smoke_run, tmp_path / "resumed", init="pretrained")
  assert resumed["top1"] == straight["top1"] and resumed["shifted"] == straight["shifted"]
  records = [[json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
             for run in ("straight", "resumed")]
  assert [r["step"] for r in records[1]] == [1, 2, 3, 4] and records[0] == records[1]  # bit for bit, once each
  # A finished run is not trained again; another config in its directory is refused.
  assert finetune.finetune(config, smoke_run, tmp_path / "resumed", init="pretrained") == json.loads(
      (tmp_path / "resumed" / finetune.RESULT_FILE).read_text())
  config.train.num_steps = 6
  with pytest.raises(finetune.FinetuneConfigMismatchError, match=r"fields finetune\.train\.num_steps"):
    finetune.finetune(config, smoke_run, tmp_path / "resumed", init="pretrained")


def test_the_command_fine_tunes_both_initialisations_and_refuses_bad_input(smoke_run, bundled_dir, tmp_path,
                                                                           capsys):
  out = tmp_path / "out"
  arguments = ["--workdir", str(smoke_run), "--out", str(out), "--config.train.num_steps=2",
               "--config.train.global_batch_size=16", "--config.train.log_every=1"]
  assert finetune_cli.main(arguments) == 0
  result = json.loads((out / finetune_cli.RESULTS_JSON).read_text())
  assert result["dataset"] == "shapes" and list(result["runs"]) == ["pretrained", "untrained"]
  assert result["runs"]["pretrained"]["pretrained_step"] == 2 and result["runs"]["untrained"]["pretrained_step"] == 0
  assert result["config"]["train"]["num_steps"] == 2 and result["config"]["recipe"] == "convnet"
  table = (out / finetune_cli.RESULTS_MD).read_text()
  top1 = result["runs"]["untrained"]["shifted"]["shapes_ood"]["top1"]["label"]
  assert f"| shapes_ood (6480) | untrained | 0 | 2 | {top1:.3f} |" in table and "per shift" in table
  # Another dataset than the run's: its own levels and sizes (digits' 8 px images, resized to the 16 px views).
  assert finetune_cli.main(["--workdir", str(smoke_run), "--dataset", "digits", "--data_dir", str(bundled_dir),
                            "--init", "pretrained", "--config.train.num_steps=1",
                            "--config.train.global_batch_size=16"]) == 0
  digits = json.loads((smoke_run / "finetune" / "digits" / finetune_cli.RESULTS_JSON).read_text())
  assert digits["dataset"] == "digits" and list(digits["runs"]) == ["pretrained"]
  assert set(digits["runs"]["pretrained"]["top1"]) == set(digits["levels"]) and digits["runs"]["pretrained"][
      "num_test"] == 360 and digits["runs"]["pretrained"]["shifted"] == {}
  capsys.readouterr()

  refused = {"no run": (["--workdir", str(tmp_path / "nothing")], "is not a jax_ssl workdir"),
             "unknown key": (arguments + ["--config.optim.lr=1"], "unknown config key 'optim.lr'"),
             "bad type": (arguments + ["--config.train.num_steps=two"], "does not parse as int"),
             "bad init": (arguments + ["--init", "both"], "--init takes pretrained, untrained or both"),
             "unknown dataset": (arguments + ["--dataset", "nope"], "unknown dataset 'nope'"),
             "other config": (arguments[:4] + ["--config.train.num_steps=3", "--config.train.global_batch_size=16"],
                              "holds a fine-tuning run of another config"),
             "no such file": (arguments + ["--config", str(tmp_path / "none.py")], "does not exist")}
  diverging = ["--workdir", str(smoke_run), "--config.train.num_steps=4", "--config.train.global_batch_size=16",
               "--config.optim.base_lr=1e30", "--init", "untrained", "--out", str(tmp_path / "nan")]
  with pytest.raises(SystemExit) as exit_info:
    finetune_cli.main(diverging)
  error = capsys.readouterr().err
  assert exit_info.value.code == 1 and error.count("\n") == 1, error
  assert "non-finite loss" in error or "holds NaN or inf" in error, error
  for name, (argv, message) in refused.items():
    with pytest.raises(SystemExit) as exit_info:
      code = finetune_cli.main(argv)
      raise SystemExit(code)
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and error.startswith("python -m jax_ssl.finetune: "), (name, error)
    assert error.count("\n") == 1 and message in error, (name, error)
