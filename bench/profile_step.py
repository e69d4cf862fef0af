"""Where the time of a Mesh-TF training step goes, on CPU.

  python -m bench.profile_step --size tiny [--xla]

Builds the vanilla Transformer the way mtf_arch/speed.py does (the CLI's
model and Adafactor, lowered onto one CPU slice, random batches fed from
numpy: no input pipeline, no estimator hooks), and prints

* start-up phases: the imports the stock CLI makes (TensorFlow,
  mesh_tensorflow, t5.models with its torch/transformers import, this
  package), graph construction and lowering, session creation and variable
  initialization, the first step (graph optimization) and a steady step;
* one traced steady step (RunOptions FULL_TRACE): op time summed by op type,
  as a share of the summed op time, and the step's wall time.

`--xla` sets global_jit_level ON_1 in the session config (on CPU this alone
clusters nothing; TF_XLA_FLAGS="--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit"
does); `--no-autostack` lowers without Mesh-TF's variable stacking.
"""

import argparse
import collections
import os
import time

SEQ = {"inputs": 512, "targets": 114}
BATCH = 8


def _t(label, start, out):
  out.append((label, time.time() - start))
  print("  %-44s %6.2f s" % (label, out[-1][1]), flush=True)
  return time.time()


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--size", default="tiny")
  p.add_argument("--steps", type=int, default=4)
  p.add_argument("--threads", type=int, default=2)
  p.add_argument("--xla", action="store_true")
  p.add_argument("--top", type=int, default=15)
  p.add_argument(
      "--no-autostack",
      action="store_true",
      help="utils.run.autostack = False (one variable per weight)")
  args = p.parse_args(argv)
  phases = []
  print("start-up phases:")
  t = time.time()
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  t = _t("import tensorflow", t, phases)
  import mesh_tensorflow as mtf  # pylint: disable=g-import-not-at-top
  t = _t("import mesh_tensorflow", t, phases)
  import torch  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  import transformers  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  t = _t("import torch + transformers (via t5.models)", t, phases)
  import t5.models  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  t = _t("import t5.models (rest)", t, phases)
  from mtf_arch import graph  # pylint: disable=g-import-not-at-top
  from mtf_arch import speed  # pylint: disable=g-import-not-at-top
  from mtf_arch import tasks  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  vocab = tasks.OFFLINE_VOCABULARY.vocab_size
  t = _t("import mtf_arch + load vocabulary", t, phases)
  files = [
      "arch/transformer.gin",
      "size/%s.gin" % args.size, "mesh/cpu_1.gin", "run/pretrain.gin"
  ]
  with graph.config(files):
    g = graph.ModelGraph(vocab, BATCH, SEQ)
    t = _t("build mtf graph", t, phases)
    lowering, tf_loss, train_op = graph.lower(
        g, ["/cpu:0"],
        mtf.optimize.AdafactorOptimizer,
        autostack=not args.no_autostack)
  t = _t("lower to tf graph (with Adafactor)", t, phases)
  config = tf.ConfigProto(
      inter_op_parallelism_threads=args.threads,
      intra_op_parallelism_threads=args.threads)
  if args.xla:
    config.graph_options.optimizer_options.global_jit_level = (
        tf.OptimizerOptions.ON_1)
  rng = np.random.RandomState(0)
  with g.tf_graph.as_default(), tf.Session(config=config) as sess:
    t = _t("create session", t, phases)
    sess.run(
        [tf.global_variables_initializer(),
         tf.local_variables_initializer()])
    sess.run(lowering.copy_masters_to_slices())
    t = _t("initialize variables", t, phases)

    def feed():
      return {
          g.features[k]: v
          for k, v in speed._random_batch(g.features, vocab, rng).items()  # pylint: disable=protected-access
      }

    sess.run([tf_loss, train_op], feed())
    t = _t("first step (graph optimization + step)", t, phases)
    feeds = [feed() for _ in range(args.steps)]
    t = time.time()
    for f in feeds:
      sess.run([tf_loss, train_op], f)
    steady = (time.time() - t) / args.steps
    print("  %-44s %6.2f s  (%.3f steps/s, %.0f tokens/s)" %
          ("steady step (mean of %d)" % args.steps, steady, 1 / steady, BATCH *
           (SEQ["inputs"] + SEQ["targets"]) / steady))
    opts = tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE)
    meta = tf.RunMetadata()
    t = time.time()
    sess.run([tf_loss, train_op], feed(), options=opts, run_metadata=meta)
    traced = time.time() - t
  by_type, count = collections.Counter(), collections.Counter()
  names = {n.name: n.op for n in g.tf_graph.as_graph_def().node}
  for dev in meta.step_stats.dev_stats:
    for node in dev.node_stats:
      name = node.node_name.split(":")[0]
      op = names.get(
          name,
          node.timeline_label.split("=")[-1].split("(")[0].strip() or name)
      by_type[op] += node.all_end_rel_micros
      count[op] += 1
  total = sum(by_type.values())
  print("\ntraced step: %.2f s wall; summed op time %.2f s (%d threads), "
        "%d op executions" %
        (traced, total / 1e6, args.threads, sum(count.values())))
  print("%-28s %8s %6s %6s" % ("op type", "ms", "share", "count"))
  for op, us in by_type.most_common(args.top):
    print("%-28s %8.1f %5.1f%% %6d" %
          (op, us / 1e3, 100 * us / total, count[op]))
  small = sum(1 for n in count if by_type[n] / max(count[n], 1) < 50)
  print("op types averaging under 50 us per execution: %d" % small)
  if os.environ.get("PROFILE_TIMELINE"):
    from tensorflow.python.client import timeline  # pylint: disable=g-import-not-at-top
    with open(os.environ["PROFILE_TIMELINE"], "w") as f:
      f.write(timeline.Timeline(meta.step_stats).generate_chrome_trace_format())
  return 0


if __name__ == "__main__":
  main()
