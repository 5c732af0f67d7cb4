"""Config validation: every problem a user can make is one ConfigError line naming the fix."""

import json

import ml_collections
import pytest

from configs import common
from jax_ssl.train import config as config_lib
from jax_ssl.train import loop
from jax_ssl.train import workdir


def _valid():
  config = config_lib.base_config()
  config.model.update(backbone="small_cnn", projector="64-64")
  return config


def test_base_config_validates():
  config_lib.validate(_valid(), num_devices=8)


@pytest.mark.parametrize("mutate,message", [
    (lambda c: c.model.__setattr__("widht", 3), r"unknown config key 'model.widht' \(did you mean 'model.width'\?\)"),
    (lambda c: c.method.__setattr__("name", "moco"), r"unknown method 'moco'; methods: barlow_twins, byol, clip, dino"),
    (lambda c: (c.method.__setattr__("name", "mae"), c.views.__setattr__("recipe", "multicrop")),
     "method 'mae' masks a ViT's patches; set model.backbone to a vit_\\* backbone, not 'small_cnn'"),
    (lambda c: (c.method.__setattr__("name", "ijepa"), c.views.__setattr__("recipe", "multicrop")),
     "method 'ijepa' masks a ViT's patches; set model.backbone to a vit_\\* backbone"),
    (lambda c: (c.method.__setattr__("name", "ijepa"), c.views.update(recipe="multicrop", num_local=2),
                c.model.update(backbone="vit_micro", patch_size=4)),
     "method 'ijepa' masks the global views only; set views.num_local to 0"),
    (lambda c: (c.method.__setattr__("name", "clip"), c.views.update(recipe="multicrop", num_global=2)),
     "method 'clip' pairs one view of each image with a caption; set views.num_global to 1 and views.num_local to 0"),
    (lambda c: (c.method.__setattr__("name", "clip+tregs"), c.views.update(recipe="multicrop", num_global=1),
                c.data.__setattr__("name", "digits")),
     r"method 'clip\+tregs' trains on captions, and data.name 'digits' has none; use a captioned dataset \(shapes\)"),
    (lambda c: c.model.__setattr__("pool", "mean"), "model.pool chooses a ViT's representation; 'small_cnn' always"),
    (lambda c: c.model.__setattr__("pool", "max"), "model.pool must be one of cls, mean; got 'max'"),
    (lambda c: (c.method.__setattr__("name", "dino"), c.views.__setattr__("recipe", "multicrop"),
                c.method.dino.__setattr__("num_prototypes", 0)), "method.dino.num_prototypes must be positive"),
    (lambda c: c.method.__setattr__("name", "tregs+tregs"), "unknown method 'tregs\\+tregs'"),
    (lambda c: c.model.__setattr__("backbone", "resnet152"), "model.backbone 'resnet152' is unknown"),
    (lambda c: c.data.__setattr__("name", "mnist"), "data.name 'mnist' is unknown; datasets: ade20k, caltech101"),
    (lambda c: c.train.__setattr__("global_batch_size", 12), "train.global_batch_size = 12 does not divide over the 8"),
    (lambda c: c.train.__setattr__("global_batch_size", 0), "train.global_batch_size must be positive"),
    (lambda c: c.optim.__setattr__("name", "sgd"), "optim.name must be one of lars, adamw"),
    (lambda c: c.model.__setattr__("dtype", "float16"), "model.dtype must be one of float32, bfloat16"),
    (lambda c: (c.method.__setattr__("name", "visreg"), c.views.__setattr__("recipe", "multicrop"),
                c.method.visreg.__setattr__("lam", 1.5)), r"method.visreg.lam weighs the regularizer .* in \[0, 1\]"),
    (lambda c: c.method.vicreg.__setattr__("sim_coeff", -1.0), "method.vicreg.sim_coeff must not be negative"),
    (lambda c: (c.method.__setattr__("name", "byol+tregs"), c.method.t_reg.__setattr__("lam", -1.0)),
     "method.t_reg.lam must not be negative"),
    (lambda c: (c.method.__setattr__("name", "sag_vicreg"), c.method.sag_vicreg.__setattr__("graph", "knn")),
     "method.sag_vicreg.graph must be one of cross_view, cross_view_own, same_view; got 'knn'"),
    (lambda c: c.method.vicreg.__setattr__("lam", 1.0), r"unknown config key 'method.vicreg.lam'"),
    (lambda c: c.views.__setattr__("num_local", 6), "views.recipe 'vicreg' makes 2 global views and no local"),
    (lambda c: c.data.__setattr__("classes", "0-40"), "data.classes '0-40' must lie in 0..35 for shapes"),
    (lambda c: c.data.__setattr__("classes", "a-b"), "data.classes 'a-b': 'a-b' is not a class or a range"),
    (lambda c: (c.method.__setattr__("name", "visreg"), c.views.__setattr__("recipe", "multicrop"),
                c.method.visreg.__setattr__("num_slices", 100)),
     "method.visreg.num_slices = 100 is split over 8 devices"),
    (lambda c: (c.method.__setattr__("name", "sag_vicreg"), c.method.sag_vicreg.__setattr__("k", 64),
                c.train.__setattr__("global_batch_size", 64)),
     "method.sag_vicreg.k = 64 neighbours needs a global batch larger than k"),
    (lambda c: (c.train.__setattr__("num_steps", 0), c.train.__setattr__("num_epochs", 0.0)),
     "set train.num_steps or train.num_epochs"),
    (lambda c: c.optim.__setattr__("b2", 1.0), r"optim.b2 is a decay rate in \[0, 1\), got 1.0"),
    (lambda c: c.optim.__setattr__("end_lr_fraction", 1.5), r"optim.end_lr_fraction is a fraction .* in \[0, 1\]"),
    (lambda c: c.optim.__setattr__("base_lr", -0.1), "optim.base_lr must not be negative"),
    (lambda c: c.model.__setattr__("projector", "64-0"), "model.projector: MLP spec '64-0'"),
    (lambda c: c.data.__setattr__("on_device", "yes"), "data.on_device must be one of auto, true, false"),
    (lambda c: c.eval.__setattr__("knn_k", 0), "eval.knn_k must be positive"),
    (lambda c: c.optim.__setattr__("base_lr", float("inf")), r"optim.base_lr must be a finite number, got inf\.$"),
    (lambda c: c.optim.__setattr__("base_lr", float("nan")), r"optim.base_lr must be a finite number, got nan\.$"),
    (lambda c: c.optim.__setattr__("base_lr", 1e40), "optim.base_lr = 1e\\+40 gives a peak learning rate of 1e\\+40"),
    (lambda c: c.views.__setattr__("global_scale", (0.3, float("nan"))), "views.global_scale must be a finite number"),
    (lambda c: c.train.__setattr__("peer_timeout_seconds", float("inf")), "peer_timeout_seconds must be a finite"),
    (lambda c: c.train.__setattr__("global_batch_size", 1), "train.global_batch_size = 1 is too small: .* at least 2"),
])
def test_bad_configs_are_one_clear_line(mutate, message):
  config = _valid()
  mutate(config)
  with pytest.raises(config_lib.ConfigError, match=message) as error:
    config_lib.validate(config, num_devices=8)
  assert "\n" not in str(error.value)


def test_wrong_types_are_named():
  # ConfigDict refuses a wrong type on assignment; a config rebuilt from a dict or JSON does not.
  as_dict = _valid().to_dict()
  as_dict["train"]["log_every"] = "often"
  config = ml_collections.ConfigDict(as_dict)
  with pytest.raises(config_lib.ConfigError, match="config key 'train.log_every' must be a int, got 'often'"):
    config_lib.validate(config, num_devices=1)


def test_missing_keys_are_named():
  config = _valid()
  del config.train["log_every"]
  with pytest.raises(config_lib.ConfigError, match="config key 'train.log_every' is missing"):
    config_lib.validate(config, num_devices=1)


def test_vit_views_must_fit_the_patches():
  config = _valid()
  config.model.update(backbone="vit_tiny", patch_size=16)
  config.views.size = 40
  with pytest.raises(config_lib.ConfigError, match="views.size = 40 must be a multiple of model.patch_size = 16"):
    config_lib.validate(config, num_devices=1)


def test_smoke_keeps_the_recipe_and_shrinks_the_rest():
  config = config_lib.base_config()
  config.method.name = "visreg"
  config.views.update(recipe="multicrop", num_global=4, num_local=6)
  config.data.update(name="imagenette", data_dir="/data")
  small = common.smoke(config)
  # The recipe and its global views stay; local views are capped at two (the same code paths).
  assert small.method.name == "visreg" and small.views.num_global == 4 and small.views.num_local == 2
  assert small.data.name == "shapes" and small.model.backbone == "small_cnn" and small.train.num_steps == 2
  assert config.data.name == "imagenette", "smoke must not modify its input"
  config_lib.validate(small, num_devices=8)


def test_view_overrides_are_checked_against_the_view_fields():
  config = _valid()
  config.views.overrides.flip_prob = 0.0
  config_lib.validate(config, num_devices=1)
  config.views.overrides.flip = 0.0
  with pytest.raises(config_lib.ConfigError, match="views.overrides.flip is not a view field; fields: crop_scale"):
    config_lib.validate(config, num_devices=1)
  del config.views.overrides["flip"]
  config.views.overrides.flip_prob = 2.0
  with pytest.raises(config_lib.ConfigError, match="views.overrides: ViewSpec.flip_prob must be a probability"):
    config_lib.validate(config, num_devices=1)


# The flat method section every config had before each method got its own, with values that
# differ from today's defaults where a legacy run could have set them.
LEGACY_METHOD = dict(name="byol+tregs", sim_coeff=20.0, std_coeff=21.0, cov_coeff=2.0, k=7, percentile=30.0,
                     graph="cross_view", scale_over="row", regularize="views", lam=0.5, num_slices=256,
                     lambda_scale=0.5, lambda_shape=2.0, lambda_center=0.25, detach_std=False, sigreg_knots=9,
                     tregs_beta=9.0, tregs_gamma=0.3, tregs_lam=1e-3, barlow_lambda=1e-2, temperature=0.2,
                     byol_momentum=0.99)


def test_a_legacy_flat_method_section_lands_in_every_section_that_read_it(tmp_path):
  legacy = json.loads(_valid().to_json())
  legacy["method"] = LEGACY_METHOD
  assert set(LEGACY_METHOD) - {"name"} == set(config_lib.LEGACY_METHOD_KEYS)
  config = ml_collections.ConfigDict(config_lib.upgrade_legacy_method(legacy))
  method = config.method
  assert (method.name, method.byol.tau_base, method.t_reg.gamma, method.t_reg.lam) == ("byol+tregs", 0.99, 0.3, 1e-3)
  assert dict(method.sag_vicreg) == dict(sim_coeff=20.0, std_coeff=21.0, cov_coeff=2.0, k=7, percentile=30.0,
                                         graph="cross_view", scale_over="row", regularize="views")
  assert (method.lejepa.lam, method.lejepa.knots, method.swd.num_slices) == (0.5, 9, 256)
  assert (method.visreg.lam, method.visreg.lambda_shape, method.visreg.detach_std) == (0.5, 2.0, False)
  assert (method.tregs.beta, method.barlow_twins.lambd, method.simclr.temperature) == (9.0, 1e-2, 0.2)
  config_lib.validate(config, num_devices=8)
  assert config_lib.upgrade_legacy_method(json.loads(config.to_json())) == json.loads(config.to_json())
  # A workdir started by a legacy run takes the same run's config today: it resumes.
  (tmp_path / workdir.CONFIG_FILE).write_text(json.dumps(legacy))
  assert workdir.check_config(config, tmp_path) == {}
  config.method.byol.tau_base = 0.9
  with pytest.raises(workdir.ConfigMismatchError, match=r"method.byol.tau_base \(0.99 -> 0.9\)"):
    workdir.check_config(config, tmp_path)


def test_a_run_resumes_under_a_library_with_more_methods(tmp_path):
  config = _valid()
  saved = json.loads(config.to_json())
  del saved["method"]["dino"]  # written before the section existed
  (tmp_path / workdir.CONFIG_FILE).write_text(json.dumps(saved))
  assert config_lib.upgrade_saved_config(saved)["method"]["dino"] == dict(config.method.dino)
  assert workdir.check_config(config, tmp_path) == {}
  # Another method's hyperparameters are not part of this (VICReg) run; its own are.
  config.method.dino.num_prototypes = 64
  assert workdir.check_config(config, tmp_path) == {}
  config.method.vicreg.sim_coeff = 1.0
  with pytest.raises(workdir.ConfigMismatchError, match=r"method.vicreg.sim_coeff \(25.0 -> 1.0\)"):
    workdir.check_config(config, tmp_path)


def test_a_run_says_where_its_length_comes_from():
  config = _valid()
  config.train.update(num_steps=0, num_epochs=2.5)
  assert loop.schedule_lengths(config, 1000) == (3, 8)
  assert loop.describe_length(config, 3, 8) == "2.5 epochs of 3 steps: train.num_epochs, since train.num_steps = 0"
  config.train.num_steps = 5
  assert loop.describe_length(config, 3, 5) == "train.num_steps = 5"
