"""The stock `t5_mesh_transformer` console script, with the package's gin files.

These run the installed package (the Makefile installs it) from `/`, so they
also check the start-up hook (mesh_tensorflow imports before mtf_arch) and
that gin files resolve from any working directory.
"""

import os

from tests.conftest import run_cli

EXPERIMENT = [
    "--module_import=mtf_arch", "--gin_file=arch/transformer.gin",
    "--gin_file=size/test.gin", "--gin_file=mesh/cpu_1.gin",
    "--gin_file=run/pretrain.gin", "--gin_file=run/cpu_quick.gin"
]


def test_stock_cli_trains_with_gin_param_overrides(tmp_path, offline_dir):
  del offline_dir
  model_dir = str(tmp_path / "model")
  proc = run_cli(["--model_dir=" + model_dir] + EXPERIMENT + [
      "--gin_param=utils.run.train_steps=4",
      "--gin_param=utils.run.batch_size=4",
      "--gin_param=d_ff=96",
  ])
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert os.path.exists(os.path.join(model_dir, "model.ckpt-4.index"))
  with open(os.path.join(model_dir, "operative_config.gin")) as f:
    operative = f.read()
  assert "train_steps = 4" in operative
  assert "d_ff = 96" in operative
  assert "step, tf_loss" in proc.stderr  # it logged real training steps


def test_stock_cli_model_parallel_2(tmp_path, offline_dir):
  del offline_dir
  model_dir = str(tmp_path / "model")
  args = ["--model_dir=" + model_dir
         ] + EXPERIMENT + ["--gin_param=utils.run.train_steps=2"]
  args[args.index("--gin_file=mesh/cpu_1.gin")] = "--gin_file=mesh/cpu_2.gin"
  proc = run_cli(args)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "mesh_shape=model:2,batch:1" in proc.stderr
  assert os.path.exists(os.path.join(model_dir, "model.ckpt-2.index"))
