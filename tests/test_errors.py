"""Bad input ends in one clear error line, not a traceback from inside TF."""

import pytest

from mtf_arch import mesh
from mtf_arch import tasks
from mtf_arch.errors import ConfigError
from tests.conftest import run_cli

BASE = [
    "--module_import=mtf_arch", "--gin_file=arch/transformer.gin",
    "--gin_file=size/test.gin", "--gin_file=mesh/cpu_2.gin",
    "--gin_file=run/pretrain.gin", "--gin_file=run/cpu_quick.gin",
    "--gin_param=utils.run.train_steps=1"
]


def _expect_clean_error(args, tmp_path, *needles):
  proc = run_cli(["--model_dir=%s" % (tmp_path / "m")] + args, timeout=300)
  assert proc.returncode != 0
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  lines = [l for l in proc.stderr.splitlines() if l.startswith("mtf_arch: ")]
  assert len(lines) == 1, proc.stderr[-3000:]
  for needle in needles:
    assert needle in lines[0], lines[0]


def test_unknown_gin_file_suggests_the_right_one(tmp_path):
  args = [
      a.replace("arch/transformer.gin", "arch/transfomer.gin") for a in BASE
  ]
  _expect_clean_error(args, tmp_path, "arch/transfomer.gin", "not found",
                      "did you mean arch/transformer.gin")


def test_mesh_size_must_match_devices(tmp_path):
  _expect_clean_error(
      BASE + ["--gin_param=checked_mesh_shape.shape='model:4,batch:1'"],
      tmp_path, "has 4 slices", "provides 2 devices",
      "checked_mesh_shape.shape")


def test_heads_must_split_over_model_dimension(tmp_path):
  _expect_clean_error(BASE + ["--gin_param=num_heads=3"], tmp_path,
                      "num_heads=3", "model:2", "multiple of 2")


def test_unreachable_vocabulary_says_what_to_set(tmp_path):
  # run/pretrain.gin alone: the paper's C4 task and T5's gs:// vocabulary.
  args = [a for a in BASE if a != "--gin_file=run/cpu_quick.gin"]
  args += [
      "--gin_param=utils.run.sequence_length={'inputs': 64, "
      "'targets': 14}", "--gin_param=utils.run.batch_size=2"
  ]
  _expect_clean_error(args, tmp_path, "gs://t5-data/vocabs/cc_all.32000",
                      "c4_vocabulary_path.path")


def test_unprepared_tfds_data_says_how_to_build_it(tmp_path, offline_dir):
  # The paper's C4 task with a readable vocabulary (the offline one) and an
  # empty TFDS data directory: the run stops at the dataset, in one line.
  args = [a for a in BASE if a != "--gin_file=run/cpu_quick.gin"]
  args += [
      "--gin_param=utils.run.sequence_length={'inputs': 64, "
      "'targets': 14}", "--gin_param=utils.run.batch_size=2",
      "--gin_param=c4_vocabulary_path.path='%s/spm.model'" % offline_dir,
      "--t5_tfds_data_dir=%s" % (tmp_path / "tfds")
  ]
  _expect_clean_error(args, tmp_path, "tfds build c4", "t5_tfds_data_dir")


# In-process versions of the same checks, with exact messages.


def test_check_mesh_messages():
  import mesh_tensorflow as mtf
  rules = mtf.convert_to_layout_rules("heads:model,d_ff:model")
  mesh.check_mesh("batch:4,model:8", 32, {
      "heads": (32, "num_heads"),
      "d_ff": (16384, "d_ff")
  }, rules)
  with pytest.raises(
      ConfigError,
      match="num_heads=12: the 'heads' dimension "
      "cannot be split over mesh dimension model:8"):
    mesh.check_mesh("batch:4,model:8", 32, {"heads": (12, "num_heads")}, rules)
  with pytest.raises(ConfigError, match="has 16 slices"):
    mesh.check_mesh("batch:8,model:2", 32, {}, rules)
  with pytest.raises(ConfigError, match="not a mesh shape"):
    mesh.check_mesh("batch=8", 8, {}, rules)


def test_missing_local_vocabulary_and_tfds_data(tmp_path):
  with pytest.raises(ConfigError, match="does not exist; set"):
    tasks.check_readable(str(tmp_path / "nope.model"), "vocabulary", "x")
  import seqio
  seqio.set_tfds_data_dir_override(str(tmp_path))
  try:
    task = seqio.get_mixture_or_task(tasks.C4_TASK)
    with pytest.raises(ConfigError, match="tfds build c4.*t5_tfds_data_dir"):
      task.source.get_dataset("train")
  finally:
    seqio.set_tfds_data_dir_override(None)
