"""View specs, presets, configs and batched multi-crop of jax_ssl.data.views."""

import dataclasses

import jax
import ml_collections
import numpy as np
import pytest

from jax_ssl.data import views

GLOBAL = views.ViewSpec(size=16, blur_prob=0.5, solarize_prob=0.5)
LOCAL = views.ViewSpec(size=8, crop_scale=(0.05, 0.3))
SPECS = (GLOBAL, GLOBAL, LOCAL, LOCAL, LOCAL)
MEAN, STD = np.array(views.IMAGENET_MEAN, np.float32), np.array(views.IMAGENET_STD, np.float32)


def _uint8_images(n, h=32, w=32, c=3, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


# ---------------------------------------------------------------------------
# The full view.


@pytest.mark.parametrize("channels", [1, 3])
def test_augment_view_shape_range_and_keys(channels):
  mean, std = ((0.5,), (0.25,)) if channels == 1 else (views.IMAGENET_MEAN, views.IMAGENET_STD)
  spec = views.ViewSpec(size=12, blur_prob=0.5, solarize_prob=0.5, mean=mean, std=std)
  images = _uint8_images(8, 20, 20, channels, seed=14)
  view_fn = jax.jit(jax.vmap(views.augment_view, in_axes=(0, 0, None)), static_argnums=2)
  keys = jax.random.split(jax.random.key(15), 8)
  out = np.asarray(view_fn(keys, images, spec))
  assert out.shape == (8, 12, 12, channels) and out.dtype == np.float32
  undone = out * np.array(std, np.float32) + np.array(mean, np.float32)
  assert undone.min() >= -1e-6 and undone.max() <= 1 + 1e-6
  np.testing.assert_array_equal(view_fn(keys, images, spec), out)  # same keys: the same views
  other = np.asarray(view_fn(jax.random.split(jax.random.key(16), 8), images, spec))
  assert np.all(np.any(other != out, axis=(1, 2, 3)))


def test_augment_view_with_everything_off_is_the_scaled_image():
  spec = views.ViewSpec(
      size=16, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_prob=0.0, jitter_prob=0.0,
      grayscale_prob=0.0, blur_prob=0.0, solarize_prob=0.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
  image = _uint8_images(1, 16, 16, 3, seed=17)[0]
  out = views.augment_view(jax.random.key(0), image, spec)
  np.testing.assert_allclose(out, image / 255.0, atol=1e-6)


# ---------------------------------------------------------------------------
# Batches.


def test_augment_batch_gives_each_image_its_own_key():
  images = _uint8_images(4)
  key = jax.random.key(0)
  out = np.asarray(views.augment_batch(key, images, GLOBAL))
  assert out.shape == (4, 16, 16, 3) and out.dtype == np.float32
  undone = out * STD + MEAN
  assert undone.min() >= -1e-6 and undone.max() <= 1 + 1e-6
  np.testing.assert_array_equal(views.augment_batch(key, images, GLOBAL), out)
  assert np.all(np.any(np.asarray(views.augment_batch(jax.random.key(1), images, GLOBAL)) != out, axis=(1, 2, 3)))
  # Image i is augment_view with key i of split(key, B).
  single = jax.jit(views.augment_view, static_argnums=2)
  for index, image_key in enumerate(jax.random.split(key, 4)):
    np.testing.assert_allclose(single(image_key, images[index], GLOBAL), out[index], atol=1e-5)
  # Copies of one image still get different views.
  copies = np.asarray(views.augment_batch(key, np.repeat(images[:1], 4, axis=0), GLOBAL))
  assert all(np.any(copies[i] != copies[j]) for i in range(4) for j in range(i))


def test_multi_crop_views_follow_their_specs_and_keys():
  images = _uint8_images(4, seed=1)
  key = jax.random.key(2)
  crops = views.multi_crop(key, images, list(SPECS))
  assert isinstance(crops, list) and len(crops) == len(SPECS)
  for index, (crop, spec) in enumerate(zip(crops, SPECS)):
    assert crop.shape == (4, spec.size, spec.size, 3) and crop.dtype == np.float32
    undone = np.asarray(crop) * STD + MEAN
    assert undone.min() >= -1e-6 and undone.max() <= 1 + 1e-6
    # View v is augment_batch with fold_in(key, v), as documented.
    expected = views.augment_batch(jax.random.fold_in(key, index), images, spec)
    np.testing.assert_allclose(crop, expected, atol=1e-5)
  for i in range(len(crops)):
    for j in range(i):
      if crops[i].shape == crops[j].shape:
        assert np.all(np.any(np.asarray(crops[i]) != np.asarray(crops[j]), axis=(1, 2, 3))), (i, j)
  np.testing.assert_array_equal(views.multi_crop(key, images, SPECS)[3], crops[3])

  stacked = views.stack_by_size(crops, SPECS)
  assert list(stacked) == [16, 8]
  assert stacked[16].shape == (2, 4, 16, 16, 3) and stacked[8].shape == (3, 4, 8, 8, 3)
  np.testing.assert_array_equal(stacked[16][1], crops[1])
  np.testing.assert_array_equal(stacked[8][0], crops[2])
  with pytest.raises(ValueError, match="specs"):
    views.stack_by_size(crops[:2], SPECS)
  with pytest.raises(ValueError, match="size"):
    views.stack_by_size(crops[:2], (LOCAL, GLOBAL))


# ---------------------------------------------------------------------------
# Presets.


def _colour(spec):
  return (spec.flip_prob, spec.jitter_prob, spec.brightness, spec.contrast, spec.saturation, spec.hue,
          spec.grayscale_prob)


def test_vicreg_and_byol_presets_have_the_papers_parameters():
  first, second = views.vicreg_views(224)
  for spec in (first, second):
    assert spec.size == 224 and spec.crop_scale == (0.08, 1.0)
    assert _colour(spec) == (0.5, 0.8, 0.4, 0.4, 0.2, 0.1, 0.2)
    assert spec.mean == views.IMAGENET_MEAN and spec.std == views.IMAGENET_STD
  assert (first.blur_prob, first.solarize_prob) == (1.0, 0.0)
  assert (second.blur_prob, second.solarize_prob) == (0.1, 0.2)
  assert views.byol_views(224) == (first, second)

  small = views.vicreg_views(32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
  assert all(spec.crop_scale == (0.2, 1.0) and spec.blur_prob == 0.0 for spec in small)
  assert [spec.solarize_prob for spec in small] == [0.0, 0.2]
  assert small[0].mean == (0.5, 0.5, 0.5)
  assert views.vicreg_views(32, small_images=False)[0].blur_prob == 1.0
  assert views.vicreg_views(224, small_images=True)[0].crop_scale == (0.2, 1.0)


def test_multicrop_preset_alternates_global_views_then_locals():
  specs = views.multicrop_views(224, 96, num_global=3, num_local=4)
  assert len(specs) == 7 and [s.size for s in specs] == [224] * 3 + [96] * 4
  assert all(s.crop_scale == (0.3, 1.0) for s in specs[:3])
  assert [(s.blur_prob, s.solarize_prob) for s in specs[:3]] == [(1.0, 0.0), (0.1, 0.2), (1.0, 0.0)]
  assert all(s.crop_scale == (0.05, 0.3) and s.blur_prob == 0.5 and s.solarize_prob == 0.0 for s in specs[3:])
  assert all(_colour(s) == (0.5, 0.8, 0.4, 0.4, 0.2, 0.1, 0.2) for s in specs)
  assert views.multicrop_views(num_local=0) == views.multicrop_views(num_local=0)[:2]
  with pytest.raises(ValueError, match="num_global"):
    views.multicrop_views(num_global=0)


def test_simclr_preset_has_the_papers_parameters():
  first, second = views.simclr_views(224)
  assert first == second and first.crop_scale == (0.08, 1.0)
  assert _colour(first) == pytest.approx((0.5, 0.8, 0.8, 0.8, 0.8, 0.2, 0.2))
  assert (first.blur_prob, first.blur_sigma, first.solarize_prob) == (0.5, (0.1, 2.0), 0.0)
  half = views.simclr_views(32, strength=0.5)[0]
  assert half.blur_prob == 0.0
  assert (half.brightness, half.contrast, half.saturation, half.hue) == pytest.approx((0.4, 0.4, 0.4, 0.1))


# ---------------------------------------------------------------------------
# Validation and configs.


@pytest.mark.parametrize("field,value", [
    ("size", 0), ("size", 2.5), ("flip_prob", 1.5), ("jitter_prob", -0.1), ("grayscale_prob", 2.0),
    ("blur_prob", -1.0), ("solarize_prob", 1.01), ("brightness", -0.1), ("contrast", -1.0),
    ("saturation", -0.5), ("hue", 0.6), ("crop_scale", (0.5, 0.2)), ("crop_scale", (0.0, 1.0)),
    ("crop_scale", (0.5, 1.5)), ("crop_ratio", (4 / 3, 3 / 4)), ("crop_ratio", (-1.0, 1.0)),
    ("blur_sigma", (2.0, 0.1)), ("blur_sigma", (0.1, 0.2, 0.3)), ("std", (0.2, 0.0, 0.2)),
    ("std", (0.2, 0.2)), ("mean", 0.5), ("flip_prob", "half"), ("size", True),
])
def test_view_spec_rejects_bad_values_naming_the_field(field, value):
  fields = {"size": 8, field: value}
  with pytest.raises(ValueError, match=f"ViewSpec.{field}"):
    views.ViewSpec(**fields)


def test_view_spec_stores_tuples_so_equal_specs_hash_equal():
  from_lists = views.ViewSpec(size=8, crop_scale=[0.2, 1], mean=[0.5], std=[0.25])
  from_tuples = views.ViewSpec(size=8, crop_scale=(0.2, 1.0), mean=(0.5,), std=(0.25,))
  assert from_lists == from_tuples and hash(from_lists) == hash(from_tuples)
  assert isinstance(from_lists.crop_scale, tuple) and isinstance(from_lists.mean, tuple)
  assert views.ViewSpec(size=np.int64(8)) == views.ViewSpec(size=8)  # sizes read from arrays or configs


@pytest.mark.parametrize("preset", [
    views.vicreg_views(224), views.vicreg_views(32), views.simclr_views(96), views.multicrop_views(64, 32, 2, 3),
])
def test_views_from_config_round_trips_dicts_and_config_dicts(preset):
  as_dicts = [dataclasses.asdict(spec) for spec in preset]
  assert views.views_from_config(as_dicts) == preset
  as_configs = [ml_collections.ConfigDict(d) for d in as_dicts]
  assert views.views_from_config(as_configs) == preset
  config = ml_collections.ConfigDict()
  config.views = as_configs  # how an experiment config holds a recipe
  assert views.views_from_config(config.views) == preset


def test_views_from_config_fills_defaults_and_rejects_unknown_or_missing_keys():
  (spec,) = views.views_from_config([{"size": 32, "blur_prob": 0.5, "crop_scale": [0.2, 1.0]}])
  assert spec == views.ViewSpec(size=32, blur_prob=0.5, crop_scale=(0.2, 1.0))
  with pytest.raises(ValueError, match="blur_probability") as error:
    views.views_from_config([{"size": 32}, {"size": 32, "blur_probability": 0.5}])
  assert "view 1" in str(error.value) and all(name in str(error.value) for name in views.VIEW_SPEC_FIELDS)
  with pytest.raises(ValueError, match="size"):
    views.views_from_config([{"blur_prob": 0.5}])
  with pytest.raises(ValueError, match="ViewSpec.hue"):
    views.views_from_config([{"size": 32, "hue": 0.7}])


def test_recipe_views_follow_the_config_section():
  from jax_ssl.train import config as config_lib
  section = config_lib.base_config().views
  section.update(recipe="multicrop", size=32, local_size=16, num_global=2, num_local=3)
  section.overrides.update(flip_prob=0.0)
  specs = views.recipe_views(section, mean=(0.5,), std=(0.25,))
  assert [s.size for s in specs] == [32, 32, 16, 16, 16]
  assert all(s.flip_prob == 0.0 and s.mean == (0.5,) and s.std == (0.25,) for s in specs)
  assert specs[0].crop_scale == tuple(section.global_scale) and specs[2].crop_scale == tuple(section.local_scale)
  section.update(recipe="vicreg", size=16, small_images=True)
  first, second = views.recipe_views(section, mean=(0.5,), std=(0.25,))
  expected = views.vicreg_views(16, mean=(0.5,), std=(0.25,), small_images=True)
  assert (first, second) == tuple(dataclasses.replace(s, flip_prob=0.0) for s in expected)


@pytest.mark.parametrize("change,message", [
    (dict(recipe="dino"), "views.recipe must be one of vicreg, byol, simclr, multicrop; got 'dino'"),
    (dict(size=0), "views.size must be positive, got 0"),
    (dict(num_local=-1, recipe="multicrop"), "views.num_local must not be negative"),
    (dict(num_global=4), "views.recipe 'vicreg' makes 2 global views and no local ones"),
    (dict(recipe="multicrop", global_scale=(0.5, 0.2)), r"views: ViewSpec.crop_scale must be \(low, high\)"),
    (dict(recipe="multicrop", local_size=0), "views: ViewSpec.size must be an integer >= 1"),
])
def test_check_config_names_the_views_field(change, message):
  from jax_ssl.train import config as config_lib
  section = config_lib.base_config().views
  views.check_config(section)
  section.update(**change)
  with pytest.raises(ValueError, match=message):
    views.check_config(section)


def test_check_config_checks_overrides_on_global_and_local_views():
  from jax_ssl.train import config as config_lib
  section = config_lib.base_config().views
  section.overrides.blur_prob = 0.0
  views.check_config(section)
  section.overrides.size = 8  # the recipe sets the sides
  with pytest.raises(ValueError, match="views.overrides.size is not a view field"):
    views.check_config(section)
  del section.overrides["size"]
  section.overrides.hue = 0.7
  with pytest.raises(ValueError, match=r"views.overrides: ViewSpec.hue must be in \[0, 0.5\]"):
    views.check_config(section)
