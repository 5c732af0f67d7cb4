"""The optional W&B writer, offline (no network): its run directory, its resumed id, the same records as
metrics.jsonl, and the one line a config gets when wandb is not installed."""

import pathlib
import struct
import sys

import pytest

from jax_ssl.train import config as config_lib
from jax_ssl.train import monitor
from jax_ssl.train import wandb_writer
from tests.train import cli

wandb = pytest.importorskip("wandb")


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
  monkeypatch.setenv("WANDB_SILENT", "true")
  monkeypatch.setenv("WANDB_MODE", "offline")
  monkeypatch.delenv("WANDB_PROJECT", raising=False)


def _records(path: pathlib.Path) -> list[bytes]:
  """The records of a `.wandb` file: a 7-byte header, then LevelDB-log chunks in 32 KiB blocks.

  Each chunk is (crc32c: 4 bytes, length: 2, type: 1, data); type 1 is a whole record, 2 / 3 / 4 its first,
  middle and last pieces.
  """
  data, block = path.read_bytes(), 32 * 1024
  assert data[:4] == b":W&B", path
  position, pieces, records = 7, b"", []
  while position + 7 <= len(data):
    if block - position % block < 7:  # a block's tail too short for a chunk header is padding
      position += block - position % block
      continue
    _, length, kind = struct.unpack("<IHB", data[position:position + 7])
    if kind == 0:
      position += block - position % block
      continue
    pieces += data[position + 7:position + 7 + length]
    position += 7 + length
    if kind in (1, 4):
      records.append(pieces)
      pieces = b""
  return records


def _history(path: pathlib.Path) -> tuple[str, list[dict]]:
  """(run id, logged rows without W&B's own `_` fields) of one offline run file."""
  from wandb.proto import wandb_internal_pb2

  run_id, rows = None, []
  for raw in _records(path):
    record = wandb_internal_pb2.Record()
    record.ParseFromString(raw)
    kind = record.WhichOneof("record_type")
    if kind == "run":
      run_id = record.run.run_id
    elif kind == "history":
      items = {item.key or "/".join(item.nested_key): item.value_json for item in record.history.item}
      rows.append({key: float(value) for key, value in items.items() if not key.startswith("_")})
  return run_id, rows


def _offline_runs(workdir: pathlib.Path) -> list[pathlib.Path]:
  return sorted((workdir / "wandb").glob("offline-run-*"), key=lambda path: path.stat().st_mtime_ns)


def _monitor(workdir, resume_step=0, mode="offline", enabled=True):
  return monitor.Monitor(workdir, total_steps=4, images_per_step=8, enabled=enabled, resume_step=resume_step,
                         stream=open("/dev/null", "w"), wandb=mode, run_config={"method": {"name": "vicreg"}})


def test_offline_writes_the_jsonl_records_into_a_run_under_the_workdir_and_a_rerun_resumes_it(tmp_path):
  first = _monitor(tmp_path)
  first.write(1, {"loss": 2.5, "knn/lidar": 3.0})
  first.write(2, {"loss": 2.0})
  first.close()
  run_id = (tmp_path / wandb_writer.RUN_ID_FILE).read_text().strip()
  assert run_id and first._wandb is None  # finished and let go
  (run,) = _offline_runs(tmp_path)
  assert run.name.endswith(f"-{run_id}") and (run / f"run-{run_id}.wandb").exists()
  assert _history(run / f"run-{run_id}.wandb") == (run_id, [{"step": 1, "loss": 2.5, "knn/lidar": 3.0},
                                                             {"step": 2, "loss": 2.0}])
  # The rerun of the same command (resuming at step 1): the same W&B run, its records from step 2 on.
  second = _monitor(tmp_path, resume_step=1)
  second.write(2, {"loss": 1.75})
  second.close()
  assert (tmp_path / wandb_writer.RUN_ID_FILE).read_text().strip() == run_id
  resumed = _offline_runs(tmp_path)[-1]
  assert resumed != run and f"-{run_id}" in resumed.name
  assert _history(resumed / f"run-{run_id}.wandb") == (run_id, [{"step": 2, "loss": 1.75}])
  records = monitor.read_metrics(tmp_path)
  assert records == [{"step": 1, "loss": 2.5, "knn/lidar": 3.0}, {"step": 2, "loss": 1.75}]


def test_only_process_0_and_only_when_asked(tmp_path):
  other = _monitor(tmp_path / "other", enabled=False)
  other.write(1, {"loss": 1.0})
  other.close()
  assert not (tmp_path / "other").exists()
  plain = _monitor(tmp_path / "plain", mode="")
  plain.write(1, {"loss": 1.0})
  plain.close()
  assert not (tmp_path / "plain" / "wandb").exists() and not (tmp_path / "plain" / wandb_writer.RUN_ID_FILE).exists()


def test_a_config_asking_for_wandb_without_the_package_is_refused_in_one_line(monkeypatch, tmp_path):
  config = config_lib.base_config()
  config.log.wandb = "offline"
  config_lib.validate(config, num_devices=1)  # installed: fine
  config.log.wandb = "sometimes"
  with pytest.raises(config_lib.ConfigError, match="log.wandb must be 'offline', 'online' or ''"):
    config_lib.validate(config, num_devices=1)
  monkeypatch.setitem(sys.modules, "wandb", None)  # what an absent package looks like to an import
  config.log.wandb = "online"
  with pytest.raises(config_lib.ConfigError) as refused:
    config_lib.validate(config, num_devices=1)
  message = str(refused.value)
  assert "log.wandb='online' needs the wandb package" in message and "pip install wandb" in message
  assert "\n" not in message
  with pytest.raises(ValueError, match="pip install wandb"):  # the writer itself, for a caller that skips validation
    _monitor(tmp_path)
  assert not (tmp_path / monitor.METRICS_FILE).exists()


def test_the_command_line_exits_2_with_one_line_before_training(tmp_path, bundled_dir):
  # The package hidden from the command's own process, as if it were not installed.
  args = cli.smoke_args(tmp_path / "run", bundled_dir, "--config.log.wandb=offline")
  hide = ("import runpy, sys; sys.modules['wandb'] = None; sys.argv = ['jax_ssl.main', *sys.argv[1:]]; "
          "runpy.run_module('jax_ssl.main', run_name='__main__')")
  result = cli.run([args[0], "-c", hide, *args[3:]])
  assert result.returncode == 2, result.stderr[-2000:]
  errors = [line for line in result.stderr.splitlines() if line.startswith("jax_ssl:")]
  assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
  assert "config error: log.wandb='offline' needs the wandb package" in errors[0] and "pip install wandb" in errors[0]
  assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_training_run_and_its_rerun_log_to_one_offline_wandb_run(bundled_dir, tmp_path):
  from configs import common
  from jax_ssl.train import loop

  config = common.smoke(common.bundled_base("vicreg"))
  config.data.data_dir = str(bundled_dir)
  config.eval.report = False
  config.log.wandb = "offline"
  loop.train(config, tmp_path)
  run_id = (tmp_path / wandb_writer.RUN_ID_FILE).read_text().strip()
  config.train.num_steps = 3  # the same run, one step longer: resumes from step 2
  loop.train(config, tmp_path)
  assert (tmp_path / wandb_writer.RUN_ID_FILE).read_text().strip() == run_id
  runs = _offline_runs(tmp_path)
  assert len(runs) == 2 and all(run.name.endswith(f"-{run_id}") or f"-{run_id}-" in run.name for run in runs)
  logged = []
  for run in runs:
    found_id, rows = _history(run / f"run-{run_id}.wandb")
    assert found_id == run_id
    logged += rows
  records = monitor.read_metrics(tmp_path)
  assert [row["step"] for row in logged] == [record["step"] for record in records] == [1, 2, 3]
  for row, record in zip(logged, records):
    assert row.keys() == record.keys() and row["loss"] == pytest.approx(record["loss"], rel=1e-6)
