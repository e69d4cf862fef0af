"""The study runner's worker process (launch/cell.py)."""

import io
import json
import os
import signal
import subprocess
import sys

from launch import cell

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(args, **kwargs):
  """Runs `python ARGS` from the repository root; returns the result."""
  return subprocess.run(
      [sys.executable] + args,
      cwd=REPO,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
      capture_output=True,
      text=True,
      timeout=300,
      **kwargs)


def _bad_chain(tmp_path, name):
  """A one-stage chain that fails fast: its gin file does not exist."""
  argv = [
      "t5_mesh_transformer", "--module_import=mtf_arch",
      "--model_dir=%s" % (tmp_path / name), "--gin_file=arch/no_such_arch.gin"
  ]
  path = tmp_path / ("%s.json" % name)
  path.write_text(json.dumps([["pretrain", argv]]))
  return str(path)


def test_worker_survives_a_failed_chain_and_restarts_after_a_kill(tmp_path):
  worker = cell.Worker(dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  done = []
  try:
    log = io.StringIO()
    assert worker.run(_bad_chain(tmp_path, "a"), log, done.append) == 1
    # The stock command's one-line error, not a traceback.
    assert "mtf_arch: error: gin file 'arch/no_such_arch.gin' not found" in (
        log.getvalue()), log.getvalue()[-2000:]
    assert cell.END_MARK not in log.getvalue()
    pid = worker._proc.pid  # pylint: disable=protected-access
    log = io.StringIO()
    assert worker.run(_bad_chain(tmp_path, "b"), log, done.append) == 1
    assert worker._proc.pid == pid  # pylint: disable=protected-access
    assert "not found" in log.getvalue()

    # A worker that dies (SIGKILL) fails only its chain; the next one gets a
    # fresh process.
    os.kill(pid, signal.SIGKILL)
    worker._proc.wait()  # pylint: disable=protected-access
    log = io.StringIO()
    assert worker.run(_bad_chain(tmp_path, "c"), log, done.append) == 1
    assert worker._proc.pid != pid  # pylint: disable=protected-access
    assert "not found" in log.getvalue()
  finally:
    worker.close()
  assert done == []  # no stage of a failed chain is reported done


def test_lean_startup_skips_graph_dumps_meta_optimizer_and_autotune(tmp_path):
  # A checkpointed training session under lean start-up: checkpoints and
  # scalars are written as before; no graph dump (graph.pbtxt, .meta, graph
  # events) is; other write_graph calls and session options are untouched.
  # An estimator's input dataset yields the same elements, untuned.
  code = """
import glob, os, sys
from launch import cell
cell.lean_startup()
import tensorflow.compat.v1 as tf
from tensorflow.python.training import training_util
from tensorflow_estimator.python.estimator import run_config
tf.disable_v2_behavior()
out = sys.argv[1]
step = tf.train.get_or_create_global_step()
w = tf.get_variable("w", [3], initializer=tf.ones_initializer())
loss = tf.reduce_sum(w * w)
tf.summary.scalar("loss", loss)
train = tf.train.GradientDescentOptimizer(0.1).minimize(loss, step)
with tf.train.MonitoredTrainingSession(
    checkpoint_dir=out, save_checkpoint_steps=2, save_summaries_steps=1,
    log_step_count_steps=None) as sess:
  for _ in range(2):
    sess.run(train)
training_util.write_graph(tf.get_default_graph().as_graph_def(), out,
                          "other.pbtxt")
training_util.write_graph(tf.get_default_graph().as_graph_def(), out,
                          "graph.pbtxt")
kinds = set()
for path in glob.glob(os.path.join(out, "events.*")):
  for event in tf.train.summary_iterator(path):
    kinds.add(event.WhichOneof("what"))
    if event.HasField("summary"):
      kinds.update(v.tag for v in event.summary.value)
print(" ".join(sorted(kinds)))
config = run_config.get_default_session_config()
print(config.graph_options.rewrite_options.disable_meta_optimizer,
      config.allow_soft_placement)
from tensorflow.core.framework import dataset_options_pb2
from tensorflow_estimator.python.estimator import util
with tf.Graph().as_default() as g:
  data = tf.data.Dataset.range(6).map(lambda x: ({"x": x * x}, x),
                                      num_parallel_calls=tf.data.AUTOTUNE)
  features, labels, hooks = util.parse_input_fn_result(data)
  autotune = []
  for op in g.get_operations():
    if op.type == "OptionsDataset":
      options = dataset_options_pb2.Options()
      options.ParseFromString(op.get_attr("serialized_options"))
      autotune.append(options.autotune_options.enabled)
  hooks[0].begin()
  with tf.Session() as sess:
    hooks[0].after_create_session(sess, None)
    got = [sess.run([features["x"], labels]) for _ in range(6)]
print(autotune, [[int(a), int(b)] for a, b in got])
"""
  out = _python(["-c", code, str(tmp_path)])
  assert out.returncode == 0, out.stderr[-3000:]
  kinds, config, data = out.stdout.strip().splitlines()[-3:]
  assert config.split() == ["True", "True"]
  assert data == ("[False] [[0, 0], [1, 1], [4, 2], [9, 3], [16, 4], "
                  "[25, 5]]"), data
  # Scalars and checkpoint notices, no graph_def / meta_graph_def events.
  assert "graph_def" not in kinds and "meta_graph_def" not in kinds, kinds
  assert "loss" in kinds.split() and "session_log" in kinds.split(), kinds
  files = sorted(os.listdir(tmp_path))
  assert "model.ckpt-2.index" in files and "model.ckpt-0.index" in files
  assert not [f for f in files if f.endswith(".meta")], files
  assert "other.pbtxt" in files and "graph.pbtxt" not in files, files


def test_serve_reports_each_chain_and_goes_on(tmp_path):
  # A subprocess, as the runner uses it: serving calls
  # tf.disable_v2_behavior(), which must not leak into other tests.
  chains = [_bad_chain(tmp_path, "a"), _bad_chain(tmp_path, "b")]
  out = _python(["-m", "launch.cell", "--serve"],
                input="\n".join(chains) + "\n\n")
  assert out.returncode == 0, out.stderr[-3000:]
  ends = [l for l in out.stdout.splitlines() if l.startswith(cell.END_MARK)]
  assert ends == [cell.END_MARK + "failed"] * 2
  # Each failure is reported as the stock command reports it (mtf_arch's
  # excepthook, installed by --module_import=mtf_arch).
  assert out.stderr.count(
      "mtf_arch: error: gin file 'arch/no_such_arch.gin'") == 2, (
          out.stderr[-3000:])


def _train_argv(model_dir, arch="transformer", extra=()):
  return [
      "t5_mesh_transformer", "--module_import=mtf_arch",
      "--model_dir=%s" % model_dir,
      "--gin_file=arch/%s.gin" % arch, "--gin_file=size/test.gin",
      "--gin_file=mesh/cpu_1.gin", "--gin_file=run/pretrain.gin",
      "--gin_file=run/cpu_quick.gin", "--gin_param=utils.run.train_steps = 3",
      "--gin_param=utils.run.batch_size = 4"
  ] + list(extra)


def test_chain_run_second_in_a_worker_equals_a_fresh_stock_cli(
    tmp_path, offline_dir):
  """A reused (lean) worker first trains another model with other gin
  constants (ALBERT, SEED = 7, d_model 32), then the chain under test; the
  stock command in a fresh process runs the same chain. Both write the same
  operative config and the same step-0 checkpoint, bit for bit: nothing of
  the first chain (gin constants, seeds, seqio caches, graph) reached the
  second. Later checkpoints are not compared: two fresh stock runs of one
  command already differ after the first update (measured: identical step-0
  weights and step-1 loss, then up to 0.03 apart in the bfloat16 variables),
  the open float residual that tests/test_study.py bounds."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  from tests.conftest import run_cli  # pylint: disable=g-import-not-at-top
  del offline_dir
  first = tmp_path / "first.json"
  first.write_text(
      json.dumps([[
          "pretrain",
          _train_argv(
              tmp_path / "first",
              "albert",
              extra=["--gin_param=SEED = 7", "--gin_param=d_model = 32"])
      ]]))
  second = tmp_path / "second.json"
  second.write_text(
      json.dumps([["pretrain", _train_argv(tmp_path / "worker")]]))
  worker = cell.Worker(dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  try:
    for chain in (first, second):
      log = io.StringIO()
      assert worker.run(str(chain), log, lambda _: None) == 0, (
          log.getvalue()[-3000:])
  finally:
    worker.close()
  proc = run_cli(_train_argv(tmp_path / "fresh")[1:])
  assert proc.returncode == 0, proc.stderr[-3000:]
  configs = [(tmp_path / d / "operative_config.gin").read_text()
             for d in ("worker", "fresh")]
  assert configs[0] == configs[1]
  assert "SEED = 0" in configs[0] and "d_model = 64" in configs[0]
  ckpts = [
      tf.train.load_checkpoint(str(tmp_path / d / "model.ckpt-0"))
      for d in ("worker", "fresh")
  ]
  names = sorted(ckpts[0].get_variable_to_shape_map())
  assert names == sorted(ckpts[1].get_variable_to_shape_map())
  assert len([n for n in names if n.startswith(("encoder/", "decoder/"))
             ]) > 10, names
  for name in names:
    # float64 for the comparison (the variables are stored as bfloat16).
    a, b = (np.asarray(c.get_tensor(name)).astype(np.float64) for c in ckpts)
    np.testing.assert_array_equal(a, b, err_msg=name)
