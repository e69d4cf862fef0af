"""Runs cells' chains of stock CLI runs in a long-lived worker process.

Each stage is `t5.models.mesh_transformer_main.main` -- the function behind
the `t5_mesh_transformer` command -- called with exactly the argv the stock
command gets (launch/study.py composes them; the TPU target prints them as
separate commands). Between stages the flags, the gin config and the default
graph are reset, so a stage sees what a fresh command would. What a worker
keeps from one stage and one cell to the next is the Python/TensorFlow
import and AutoGraph's cache of converted seqio preprocessors: measured on a
micro_2 Transformer cell, ~15-20 s of its ~65 s cold.

Lean start-up (`--lean`, what the local study target uses), three choices
for short CPU runs, none of which changes the model, the data, the
checkpoints' variables or the logged scalars:
* No graph dumps: `graph.pbtxt` (a 12 MB text dump at micro_3), the
  `model.ckpt-N.meta` written with each checkpoint, and the graph and meta
  graph that the checkpoint hook and the summary writers add to the events
  file. Each serializes the whole Mesh-TF graph (thousands of ops), ~6 times
  per training stage; nothing in the study reads them (stages rebuild their
  graph from gin and restore variables only). TensorBoard shows every scalar
  but no graph; a stock or TPU/GPU run keeps them all.
* Grappler's meta-optimizer is off, as Mesh-TF's own `utils.get_estimator`
  does on TPU ("drastically slows down startup time"); measured on CPU it
  saves ~1-2 s per stage and leaves the step time unchanged.
* tf.data autotuning off for the estimator's input pipelines. Its model
  thread sleeps between optimization rounds, for longer the longer a run
  goes, and the iterator's destructor at session close waits out the
  sleep: measured on a 100-step MoS micro_3 pretraining run, 25-29 s idle
  after the last step with autotuning, 0.1 s without, at the same steps/s
  (three runs each). The pipelines yield the same elements in the same
  order (parallel maps stay deterministic); only their thread and buffer
  sizes stop adapting.

Usage (the study runner drives it):
  python -m launch.cell CHAIN.json          runs one chain and exits
  python -m launch.cell --serve [--lean]    runs the chain of each path read
                                            from stdin, one after another
CHAIN.json is a list of [stage name, argv]. The worker prints
`[cell] stage done: <name> (<seconds> s)` after each stage, so the runner
can record it, and `[cell] chain end: ok|failed` after each chain.
"""

import json
import os
import subprocess
import sys
import time

DONE_MARK = "[cell] stage done: "
END_MARK = "[cell] chain end: "


def lean_startup():
  """Skips graph dumps, Grappler's meta-optimizer and tf.data autotuning."""
  # pylint: disable=g-import-not-at-top
  from tensorflow.python.summary.writer import writer
  from tensorflow.python.summary.writer import writer_cache
  from tensorflow.python.training import basic_session_run_hooks as hooks
  from tensorflow.python.training import training_util
  from tensorflow_estimator.python.estimator import run_config
  from tensorflow_estimator.python.estimator import util as estimator_util
  import tensorflow as tf
  # pylint: enable=g-import-not-at-top
  write_graph = training_util.write_graph
  default_config = run_config.get_default_session_config
  hook_init = hooks.CheckpointSaverHook.__init__
  parse_input_fn_result = estimator_util.parse_input_fn_result

  def write_graph_but_pbtxt(graph, logdir, name, as_text=True):
    if name == "graph.pbtxt":
      return None
    return write_graph(graph, logdir, name, as_text)

  def config_without_meta_optimizer():
    config = default_config()
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    return config

  def hook_without_meta(self, *args, **kwargs):
    kwargs["save_graph_def"] = False  # no graph.pbtxt, no .meta files
    hook_init(self, *args, **kwargs)

  def save_first_checkpoint(self, session, coord):
    # CheckpointSaverHook.after_create_session (TF 2.15) less the graph and
    # meta graph it adds to the events file: the step-0 (or restored-step)
    # checkpoint is saved as before.
    del coord
    global_step = session.run(self._global_step_tensor)  # pylint: disable=protected-access
    self._save(session, global_step)  # pylint: disable=protected-access
    self._timer.update_last_triggered_step(global_step)  # pylint: disable=protected-access

  def writer_without_graph(logdir):
    # FileWriterCache.get, less the graph it gives each new writer.
    with writer_cache.FileWriterCache._lock:  # pylint: disable=protected-access
      cache = writer_cache.FileWriterCache._cache  # pylint: disable=protected-access
      if logdir not in cache:
        cache[logdir] = writer.FileWriter(logdir)
      return cache[logdir]

  def input_without_autotune(result):
    # Every estimator train/evaluate/predict call turns its input_fn's
    # dataset into an iterator here.
    if isinstance(result, tf.data.Dataset):
      options = tf.data.Options()
      options.autotune.enabled = False
      result = result.with_options(options)
    return parse_input_fn_result(result)

  training_util.write_graph = write_graph_but_pbtxt
  run_config.get_default_session_config = config_without_meta_optimizer
  hooks.CheckpointSaverHook.__init__ = hook_without_meta
  hooks.CheckpointSaverHook.after_create_session = save_first_checkpoint
  writer_cache.FileWriterCache.get = staticmethod(writer_without_graph)
  estimator_util.parse_input_fn_result = input_without_autotune


def run_chain(chain):
  """Runs [(stage, argv), ...] in order; raises on the first failure."""
  # pylint: disable=g-import-not-at-top
  from absl import flags
  from absl import logging
  import gin
  from t5.models import mesh_transformer_main
  import tensorflow.compat.v1 as tf
  # pylint: enable=g-import-not-at-top
  tf.disable_v2_behavior()
  tf.logging.set_verbosity(tf.logging.INFO)
  for stage, argv in chain:
    start = time.time()
    print("[cell] stage start: %s" % stage, flush=True)
    flags.FLAGS.unparse_flags()
    flags.FLAGS(list(argv))
    logging.use_absl_handler()  # timestamped lines, as under absl.app.run
    sys.argv = list(argv)  # the CLI records sys.argv in model_dir/commands
    gin.clear_config()
    tf.reset_default_graph()
    mesh_transformer_main.main(None)
    print("%s%s (%.1f s)" % (DONE_MARK, stage, time.time() - start), flush=True)


def serve(stream=sys.stdin):
  """Runs the chain of each CHAIN.json path read from `stream`."""
  for line in stream:
    if not line.strip():
      continue
    try:
      with open(line.strip()) as f:
        run_chain(json.load(f))
      ok = True
    except (Exception, SystemExit) as e:  # pylint: disable=broad-except
      sys.stdout.flush()
      # The same report a stock command would die with (mtf_arch's one-line
      # errors included); the worker goes on to the next chain.
      sys.excepthook(type(e), e, e.__traceback__)
      sys.stderr.flush()
      ok = False
    print("%s%s" % (END_MARK, "ok" if ok else "failed"), flush=True)


class Worker:
  """A `launch.cell --serve` process owned by one runner thread.

  Started on first use and again after it dies (a crash fails only the
  chain it was running). It gets SIGKILL when its runner thread dies.
  """

  def __init__(self, env=None, lean=True, preexec_fn=None):
    self._env, self._lean, self._preexec_fn = env, lean, preexec_fn
    self._proc = None

  def run(self, chain_path, log, on_done):
    """Runs one chain; copies its output to `log`; returns an exit code."""
    if self._proc is None or self._proc.poll() is not None:
      self._proc = subprocess.Popen(
          [sys.executable, "-m", "launch.cell", "--serve"] +
          (["--lean"] if self._lean else []),
          stdin=subprocess.PIPE,
          stdout=subprocess.PIPE,
          stderr=subprocess.STDOUT,
          text=True,
          env=self._env,
          preexec_fn=self._preexec_fn)
    self._proc.stdin.write(os.path.abspath(chain_path) + "\n")
    self._proc.stdin.flush()
    for line in self._proc.stdout:
      if line.startswith(END_MARK):
        log.flush()
        return 0 if line[len(END_MARK):].strip() == "ok" else 1
      log.write(line)
      if line.startswith(DONE_MARK):
        log.flush()
        on_done(line[len(DONE_MARK):].split()[0])
    code = self._proc.wait()  # the worker died mid-chain
    self._proc = None
    return code or 1

  def close(self):
    if self._proc is not None and self._proc.poll() is None:
      self._proc.stdin.close()
      self._proc.wait()
    self._proc = None


def main(argv=None):
  argv = sys.argv[1:] if argv is None else argv
  if argv and argv[0] == "--serve" and set(argv[1:]) <= {"--lean"}:
    if "--lean" in argv:
      lean_startup()
    serve()
    return
  if len(argv) != 1 or argv[0].startswith("--"):
    raise SystemExit("usage: python -m launch.cell CHAIN.json\n"
                     "       python -m launch.cell --serve [--lean]")
  with open(argv[0]) as f:
    run_chain(json.load(f))


if __name__ == "__main__":
  main()
