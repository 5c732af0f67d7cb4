"""The report's table and header: every probe against its controls, and the head the method trains."""

import json

from jax_ssl.train import config as config_lib
from jax_ssl.train import report


def _results(with_zero_shot):
  def probes(base, zero_shot):
    values = {"knn": {"label": base}, "linear": {"label": base + 0.05}}
    return {**values, "zero_shot": {"label": base / 2}} if zero_shot else values
  return {"pixels": probes(0.2, False), "initial": probes(0.1, with_zero_shot), "trained": probes(0.6, with_zero_shot)}


def test_zero_shot_rows_have_no_pixels_control_and_gain_over_initialisation(tmp_path):
  config = config_lib.base_config()
  config.method.name = "clip+tregs"
  config.method.clip.update(text_width=64, text_depth=2, text_heads=4)
  config.model.projector = "64"
  text = report.write_report(tmp_path, config, _results(True), []).read_text()
  assert "projector `64`, text transformer 64 wide, 2 blocks, 4 heads" in text
  assert "| zero_shot | label | n/a | 0.050 | 0.300 | +0.250 |" in text
  assert "| knn | label | 0.200 | 0.100 | 0.600 | +0.400 |" in text
  saved = json.loads((tmp_path / report.REPORT_JSON).read_text())
  assert saved["accuracy"]["trained"]["zero_shot"] == {"label": 0.3} and "zero_shot" not in saved["accuracy"]["pixels"]


def test_the_header_names_the_methods_head(tmp_path):
  config = config_lib.base_config()
  config.method.name = "mae"
  config.method.mae.update(decoder_width=128, decoder_depth=2, decoder_heads=4)
  assert "Backbone `resnet18`, decoder 128 wide, 2 blocks, 4 heads," in report.write_report(
      tmp_path, config, _results(False), []).read_text()
  config.method.name = "vicreg"
  assert f"projector `{config.model.projector}`, global batch" in report.write_report(
      tmp_path, config, _results(False), []).read_text()
