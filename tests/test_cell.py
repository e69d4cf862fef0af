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


def test_lean_startup_skips_only_graph_pbtxt_and_the_meta_optimizer(tmp_path):
  code = """
import sys
from launch import cell
cell.lean_startup()
import tensorflow.compat.v1 as tf
from tensorflow.python.training import training_util
from tensorflow_estimator.python.estimator import run_config
graph = tf.Graph()
with graph.as_default():
  tf.constant(1.0)
for name in ("graph.pbtxt", "other.pbtxt"):
  training_util.write_graph(graph.as_graph_def(), sys.argv[1], name)
config = run_config.get_default_session_config()
print(config.graph_options.rewrite_options.disable_meta_optimizer,
      config.allow_soft_placement)
"""
  out = _python(["-c", code, str(tmp_path)])
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.split() == ["True", "True"]
  assert sorted(os.listdir(tmp_path)) == ["other.pbtxt"]


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
