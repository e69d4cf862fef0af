"""One seed per run: weights, dropout and data order of a stock CLI run.

The stock path (`t5_mesh_transformer` -> `utils.run`) seeds nothing:
`utils.get_estimator` builds its `tpu_config.RunConfig` without
`tf_random_seed`, so the estimator gives each graph a fresh random seed, and
seqio draws fresh shuffle and span-corruption seeds. gin/run/pretrain.gin
binds one `SEED` macro to each source of randomness:

* data order and span-corruption noise: the stock dataset functions' own
  `seed` (`mesh_train_dataset_fn.seed`, `mesh_eval_dataset_fn.seed`), which
  seqio passes to its shuffle and to every preprocessor's stateless ops;
* initialization and any other TF random op: the graph-level seed, set by
  `seeded_train_dataset_fn` below (the training input_fn runs in the
  estimator's graph before the model_fn creates any variable);
* dropout: PlacementMeshImpl (CPU/GPU meshes) seeds each random op with
  `hash("%s,%s" % (random.random(), slice))` while lowering, so it needs
  Python's `random` seeded (below, before every training graph) and a fixed
  PYTHONHASHSEED in the process (the study's workers get one); SimdMeshImpl
  (TPU) uses unseeded TF ops, which the graph-level seed fixes.

Measured on CPU (tests/test_study.py): two runs' initial checkpoints and
first-step losses are bit-identical; the weights then drift by float
rounding (at most 8e-4 nats of validation loss after 4 steps; another seed
moves it 1.3e-2). TF_DETERMINISTIC_OPS=1 and TF_ENABLE_ONEDNN_OPTS=0 do not
remove the drift.
"""

import contextlib
import os
import random

from absl import logging
import gin
import numpy as np
import tensorflow.compat.v1 as tf
from tensorflow.python.autograph.core import ag_ctx


def seed_process(seed):
  """Seeds the default graph, Python's `random` and NumPy's global state."""
  tf.set_random_seed(seed)
  random.seed(seed)
  np.random.seed(seed)
  if os.environ.get("PYTHONHASHSEED") in (None, "", "random"):
    logging.warning(
        "PYTHONHASHSEED is not set: Mesh-TF's dropout masks on CPU/GPU meshes "
        "(PlacementMeshImpl) still differ from run to run.")


@contextlib.contextmanager
def autograph_off():
  """tf.data functions traced inside are not converted by AutoGraph.

  `Dataset.map` traces its function when it is called, converting it with
  AutoGraph first unless the AutoGraph status at that moment is DISABLED.
  Converting seqio's and T5's preprocessors (span corruption alone is ~20
  functions) is most of the time a stock run takes to build its input
  pipeline: measured at Tiny (inputs 512), 5-7 s with conversion against 0.8
  s without. Their control flow branches on Python values only, so the traced
  graphs compute the same elements; a preprocessor that branched on a tensor
  would fail to trace, loudly (tests/test_evaluation.py compares the batches of
  every task the run files train on, bit for bit).

  Yields:
    None.
  """
  with ag_ctx.ControlStatusCtx(status=ag_ctx.Status.DISABLED):
    yield


@gin.configurable
def seeded_train_dataset_fn(sequence_length,
                            vocabulary=None,
                            dataset_split="train",
                            dataset_fn=gin.REQUIRED,
                            seed=gin.REQUIRED,
                            autograph=False):
  """`utils.run.train_dataset_fn` that seeds the graph, then calls `dataset_fn`.

  utils.train_model's input_fn calls this inside the estimator's new graph,
  after the estimator has set that graph's seed to its RunConfig's (None)
  and before the model_fn builds and lowers the model; so `seed` becomes the
  graph-level seed of every variable initializer and random op, and Python's
  `random` is at `seed` when the lowering draws the dropout seeds.

  Args:
    sequence_length: as utils.run passes it.
    vocabulary: as utils.run passes it.
    dataset_split: as utils.run passes it.
    dataset_fn: the stock dataset function (its own bindings apply).
    seed: an int (gin/run/pretrain.gin binds SEED).
    autograph: convert the input pipeline's functions with AutoGraph, as
      tf.data does by default; off (the default) builds the same pipeline
      5-7 s faster (see `autograph_off`).

  Returns:
    dataset_fn's tf.data.Dataset.
  """
  seed_process(seed)
  with contextlib.nullcontext() if autograph else autograph_off():
    return dataset_fn(
        sequence_length=sequence_length,
        vocabulary=vocabulary,
        dataset_split=dataset_split)
