"""Training speed (steps per second) of a configuration, measured here.

The paper's Speed column is training steps per second on 16 TPU-v3 chips at
batch 128 (Tay et al. 2022, section 3.2). We measure whatever machine runs
this: the model is built from its gin files with `graph.ModelGraph`, lowered
with Adafactor onto a one-slice CPU mesh ("batch:1,model:1", mesh/cpu_1.gin),
its variables allocated and initialized, and `steps` training steps on random
token batches are timed after `warmup` untimed ones (the first includes graph
optimization). The batch and lengths are arguments and belong next to every
number reported. Slow (variables are allocated): for Tiny-Base on CPU only.
"""

import time

import numpy as np

from mtf_arch import flops
from mtf_arch import graph


def _random_batch(features, vocab_size, rng):
  """Random ids, one segment per row, positions 0..length-1."""
  batch = {}
  for key, placeholder in features.items():
    b, length = placeholder.shape.as_list()
    if key.endswith("_segmentation"):
      batch[key] = np.ones([b, length], np.int32)
    elif key.endswith("_position"):
      batch[key] = np.tile(np.arange(length, dtype=np.int32), [b, 1])
    else:
      batch[key] = rng.randint(2, vocab_size, size=[b, length]).astype(np.int32)
  return batch


def train_steps_per_second(gin_files,
                           gin_params=(),
                           vocab_size=graph.T5_VOCAB_SIZE,
                           batch_size=8,
                           sequence_length=None,
                           steps=3,
                           warmup=1,
                           threads=2):
  """Measures training steps per second on the local CPU.

  Args:
    gin_files: arch and size files (mesh files are replaced by cpu_1).
    gin_params: extra gin bindings (e.g. a dropout_rate).
    vocab_size: vocabulary size before padding.
    batch_size: sequences per step.
    sequence_length: {"inputs", "targets"}; the paper's 512/114 by default.
    steps: timed steps.
    warmup: untimed steps first.
    threads: TensorFlow intra- and inter-op threads.

  Returns:
    steps per second (float).
  """
  import mesh_tensorflow as mtf  # pylint: disable=g-import-not-at-top
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  files = [f for f in gin_files if not f.startswith("mesh/")] + flops.ONE_SLICE
  with graph.config(files, gin_params):
    g = graph.ModelGraph(vocab_size, batch_size, sequence_length or
                         flops.PAPER_SEQUENCE_LENGTH)
    lowering, tf_loss, train_op = graph.lower(g, ["/cpu:0"],
                                              mtf.optimize.AdafactorOptimizer)
  config = tf.ConfigProto(
      inter_op_parallelism_threads=threads,
      intra_op_parallelism_threads=threads)
  rng = np.random.RandomState(0)
  with g.tf_graph.as_default(), tf.Session(config=config) as sess:
    sess.run(
        [tf.global_variables_initializer(),
         tf.local_variables_initializer()])
    sess.run(lowering.copy_masters_to_slices())
    feeds = [{
        g.features[k]: v
        for k, v in _random_batch(g.features, vocab_size, rng).items()
    }
             for _ in range(warmup + steps)]
    for feed in feeds[:warmup]:
      sess.run([tf_loss, train_op], feed)
    start = time.time()
    for feed in feeds[warmup:]:
      sess.run([tf_loss, train_op], feed)
    return steps / (time.time() - start)
